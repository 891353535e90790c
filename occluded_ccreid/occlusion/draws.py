"""What every occluder kind shares: the per-image generator, one shape's random choices (`Draw`),
its rendering (`Layer`), the 8-bit alpha levels, and the paper's pooling that grows a mask.

The paper's shape (Chen & Ge, Algorithm 2): a binary mask is average-pooled four times (kernel =
the pooling scale, stride 2) and bilinearly interpolated back to the image size, which grows it
into a smooth, irregular blob. Pooling runs on a fixed 256x128 grid so the occluder's size
relative to the person does not depend on the crop's resolution; the blob is normalised to peak 1
(four poolings dilute it) and united with the mask itself, so it always covers the whole mask.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .fills import Donor

POOL_SCALES: tuple[int, ...] = (3, 5, 7, 9)  # kernel sizes; 3 barely grows a part, 9 ~2-4x its area
POOL_STEPS = 4  # "AvgPooling() * 4" in Algorithm 2
POOL_GRID = (256, 128)  # (H, W) the pooling runs at
ALPHA_LEVELS = 255  # the mask's 8-bit levels: level / 255 is the alpha the fills use


def image_rng(seed: int, source_path: str, stream: str = "") -> np.random.Generator:
    """The generator of one image: a function of the build seed, its relative path and the
    stream name (independent streams for independent choices, e.g. the texture donor)."""
    digest = hashlib.sha256(f"{seed}\0{source_path}\0{stream}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def epoch_stream(epoch: int, stream: str = "") -> str:
    """The stream name of `stream` in training epoch `epoch`: epoch 0 is the build's own streams,
    so a transform at (build seed, epoch 0) repeats the build's draws."""
    return stream if epoch == 0 else f"epoch{epoch}/{stream}"


@dataclass(frozen=True)
class Target:
    """What an occluder kind may look at when it draws for one image: its part map, the person
    donors fixed for the row (one per occluder slot, `--occluder person`) and the slot drawn."""

    parts: np.ndarray  # HxW uint8 part map
    person_donors: Sequence[Donor | None] = ()
    slot: int = 0

    def person_box(self) -> tuple[int, int, int, int] | None:
        """(row0, row1, col0, col1) of the person's pixels, None when there are none."""
        person = self.parts != 0
        rows, cols = np.flatnonzero(person.any(axis=1)), np.flatnonzero(person.any(axis=0))
        if not rows.size:
            return None
        return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


@dataclass(frozen=True, eq=False)
class Draw:
    """The random choices of one occluder shape (drawn per image, on the CPU); rendered later, a
    batch at a time. `kind` is the registry key, `name` what the `occluder` column says."""

    kind: str  # a key of OCCLUDERS
    name: str  # "parts", "rectangle-top", "person", "objects"
    part: int = 0  # occluded part (0 for shapes that are not a part)
    pool_scale: int = 0  # 0 when no pooling shapes it
    source: str | None = None  # the donor's source_path / the object file (relative to --objects-dir)
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # (top, left, height, width) of a pasted cut-out
    donor: Donor | None = field(default=None, repr=False)  # the person pasted (person occluder)


@dataclass(frozen=True)
class Layer:
    """One rendered shape: its alpha (HxW float in [0, 1]) and, for occluders pasted with their
    own pixels, those pixels (HxWx3 uint8, where the alpha is > 0)."""

    alpha: torch.Tensor
    pixels: torch.Tensor | None = None


def quantise(alpha: torch.Tensor) -> torch.Tensor:
    """The alpha's 8-bit levels (HxW uint8): what the mask records and, divided by 255, what the
    fills draw, so record and pixels agree exactly (level 0 leaves a pixel untouched)."""
    # alpha lies in [0, 1] (blobs are divided by their peak), so + 0.5 and truncation round it
    return alpha.mul(ALPHA_LEVELS).add_(0.5).to(torch.uint8)


def union_levels(levels: Sequence[torch.Tensor]) -> torch.Tensor:
    """The 8-bit alpha of several occluders drawn over each other: 1 - prod(1 - level / 255),
    quantised. A pixel is 0 only where every occluder is 0 (any level >= 1 gives >= 1), and one
    occluder's levels are kept as they are."""
    if len(levels) == 1:
        return levels[0]
    clear = torch.ones(levels[0].shape, dtype=torch.float64, device=levels[0].device)
    for level in levels:
        clear.mul_(1.0 - level.double() / ALPHA_LEVELS)
    return quantise(1.0 - clear)


def grow_masks(part_masks: Sequence[torch.Tensor], pool_scales: Sequence[int]) -> list[torch.Tensor]:
    """Soft occluders in [0, 1] (HxW float) from binary part masks (HxW, any sizes, one device):
    each mask is resized to the pooling grid, the grids are pooled x4 in one call per pool scale,
    and each result is interpolated back to its own mask's size. Pooling treats every grid on its
    own, so a mask's occluder does not depend on the others in the batch."""
    if not part_masks:
        return []
    grids = torch.cat(
        [
            F.interpolate(m[None, None].float(), size=POOL_GRID, mode="bilinear", align_corners=False, antialias=True)
            for m in part_masks
        ]
    )
    pooled: list[torch.Tensor | None] = [None] * len(part_masks)
    for scale in sorted(set(pool_scales)):
        rows = [i for i, s in enumerate(pool_scales) if s == scale]
        x = grids[rows]
        for _ in range(POOL_STEPS):
            x = F.avg_pool2d(x, scale, stride=2, padding=scale // 2, ceil_mode=True)
        for row, i in enumerate(rows):
            pooled[i] = x[row : row + 1]
    alphas = []
    for mask, grid in zip(part_masks, pooled, strict=True):
        assert grid is not None  # every mask's grid was pooled at its scale above
        x = F.interpolate(grid, size=tuple(mask.shape), mode="bilinear", align_corners=False)[0, 0]
        peak = x.max()
        soft = torch.where(peak > 0, x / peak, x)  # four poolings dilute the blob: peak 1 again
        alphas.append(torch.maximum(soft, mask.float()))
    return alphas


def grow_mask(part_mask: torch.Tensor, pool_scale: int) -> torch.Tensor:
    """Soft occluder in [0, 1] (HxW float) from one binary part mask (HxW), pooled x4 + interpolated."""
    return grow_masks([part_mask], [pool_scale])[0]
