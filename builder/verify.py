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
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.report import BuildReport, ReportError, ShardEntry, read_report
from occluded_ccreid.layout import (
    CARD_NAME,
    CONFIG_RE,
    DATA_DIR,
    PREVIEW_NAME,
    REPORT_NAME,
    CardHeaderError,
    card_header,
    sha256_file,
)

_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class BuildFolderError(ValueError):
    """The folder is not one complete, untouched build; the message names the file and the problem."""


@dataclass(frozen=True)
class FileInfo:
    """A file to publish: its size and the sha256 of its content."""

    size: int
    sha256: str


@dataclass
class VerifiedBuild:
    """One build that passed every check: what `builder push` publishes and `builder verify` reports."""

    report: BuildReport
    config: str | None  # None: a build folder (or a repo holding one at its root)
    files: dict[str, FileInfo]  # path relative to the verified root -> size and sha256, shards included

    @property
    def dataset(self) -> str:
        return self.report.dataset

    @property
    def splits(self) -> dict[str, int]:
        return {split: stats.num_rows for split, stats in self.report.splits.items()}

    @property
    def num_rows(self) -> int:
        return self.report.num_rows


def verify_build_folder(path: str | os.PathLike) -> VerifiedBuild:
    """Check that `path` is one complete, untouched build folder; raise `BuildFolderError` if not.

    Hidden folders (`.cache/`, `.git/`) are ignored: nothing in them is published. `files` lists
    every file to publish (card, report, preview, shards) by its path in the folder.
    """
    root = Path(path)
    if not root.is_dir():
        raise BuildFolderError(f"{root} is not a directory")
    return _verify(root, root, None)


def verify_config(root: str | os.PathLike, name: str) -> VerifiedBuild:
    """Check config `name` of a multi-config repo checked out at `root`; as `verify_build_folder`,
    with `files` keyed by path in the repo (`NAME/...`, the card `README.md` excluded)."""
    root = Path(root)
    if not CONFIG_RE.match(name or ""):
        raise BuildFolderError(f"config name {name!r} is not letters, digits, '-', '_' or '.'")
    if not (root / name).is_dir():
        configs = ", ".join(_listed_configs(root)) or "none"
        raise BuildFolderError(f"{root} has no folder {name}/ for config {name!r} (configs in its card: {configs})")
    return _verify(root, root / name, name)


