"""Occluders, in one place: the paper's part occluder (default), Feng et al.'s rectangles, fills.

The paper's method (Chen & Ge, Algorithms 1 and 2):
1. Draw a body part uniformly from 1..6; if the person has no pixels of it, redraw among the
   parts that are present. A crop with no person pixels is left unoccluded (part "none").
2. Its binary mask is average-pooled four times (kernel = the pooling scale, stride 2) and
   bilinearly interpolated back to the image size, which grows it into a smooth, irregular blob.
   Pooling runs on a fixed 256x128 grid so the occluder's size relative to the person does not
   depend on the crop's resolution; the blob is normalised to peak 1 (four poolings dilute it)
   and united with the part itself, so the occluder always covers the whole chosen part.
3. Fusion as in the paper: the occluder is added to the image and saturates (fill "add", a white
   occluder); the soft blob gives soft edges.

The record is what was drawn: the blob (the alpha) is quantised to 8 bits first, and that alpha
(level / 255) is the one every fill uses, the `occlusion_mask` column stores (0 = untouched,
255 = fully occluded) and the coverage is measured on. So a pixel whose mask is 0 keeps its
source bytes, and the coverage (`occluded_ratio`) is the alpha-weighted share of the person's
pixels under the occluder: sum over person pixels of level / 255, over the person's pixel count.

Options (all recorded per row and in the build report):
* a coverage band: the (alpha-weighted) share of person pixels under the occluder must lie in
  [min_coverage, max_coverage]; shape draws are repeated up to `max_attempts` times, and a row
  that never fits keeps the draw closest to the band and is counted as out of band;
* `occluder="rectangle"`: Feng et al.'s baseline, a black band over the top, bottom, left or right
  `rectangle_fraction` of the crop, placed without looking at the person;
* fills: add, white, black, mean, noise, blur, texture (builder/fills.py);
* `occlusion_prob`: the share of rows that are occluded at all.

`occlude_batch` occludes a batch at once on a given device (the build uses the CPU): each image's random choices are
drawn on the CPU from its own generator (`Occluder.draw`), and the shapes of a draw round are
rendered together there (`Occluder.render`; the part occluder pools all grids of one pool scale in
one call). Every random choice comes from the per-image generator passed in, and no step mixes
images, so results depend only on (seed, source path), never on batch size, worker count or order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from builder.fills import FILLS, Donor
from occluded_ccreid.parts import BODY_PARTS, NONE

POOL_SCALES: tuple[int, ...] = (3, 5, 7, 9)  # kernel sizes; 3 barely grows a part, 9 ~2-4x its area
POOL_STEPS = 4  # "AvgPooling() * 4" in Algorithm 2
POOL_GRID = (256, 128)  # (H, W) the pooling runs at
ALPHA_LEVELS = 255  # the mask's 8-bit levels: level / 255 is the alpha the fills use
# Occluders covering under 5% of the person are near-invisible; see benchmarks/occlusion_quality.py.
DEFAULT_MIN_COVERAGE = 0.05
DEFAULT_MAX_ATTEMPTS = 8
RECTANGLE_SIDES = ("top", "bottom", "left", "right")
DEFAULT_RECTANGLE_FRACTION = 0.3


def image_rng(seed: int, source_path: str, stream: str = "") -> np.random.Generator:
    """The generator of one image: a function of the build seed, its relative path and the
    stream name (independent streams for independent choices, e.g. the texture donor)."""
    digest = hashlib.sha256(f"{seed}\0{source_path}\0{stream}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


@dataclass(frozen=True)
class OcclusionConfig:
    occluder: str = "parts"  # a key of OCCLUDERS
    fill: str | None = None  # a key of FILLS; None: the occluder's own default ("add" / "black")
    pool_scales: tuple[int, ...] = POOL_SCALES
    min_coverage: float = DEFAULT_MIN_COVERAGE
    max_coverage: float = 1.0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    occlusion_prob: float = 1.0
    rectangle_fraction: float = DEFAULT_RECTANGLE_FRACTION

    @property
    def fill_name(self) -> str:
        return self.fill or DEFAULT_FILLS[self.occluder]

    def validate(self) -> None:
        if self.occluder not in OCCLUDERS:
            raise ValueError(f"unknown occluder {self.occluder!r}; choose from {', '.join(OCCLUDERS)}")
        if self.fill_name not in FILLS:
            raise ValueError(f"unknown fill {self.fill_name!r}; choose from {', '.join(FILLS)}")
        if not 0.0 <= self.min_coverage <= self.max_coverage <= 1.0:
            raise ValueError("coverage band must satisfy 0 <= --min-coverage <= --max-coverage <= 1")
        if not 0.0 <= self.occlusion_prob <= 1.0:
            raise ValueError("--occlusion-prob must be between 0 and 1")
        if not 0.0 < self.rectangle_fraction < 1.0:
            raise ValueError("--rectangle-fraction must be between 0 and 1 (exclusive)")
        if self.max_attempts < 1 or not self.pool_scales:
            raise ValueError("max_attempts must be >= 1 and pool_scales non-empty")

    def describe(self) -> dict:
        return {
            "occluder": self.occluder, "fill": self.fill_name, "pool_scales": list(self.pool_scales),
            "pool_steps": POOL_STEPS, "pool_grid": list(POOL_GRID), "alpha_levels": ALPHA_LEVELS,
            "min_coverage": self.min_coverage, "max_coverage": self.max_coverage,
            "max_attempts": self.max_attempts, "occlusion_prob": self.occlusion_prob,
            "rectangle_fraction": self.rectangle_fraction,
        }


@dataclass(frozen=True)
class Draw:
    """The random choices of one occluder shape (drawn per image, on the CPU); rendered later,
    a batch at a time, on the device."""

    name: str  # the `occluder` column: "parts", "rectangle-top", ...
    part: int = 0  # occluded part (0 for shapes that are not a part)
    pool_scale: int = 0  # 0 when no pooling shapes it


@dataclass(frozen=True)
class Occlusion:
    image: np.ndarray  # HxWx3 uint8, the occluded image
    mask: np.ndarray  # HxW uint8, the occluder's alpha as drawn: 0 untouched .. 255 fully occluded
    part: int  # 0 (none) or 1..6
    pool_scale: int  # 0 when not occluded
    ratio: float  # alpha-weighted share of person pixels under the occluder (mask / 255 summed)
    occluder: str = "none"  # "none", "parts", "rectangle-top", ...
    in_band: bool = True  # ratio inside [min_coverage, max_coverage] (True when not occluded)
    attempts: int = 0  # shape draws made


# -- shapes -----------------------------------------------------------------------------------
def draw_part(parts: np.ndarray, rng: np.random.Generator) -> int:
    """Uniform over 1..6; redraw among the present parts when the drawn one is absent."""
    part = int(rng.integers(1, len(BODY_PARTS) + 1))
    counts = np.bincount(parts.ravel(), minlength=len(BODY_PARTS) + 1)
    present = [int(p) for p in np.flatnonzero(counts) if p != NONE]
    if not present:
        return NONE
    return part if part in present else int(rng.choice(present))


def grow_masks(part_masks: Sequence[torch.Tensor], pool_scales: Sequence[int]) -> list[torch.Tensor]:
    """Soft occluders in [0, 1] (HxW float) from binary part masks (HxW, any sizes, one device):
    each mask is resized to the pooling grid, the grids are pooled x4 in one call per pool scale,
    and each result is interpolated back to its own mask's size. Pooling treats every grid on its
    own, so a mask's occluder does not depend on the others in the batch."""
    if not part_masks:
        return []
    grids = torch.cat([F.interpolate(m[None, None].float(), size=POOL_GRID, mode="bilinear", align_corners=False,
                                     antialias=True) for m in part_masks])
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


