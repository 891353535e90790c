"""Find and read a weights file: a local file, a folder holding one, or a file on the Hugging Face Hub.

Only tensors are ever read: `.pth` files go through `torch.load(weights_only=True)` and
`.safetensors` through safetensors, and from the Hub only the weights file is downloaded (through
huggingface_hub's cache); no code from a model repository is ever run.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from builder.errors import BuildError
from occluded_ccreid.layout import sha256_file

WEIGHT_SUFFIXES = (".pth", ".pt", ".tar", ".safetensors")  # .tar: the `*.pth.tar` of training scripts


@dataclass(frozen=True)
class HubFile:
    """One file of a Hub repository, optionally pinned to a revision and checked against its sha256."""

    repo_id: str
    filename: str
    revision: str | None = None
    sha256: str | None = None
    provenance: str | None = None  # where the file comes from, in words, for the card

    def describe(self) -> dict:
        info = {"repo_id": self.repo_id, "filename": self.filename}
        info.update(
            {
                k: v
                for k, v in (("revision", self.revision), ("sha256", self.sha256), ("provenance", self.provenance))
                if v
            }
        )
        return info


CheckpointSource = str | Path | HubFile


def _weights_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))


def _download(file: HubFile) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        path = Path(hf_hub_download(file.repo_id, file.filename, revision=file.revision))
    except Exception as exc:  # noqa: BLE001 - network, offline mode, missing repo/file: all the user's to fix
        raise BuildError(
            f"cannot download {file.filename} from the Hub repo {file.repo_id}"
            f"{f' (revision {file.revision})' if file.revision else ''}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}. Check the connection (HF_HUB_OFFLINE unset), "
            "or download the file yourself and pass its path to --model."
        ) from None
    if file.sha256 and sha256_file(path) != file.sha256:
        raise BuildError(
            f"{path} (from {file.repo_id}) does not have the expected sha256 {file.sha256}; "
            "the repository changed or the download is corrupt: delete the file and retry"
        )
    return path


def _hub_weights(spec: str) -> HubFile:
    """`owner/name/path/file.pth` -> that file; `owner/name` -> its only weights file."""
    owner, name, *rest = spec.split("/")
    repo_id = f"{owner}/{name}"
    if rest:
        return HubFile(repo_id, "/".join(rest))
    from huggingface_hub import list_repo_files

    try:
        files = list_repo_files(repo_id)
    except Exception as exc:  # noqa: BLE001 - as in _download
        raise BuildError(
            f"--model {spec!r} is no local file or folder, and the Hub repo {repo_id} cannot be listed "
            f"({type(exc).__name__}); pass a local path, or owner/name/<file> of a cached download"
        ) from None
    weights = [f for f in files if f.endswith(WEIGHT_SUFFIXES)]
    if len(weights) != 1:
        raise BuildError(
            f"Hub repo {repo_id} holds {len(weights)} weights files ({', '.join(weights) or 'none'}); "
            f"name one: --model {repo_id}/<file>"
        )
    return HubFile(repo_id, weights[0])


def resolve_weights(source: CheckpointSource) -> Path:
    """The local path of the weights file that `source` names (downloading it if it is on the Hub)."""
    if isinstance(source, HubFile):
        return _download(source)
    path = Path(source)
    if path.is_file():
        return path
    if path.is_dir():
        weights = _weights_in(path)
        if len(weights) != 1:
            raise BuildError(
                f"folder {path} holds {len(weights)} weights files "
                f"({', '.join(p.name for p in weights) or f'none ending in {WEIGHT_SUFFIXES}'}); "
                "pass the file itself"
            )
        return weights[0]
    if path.exists():  # a FIFO or device: never read (a FIFO would block for a writer)
        raise BuildError(f"checkpoint {source} is not a regular file or folder; pass the weights file itself")
    if isinstance(source, str) and source.count("/") >= 1 and not source.startswith((".", "/", "~")):
        return _download(_hub_weights(source))
    raise BuildError(f"checkpoint {source} does not exist (expected a file, a folder or a Hub repo id)")


# What torch's weights-only unpickler names when a file holds an object that is not a tensor.
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def not_a_checkpoint(path: Path, exc: Exception) -> str:
    """Why `path` cannot be read as tensors, in one line. Never torch's own text for a refused
    unpickling, which advises loading with `weights_only=False`: that runs whatever code the
    file holds, and this tool must never suggest it for a file it did not vet."""
    expected = "expected a state dict (a mapping of names to tensors) saved with torch.save, or a .safetensors file"
    if isinstance(exc, pickle.UnpicklingError) and (found := _UNSUPPORTED_GLOBAL.search(str(exc))):
        return (
            f"checkpoint {path} holds a Python object ({found.group(1)}) besides tensors; only tensors are "
            f"read from a checkpoint, so no code in it can run: {expected}, holding nothing else"
        )
    detail = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in detail:
        detail = "not a pickle of tensors"
    return f"{path} is not a PyTorch checkpoint ({type(exc).__name__}: {detail}); {expected}"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file: the state dict itself or the one under `state_dict`, with
    DataParallel's `module.` prefix removed and `num_batches_tracked` counters (which inference
    never reads, and which the official SCHP files do not have) dropped."""
    try:
        if path.name.endswith(".safetensors"):
            from safetensors.torch import load_file

            loaded = load_file(str(path))
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)  # always: no code in the file runs
    except OSError as exc:
        raise BuildError(f"cannot read checkpoint {path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any other file fails in its own way (IndexError, EOFError, ...)
        raise BuildError(not_a_checkpoint(path, exc)) from None
    content: object = loaded
    if isinstance(content, Mapping) and isinstance(content.get("state_dict"), Mapping):
        content = content["state_dict"]
    if not isinstance(content, Mapping) or not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise BuildError(
            f"checkpoint {path} is not a state dict (a mapping of names to tensors), nor holds one under 'state_dict'"
        )
    state = {}
    for key, value in content.items():
        key = key[len("module.") :] if key.startswith("module.") else key
        if not key.endswith("num_batches_tracked"):
            state[key] = value
    return state
