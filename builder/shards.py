"""The shard plan: which source records go into which Parquet shard, fixed before any image is read.

Each split's records (in scan order) are cut into contiguous ranges, one shard each, so a shard's
content depends only on the inputs: an image that turns out undecodable is simply absent from its
shard, and a resumed build rewrites exactly the shards it lacks. Shards are sized by bytes, from
an upper bound on each row's encoded size read off the image headers (no pixel is decoded):
at most MAX_SHARD_BYTES each. A split with at least READERS * MIN_ROWS_PER_SHARD rows is cut into
a multiple of READERS shards of equal row counts, so `datasets.distributed.split_dataset_by_node`
gives each of 8, 16 or 32 nodes whole shards (and the same number of rows). `--shard-size N`
overrides all of this with a cut every N records (tests use it to get several small shards).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from builder import images
from occluded_ccreid.layout import shard_file_name
from occluded_ccreid.sources import SourceRecord

MAX_SHARD_BYTES = 500_000_000  # the Hub's recommendation for Parquet files
READERS = 32  # a multiple of 32 shards divides evenly among 8, 16 and 32 readers
MIN_ROWS_PER_SHARD = 100  # a split with fewer than READERS x this rows is not cut for READERS readers
# Encoded bytes per pixel of a row's PNG columns: image (RGB), occlusion mask and part map
# (one channel each), and the clean image (RGB) when kept. PNG never stores more than the raw
# pixels plus a filter byte a line and tiny per-block overheads.
BYTES_PER_PIXEL = {"image": 3, "occlusion_mask": 1, "parsing": 1}
CLEAN_BYTES_PER_PIXEL = 3
ENCODING_SLACK = 1.1  # zlib's stored blocks, PNG chunks, Parquet pages: well under 1% each
ROW_METADATA_BYTES = 1024  # labels, source path, PNG headers, Parquet offsets
# What rows really take, for the disk check before a build (builder.staging.check_free_space),
# which the bound above overstates 3-5x for photos. Measured with benchmarks/row_bytes.py on 200
# person-sized crops (100-250 x 250-550 px) of scikit-image's 7 colour photos, saved as JPEG and
# decoded, occluded with the default options: a row (image + occlusion_mask + parsing) is 1.20
# bytes a pixel at JPEG quality 75, 1.26 at 95 (the bound: 4.6x and 4.4x that); clean_image 1.18
# and 1.26. Noise-textured synthetic people (tests/support/synthetic.py) give 1.66-1.71. The constants
# are ~20% below the photos: a build refused that would have fitted is worse than a full disk
# late in a build, which resumes; between this estimate and the bound the builder only warns.
REALISTIC_BYTES_PER_PIXEL = 1.0
REALISTIC_CLEAN_BYTES_PER_PIXEL = 1.0


@dataclass(frozen=True)
class Shard:
    split: str
    index: int
    count: int  # shards of this split
    start: int  # [start, stop): positions in the scan's record list
    stop: int
    estimated_bytes: int  # upper bound

    @property
    def name(self) -> str:
        return shard_file_name(self.split, self.index, self.count)

    @property
    def num_records(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class ShardPlan:
    shards: tuple[Shard, ...]
    shard_size: int | None  # the --shard-size override, or None: sized by bytes

    @property
    def estimated_bytes(self) -> int:
        return sum(s.estimated_bytes for s in self.shards)

    def describe(self) -> dict:
        """For build_report.json: how shards were cut, and each shard's record range."""
        rule = (
            {"rule": "rows", "shard_size": self.shard_size}
            if self.shard_size is not None
            else {
                "rule": "bytes",
                "max_shard_bytes": MAX_SHARD_BYTES,
                "readers": READERS,
                "min_rows_per_shard": MIN_ROWS_PER_SHARD,
            }
        )
        return {
            **rule,
            "estimated_bytes": self.estimated_bytes,
            "shards": {
                f"data/{s.name}": {"records": [s.start, s.stop], "estimated_bytes": s.estimated_bytes}
                for s in self.shards
            },
        }


def row_bytes_bound(height: int, width: int, keep_clean: bool) -> int:
    """An upper bound on one row's size in a shard, from its image's size: each PNG column's raw
    lines, each with its filter byte."""
    channels = list(BYTES_PER_PIXEL.values()) + ([CLEAN_BYTES_PER_PIXEL] if keep_clean else [])
    raw = sum(height * (width * c + 1) for c in channels)
    return int(math.ceil(raw * ENCODING_SLACK)) + ROW_METADATA_BYTES


def image_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from the file's header only; None when it cannot be read (the build will
    skip the image as undecodable, so it adds no bytes)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: only the header is read here
            with images.open_regular(path) as file, Image.open(file) as img:  # a FIFO is never waited on
                width, height = img.size
    except Exception:  # noqa: BLE001 - any unreadable header means "skipped later", never a crash here
        return None
    if width * height > images.MAX_PIXELS:
        return None  # skipped later as too large, from the same header: no bytes either
    return height, width


HEADER_READERS = 8  # threads reading image headers: on cold or network storage the wait is I/O


@dataclass(frozen=True)
class RowSizes:
    bounds: np.ndarray  # row_bytes_bound of each record (int64): what shards are cut by
    expected: int  # all rows at REALISTIC_BYTES_PER_PIXEL: what the disk check expects them to take


