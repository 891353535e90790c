"""The occluder kinds, behind one registry (`OCCLUDERS`). Each kind draws one shape's random
choices per image (`draw`, on the CPU, from the image's generator) and renders the shapes of a
draw round together (`render`).

* `parts` (the paper's, Chen & Ge Algorithm 1): a body part drawn uniformly from 1..6 (redrawn
  among the present parts when absent), grown by pooling (draws.grow_masks).
* `rectangle` (Feng et al.): a band over the top, bottom, left or right `rectangle_fraction` of
  the crop, placed without looking at the person.
* `person` (as KPR occludes with other people): another identity's person of the same split, its
  part map > 0 with edges softened, scaled to 50-100% of the crop's height and placed over the
  person, pasted with its own pixels.
* `objects` (as BPBreID pastes Pascal VOC objects): one of the user's RGBA cut-outs, scaled to
  25-60% of the crop's height and centred on a point of the person's box, its alpha from the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..parts import BODY_PARTS, NONE
from .draws import Draw, Layer, Target, grow_masks
from .objects import object_bank

if TYPE_CHECKING:
    from .config import OcclusionConfig

RECTANGLE_SIDES = ("top", "bottom", "left", "right")
PERSON_HEIGHT = (0.5, 1.0)  # pasted person's height, share of the crop's
OBJECT_HEIGHT = (0.25, 0.6)  # pasted object's height, share of the crop's
SOFT_EDGE = 5  # kernel of the average pooling that softens a pasted person's silhouette


class Occluder(Protocol):
    own_pixels: bool  # pasted with its own pixels (True) or fused by the build's fill (False)

    def draw(self, target: Target, rng: np.random.Generator, config: OcclusionConfig) -> Draw | None:
        """One shape's random choices; None when there is nothing to occlude (no person)."""
        ...

    def render(self, part_maps: Sequence[torch.Tensor], draws: Sequence[Draw], config: OcclusionConfig) -> list[Layer]:
        """The shapes' layers (on the part maps' device), a batch at a time."""
        ...


def draw_part(parts: np.ndarray, rng: np.random.Generator) -> int:
    """Uniform over 1..6; redraw among the present parts when the drawn one is absent."""
    part = int(rng.integers(1, len(BODY_PARTS) + 1))
    counts = np.bincount(parts.ravel(), minlength=len(BODY_PARTS) + 1)
    present = [int(p) for p in np.flatnonzero(counts) if p != NONE]
    if not present:
        return NONE
    return part if part in present else int(rng.choice(present))


class PartOccluder:
    """The paper's occluder: a body part grown by pooling."""

    own_pixels = False

    def draw(self, target: Target, rng: np.random.Generator, config: OcclusionConfig) -> Draw | None:
        part = draw_part(target.parts, rng)
        pool_scale = int(rng.choice(config.pool_scales))
        return None if part == NONE else Draw("parts", "parts", part, pool_scale)

    def render(self, part_maps: Sequence[torch.Tensor], draws: Sequence[Draw], config: OcclusionConfig) -> list[Layer]:
        alphas = grow_masks([p == d.part for p, d in zip(part_maps, draws, strict=True)], [d.pool_scale for d in draws])
        return [Layer(alpha) for alpha in alphas]


class RectangleOccluder:
    """Feng et al.: a band over one side of the crop, blind to where the person is."""

    own_pixels = False

    def draw(self, target: Target, rng: np.random.Generator, config: OcclusionConfig) -> Draw:
        return Draw("rectangle", f"rectangle-{RECTANGLE_SIDES[int(rng.integers(len(RECTANGLE_SIDES)))]}")

    def render(self, part_maps: Sequence[torch.Tensor], draws: Sequence[Draw], config: OcclusionConfig) -> list[Layer]:
        layers = []
        for parts, draw in zip(part_maps, draws, strict=True):
            height, width = parts.shape
            rows = max(1, round(height * config.rectangle_fraction))
            cols = max(1, round(width * config.rectangle_fraction))
            region = {
                "top": (slice(0, rows), slice(None)),
                "bottom": (slice(height - rows, None), slice(None)),
                "left": (slice(None), slice(0, cols)),
                "right": (slice(None), slice(width - cols, None)),
            }[draw.name.removeprefix("rectangle-")]
            alpha = torch.zeros(height, width, device=parts.device)
            alpha[region] = 1.0
            layers.append(Layer(alpha))
        return layers


def _place(
    target: Target, rng: np.random.Generator, heights: tuple[float, float], aspect: float
) -> tuple[int, int, int, int] | None:
    """(top, left, height, width) of a cut-out of `aspect` (width / height), its height a drawn
    share of the crop's, centred on a drawn point of the person's box; None without a person."""
    box = target.person_box()
    if box is None:
        return None
    crop_h = target.parts.shape[0]
    height = max(2, round(crop_h * float(rng.uniform(*heights))))
    width = max(2, round(height * aspect))
    centre_r = float(rng.uniform(box[0], box[1]))
    centre_c = float(rng.uniform(box[2], box[3]))
    return round(centre_r - height / 2), round(centre_c - width / 2), height, width


