"""The layout of a build folder and of a published dataset repo: one place for file names and formats.

A build folder (`builder build`'s output) holds::

    README.md                                    the dataset card: YAML header + Markdown body
    build_report.json                            counts, options, shards' row counts and sha256
    preview.png                                  a contact sheet of sample rows (optional)
    data/<split>-<index:05d>-of-<count:05d>.parquet

A repo holding several builds (`builder push --config NAME`) keeps each under `NAME/` (shards
`NAME/<split>-...parquet`, `NAME/build_report.json`, `NAME/preview.png`), with one card and one
`LICENSE.md` at the root, the layout `Dataset.push_to_hub(config_name=NAME)` also writes.

Both the builder (which writes, verifies and publishes this layout) and `occluded_ccreid.loading`
(which reads it) use the names and helpers here; this module imports nothing heavier than PyYAML.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

CARD_NAME = "README.md"
REPORT_NAME = "build_report.json"
PREVIEW_NAME = "preview.png"
LICENSE_NAME = "LICENSE.md"  # a multi-config repo's terms of its source datasets (the card's license_link)
DATA_DIR = "data"  # shards of a single-build folder or repo

# `<split>-00000-of-00003.parquet`, the names `datasets` gives shards and the Hub's viewer groups by split.
SHARD_FILE_RE = re.compile(r"^(?P<split>[A-Za-z0-9_.]+?)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")
# A shard as the report lists it: under data/.
SHARD_RE = re.compile(r"^data/(?P<split>[A-Za-z0-9_.]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")
# A config name is a folder of the repo: letters, digits, "-", "_", "."; not "data" (the default's).
CONFIG_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$")
_HASH_CHUNK = 1 << 20


def shard_file_name(split: str, index: int, count: int) -> str:
    """The file name of shard `index` of `count` of `split`: `<split>-00000-of-00003.parquet` (under `data/`)."""
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def shard_split(rel: str) -> str | None:
    """The split of a shard path (`data/train-00000-of-00003.parquet` -> "train"), None if not a shard name."""
    match = SHARD_FILE_RE.match(rel.rsplit("/", 1)[-1])
    return match["split"] if match else None


def repo_path(rel: str, config: str | None) -> str:
    """Where a file of a build folder goes in a repo: as is, or as config `config`
    (`data/X` -> `CONFIG/X`, `F` -> `CONFIG/F`)."""
    if config is None:
        return rel
    return f"{config}/{rel[len(DATA_DIR) + 1 :]}" if rel.startswith(DATA_DIR + "/") else f"{config}/{rel}"


def sha256_file(path: str | os.PathLike) -> str:
    """Hash in chunks: a shard can be hundreds of MB, and memory must not grow with it."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(_HASH_CHUNK):
            digest.update(block)
    return digest.hexdigest()


class CardHeaderError(ValueError):
    """A card's YAML header is not closed or does not parse; the message says which."""


def split_card(text: str) -> tuple[str, str]:
    """(YAML header without the '---' lines, body) of a card; ("", text) when it has no header."""
    if not text.startswith("---"):
        return "", text
    end = text.find("\n---", 3)
    if end < 0:
        raise CardHeaderError("the YAML header opened by '---' is never closed")
    body_start = text.find("\n", end + 4)
    return text[3:end].strip("\n"), text[body_start + 1 :] if body_start >= 0 else ""


def card_header(text: str) -> dict[str, Any]:
    """The card's YAML header as a mapping ({} when it has none or it is not a mapping)."""
    import yaml

    header, _ = split_card(text)
    try:
        values = yaml.safe_load(header) if header else {}
    except yaml.YAMLError as exc:
        raise CardHeaderError(f"the YAML header does not parse ({' '.join(str(exc).split())})") from exc
    return values if isinstance(values, dict) else {}


def declares_configs(card: Path) -> bool:
    """Whether the card file declares `configs` (then `datasets` takes the data files from it)."""
    if not card.is_file():
        return False
    try:
        header, _ = split_card(card.read_text(encoding="utf-8", errors="replace"))
    except CardHeaderError:
        return False
    return re.search(r"(?m)^configs:", header) is not None


__all__ = [
    "CARD_NAME",
    "CONFIG_RE",
    "DATA_DIR",
    "LICENSE_NAME",
    "PREVIEW_NAME",
    "REPORT_NAME",
    "SHARD_FILE_RE",
    "SHARD_RE",
    "CardHeaderError",
    "card_header",
    "declares_configs",
    "repo_path",
    "sha256_file",
    "shard_file_name",
    "shard_split",
    "split_card",
]
