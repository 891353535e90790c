"""Part maps for a batch of images: from a segmentation model, or read from precomputed files.

A part parser turns a list of (source_path, RGB image) into one uint8 part map per image, at the
image's full size, with values 0..6 in the Pascal-Person-Part order (occluded_ccreid.parts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch


class PartParser(Protocol):
    device: torch.device  # where part maps are made; the build occludes there too

    def __call__(self, paths: Sequence[str], images: Sequence[np.ndarray]) -> list[np.ndarray]: ...

    def check_present(self, source_paths: Sequence[str]) -> None:
        """Fail before any work starts if the parser cannot serve these images at all."""
        ...

    def describe(self) -> dict:
        """What produced the part maps, for the build report and the card."""
        ...
