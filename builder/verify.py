"""Verify a build: a build folder, a downloaded repo, or a published repo (`builder verify`).

The checks `builder push` runs before uploading, usable by anyone holding a copy:

* `verify_build_folder(path)`: `path` is one complete, untouched build folder (`builder build`'s
  output: `build_report.json`, `README.md`, shards under `data/`).
* `verify_config(root, name)`: config `name` of a multi-config repo checked out at `root`
  (`builder push --config NAME` layout: `NAME/build_report.json`, shards `NAME/<split>-...`, the
  repo card `README.md` at the root listing the config).
* `verify(target, config=None)`: `target` is a local folder of either layout, or `NAMESPACE/NAME`
  of a dataset repo, downloaded with `huggingface_hub.snapshot_download` into its cache first.

Checked every time: the report well formed; every shard it lists present, named
`<split>-<i:05d>-of-<n:05d>.parquet` consistently with it, readable as Parquet with the same
`datasets` features metadata in every shard, holding the rows and the exact bytes (sha256) the
report recorded; split totals equal to their shards' sum; no Parquet file the report does not list
(in a config's folder: no other build's shards mixed in); the card's `configs` data file patterns
matching the build's shards and naming every split, and its `dataset_info` split sizes equal to
the report's row counts. Every failure raises `BuildFolderError` naming the file and the problem.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from builder.report import REPORT_NAME  # "build_report.json"

CARD_NAME = "README.md"
PREVIEW_NAME = "preview.png"
DATA_DIR = "data"

_SHARD_RE = re.compile(r"^data/(?P<split>[A-Za-z0-9_.]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")
# A config name is a folder of the repo: letters, digits, "-", "_", "."; not "data" (the default's).
CONFIG_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$")
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_HASH_CHUNK = 1 << 20


class BuildFolderError(ValueError):
    """The folder is not one complete, untouched build; the message names the file and the problem."""


def verify_build_folder(path: str | os.PathLike) -> dict[str, Any]:
    """Check that `path` is one complete, untouched build folder; raise `BuildFolderError` if not.

    Hidden folders (`.cache/`, `.git/`) are ignored: nothing in them is published. Returns a
    summary: `dataset`, `config` (None), `splits` (split -> rows), `num_rows`, `files` (path in
    the folder -> {"size", "sha256"} for every file to publish, shards included) and the `report`.
    """
    root = Path(path)
    if not root.is_dir():
        raise BuildFolderError(f"{root} is not a directory")
    return _verify(root, root, None)


def verify_config(root: str | os.PathLike, name: str) -> dict[str, Any]:
    """Check config `name` of a multi-config repo checked out at `root`; summary as `verify_build_folder`,
    with `files` keyed by path in the repo (`NAME/...`, the card `README.md` excluded)."""
    root = Path(root)
    if not CONFIG_RE.match(name or ""):
        raise BuildFolderError(f"config name {name!r} is not letters, digits, '-', '_' or '.'")
    if not (root / name).is_dir():
        configs = ", ".join(_listed_configs(root)) or "none"
        raise BuildFolderError(f"{root} has no folder {name}/ for config {name!r} (configs in its card: {configs})")
    return _verify(root, root / name, name)


def verify(target: str, config: str | None = None, *, revision: str | None = None,
           token: str | None = None) -> list[dict[str, Any]]:
    """Verify a local folder or a Hub dataset repo `target`: one summary per verified build.

    Without `config`: a build folder (or repo holding one at its root) is verified as such, and
    every config the card lists with a `CONFIG/build_report.json` is verified too.
    """
    local = Path(target)
    if local.exists():
        if not local.is_dir():
            raise BuildFolderError(f"{local} is not a directory")
        root = local
    elif _REPO_ID_RE.match(target):
        root = _download(target, config, revision, token)
    else:
        raise BuildFolderError(
            f"{target!r} is neither a folder nor a dataset repo id NAMESPACE/NAME: check the path or the repo id"
        )
    if config is not None:
        return [verify_config(root, config)]
    results = []
    if (root / REPORT_NAME).is_file():
        results.append(verify_build_folder(root))
    results += [verify_config(root, name) for name in _listed_configs(root) if (root / name / REPORT_NAME).is_file()]
    if not results:
        raise BuildFolderError(
            f"{target}: no build found (no {REPORT_NAME} at its root, and no config of its card has "
            f"CONFIG/{REPORT_NAME}): is it a folder made by `builder build` or a repo made by `builder push`?"
        )
    return results


def _download(repo_id: str, config: str | None, revision: str | None, token: str | None) -> Path:
    """The repo's card and build files (one config's with `config`), through the Hub client's cache."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    patterns = [CARD_NAME, REPORT_NAME, f"{DATA_DIR}/*", PREVIEW_NAME] if config is None else [CARD_NAME]
    patterns += [f"{config}/*"] if config is not None else ["*/*"]
    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, token=token,
                                      allow_patterns=patterns))
    except (HfHubHTTPError, OfflineModeIsEnabled, OSError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise BuildFolderError(
            f"cannot download dataset repo {repo_id}{'@' + revision if revision else ''} ({type(exc).__name__}: "
            f"{detail}): check the repo id (no local folder {repo_id} exists), your network and, for a private or "
            "gated repo, your token (--token or HF_TOKEN)"
        ) from exc


def _listed_configs(root: Path) -> list[str]:
    header = _card_header(root / CARD_NAME) if (root / CARD_NAME).is_file() else {}
    configs = header.get("configs") if isinstance(header, dict) else None
    return [c["config_name"] for c in configs or [] if isinstance(c, dict) and isinstance(c.get("config_name"), str)]


def _verify(root: Path, base: Path, config: str | None) -> dict[str, Any]:
    """`base` holds the report (and, with `config` None, `data/`); shard `data/X` lives at
    `base/data/X`, or `base/X` for a config. Paths in messages and `files` are relative to `root`."""
    report_path = base / REPORT_NAME
    report_rel = report_path.relative_to(root).as_posix()
    if not report_path.is_file():
        raise BuildFolderError(f"missing build report {report_rel} in {root}: the build did not finish")
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BuildFolderError(f"{report_rel} is not valid JSON ({exc})") from exc
    splits, shards = _check_report_shape(report, report_rel)

    card_path = root / CARD_NAME
    if not card_path.is_file():
        raise BuildFolderError(f"missing dataset card {CARD_NAME} in {root}")

    def published(key: str) -> str:  # report key data/X -> path relative to root
        return key if config is None else f"{config}/{key[len(DATA_DIR) + 1:]}"

    located = {published(key): key for key in shards}
    # Extra Parquet files first: they say the folder mixes builds, whatever else is wrong.
    for found in sorted(_parquet_files(root if config is None else base, root)):
        if config is None and _top_folder_is_config(found, root):
            continue  # another config's folder of a repo that also holds a build at its root
        if found not in located:
            raise BuildFolderError(
                f"unexpected parquet file {found}: not listed in {report_rel} (left over from another build?)"
            )

    files: dict[str, dict[str, Any]] = {}
    features_meta: tuple[str, bytes | None] | None = None
    for rel in sorted(located):
        entry = shards[located[rel]]
        features_meta = _check_shard(root / rel, rel, entry, report_rel, features_meta)
        files[rel] = {"size": (root / rel).stat().st_size, "sha256": entry["sha256"].lower()}

    for split, info in splits.items():
        total = sum(e["num_rows"] for key, e in shards.items()
                    if (match := _SHARD_RE.match(key)) is not None and match.group("split") == split)
        if total != info["num_rows"]:
            raise BuildFolderError(f"{report_rel}: split {split!r} says {info['num_rows']} rows but its shards "
                                   f"hold {total}")

    _check_card(card_path, splits, list(located), config or "default", config is None)

    extras = (REPORT_NAME, PREVIEW_NAME) if config else (CARD_NAME, REPORT_NAME, PREVIEW_NAME)
    for name in extras:
        file = base / name
        if file.is_file():
            files[file.relative_to(root).as_posix()] = {"size": file.stat().st_size, "sha256": _sha256_file(file)}

    return {
        "dataset": report.get("dataset"),
        "config": config,
        "splits": {split: info["num_rows"] for split, info in splits.items()},
        "num_rows": sum(info["num_rows"] for info in splits.values()),
        "files": dict(sorted(files.items())),
        "report": report,
    }


def _top_folder_is_config(rel: str, root: Path) -> bool:
    top = rel.split("/", 1)[0]
    return "/" in rel and top != DATA_DIR and (root / top / REPORT_NAME).is_file()


def _check_shard(path: Path, rel: str, entry: dict, report_rel: str, features_meta):
    import pyarrow.parquet as pq

    if not path.is_file():
        raise BuildFolderError(f"missing shard {rel} (listed in {report_rel})")
    try:
        parquet = pq.ParquetFile(path)
        num_rows = parquet.metadata.num_rows
        schema_meta = parquet.schema_arrow.metadata or {}
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise BuildFolderError(f"unreadable shard {rel}: {type(exc).__name__}: {exc}") from exc
    hf_meta = schema_meta.get(b"huggingface")
    if hf_meta is None:
        raise BuildFolderError(f"shard {rel} has no datasets features metadata: not written by the builder")
    if features_meta is None:
        features_meta = (rel, hf_meta)
    elif hf_meta != features_meta[1]:
        raise BuildFolderError(f"shard {rel} has other features than {features_meta[0]}: shards of different builds")
    if num_rows != entry["num_rows"]:
        raise BuildFolderError(
            f"row count mismatch in {rel}: the file has {num_rows} rows, {report_rel} says {entry['num_rows']}"
        )
    digest = _sha256_file(path)
    if digest != entry["sha256"].lower():
        raise BuildFolderError(
            f"sha256 mismatch in {rel}: the file is not the one the build wrote "
            f"(sha256 {digest[:12]}..., {report_rel} says {entry['sha256'][:12]}...)"
        )
    return features_meta


def _check_report_shape(report: Any, report_rel: str = REPORT_NAME) -> tuple[dict[str, dict], dict[str, dict]]:
    if not isinstance(report, dict):
        raise BuildFolderError(f"{report_rel} is not a JSON object")
    splits, shards = report.get("splits"), report.get("shards")
    if not isinstance(splits, dict) or not splits:
        raise BuildFolderError(f"{report_rel} has no 'splits' object")
    if not isinstance(shards, dict) or not shards:
        raise BuildFolderError(f"{report_rel} has no 'shards' object")
    for split, info in splits.items():
        if not (isinstance(info, dict) and _is_count(info.get("num_rows")) and _is_count(info.get("num_shards"))):
            raise BuildFolderError(f"{report_rel}: split {split!r} needs integer 'num_rows' and 'num_shards'")
    per_split: dict[str, list[tuple[int, int]]] = {split: [] for split in splits}
    for rel, entry in shards.items():
        match = _SHARD_RE.match(rel)
        if match is None:
            raise BuildFolderError(
                f"{report_rel}: shard name {rel!r} is not data/<split>-<index:05d>-of-<count:05d>.parquet"
            )
        if match.group("split") not in per_split:
            raise BuildFolderError(
                f"{report_rel}: shard {rel} belongs to split {match.group('split')!r}, which 'splits' lacks"
            )
        if not (
            isinstance(entry, dict)
            and _is_count(entry.get("num_rows"))
            and isinstance(entry.get("sha256"), str)
            and re.fullmatch(r"[0-9a-fA-F]{64}", entry["sha256"])
        ):
            raise BuildFolderError(f"{report_rel}: shard {rel} needs an integer 'num_rows' and a hex 'sha256'")
        per_split[match.group("split")].append((int(match.group("index")), int(match.group("count"))))
    for split, found in per_split.items():
        expected = splits[split]["num_shards"]
        if sorted(found) != [(i, expected) for i in range(expected)]:
            raise BuildFolderError(
                f"{report_rel}: split {split!r} says {expected} shard(s) but lists "
                + (", ".join(f"{i:05d}-of-{n:05d}" for i, n in sorted(found)) or "none")
            )
    return splits, shards


def _card_header(card_path: Path) -> dict:
    import yaml

    text = card_path.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        raise BuildFolderError(f"{CARD_NAME}: the YAML header opened by '---' is never closed")
    try:
        header = yaml.safe_load(text[3:end]) or {}
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise BuildFolderError(f"{CARD_NAME}: the YAML header does not parse ({problem})") from exc
    return header if isinstance(header, dict) else {}


def _check_card(card_path: Path, splits: dict, shard_paths: list[str], name: str, own_card: bool) -> None:
    """The card's entry for config `name` must point at the build's shards, list every split, and its
    `dataset_info` split sizes must be the report's. A build's own card (`own_card`): every config
    entry's patterns must match shards of the build; a repo card must list the config."""
    header = _card_header(card_path)
    configs = [c for c in header.get("configs") or [] if isinstance(c, dict)]
    if not configs and own_card:
        return
    entry = next((c for c in configs if c.get("config_name", "default") == name), None)
    if entry is None and not own_card:
        raise BuildFolderError(f"{CARD_NAME}: the card's configs do not list config {name!r}")
    # a repo may hold a build at its root beside configs in their own folders: those are checked on their own
    others = {c.get("config_name") for c in configs
              if (card_path.parent / str(c.get("config_name")) / REPORT_NAME).is_file()}
    if own_card:
        checked = [c for c in configs if c.get("config_name") not in others]
    else:
        assert entry is not None  # refused above
        checked = [entry]
    for config in checked:
        data_files = config.get("data_files")
        if not isinstance(data_files, list):
            continue
        for item in data_files:
            if not isinstance(item, dict):
                continue
            patterns = item.get("path")
            patterns = [patterns] if isinstance(patterns, str) else patterns or []
            for pattern in patterns:
                if not any(fnmatch.fnmatchcase(rel, pattern) for rel in shard_paths):
                    raise BuildFolderError(
                        f"{CARD_NAME}: config {config.get('config_name', 'default')!r} split {item.get('split')!r} "
                        f"points at {pattern!r}, which matches no shard of the build"
                    )
    if entry is not None and isinstance(entry.get("data_files"), list):
        declared = {item.get("split") for item in entry["data_files"] if isinstance(item, dict)}
        missing = sorted(set(splits) - declared)
        if missing:
            raise BuildFolderError(f"{CARD_NAME}: config {name!r} does not list split(s) {', '.join(missing)}")
    infos = header.get("dataset_info")
    infos = [infos] if isinstance(infos, dict) else infos if isinstance(infos, list) else []
    info = next((i for i in infos if isinstance(i, dict) and i.get("config_name", "default") == name), None)
    for split in (info or {}).get("splits") or []:
        if isinstance(split, dict) and split.get("name") in splits:
            expected = splits[split["name"]]["num_rows"]
            if split.get("num_examples") != expected:
                raise BuildFolderError(
                    f"{CARD_NAME}: dataset_info of config {name!r} says split {split['name']!r} has "
                    f"{split.get('num_examples')} examples, the build has {expected}"
                )


def _parquet_files(folder: Path, root: Path):
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # .cache/, .git/: never published
        for name in filenames:
            if name.endswith(".parquet"):
                yield (Path(dirpath) / name).relative_to(root).as_posix()


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