class Occluder(Protocol):
    def draw(self, parts: np.ndarray, rng: np.random.Generator, config: OcclusionConfig) -> Draw | None:
        """One shape's random choices; None when there is nothing to occlude (no person)."""
        ...

    def render(self, part_maps: Sequence[torch.Tensor], draws: Sequence[Draw],
               config: OcclusionConfig) -> list[torch.Tensor]:
        """The shapes' alphas (HxW float in [0, 1], on the part maps' device), a batch at a time."""
        ...


class PartOccluder:
    """The paper's occluder: a body part grown by pooling."""

    def draw(self, parts: np.ndarray, rng: np.random.Generator, config: OcclusionConfig) -> Draw | None:
        part = draw_part(parts, rng)
        pool_scale = int(rng.choice(config.pool_scales))
        return None if part == NONE else Draw("parts", part, pool_scale)

    def render(self, part_maps: Sequence[torch.Tensor], draws: Sequence[Draw],
               config: OcclusionConfig) -> list[torch.Tensor]:
        return grow_masks([p == d.part for p, d in zip(part_maps, draws, strict=True)], [d.pool_scale for d in draws])


class RectangleOccluder:
    """Feng et al.: a band over one side of the crop, blind to where the person is."""

    def draw(self, parts: np.ndarray, rng: np.random.Generator, config: OcclusionConfig) -> Draw:
        return Draw(f"rectangle-{RECTANGLE_SIDES[int(rng.integers(len(RECTANGLE_SIDES)))]}")

    def render(self, part_maps: Sequence[torch.Tensor], draws: Sequence[Draw],
               config: OcclusionConfig) -> list[torch.Tensor]:
        alphas = []
        for parts, draw in zip(part_maps, draws, strict=True):
            height, width = parts.shape
            rows = max(1, round(height * config.rectangle_fraction))
            cols = max(1, round(width * config.rectangle_fraction))
            region = {"top": (slice(0, rows), slice(None)), "bottom": (slice(height - rows, None), slice(None)),
                      "left": (slice(None), slice(0, cols)), "right": (slice(None), slice(width - cols, None)),
                      }[draw.name.removeprefix("rectangle-")]
            alpha = torch.zeros(height, width, device=parts.device)
            alpha[region] = 1.0
            alphas.append(alpha)
        return alphas


