"""Occluding images: the whole step, for a batch at a time (the build) or one image (a transform).

The paper's method (Chen & Ge, Algorithms 1 and 2) is the default: one body part, drawn per
image, grown by pooling into a soft blob (kinds.PartOccluder, draws.grow_masks) and added to the
image, saturating at white (fill "add"). A crop with no person pixels is left unoccluded.

The record is what was drawn: each occluder's alpha is quantised to 8 bits first, the union of an
image's occluders (1 - prod(1 - level / 255), quantised) is what `occlusion_mask` stores (0 =
untouched, 255 = fully occluded), and each occluder is fused with exactly its own recorded levels,
in draw order: so a pixel whose mask is 0 keeps its source bytes, and every changed pixel has
mask > 0. The coverage (`occluded_ratio`) is the alpha-weighted share of the person's pixels under
the union (sum over person pixels of level / 255, over their count), and `part_visibility` is
1 minus the same share per part.

`occlude_batch` occludes a batch on a given device (the build uses the CPU): each image's random
choices are drawn on the CPU from its own generator, in the same order as it would alone, and the
shapes of a draw round are rendered together (the part occluder pools all grids of one pool scale
in one call). No step mixes images, so results depend only on (seed, source path), never on batch
size, worker count or order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..parts import BODY_PARTS, NONE
from .config import DEFAULT_CONFIG, OcclusionConfig
from .draws import ALPHA_LEVELS, Draw, Layer, Target, quantise, union_levels
from .fills import FILLS, PASTE, Donor, blend
from .kinds import OCCLUDERS


@dataclass(frozen=True)
class Drawn:
    """One occluder of a row, as the `occluders` column records it."""

    occluder: str  # "parts", "rectangle-top", "person", "objects"
    part: int = 0
    pool_scale: int = 0
    source: str | None = None  # the donor's source_path (person) / the object file (objects)

    def as_row(self) -> dict:
        return {"occluder": self.occluder, "part": self.part, "pool_scale": self.pool_scale, "source": self.source}


@dataclass(frozen=True)
class Occlusion:
    image: np.ndarray  # HxWx3 uint8, the occluded image
    mask: np.ndarray  # HxW uint8, the occluders' union alpha as drawn: 0 untouched .. 255 fully occluded
    part: int  # 0 (none) or 1..6: the first part occluder's part
    pool_scale: int  # 0 when no part occluder
    ratio: float  # alpha-weighted share of person pixels under the occluders (mask / 255 summed)
    occluder: str = "none"  # "none", "parts", "rectangle-top", "person", "objects"; several joined by "+"
    in_band: bool = True  # ratio inside [min_coverage, max_coverage] (True when not occluded)
    attempts: int = 0  # shape draws made
    drawn: tuple[Drawn, ...] = ()  # every occluder, in draw order
    visibility: tuple[float | None, ...] = ()  # per part 1..6: visible share, None where absent
    fill: str = "none"  # how the occluders were fused: the fill, "paste", or "<fill>+paste"


def part_visibility(mask: np.ndarray, parts: np.ndarray) -> tuple[float | None, ...]:
    """Per body part 1..6: 1 - (sum of mask / 255 over the part's pixels) / their count; None
    where the part map has no pixel of it."""
    counts = np.bincount(parts.ravel(), minlength=len(BODY_PARTS) + 1)
    levels = np.bincount(parts.ravel(), weights=mask.ravel().astype(np.float64), minlength=len(BODY_PARTS) + 1)
    return tuple(1.0 - levels[p] / (ALPHA_LEVELS * counts[p]) if counts[p] else None for p in BODY_PARTS)


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
    draws: list[Draw]
    layers: list[Layer]
    levels: list[torch.Tensor]  # each occluder's HxW uint8 alpha levels
    mask: torch.Tensor  # their union
    ratio: float
    attempts: int = 0


def _draw_round(
    targets: dict[int, list[Target]], rngs: Sequence[np.random.Generator], config: OcclusionConfig
) -> dict[int, list[Draw]]:
    """One attempt's shapes of every pending image; an image whose every slot draws nothing is left out."""
    kinds = config.kinds
    draws = {}
    for i, slots in targets.items():
        drawn = []
        for target in slots:
            kind = kinds[0] if len(kinds) == 1 else kinds[int(rngs[i].integers(len(kinds)))]
            draw = OCCLUDERS[kind].draw(target, rngs[i], config)
            if draw is not None:
                drawn.append(draw)
        if drawn:
            draws[i] = drawn
    return draws


def _render(
    draws: dict[int, list[Draw]], parts_on_device: dict[int, torch.Tensor], config: OcclusionConfig
) -> dict[int, list[Layer]]:
    """The layers of a round, each kind's shapes rendered together."""
    flat = [(i, j, d) for i, ds in draws.items() for j, d in enumerate(ds)]
    layers: dict[int, list[Layer | None]] = {i: [None] * len(ds) for i, ds in draws.items()}
    for kind in dict.fromkeys(d.kind for _, _, d in flat):
        group = [(i, j, d) for i, j, d in flat if d.kind == kind]
        rendered = OCCLUDERS[kind].render([parts_on_device[i] for i, _, _ in group], [d for *_, d in group], config)
        for (i, j, _), layer in zip(group, rendered, strict=True):
            layers[i][j] = layer
    return layers  # type: ignore[return-value]


def _fuse(
    image: torch.Tensor, best: _Best, config: OcclusionConfig, rng: np.random.Generator, donor: Donor | None
) -> tuple[torch.Tensor, str]:
    """The occluded image (each occluder fused with its recorded levels, in draw order) and the
    `fill` column's value."""
    fills = []
    for layer, levels in zip(best.layers, best.levels, strict=True):
        alpha = levels.float().div_(ALPHA_LEVELS)  # exactly the recorded alpha
        if layer.pixels is not None:
            image = blend(image, alpha, layer.pixels)
            fills.append(PASTE)
        else:
            image = FILLS[config.fill_name](image, alpha, rng, donor)
            fills.append(config.fill_name)
    return image, "+".join(dict.fromkeys(fills))


def occlude_batch(
    images: Sequence[np.ndarray],
    part_maps: Sequence[np.ndarray],
    rngs: Sequence[np.random.Generator],
    config: OcclusionConfig = DEFAULT_CONFIG,
    donors: Sequence[Donor | None] | None = None,
    device: torch.device | str = "cpu",
    person_donors: Sequence[Sequence[Donor | None]] | None = None,
) -> list[Occlusion]:
    """Occlude a batch of images (HxWx3 uint8, any sizes) given their part maps (HxW uint8, 0..6),
    one generator each; `donors`: texture donors (fill "texture"), `person_donors`: per image, one
    donor per occluder slot (`--occluder person`). Every image still outside the coverage band
    draws again, a round of the whole batch at a time, and each image draws from its own
    generator in the same order as it would alone, so its result does not depend on the batch."""
    count = len(images)
    donors = list(donors) if donors is not None else [None] * count
    people = list(person_donors) if person_donors is not None else [()] * count
    results: list[Occlusion | None] = [None] * count

    def unoccluded(i: int) -> Occlusion:
        mask = np.zeros(part_maps[i].shape, dtype=np.uint8)
        return Occlusion(images[i], mask, NONE, 0, 0.0, visibility=part_visibility(mask, part_maps[i]))

    slots: dict[int, list[Target]] = {}  # per image to occlude: one target per occluder slot
    for i in range(count):
        if rngs[i].random() >= config.occlusion_prob:
            results[i] = unoccluded(i)
        else:
            slots[i] = [Target(part_maps[i], people[i], slot) for slot in range(config.draw_count(rngs[i]))]
    targets = dict(slots)
    parts_on_device = {i: _on_device(part_maps[i], device) for i in targets}
    person_on_device = {i: parts != NONE for i, parts in parts_on_device.items()}
    person_pixels = {i: int(np.count_nonzero(part_maps[i])) for i in targets}
    best: dict[int, _Best] = {}
    for attempt in range(1, config.max_attempts + 1):
        draws = _draw_round(targets, rngs, config)
        for i in set(targets) - set(draws):  # nothing to occlude (no person, no donor)
            results[i] = unoccluded(i)
            best.pop(i, None)
        if not draws:
            break
        layers = _render(draws, parts_on_device, config)
        levels = {i: [quantise(layer.alpha) for layer in layers[i]] for i in draws}
        masks = {i: union_levels(levels[i]) for i in draws}
        # alpha levels summed over the person (exact integers; one device-to-host copy per round)
        sums = torch.stack([masks[i].mul(person_on_device[i]).sum() for i in draws]).tolist()
        covered = dict(zip(draws, sums, strict=True))
        targets = {}
        for i in draws:
            ratio = covered[i] / (ALPHA_LEVELS * person_pixels[i]) if person_pixels[i] else 0.0
            distance = _band_distance(ratio, config) if person_pixels[i] else 0.0
            if i not in best or distance < best[i].distance:
                best[i] = _Best(distance, draws[i], layers[i], levels[i], masks[i], ratio)
            best[i].attempts = attempt
            if distance > 0.0:
                targets[i] = slots[i]
        if not targets:
            break
    for i, chosen in best.items():
        occluded, fill = _fuse(_on_device(images[i], device), chosen, config, rngs[i], donors[i])
        mask = chosen.mask.cpu().numpy()
        first = next((d for d in chosen.draws if d.part), None)
        results[i] = Occlusion(
            occluded.cpu().numpy(),
            mask,
            first.part if first else NONE,
            first.pool_scale if first else 0,
            chosen.ratio,
            "+".join(d.name for d in chosen.draws),
            chosen.distance == 0.0,
            chosen.attempts,
            tuple(Drawn(d.name, d.part, d.pool_scale, d.source) for d in chosen.draws),
            part_visibility(mask, part_maps[i]),
            fill,
        )
    return results  # type: ignore[return-value]


def occlude(
    image: np.ndarray,
    parts: np.ndarray,
    rng: np.random.Generator,
    config: OcclusionConfig = DEFAULT_CONFIG,
    donor: Donor | None = None,
    person_donors: Sequence[Donor | None] = (),
) -> Occlusion:
    """Occlude one image (HxWx3 uint8) given its part map (HxW uint8, 0..6)."""
    return occlude_batch([image], [parts], [rng], config, [donor], person_donors=[person_donors])[0]
