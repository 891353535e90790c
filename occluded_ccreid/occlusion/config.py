"""The occlusion options of a build (`OcclusionConfig`), checked once, and the presets that say
which rows are occluded.

Options (all recorded per row and in the build report):
* `occluder`: one kind or several, comma-separated (each occluder of an image draws its kind
  among them); `occluders` (K, or a range K1-K2 drawn per image): how many occluders an image gets;
* a coverage band: the (alpha-weighted) share of person pixels under the occluders' union must
  lie in [min_coverage, max_coverage]; shape draws are repeated up to `max_attempts` times, and a
  row that never fits keeps the draw closest to the band and is counted as out of band;
* fills: add, white, black, mean, noise, blur, texture (fills.py) for the kinds without pixels of
  their own (parts, rectangle); person and objects are pasted with their own pixels ("paste");
* `occlusion_prob`: the share of rows that are occluded at all; `preset`: a named policy of
  per-split probabilities (PRESETS) in place of `--occlude-splits` / `--occlusion-prob`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from .draws import ALPHA_LEVELS, POOL_GRID, POOL_SCALES, POOL_STEPS
from .fills import FILLS, PASTE
from .kinds import DEFAULT_FILLS, OCCLUDERS
from .objects import object_bank

# Occluders covering under 5% of the person are near-invisible; see benchmarks/occlusion_quality.py.
DEFAULT_MIN_COVERAGE = 0.05
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_RECTANGLE_FRACTION = 0.3
MAX_OCCLUDERS = 8

# Which rows are occluded, named after what each reproduces: split -> probability (others 0).
PRESETS: dict[str, dict[str, float]] = {
    # Occluded-Duke (Miao et al., ICCV 2019): every query occluded, a tenth of the gallery, no training image
    "occluded-duke": {"query": 1.0, "gallery": 0.1},
}


def parse_count(text: str) -> tuple[int, int]:
    """`--occluders K` or `K1-K2` -> (K1, K2); ValueError with the fix otherwise."""
    low, _, high = text.partition("-")
    try:
        counts = (int(low), int(high or low))
    except ValueError:
        raise ValueError(f"--occluders expects K or K1-K2 such as 2 or 1-3, got {text!r}") from None
    if not 1 <= counts[0] <= counts[1] <= MAX_OCCLUDERS:
        raise ValueError(f"--occluders {text}: need 1 <= K1 <= K2 <= {MAX_OCCLUDERS}")
    return counts


@dataclass(frozen=True)
class OcclusionConfig:
    occluder: str = "parts"  # a key of OCCLUDERS, or several comma-separated
    fill: str | None = None  # a key of FILLS; None: the kinds' own default ("add" / "black" / "paste")
    pool_scales: tuple[int, ...] = POOL_SCALES
    min_coverage: float = DEFAULT_MIN_COVERAGE
    max_coverage: float = 1.0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    occlusion_prob: float = 1.0
    rectangle_fraction: float = DEFAULT_RECTANGLE_FRACTION
    occluders: tuple[int, int] = (1, 1)  # (K1, K2): occluders per occluded image, drawn in [K1, K2]
    objects_dir: str | None = None  # `--occluder objects`: the folder of RGBA cut-outs
    preset: str | None = None  # a key of PRESETS: per-split probabilities instead of occlusion_prob

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.occluder.split(",") if k.strip())

    @property
    def fill_name(self) -> str:
        """The fill of the kinds without their own pixels; "paste" when every kind has its own."""
        fused = [k for k in self.kinds if k in DEFAULT_FILLS]
        return self.fill or (DEFAULT_FILLS[fused[0]] if fused else PASTE)

    @property
    def needs_person_donors(self) -> bool:
        return "person" in self.kinds

    def draw_count(self, rng: np.random.Generator) -> int:
        """How many occluders this image gets (no draw when the count is fixed)."""
        low, high = self.occluders
        return low if low == high else int(rng.integers(low, high + 1))

    def validate(self) -> None:
        self._validate_kinds()
        if not 0.0 <= self.min_coverage <= self.max_coverage <= 1.0:
            raise ValueError("coverage band must satisfy 0 <= --min-coverage <= --max-coverage <= 1")
        if not 0.0 <= self.occlusion_prob <= 1.0:
            raise ValueError("--occlusion-prob must be between 0 and 1")
        if not 0.0 < self.rectangle_fraction < 1.0:
            raise ValueError("--rectangle-fraction must be between 0 and 1 (exclusive)")
        if self.max_attempts < 1 or not self.pool_scales:
            raise ValueError("max_attempts must be >= 1 and pool_scales non-empty")
        if not 1 <= self.occluders[0] <= self.occluders[1] <= MAX_OCCLUDERS:
            raise ValueError(f"--occluders: need 1 <= K1 <= K2 <= {MAX_OCCLUDERS}")
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"unknown --occlusion-preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        if self.preset is not None and self.occlusion_prob != 1.0:
            raise ValueError(f"--occlusion-preset {self.preset} sets each split's probability: drop --occlusion-prob")

    def _validate_kinds(self) -> None:
        kinds = self.kinds
        if not kinds or len(set(kinds)) != len(kinds) or any(k not in OCCLUDERS for k in kinds):
            raise ValueError(
                f"unknown occluder {self.occluder!r}; choose one or more (comma-separated) of {', '.join(OCCLUDERS)}"
            )
        fused = [k for k in kinds if k in DEFAULT_FILLS]
        if self.fill is not None and self.fill not in FILLS:
            raise ValueError(f"unknown fill {self.fill!r}; choose from {', '.join(FILLS)}")
        if self.fill is not None and not fused:
            raise ValueError(
                f"--fill {self.fill} has no effect with --occluder {self.occluder}: person and objects "
                "are pasted with their own pixels; drop --fill"
            )
        if "objects" in kinds:
            if self.objects_dir is None:
                raise ValueError("--occluder objects needs --objects-dir DIR, a folder of RGBA cut-outs")
            object_bank(self.objects_dir)  # refuses a folder without usable cut-outs
        elif self.objects_dir is not None:
            raise ValueError("--objects-dir is only used by --occluder objects; add objects to --occluder or drop it")

    def split_probability(self, split: str, occlude_splits: Collection[str]) -> float:
        """The probability that a row of `split` is occluded: the preset's, or `occlusion_prob`
        for the occluded splits and 0 for the others."""
        if self.preset is not None:
            return PRESETS[self.preset].get(split, 0.0)
        return self.occlusion_prob if split in occlude_splits else 0.0

    def describe(self) -> dict:
        described = {
            "occluder": self.occluder,
            "fill": self.fill_name,
            "pool_scales": list(self.pool_scales),
            "pool_steps": POOL_STEPS,
            "pool_grid": list(POOL_GRID),
            "alpha_levels": ALPHA_LEVELS,
            "min_coverage": self.min_coverage,
            "max_coverage": self.max_coverage,
            "max_attempts": self.max_attempts,
            "occlusion_prob": self.occlusion_prob,
            "rectangle_fraction": self.rectangle_fraction,
            "occluders": list(self.occluders),
            "preset": self.preset,
        }
        if self.objects_dir is not None:
            described.update(object_bank(self.objects_dir).describe())
        return described

    @classmethod
    def from_report(cls, occlusion: Mapping) -> OcclusionConfig:
        """The config a build report's `occlusion` entry describes (for the training transform)."""
        fill = occlusion.get("fill")
        return cls(
            occluder=occlusion["occluder"],
            fill=None if fill == PASTE else fill,
            pool_scales=tuple(occlusion["pool_scales"]),
            min_coverage=occlusion["min_coverage"],
            max_coverage=occlusion["max_coverage"],
            max_attempts=occlusion["max_attempts"],
            occlusion_prob=occlusion["occlusion_prob"],
            rectangle_fraction=occlusion["rectangle_fraction"],
            occluders=tuple(occlusion.get("occluders", (1, 1))),  # type: ignore[arg-type]
            objects_dir=occlusion.get("objects_dir"),
            preset=occlusion.get("preset"),
        )


DEFAULT_CONFIG = OcclusionConfig()  # the paper's method with the default band