OCCLUDERS: dict[str, Occluder] = {
    "parts": PartOccluder(),
    "rectangle": RectangleOccluder(),
}
DEFAULT_FILLS = {"parts": "add", "rectangle": "black"}


# -- the whole step ---------------------------------------------------------------------------
def quantise(alpha: torch.Tensor) -> torch.Tensor:
    """The alpha's 8-bit levels (HxW uint8): what the mask records and, divided by 255, what the
    fills draw, so record and pixels agree exactly (level 0 leaves a pixel untouched)."""
    # alpha lies in [0, 1] (blobs are divided by their peak), so + 0.5 and truncation round it
    return alpha.mul(ALPHA_LEVELS).add_(0.5).to(torch.uint8)


def _band_distance(ratio: float, config: OcclusionConfig) -> float:
    return max(config.min_coverage - ratio, ratio - config.max_coverage, 0.0)


def _on_device(array: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """`array` as a tensor on `device`; read-only arrays (np.asarray of a PIL image) are copied
    first, as torch cannot share them."""
    return torch.from_numpy(array if array.flags.writeable else array.copy()).to(device)


@dataclass
class _Best:
    """The draw closest to the coverage band so far, for one image."""

    distance: float
    draw: Draw
    mask: torch.Tensor  # HxW uint8 alpha levels
    ratio: float
    attempts: int = 0


def occlude_batch(
    images: Sequence[np.ndarray],
    part_maps: Sequence[np.ndarray],
    rngs: Sequence[np.random.Generator],
    config: OcclusionConfig = OcclusionConfig(),
    donors: Sequence[Donor | None] | None = None,
    device: torch.device | str = "cpu",
) -> list[Occlusion]:
    """Occlude a batch of images (HxWx3 uint8, any sizes) given their part maps (HxW uint8, 0..6),
    one generator each. The shapes, coverages and fills run on `device` (the model's), a draw
    round of the whole batch at a time: every image still outside the coverage band draws again,
    and the round's shapes are rendered together. Each image draws from its own generator in the
    same order as it would alone, so its result does not depend on the rest of the batch."""
    count = len(images)
    donors = list(donors) if donors is not None else [None] * count
    occluder = OCCLUDERS[config.occluder]
    results: list[Occlusion | None] = [None] * count

    def unoccluded(i: int) -> Occlusion:
        return Occlusion(images[i], np.zeros(part_maps[i].shape, dtype=np.uint8), NONE, 0, 0.0)

    pending = []
    for i in range(count):
        if rngs[i].random() >= config.occlusion_prob:
            results[i] = unoccluded(i)
        else:
            pending.append(i)
    parts_on_device = {i: _on_device(part_maps[i], device) for i in pending}
    person_on_device = {i: parts != NONE for i, parts in parts_on_device.items()}
    person_pixels = {i: int(np.count_nonzero(part_maps[i])) for i in pending}
    best: dict[int, _Best] = {}
    for attempt in range(1, config.max_attempts + 1):
        draws = {}
        for i in pending:
            draw = occluder.draw(part_maps[i], rngs[i], config)
            if draw is None:  # no person: nothing to occlude
                results[i] = unoccluded(i)
                best.pop(i, None)
            else:
                draws[i] = draw
        if not draws:
            break
        drawn = list(draws)
        alphas = occluder.render([parts_on_device[i] for i in drawn], [draws[i] for i in drawn], config)
        masks = [quantise(alpha) for alpha in alphas]
        # alpha levels summed over the person (exact integers; one device-to-host copy per round)
        covered = torch.stack([m.mul(person_on_device[i]).sum() for m, i in zip(masks, drawn, strict=True)]).tolist()
        pending = []
        for i, mask, levels in zip(drawn, masks, covered, strict=True):
            ratio = levels / (ALPHA_LEVELS * person_pixels[i]) if person_pixels[i] else 0.0
            distance = _band_distance(ratio, config) if person_pixels[i] else 0.0
            if i not in best or distance < best[i].distance:
                best[i] = _Best(distance, draws[i], mask, ratio)
            best[i].attempts = attempt
            if distance > 0.0:
                pending.append(i)
        if not pending:
            break
    for i, chosen in best.items():
        image = _on_device(images[i], device)
        alpha = chosen.mask.float().div_(ALPHA_LEVELS)  # exactly the recorded alpha
        occluded = FILLS[config.fill_name](image, alpha, rngs[i], donors[i])
        results[i] = Occlusion(occluded.cpu().numpy(), chosen.mask.cpu().numpy(), chosen.draw.part,
                               chosen.draw.pool_scale, chosen.ratio, chosen.draw.name, chosen.distance == 0.0,
                               chosen.attempts)
    return results  # type: ignore[return-value]


def occlude(
    image: np.ndarray,
    parts: np.ndarray,
    rng: np.random.Generator,
    config: OcclusionConfig = OcclusionConfig(),
    donor: Donor | None = None,
) -> Occlusion:
    """Occlude one image (HxWx3 uint8) given its part map (HxW uint8, 0..6)."""
    return occlude_batch([image], [parts], [rng], config, [donor])[0]
