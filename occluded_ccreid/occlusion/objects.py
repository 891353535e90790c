"""The user's object cut-outs for `--occluder objects`: RGBA images (e.g. Pascal VOC objects cut
out by their masks) in a folder, whose alpha channel is the occluder's alpha.

The folder is listed once (files in sorted relative-path order, subfolders included), and a file
is usable when it decodes, has an alpha channel (RGBA, LA, or a palette with transparency) and is
not fully transparent. Which file an image gets is a draw among the usable ones, so the same
folder gives the same choices; `digest` (names and bytes) goes into the build report, so a resumed
build whose folder changed starts afresh.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

OBJECT_SUFFIXES = frozenset({".png", ".webp", ".tif", ".tiff", ".gif"})  # formats that carry alpha


@dataclass(frozen=True)
class CutOut:
    """One object: its RGBA pixels cropped to where the alpha is > 0."""

    name: str  # path relative to the objects folder, as the rows record it
    rgba: np.ndarray  # HxWx4 uint8


def _usable(path: Path) -> np.ndarray | None:
    """The file's RGBA pixels cropped to its alpha's bounding box; None when it is not a usable cut-out."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
                return None
            rgba = np.asarray(image.convert("RGBA"))
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    alpha = rgba[..., 3] > 0
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if not rows.size:
        return None
    return rgba[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy()


class ObjectBank:
    """The usable cut-outs of one folder, in sorted name order."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ValueError(f"--objects-dir {folder} is not a folder; give a folder of RGBA cut-outs (PNG with alpha)")
        digest = hashlib.sha256()
        objects: list[CutOut] = []
        files = sorted(p for p in self.folder.rglob("*") if p.is_file() and p.suffix.lower() in OBJECT_SUFFIXES)
        for path in files:
            rgba = _usable(path)
            if rgba is None:
                continue
            name = path.relative_to(self.folder).as_posix()
            objects.append(CutOut(name, rgba))
            digest.update(name.encode() + b"\0" + path.read_bytes())
        if not objects:
            raise ValueError(
                f"--objects-dir {folder} holds no usable RGBA cut-out ({len(files)} image file(s) with "
                "a possible alpha channel, none decodable with some transparency): add PNGs with an "
                "alpha channel, e.g. Pascal VOC objects cut out by their masks"
            )
        self.objects = tuple(objects)
        self.by_name = {cut.name: cut for cut in objects}
        self.digest = digest.hexdigest()

    def __len__(self) -> int:
        return len(self.objects)

    def describe(self) -> dict:
        return {"objects_dir": str(self.folder), "objects": len(self.objects), "objects_sha256": self.digest}


@lru_cache(maxsize=4)
def object_bank(folder: str) -> ObjectBank:
    """The bank of `folder`, read once per process (the build's threads and a training loader share it)."""
    return ObjectBank(folder)
