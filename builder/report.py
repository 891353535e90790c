"""The machine-readable build report, `build_report.json`, written beside the data.

It holds what a reader needs to trust and reproduce the build: counts per split, what was skipped
and why, how often each part was occluded, the occluded-ratio distribution, the part parser
(model or precomputed maps), the seed and options, and library versions. It has no timestamp, so
identical builds give identical reports.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from occluded_ccreid.parts import PART_NAMES

REPORT_NAME = "build_report.json"
RATIO_BINS = 10


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("occluded-ccreid", "torch", "transformers", "datasets", "huggingface_hub",
                    "pyarrow", "pillow", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


@dataclass
class SplitStats:
    num_rows: int = 0
    num_shards: int = 0
    part_counts: dict[str, int] = field(default_factory=lambda: {name: 0 for name in PART_NAMES})
    occluded: int = 0
    no_person: int = 0  # crops in which the parser found no person: parts occluder leaves them
    out_of_band: int = 0  # occluded rows whose best draw stayed outside the coverage band
    occluder_counts: dict[str, int] = field(default_factory=dict)
    ratio_histogram: list[int] = field(default_factory=lambda: [0] * RATIO_BINS)  # occluded rows
    ratio_sum: float = 0.0
    ratio_sq_sum: float = 0.0

    def add(self, row: dict, no_person: bool) -> None:
        part, ratio, occluder = row["occluded_part"], row["occluded_ratio"], row["occluder"]
        self.num_rows += 1
        self.part_counts[PART_NAMES[part]] += 1
        self.occluder_counts[occluder] = self.occluder_counts.get(occluder, 0) + 1
        self.no_person += no_person
        self.out_of_band += not row["coverage_in_band"]
        if occluder != "none":
            self.occluded += 1
            self.ratio_histogram[min(int(ratio * RATIO_BINS), RATIO_BINS - 1)] += 1
            self.ratio_sum += ratio
            self.ratio_sq_sum += ratio * ratio

    def merge(self, other: dict) -> None:
        """Add the statistics of another part of the split (a shard's, as `asdict` gives them).
        Every build sums its shards' statistics this way, in shard order, so a resumed build
        gets the very same floats as an uninterrupted one."""
        for name, value in other.items():
            mine = getattr(self, name)
            if name == "num_shards":
                continue
            if isinstance(mine, dict):
                for key, count in value.items():
                    mine[key] = mine.get(key, 0) + count
            elif isinstance(mine, list):
                setattr(self, name, [a + b for a, b in zip(mine, value, strict=True)])
            else:
                setattr(self, name, mine + value)

    def ratio_summary(self) -> dict[str, float]:
        n = self.occluded
        if not n:
            return {"mean": 0.0, "std": 0.0}
        mean = self.ratio_sum / n
        return {"mean": round(mean, 4), "std": round(float(np.sqrt(max(self.ratio_sq_sum / n - mean * mean, 0.0))), 4)}


@dataclass
class BuildReport:
    dataset: str
    source_dir: str
    seed: int
    parser: dict
    occlusion: dict
    splits: dict[str, SplitStats]
    shards: dict[str, dict] = field(default_factory=dict)
    shard_plan: dict = field(default_factory=dict)  # how records were cut into shards (builder.shards)
    skipped: list[dict] = field(default_factory=list)  # {"source_path", "split", "reason"}
    ignored_files: list[str] = field(default_factory=list)  # non-image files in the source tree
    versions: dict[str, str] = field(default_factory=library_versions)

    @property
    def num_rows(self) -> int:
        return sum(s.num_rows for s in self.splits.values())

    def add_shard(self, name: str, entry: dict) -> None:
        """Account for a finished shard `data/<name>` (an entry of the staging journal)."""
        self.shards[f"data/{name}"] = {"num_rows": entry["num_rows"], "sha256": entry["sha256"]}
        self.splits[entry["split"]].merge(entry["stats"])
        self.splits[entry["split"]].num_shards += 1
        self.skipped.extend(entry["skipped"])

    def to_json(self) -> dict:
        data = asdict(self)
        for name, stats in self.splits.items():
            data["splits"][name]["occluded_ratio"] = stats.ratio_summary()
            del data["splits"][name]["ratio_sum"], data["splits"][name]["ratio_sq_sum"]
        data["num_rows"] = self.num_rows
        data["num_skipped"] = len(self.skipped)
        return data

    def write(self, folder: Path) -> None:
        (folder / REPORT_NAME).write_text(json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")
