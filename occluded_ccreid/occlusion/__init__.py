"""Occlusion, in one place: the occluder kinds (the paper's parts, Feng et al.'s rectangles, other
people, the user's objects), fills, the coverage band, presets, and the training transform.

The builder imports it; this package needs torch (`import occluded_ccreid` alone does not).
"""

from .config import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MIN_COVERAGE,
    DEFAULT_RECTANGLE_FRACTION,
    PRESETS,
    OcclusionConfig,
    parse_count,
)
from .core import Drawn, Occlusion, occlude, occlude_batch, part_visibility
from .draws import (
    ALPHA_LEVELS,
    POOL_GRID,
    POOL_SCALES,
    POOL_STEPS,
    Draw,
    Layer,
    Target,
    epoch_stream,
    grow_mask,
    grow_masks,
    image_rng,
    quantise,
)
from .fills import FILLS, PASTE, Donor
from .kinds import DEFAULT_FILLS, OCCLUDERS, RECTANGLE_SIDES, Occluder, draw_part
from .objects import ObjectBank, object_bank

__all__ = [
    "ALPHA_LEVELS",
    "DEFAULT_FILLS",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MIN_COVERAGE",
    "DEFAULT_RECTANGLE_FRACTION",
    "FILLS",
    "OCCLUDERS",
    "PASTE",
    "POOL_GRID",
    "POOL_SCALES",
    "POOL_STEPS",
    "PRESETS",
    "RECTANGLE_SIDES",
    "Donor",
    "Draw",
    "Drawn",
    "Layer",
    "ObjectBank",
    "Occluder",
    "Occlusion",
    "OcclusionConfig",
    "Target",
    "draw_part",
    "epoch_stream",
    "grow_mask",
    "grow_masks",
    "image_rng",
    "object_bank",
    "occlude",
    "occlude_batch",
    "parse_count",
    "part_visibility",
    "quantise",
]