def _paste(
    rgb: np.ndarray, alpha: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, ...], device: torch.device
) -> Layer:
    """A cut-out (pixels hxwx3 uint8, alpha hxw float in [0, 1], already at the box's size)
    placed at `box` on an empty canvas of `shape`, clipped to it."""
    top, left, height, width = box
    canvas_alpha = torch.zeros(shape, device=device)
    canvas_rgb = torch.zeros((*shape, 3), dtype=torch.uint8, device=device)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + height, shape[0]), min(left + width, shape[1])
    if r0 < r1 and c0 < c1:
        src = (slice(r0 - top, r1 - top), slice(c0 - left, c1 - left))
        canvas_alpha[r0:r1, c0:c1] = torch.from_numpy(np.array(alpha[src])).to(device)
        canvas_rgb[r0:r1, c0:c1] = torch.from_numpy(np.array(rgb[src])).to(device)
    return Layer(canvas_alpha, canvas_rgb)


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.asarray(Image.fromarray(array).resize((width, height), Image.Resampling.BILINEAR))


class PersonOccluder:
    """Another identity's person of the same split (the row's donor for this slot)."""

    own_pixels = True

    def draw(self, target: Target, rng: np.random.Generator, config: OcclusionConfig) -> Draw | None:
        donor = target.person_donors[target.slot] if target.slot < len(target.person_donors) else None
        if donor is None or not donor.parts.any():
            return None  # no donor of another identity decoded, or the parser found no person in it
        donor_box = Target(donor.parts).person_box()
        assert donor_box is not None
        aspect = (donor_box[3] - donor_box[2]) / (donor_box[1] - donor_box[0])
        box = _place(target, rng, PERSON_HEIGHT, aspect)
        return None if box is None else Draw("person", "person", source=donor.source_path, box=box, donor=donor)

    def render(self, part_maps: Sequence[torch.Tensor], draws: Sequence[Draw], config: OcclusionConfig) -> list[Layer]:
        layers = []
        for parts, draw in zip(part_maps, draws, strict=True):
            assert draw.donor is not None
            r0, r1, c0, c1 = Target(draw.donor.parts).person_box() or (0, 0, 0, 0)
            _, _, height, width = draw.box
            rgb = _resize(draw.donor.image[r0:r1, c0:c1], height, width)
            silhouette = (draw.donor.parts[r0:r1, c0:c1] != 0).astype(np.float32)
            mask = torch.from_numpy(silhouette)[None, None]
            mask = F.interpolate(mask, size=(height, width), mode="bilinear", align_corners=False)
            # softened edges, as the paper's occluder has: one average pooling, the same size
            soft = F.avg_pool2d(mask, SOFT_EDGE, stride=1, padding=SOFT_EDGE // 2, count_include_pad=False)
            layers.append(_paste(rgb, soft[0, 0].clamp_(0, 1).numpy(), draw.box, tuple(parts.shape), parts.device))
        return layers


class ObjectOccluder:
    """One of the user's RGBA cut-outs (`--objects-dir`)."""

    own_pixels = True

    def draw(self, target: Target, rng: np.random.Generator, config: OcclusionConfig) -> Draw | None:
        assert config.objects_dir is not None  # OcclusionConfig.validate
        bank = object_bank(config.objects_dir)
        cut = bank.objects[int(rng.integers(len(bank)))]
        box = _place(target, rng, OBJECT_HEIGHT, cut.rgba.shape[1] / cut.rgba.shape[0])
        return None if box is None else Draw("objects", "objects", source=cut.name, box=box)

    def render(self, part_maps: Sequence[torch.Tensor], draws: Sequence[Draw], config: OcclusionConfig) -> list[Layer]:
        assert config.objects_dir is not None
        by_name = object_bank(config.objects_dir).by_name
        layers = []
        for parts, draw in zip(part_maps, draws, strict=True):
            _, _, height, width = draw.box
            rgba = _resize(by_name[str(draw.source)].rgba, height, width)  # Pillow resizes RGBA premultiplied
            alpha = rgba[..., 3].astype(np.float32) / 255.0
            layers.append(_paste(rgba[..., :3], alpha, draw.box, tuple(parts.shape), parts.device))
        return layers


OCCLUDERS: dict[str, Occluder] = {
    "parts": PartOccluder(),
    "rectangle": RectangleOccluder(),
    "person": PersonOccluder(),
    "objects": ObjectOccluder(),
}
DEFAULT_FILLS = {"parts": "add", "rectangle": "black"}  # kinds fused by a fill; the others paste their pixels