def verify(
    target: str, config: str | None = None, *, revision: str | None = None, token: str | None = None
) -> list[VerifiedBuild]:
    """Verify a local folder or a Hub dataset repo `target`: one result per verified build.

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
        return Path(
            snapshot_download(repo_id, repo_type="dataset", revision=revision, token=token, allow_patterns=patterns)
        )
    except (HfHubHTTPError, OfflineModeIsEnabled, OSError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise BuildFolderError(
            f"cannot download dataset repo {repo_id}{'@' + revision if revision else ''} ({type(exc).__name__}: "
            f"{detail}): check the repo id (no local folder {repo_id} exists), your network and, for a private or "
            "gated repo, your token (--token or HF_TOKEN)"
        ) from exc


def _header(card_path: Path) -> dict:
    try:
        return card_header(card_path.read_text(encoding="utf-8", errors="replace"))
    except CardHeaderError as exc:
        raise BuildFolderError(f"{CARD_NAME}: {exc}") from exc


def _listed_configs(root: Path) -> list[str]:
    header = _header(root / CARD_NAME) if (root / CARD_NAME).is_file() else {}
    configs = header.get("configs")
    return [c["config_name"] for c in configs or [] if isinstance(c, dict) and isinstance(c.get("config_name"), str)]


def _verify(root: Path, base: Path, config: str | None) -> VerifiedBuild:
    """`base` holds the report (and, with `config` None, `data/`); shard `data/X` lives at
    `base/data/X`, or `base/X` for a config. Paths in messages and `files` are relative to `root`."""
    report_rel = (base / REPORT_NAME).relative_to(root).as_posix()
    try:
        report = read_report(base, report_rel)
    except ReportError as exc:
        raise BuildFolderError(str(exc)) from exc

    card_path = root / CARD_NAME
    if not card_path.is_file():
        raise BuildFolderError(f"missing dataset card {CARD_NAME} in {root}")

    def published(key: str) -> str:  # report key data/X -> path relative to root
        return key if config is None else f"{config}/{key[len(DATA_DIR) + 1 :]}"

    located = {published(key): key for key in report.shards}
    _check_no_other_parquet(root, base, config, located, report_rel)

    files: dict[str, FileInfo] = {}
    features_meta: tuple[str, bytes] | None = None
    for rel in sorted(located):
        entry = report.shards[located[rel]]
        features_meta = _check_shard(root / rel, rel, entry, report_rel, features_meta)
        files[rel] = FileInfo((root / rel).stat().st_size, entry.sha256)

    for split, stats in report.splits.items():
        total = sum(e.num_rows for key, e in report.shards.items() if report.split_of(key) == split)
        if total != stats.num_rows:
            raise BuildFolderError(
                f"{report_rel}: split {split!r} says {stats.num_rows} rows but its shards hold {total}"
            )

    _check_card(card_path, report, list(located), config or "default", config is None)

    extras = (REPORT_NAME, PREVIEW_NAME) if config else (CARD_NAME, REPORT_NAME, PREVIEW_NAME)
    for name in extras:
        file = base / name
        if file.is_file():
            files[file.relative_to(root).as_posix()] = FileInfo(file.stat().st_size, sha256_file(file))
    return VerifiedBuild(report, config, dict(sorted(files.items())))


def _check_no_other_parquet(
    root: Path, base: Path, config: str | None, located: dict[str, str], report_rel: str
) -> None:
    """Extra Parquet files first: they say the folder mixes builds, whatever else is wrong."""
    for found in sorted(_parquet_files(root if config is None else base, root)):
        if config is None and _top_folder_is_config(found, root):
            continue  # another config's folder of a repo that also holds a build at its root
        if found not in located:
            raise BuildFolderError(
                f"unexpected parquet file {found}: not listed in {report_rel} (left over from another build?)"
            )


def _top_folder_is_config(rel: str, root: Path) -> bool:
    top = rel.split("/", 1)[0]
    return "/" in rel and top != DATA_DIR and (root / top / REPORT_NAME).is_file()


def _check_shard(
    path: Path, rel: str, entry: ShardEntry, report_rel: str, features_meta: tuple[str, bytes] | None
) -> tuple[str, bytes]:
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
    if num_rows != entry.num_rows:
        raise BuildFolderError(
            f"row count mismatch in {rel}: the file has {num_rows} rows, {report_rel} says {entry.num_rows}"
        )
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise BuildFolderError(
            f"sha256 mismatch in {rel}: the file is not the one the build wrote "
            f"(sha256 {digest[:12]}..., {report_rel} says {entry.sha256[:12]}...)"
        )
    return features_meta


def _check_card(card_path: Path, report: BuildReport, shard_paths: list[str], name: str, own_card: bool) -> None:
    """The card's entry for config `name` must point at the build's shards, list every split, and its
    `dataset_info` split sizes must be the report's. A build's own card (`own_card`): every config
    entry's patterns must match shards of the build; a repo card must list the config."""
    header = _header(card_path)
    configs = [c for c in header.get("configs") or [] if isinstance(c, dict)]
    if not configs and own_card:
        return
    entry = next((c for c in configs if c.get("config_name", "default") == name), None)
    if entry is None and not own_card:
        raise BuildFolderError(f"{CARD_NAME}: the card's configs do not list config {name!r}")
    # a repo may hold a build at its root beside configs in their own folders: those are checked on their own
    others = {
        c.get("config_name") for c in configs if (card_path.parent / str(c.get("config_name")) / REPORT_NAME).is_file()
    }
    checked = [c for c in configs if c.get("config_name") not in others] if own_card else [entry]
    for config in checked:
        _check_patterns(config or {}, shard_paths)
    if entry is not None and isinstance(entry.get("data_files"), list):
        declared = {item.get("split") for item in entry["data_files"] if isinstance(item, dict)}
        missing = sorted(set(report.splits) - declared)
        if missing:
            raise BuildFolderError(f"{CARD_NAME}: config {name!r} does not list split(s) {', '.join(missing)}")
    _check_split_sizes(header, report, name)


def _data_file_patterns(config: dict) -> Iterator[tuple[Any, str]]:
    """(split, pattern) of every data file pattern a `configs` entry names."""
    data_files = config.get("data_files")
    for item in data_files if isinstance(data_files, list) else []:
        if isinstance(item, dict):
            patterns = item.get("path")
            for pattern in [patterns] if isinstance(patterns, str) else patterns or []:
                yield item.get("split"), pattern


def _check_patterns(config: dict, shard_paths: list[str]) -> None:
    for split, pattern in _data_file_patterns(config):
        if not any(fnmatch.fnmatchcase(rel, pattern) for rel in shard_paths):
            raise BuildFolderError(
                f"{CARD_NAME}: config {config.get('config_name', 'default')!r} split {split!r} "
                f"points at {pattern!r}, which matches no shard of the build"
            )


def _check_split_sizes(header: dict, report: BuildReport, name: str) -> None:
    infos = header.get("dataset_info")
    infos = [infos] if isinstance(infos, dict) else infos if isinstance(infos, list) else []
    info = next((i for i in infos if isinstance(i, dict) and i.get("config_name", "default") == name), None)
    for split in (info or {}).get("splits") or []:
        if isinstance(split, dict) and split.get("name") in report.splits:
            expected = report.splits[split["name"]].num_rows
            if split.get("num_examples") != expected:
                raise BuildFolderError(
                    f"{CARD_NAME}: dataset_info of config {name!r} says split {split['name']!r} has "
                    f"{split.get('num_examples')} examples, the build has {expected}"
                )


def _parquet_files(folder: Path, root: Path) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # .cache/, .git/: never published
        for name in filenames:
            if name.endswith(".parquet"):
                yield (Path(dirpath) / name).relative_to(root).as_posix()
