"""Read precomputed part maps, as human-parsing tools such as SCHP write them.

The map of the source image `<path>/<name>.<ext>` is, in DIR, `<path>/<name>.<ext>.png` (the
image's full name plus `.png`) if that file exists, else `<path>/<name>.png` (the extension
replaced, as SCHP's tools name their outputs). Two images that differ only in their extension
(`x.jpg` and `x.png`) would share the second name, so for them only the first is accepted: the
build refuses, before any work, an image of such a pair whose full-name map is absent.
A map has one channel, pixel values 0..6 in the Pascal-Person-Part order (0 background), and its
image's size. An absolute source path (a manifest may list one) is taken below DIR:
`/data/x/1.jpg` -> `DIR/data/x/1.jpg.png` or `DIR/data/x/1.png`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from builder.errors import BuildError
from builder.images import DecodeError, open_regular


class PrecomputedParser:
    device = torch.device("cpu")  # maps are read on the CPU; the occlusion runs there too

    def __init__(self, parsing_dir: str | Path):
        self.root = Path(parsing_dir)
        if not self.root.is_dir():
            raise BuildError(f"--parsing-dir {self.root} does not exist or is not a directory")

    def full_name_path(self, source_path: str) -> Path:
        """DIR/<source path>.png: `x.jpg` -> `x.jpg.png`."""
        rel = PurePosixPath(source_path.lstrip("/"))
        return self.root / rel.parent / (rel.name + ".png")

    def stem_path(self, source_path: str) -> Path:
        """DIR/<source path, extension replaced by .png>: `x.jpg` -> `x.png`."""
        return self.root / PurePosixPath(source_path.lstrip("/")).with_suffix(".png")

    def map_path(self, source_path: str) -> Path:
        """The map of an image: its full-name form if that exists, else its extension-replaced form."""
        full = self.full_name_path(source_path)
        return full if full.exists() or full.is_symlink() else self.stem_path(source_path)

    def check_present(self, source_paths: Sequence[str]) -> None:
        """Fail before any work starts when two images would share a map, or when DIR holds no maps
        for these images (a wrong folder). A single missing map is an error when its image is
        reached (an undecodable image needs none)."""
        stems = Counter(PurePosixPath(p).with_suffix("").as_posix() for p in source_paths)
        shared = [
            p
            for p in source_paths
            if stems[PurePosixPath(p).with_suffix("").as_posix()] > 1 and not self.full_name_path(p).exists()
        ]
        if shared:
            raise BuildError(
                f"--parsing-dir {self.root}: {len(shared)} image(s) share a name but for the extension with another "
                f"image, e.g. {shared[0]}, so the map {self.stem_path(shared[0])} cannot tell them apart; name each "
                f"such image's map after its full file name, e.g. {self.full_name_path(shared[0])}"
            )
        if source_paths and not any(self.map_path(p).is_file() for p in source_paths):
            raise BuildError(
                f"--parsing-dir {self.root} holds none of the part maps for this source, e.g. "
                f"{self.stem_path(source_paths[0])}. Each source image needs DIR/<its relative path>.png "
                "(x.jpg -> x.jpg.png, or x.png when no other image is named x; one channel, values 0..6)."
            )

    def __call__(self, paths: Sequence[str], images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self._read(path, image.shape[:2]) for path, image in zip(paths, images, strict=True)]

    def _read(self, source_path: str, size: tuple[int, int]) -> np.ndarray:
        file = self.map_path(source_path)
        try:
            with open_regular(file) as handle, Image.open(handle) as img:
                if img.mode not in ("L", "P", "I", "I;16"):
                    raise BuildError(
                        f"part map {file} has mode {img.mode}; expected a single-channel PNG "
                        "(mode L or P) with values 0..6"
                    )
                parts = np.asarray(img)
        except DecodeError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                raise BuildError(f"part map {file} is missing (needed for {source_path})") from None
            raise BuildError(f"part map {file} cannot be read: {exc}") from None
        except OSError as exc:
            raise BuildError(f"part map {file} cannot be read: {exc}") from None
        if parts.shape != size:
            raise BuildError(
                f"part map {file} is {parts.shape[1]}x{parts.shape[0]} (WxH) but its image "
                f"{source_path} is {size[1]}x{size[0]}; maps must have the image's size"
            )
        if parts.max(initial=0) > 6:
            raise BuildError(f"part map {file} has value {int(parts.max())}; expected 0..6")
        return parts.astype(np.uint8)

    def describe(self) -> dict:
        return {"kind": "precomputed", "parsing_dir": str(self.root)}
