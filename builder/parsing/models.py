"""`--model`: short aliases of the known part-parsing checkpoints, and which parser reads a model.

The default is SCHP trained on Pascal-Person-Part, the parser of the paper: its seven labels are
the paper's palette (background, head, torso, upper/lower arms, upper/lower legs) and mark body
parts under clothes. The official SCHP weights are published on Google Drive only; the aliases
download byte-identical copies from a public Hub repository (pinned revision, checked sha256):
`ApacheOne/ComfyUI-human-parser_models_ATR_LIP_Pascal` holds the three official files, and the
same Pascal file (same sha256 and size) is also in `alexgenovese/reica_controlnet`, the LIP and
ATR files in several other repositories. docs/building.md ("Part parsers") says how to use a file
downloaded from the authors' Google Drive instead.

Any other `--model` is a path or a Hub repo id: a `.pth`/`.safetensors` file, or a folder or repo
without a `config.json`, is an SCHP checkpoint; a folder or repo with one is a `transformers`
segmentation checkpoint (SegFormer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from builder.errors import BuildError
from builder.parsing.checkpoints import WEIGHT_SUFFIXES, HubFile
from builder.parsing.network import NetworkParser
from builder.parsing.schp import SchpParser
from builder.parsing.segmenter import SEGFORMER_ATR, SegformerParser

SCHP_REPO = "ApacheOne/ComfyUI-human-parser_models_ATR_LIP_Pascal"
SCHP_REVISION = "34da45d44fc2b7efe6a54308f0a3ceac08470a19"  # the commit that added the three official files
SCHP_PROVENANCE = (
    "the official SCHP checkpoint of Li et al., which the authors publish on Google Drive "
    "(github.com/GoGoDuck912/Self-Correction-Human-Parsing); this Hub copy is byte-identical to "
    "copies in unrelated Hub repositories"
)


@dataclass(frozen=True)
class ModelEntry:
    kind: str  # a key of PARSERS
    source: HubFile | str
    description: str


MODELS: dict[str, ModelEntry] = {
    "schp-pascal": ModelEntry(
        "schp",
        HubFile(
            SCHP_REPO,
            "exp-schp-201908270938-pascal-person-part.pth",
            SCHP_REVISION,
            "3b03d343c39fb0696f75d45c44c67b2fc23f5d0bf0925a82c0465e415799fa85",
            SCHP_PROVENANCE,
        ),
        "SCHP ResNet-101, Pascal-Person-Part (7 labels, 71.46 mIoU on its val set); the paper's parser",
    ),
    "schp-lip": ModelEntry(
        "schp",
        HubFile(
            SCHP_REPO,
            "exp-schp-201908261155-lip.pth",
            SCHP_REVISION,
            "24fa3254ceeb74c8435458994a64b522fb439a3635b7b86ff470457e0413da00",
            SCHP_PROVENANCE,
        ),
        "SCHP ResNet-101, LIP (20 clothes/body labels, 59.36 mIoU)",
    ),
    "schp-atr": ModelEntry(
        "schp",
        HubFile(
            SCHP_REPO,
            "exp-schp-201908301523-atr.pth",
            SCHP_REVISION,
            "e9d7c91ce3b4e7133df56b599fc817b533e3439c5e8d282a59126d2fda339a2a",
            SCHP_PROVENANCE,
        ),
        "SCHP ResNet-101, ATR (18 clothes/body labels, 82.29 mIoU)",
    ),
    "segformer-atr": ModelEntry("segformer", SEGFORMER_ATR, "SegFormer-B2 ATR clothes parser (transformers)"),
}
DEFAULT_MODEL = "schp-pascal"


class ParserClass(Protocol):
    """What PARSERS holds: a parser class, called with its checkpoint first (a HubFile, a path or a
    Hub repo id; a SegFormer checkpoint is always a path or id)."""

    def __call__(
        self,
        checkpoint: Any,
        device: str,
        parse_size: tuple[int, int],
        /,
        *,
        keep_aspect: bool = ...,
        precision: str = ...,
        alias: str | None = ...,
    ) -> NetworkParser: ...


PARSERS: dict[str, ParserClass] = {"schp": SchpParser, "segformer": SegformerParser}


def _has_config(repo_id: str) -> bool:
    """Whether a Hub repo holds a transformers config; when it cannot be listed (offline), assume
    so: transformers can still load a cached checkpoint, and says so clearly when it cannot."""
    from huggingface_hub import list_repo_files

    try:
        return "config.json" in list_repo_files(repo_id)
    except Exception:  # noqa: BLE001 - offline, unknown repo: transformers gives the error
        return True


def model_kind(model: str) -> str:
    """Which parser reads a `--model` that is not an alias."""
    path = Path(model)
    if path.is_file():
        return "schp"
    if path.is_dir():
        return "segformer" if (path / "config.json").is_file() else "schp"
    if model.endswith(WEIGHT_SUFFIXES) or model.count("/") != 1:
        return "schp"  # owner/name/file.pth on the Hub, or a path that does not exist (SCHP's loader says so)
    return "segformer" if _has_config(model) else "schp"


def make_model_parser(
    model: str | None, device: str, parse_size: tuple[int, int], *, keep_aspect: bool = True, precision: str = "fp32"
) -> NetworkParser:
    """The parser of `--model` (an alias of MODELS, a path or a Hub repo id; None: DEFAULT_MODEL)."""
    name = model or DEFAULT_MODEL
    entry = MODELS.get(name)
    if entry is None and "/" not in name and not Path(name).exists():
        raise BuildError(
            f"--model {name!r} is neither a known alias ({', '.join(MODELS)}) nor an existing file "
            "or folder, nor a Hub repo id (owner/name)"
        )
    kind, source = (entry.kind, entry.source) if entry else (model_kind(name), name)
    return PARSERS[kind](
        source, device, parse_size, keep_aspect=keep_aspect, precision=precision, alias=name if entry else None
    )
