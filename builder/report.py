"""The machine-readable build report, `build_report.json`, written beside the data.

It holds what a reader needs to trust and reproduce the build: counts per split, what was skipped
and why, how often each part was occluded, the occluded-ratio distribution, the part parser
(model or precomputed maps), the seed and options, and library versions. It has no timestamp, so
identical builds give identical reports, and no local path: the source folder is recorded by its
name only (`source_dir`), so a published report does not show where a user keeps their data.

`BuildReport` is the one typed form of the report: the build fills it, and the card, `builder
verify` and `builder push` read a report back with `read_report` / `BuildReport.from_json`, which
checks its shape (`ReportError`, naming the file and the problem). `public_report_bytes` gives the
bytes to publish: the file as written, or, for a report that holds absolute local paths (one written
before the source was recorded by name, or a parser description naming a local weights file or
part-map folder), a copy with each such path reduced to its last component.
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from occluded_ccreid.layout import REPORT_NAME, SHARD_RE
from occluded_ccreid.parts import PART_NAMES

RATIO_BINS = 10


class ReportError(ValueError):
    """A build report that is not one the builder writes; the message names the file and the problem."""


def source_name(source_dir: str | Path) -> str:
    """How the report records the source folder: its name, not the user's local path."""
    return Path(source_dir).resolve().name


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in (
        "occluded-ccreid",
        "torch",
        "transformers",
        "datasets",
        "huggingface_hub",
        "pyarrow",
        "pillow",
        "numpy",
    ):
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

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SplitStats:
        """A split's statistics as `BuildReport.to_json` wrote them. The report keeps the occluded
        ratio's rounded mean and std, not its sums: they are set back so that `ratio_summary()`
        gives the recorded values."""
        known = {f.name for f in fields(cls)} - {"ratio_sum", "ratio_sq_sum"}
        stats = cls(**{key: value for key, value in data.items() if key in known})
        summary = data.get("occluded_ratio") or {}
        mean, std = float(summary.get("mean", 0.0)), float(summary.get("std", 0.0))
        stats.ratio_sum = mean * stats.occluded
        stats.ratio_sq_sum = (std * std + mean * mean) * stats.occluded
        return stats

    def ratio_summary(self) -> dict[str, float]:
        n = self.occluded
        if not n:
            return {"mean": 0.0, "std": 0.0}
        mean = self.ratio_sum / n
        return {"mean": round(mean, 4), "std": round(float(np.sqrt(max(self.ratio_sq_sum / n - mean * mean, 0.0))), 4)}


@dataclass(frozen=True)
class ShardEntry:
    """A finished shard as the report lists it: what `builder verify` checks the file against."""

    num_rows: int
    sha256: str


@dataclass
class BuildReport:
    dataset: str
    source_dir: str
    seed: int
    parser: dict
    occlusion: dict
    splits: dict[str, SplitStats]
    shards: dict[str, ShardEntry] = field(default_factory=dict)  # data/<split>-i-of-n.parquet -> entry
    shard_plan: dict = field(default_factory=dict)  # how records were cut into shards (builder.shards)
    skipped: list[dict] = field(default_factory=list)  # {"source_path", "split", "reason"}
    ignored_files: list[str] = field(default_factory=list)  # non-image files in the source tree
    versions: dict[str, str] = field(default_factory=library_versions)

    @property
    def num_rows(self) -> int:
        return sum(s.num_rows for s in self.splits.values())

    def add_shard(self, name: str, entry: dict) -> None:
        """Account for a finished shard `data/<name>` (an entry of the staging journal)."""
        self.shards[f"data/{name}"] = ShardEntry(entry["num_rows"], entry["sha256"])
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

    @classmethod
    def from_json(cls, data: Any, where: str = REPORT_NAME) -> BuildReport:
        """The report `to_json` wrote (`where` names it in errors); raises `ReportError` for
        anything else: no splits or shards, a shard name or count that does not fit, a bad hash."""
        if not isinstance(data, dict):
            raise ReportError(f"{where} is not a JSON object")
        splits, shards = _check_splits(data.get("splits"), where), _check_shards(data.get("shards"), where)
        _check_shard_counts(splits, shards, where)
        return cls(
            dataset=str(data.get("dataset") or ""),
            source_dir=str(data.get("source_dir") or ""),
            seed=data.get("seed", 0),
            parser=data.get("parser") or {},
            occlusion=data.get("occlusion") or {},
            splits={name: SplitStats.from_json(info) for name, info in splits.items()},
            shards={rel: ShardEntry(entry["num_rows"], entry["sha256"].lower()) for rel, entry in shards.items()},
            shard_plan=data.get("shard_plan") or {},
            skipped=list(data.get("skipped") or []),
            ignored_files=list(data.get("ignored_files") or []),
            versions=data.get("versions") or {},
        )

    def split_of(self, shard: str) -> str:
        """The split a listed shard belongs to (`from_json` checked its name)."""
        match = SHARD_RE.match(shard)
        assert match is not None, shard
        return match["split"]