def estimate_row_bytes(root: Path, records: Iterable[SourceRecord], keep_clean: bool) -> RowSizes:
    """The rows' sizes from each record's image header (~0.2 ms an image from the page cache)."""
    per_pixel = REALISTIC_BYTES_PER_PIXEL + (REALISTIC_CLEAN_BYTES_PER_PIXEL if keep_clean else 0.0)
    pixels = 0

    def bound(size: tuple[int, int] | None) -> int:
        nonlocal pixels
        if size is None:
            return 0
        pixels += size[0] * size[1]
        return row_bytes_bound(*size, keep_clean)

    bounds = np.fromiter(
        (bound(size) for size in _image_sizes(Path(root) / r.source_path for r in records)), dtype=np.int64
    )
    return RowSizes(bounds, int(pixels * per_pixel))


def _header_sizes(paths: list[Path]) -> list[tuple[int, int] | None]:
    return [image_size(p) for p in paths]


def _image_sizes(paths: Iterable[Path], chunk: int = 256) -> Iterator[tuple[int, int] | None]:
    """image_size of each path, in order, read by a few threads with a bounded window of chunks."""
    with ThreadPoolExecutor(HEADER_READERS) as pool:
        window: deque = deque()
        iterator = iter(paths)
        while batch := list(itertools.islice(iterator, chunk)):
            window.append(pool.submit(_header_sizes, batch))
            if len(window) > 2 * HEADER_READERS:
                yield from window.popleft().result()
        while window:
            yield from window.popleft().result()


def plan_shards(
    records: Iterable[SourceRecord],
    splits: Sequence[str],
    row_bytes: Sequence[int] | np.ndarray,
    shard_size: int | None = None,
    max_bytes: int = MAX_SHARD_BYTES,
) -> ShardPlan:
    """Cut each split's records (contiguous in `records`, in scan order) into shards."""
    counts = dict.fromkeys(splits, 0)
    order = list(splits)
    current = 0
    for record in records:  # one pass: `records` may be a lazily decoded table
        while order[current] != record.split:
            current += 1
            if current == len(order):
                raise ValueError("records must be grouped by split in the order of `splits`")
        counts[record.split] += 1
    cumulative = np.concatenate([[0], np.cumsum(np.asarray(row_bytes, dtype=np.int64))])
    shards: list[Shard] = []
    start = 0
    for split in splits:
        stop = start + counts[split]
        bounds = (
            _cut_by_rows(stop - start, shard_size)
            if shard_size is not None
            else _cut_by_bytes(cumulative[start : stop + 1] - cumulative[start], max_bytes)
        )
        count = len(bounds) - 1
        for index in range(count):
            a, b = start + bounds[index], start + bounds[index + 1]
            shards.append(Shard(split, index, count, a, b, int(cumulative[b] - cumulative[a])))
        start = stop
    return ShardPlan(tuple(shards), shard_size)


def contiguous_runs(shards: Sequence[Shard]) -> list[list[Shard]]:
    """Shards grouped into runs whose record ranges follow each other (a resumed build processes
    each run in one pass of the pipeline)."""
    runs: list[list[Shard]] = []
    for shard in shards:
        if runs and runs[-1][-1].stop == shard.start:
            runs[-1].append(shard)
        else:
            runs.append([shard])
    return runs


class RecordRange(Sequence[SourceRecord]):
    """records[start:stop] without copying them out (the scan's records may be a lazy table)."""

    def __init__(self, records: Sequence[SourceRecord], start: int, stop: int):
        self.records, self.start, self.stop = records, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            a, b, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(a, b, step)]
            return self.records[self.start + a : self.start + max(a, b)]
        i = index + len(self) if index < 0 else index
        if not 0 <= i < len(self):
            raise IndexError(index)
        return self.records[self.start + i]

    def __iter__(self) -> Iterator[SourceRecord]:
        for a in range(self.start, self.stop, 1024):
            yield from self.records[a : min(a + 1024, self.stop)]


def _cut_by_rows(n: int, shard_size: int) -> list[int]:
    """Every `shard_size` records; an empty split still gets one (empty) shard, so its config resolves."""
    return list(range(0, n, shard_size)) + [n] if n else [0, 0]


def _even(n: int, k: int) -> list[int]:
    return [i * n // k for i in range(k + 1)]


def _cut_by_bytes(cumulative: np.ndarray, max_bytes: int) -> list[int]:
    """The fewest shards of equal row counts (+-1) that each stay under `max_bytes`, their number a
    multiple of READERS when the split has enough rows for READERS shards of MIN_ROWS_PER_SHARD."""
    n = len(cumulative) - 1
    if n == 0:
        return [0, 0]
    step = READERS if n >= READERS * MIN_ROWS_PER_SHARD else 1
    k = max(1, math.ceil(int(cumulative[-1]) / max_bytes))
    k = min(n, math.ceil(k / step) * step)
    while True:
        bounds = _even(n, k)
        largest = max(int(cumulative[b] - cumulative[a]) for a, b in itertools.pairwise(bounds))
        if largest <= max_bytes or k == n:  # k == n: a single row above the bound gets a shard of its own
            return bounds
        k = min(n, k + step)


@dataclass(frozen=True)
class PendingShards:
    """The shards a build still lacks, and the driver's side of making them: what a distributor
    (builder/distribute.py, builder/ray_distributor.py) is handed."""

    shards: Sequence[Shard]  # in plan order
    path: Callable[[Shard], Path]  # where this machine writes a shard before it is committed
    commit: Callable[[Shard, dict], None]  # the file at path(shard) is complete: journal it (driver only)
    progress: Callable[[int], None] = lambda records: None  # records done (per record or per shard)
