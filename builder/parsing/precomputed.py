"""Read precomputed part maps, as human-parsing tools such as SCHP write them.

`DIR/<relative path of the source image, extension .png>`: one channel, pixel values 0..6 in the
Pascal-Person-Part order (0 background), the same size as the image. An absolute source path (a
manifest may list one) is taken below DIR: `/data/x/1.jpg` -> `DIR/data/x/1.png`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from builder.errors import BuildError


class PrecomputedParser:
    device = torch.device("cpu")  # maps are read on the CPU; the occlusion runs there too

    def __init__(self, parsing_dir: str | Path):
        self.root = Path(parsing_dir)
        if not self.root.is_dir():
            raise BuildError(f"--parsing-dir {self.root} does not exist or is not a directory")

    def map_path(self, source_path: str) -> Path:
        return self.root / PurePosixPath(source_path.lstrip("/")).with_suffix(".png")

    def check_present(self, source_paths: Sequence[str]) -> None:
        """Fail before any work starts when DIR holds no maps for these images (a wrong folder).
        A single missing map is an error when its image is reached (an undecodable image
        needs none)."""
        if source_paths and not any(self.map_path(p).is_file() for p in source_paths):
            raise BuildError(
                f"--parsing-dir {self.root} holds none of the part maps for this source, e.g. "
                f"{self.map_path(source_paths[0])}. Each source image needs "
                "DIR/<its relative path>.png (single channel, values 0..6)."
            )

    def __call__(self, paths: Sequence[str], images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self._read(path, image.shape[:2]) for path, image in zip(paths, images, strict=True)]

    def _read(self, source_path: str, size: tuple[int, int]) -> np.ndarray:
        file = self.map_path(source_path)
        try:
            with Image.open(file) as img:
                if img.mode not in ("L", "P", "I", "I;16"):
                    raise BuildError(
                        f"part map {file} has mode {img.mode}; expected a single-channel PNG "
                        "(mode L or P) with values 0..6"
                    )
                parts = np.asarray(img)
        except FileNotFoundError:
            raise BuildError(f"part map {file} is missing (needed for {source_path})") from None
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