def read_report(folder: str | Path, where: str = REPORT_NAME) -> BuildReport:
    """The report of the build in `folder`; `ReportError` if it is missing, not JSON or malformed."""
    path = Path(folder) / REPORT_NAME
    if not path.is_file():
        raise ReportError(f"missing build report {where}: the build did not finish")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReportError(f"{where} is not valid JSON ({exc})") from exc
    return BuildReport.from_json(data, where)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_splits(splits: Any, where: str) -> dict[str, dict]:
    if not isinstance(splits, dict) or not splits:
        raise ReportError(f"{where} has no 'splits' object")
    for split, info in splits.items():
        if not (isinstance(info, dict) and _is_count(info.get("num_rows")) and _is_count(info.get("num_shards"))):
            raise ReportError(f"{where}: split {split!r} needs integer 'num_rows' and 'num_shards'")
    return splits


def _check_shards(shards: Any, where: str) -> dict[str, dict]:
    if not isinstance(shards, dict) or not shards:
        raise ReportError(f"{where} has no 'shards' object")
    for rel, entry in shards.items():
        if SHARD_RE.match(rel) is None:
            raise ReportError(f"{where}: shard name {rel!r} is not data/<split>-<index:05d>-of-<count:05d>.parquet")
        if not (
            isinstance(entry, dict)
            and _is_count(entry.get("num_rows"))
            and isinstance(entry.get("sha256"), str)
            and re.fullmatch(r"[0-9a-fA-F]{64}", entry["sha256"])
        ):
            raise ReportError(f"{where}: shard {rel} needs an integer 'num_rows' and a hex 'sha256'")
    return shards


def _check_shard_counts(splits: dict[str, dict], shards: dict[str, dict], where: str) -> None:
    """Every shard belongs to a listed split, and each split's shards are exactly 0..n-1 of n."""
    found: dict[str, list[tuple[int, int]]] = {split: [] for split in splits}
    for rel in shards:
        match = SHARD_RE.match(rel)
        assert match is not None  # _check_shards
        if match["split"] not in found:
            raise ReportError(f"{where}: shard {rel} belongs to split {match['split']!r}, which 'splits' lacks")
        found[match["split"]].append((int(match["index"]), int(match["count"])))
    for split, indices in found.items():
        expected = splits[split]["num_shards"]
        if sorted(indices) != [(i, expected) for i in range(expected)]:
            raise ReportError(
                f"{where}: split {split!r} says {expected} shard(s) but lists "
                + (", ".join(f"{i:05d}-of-{n:05d}" for i, n in sorted(indices)) or "none")
            )


# -- what is published ------------------------------------------------------------------------

_WINDOWS_ABSOLUTE = re.compile(r"^[A-Za-z]:[\\/]|^\\\\")


def _local_path_name(value: str) -> str | None:
    """The last component of an absolute local path (POSIX, `~/...` or Windows), None for anything else."""
    if value.startswith(("/", "~/")) and "\n" not in value:
        return PurePosixPath(value).name
    if _WINDOWS_ABSOLUTE.match(value):
        return PureWindowsPath(value).name
    return None


def _redact(value: Any, found: list[str]) -> Any:
    if isinstance(value, dict):
        return {key: _redact(item, found) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact(item, found) for item in value]
    if isinstance(value, str) and (name := _local_path_name(value)) is not None:
        found.append(value)
        return name
    return value


def public_report_bytes(path: Path) -> tuple[bytes, list[str]]:
    """The bytes of the report file `path` to publish, and the absolute local paths taken out of it.

    A report without such paths is published byte for byte. Otherwise every absolute path, wherever
    it stands (an old report's `source_dir`, a parser's local `model` or `parsing_dir`, a weights
    file's `path`), is replaced by its last component; the local file is left as it is."""
    raw = path.read_bytes()
    found: list[str] = []
    public = _redact(json.loads(raw), found)
    if not found:
        return raw, []
    return (json.dumps(public, indent=2) + "\n").encode("utf-8"), found
