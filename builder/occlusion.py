"""The paper's occluder (Chen & Ge, Algorithms 1 and 2), in one place.

1. Draw a body part uniformly from 1..6; if the person has no pixels of it, redraw among the
   parts that are present. A crop with no person pixels is left unoccluded (part "none").
2. Its binary mask is average-pooled four times (kernel = the pooling scale, stride 2) and
   bilinearly interpolated back to the image size, which grows it into a smooth, irregular blob.
   Pooling runs on a fixed 256x128 grid so the occluder's size relative to the person does not
   depend on the crop's resolution; the blob is normalised to peak 1 (four poolings dilute it)
   and united with the part itself, so the occluder always covers the whole chosen part.
3. Fusion as in the paper: the occluder is added to the image and saturates (white occluder);
   the soft blob gives soft edges. The binary occluder is where the blob is >= 0.5.

Every random choice comes from the per-image generator passed in, so results depend only on
(seed, source path), never on batch size, worker count or order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from occluded_ccreid.parts import BODY_PARTS, NONE

POOL_SCALES: tuple[int, ...] = (3, 5, 7, 9)  # kernel sizes; 3 barely grows a part, 9 ~3-4x its area
POOL_STEPS = 4  # "AvgPooling() * 4" in Algorithm 2
POOL_GRID = (256, 128)  # (H, W) the pooling runs at
MASK_THRESHOLD = 0.5


def image_rng(seed: int, source_path: str) -> np.random.Generator:
    """The generator of one image: a function of the build seed and the image's relative path."""
    digest = hashlib.sha256(f"{seed}\0{source_path}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


@dataclass(frozen=True)
class Occlusion:
    image: np.ndarray  # HxWx3 uint8, the occluded image
    mask: np.ndarray  # HxW bool, the binary occluder
    part: int  # 0 (none) or 1..6
    pool_scale: int  # 0 when not occluded
    ratio: float  # share of person pixels under the occluder


def draw_part(parts: np.ndarray, rng: np.random.Generator) -> int:
    """Uniform over 1..6; redraw among the present parts when the drawn one is absent."""
    part = int(rng.integers(1, len(BODY_PARTS) + 1))
    present = np.unique(parts)
    present = [int(p) for p in present if p != NONE]
    if part in present or not present:
        return part if present else NONE
    return int(rng.choice(present))


def grow_mask(part_mask: torch.Tensor, pool_scale: int) -> torch.Tensor:
    """Soft occluder in [0, 1] (HxW float) from a binary part mask (HxW), pooled x4 + interpolated."""
    height, width = part_mask.shape
    x = part_mask[None, None].float()
    x = F.interpolate(x, size=POOL_GRID, mode="bilinear", align_corners=False, antialias=True)
    for _ in range(POOL_STEPS):
        x = F.avg_pool2d(x, pool_scale, stride=2, padding=pool_scale // 2, ceil_mode=True)
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    peak = x.max()
    soft = x / peak if peak > 0 else x
    return torch.maximum(soft, part_mask.float())


def fuse_add(image: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The paper's fusion: image + 255 * occluder, saturating at white. uint8 HxWx3 in and out."""
    out = image.float() + 255.0 * alpha[..., None]
    return out.round_().clamp_(0, 255).to(torch.uint8)


def occlude(image: np.ndarray, parts: np.ndarray, rng: np.random.Generator) -> Occlusion:
    """Occlude one image (HxWx3 uint8) given its part map (HxW uint8, 0..6)."""
    person = parts != NONE
    part = draw_part(parts, rng)
    pool_scale = int(rng.choice(POOL_SCALES))
    if part == NONE:
        return Occlusion(image, np.zeros(parts.shape, dtype=bool), NONE, 0, 0.0)
    alpha = grow_mask(torch.from_numpy(parts == part), pool_scale)
    mask = (alpha >= MASK_THRESHOLD).numpy()
    occluded = fuse_add(torch.from_numpy(image), alpha).numpy()
    ratio = float((mask & person).sum() / person.sum())
    return Occlusion(occluded, mask, part, pool_scale, ratio)
