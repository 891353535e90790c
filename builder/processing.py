"""Records -> rows: decoding, part parsing, occlusion and encoding of a run of source records.

Records are processed in a fixed order (split, then path). With a network parser, decoding and
resizing, the model's forward passes, and post-processing + occlusion + PNG encoding overlap on
threads with bounded queues (`_pipelined`), so the model stays busy and memory stays flat;
precomputed part maps and texture donors go batch by batch (`_batched`). Every row depends only
on its own image, part map and (seed, path), so neither batch size, worker count nor completion
order changes the output; rows are yielded in record order. `builder.pipeline.build` decides which
records to process and writes what `process` yields.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from builder.devices import model_streams
from builder.images import DecodeError, load_rgb
from builder.parsing import PartParser
from builder.parsing.network import NetworkParser
from builder.rows import make_row
from occluded_ccreid.occlusion import Donor, OcclusionConfig, image_rng, occlude_batch
from occluded_ccreid.sources import SourceRecord

# Occlusion runs in the worker threads on the CPU, also when the model is on a GPU: ~2 ms of CPU an
# image, and identical results on either device (checked on an H100), whereas many threads sending
# small kernels to the GPU queue behind the model's forward passes and stall on every sync.
OCCLUSION_DEVICE = torch.device("cpu")


Output = tuple[SourceRecord, dict | None, np.ndarray | None, str | None]  # (record, row, part map, skip reason)


def _decode(record: SourceRecord, root: Path) -> np.ndarray | DecodeError:
    try:
        return load_rgb(root / record.source_path)
    except DecodeError as exc:
        return exc


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


DONOR_DRAWS = 20  # bounded search for a donor of another identity that decodes


def pick_donor(record: SourceRecord, pool: Sequence[SourceRecord], root: Path, seed: int, stream: str = "texture"):
    """A decodable image of another identity, chosen by the image's own `stream`: "texture" (the
    texture fill, from the whole dataset) or "person<slot>" (`--occluder person`, from its split)."""
    rng = image_rng(seed, record.source_path, stream)
    for _ in range(DONOR_DRAWS):
        candidate = pool[int(rng.integers(len(pool)))]
        if candidate.pid != record.pid:
            image = _decode(candidate, root)
            if not isinstance(image, DecodeError):
                return candidate, image
    return None, None


def split_bounds(records: Sequence[SourceRecord]) -> dict[str, tuple[int, int]]:
    """split -> (start, stop) of its records: records come sorted by split, so each split is one
    run, found by bisection (a few reads of a lazy RecordTable, not a pass over it)."""
    bounds, start = {}, 0
    while start < len(records):
        split = records[start].split
        low, high = start + 1, len(records)
        while low < high:  # first index past the run of `split`
            middle = (low + high) // 2
            low, high = (middle + 1, high) if records[middle].split == split else (low, middle)
        bounds[split], start = (start, low), low
    return bounds


@dataclass(frozen=True)
class RowDonors:
    """The other images a row's occlusion takes pixels from: the texture fill's donor and, for
    `--occluder person`, one person per occluder slot (its source path is the row's `person_donors`)."""

    texture: Donor | None = None
    people: tuple[Donor | None, ...] = ()


@dataclass(frozen=True)
class Stage:
    """What every row of a build shares: the part parser and the occlusion options."""

    root: Path
    parser: PartParser
    seed: int
    occlusion: OcclusionConfig
    occlude_splits: frozenset[str]
    keep_clean: bool
    donor_pool: Sequence[SourceRecord]
    device: torch.device  # where occlusion runs: OCCLUSION_DEVICE (the CPU)

    @property
    def needs_donors(self) -> bool:
        return self.occlusion.fill_name == "texture" or self.occlusion.needs_person_donors

    @cached_property
    def split_pools(self) -> dict[str, Sequence[SourceRecord]]:
        """Each split's records: where `--occluder person` draws its donors."""
        from builder.shards import RecordRange

        return {split: RecordRange(self.donor_pool, *bounds) for split, bounds in split_bounds(self.donor_pool).items()}

    def _picks(self, record: SourceRecord) -> list:
        """(record, image) of the row's donors, texture first, then one person per occluder slot;
        a row that is never occluded gets none. Chosen from the seed and the row's path only, so
        independent of batches and shards."""
        if self.occlusion.split_probability(record.split, self.occlude_splits) == 0:
            return []
        picks = []
        if self.occlusion.fill_name == "texture":
            picks.append(pick_donor(record, self.donor_pool, self.root, self.seed))
        if self.occlusion.needs_person_donors:
            pool = self.split_pools[record.split]
            picks += [
                pick_donor(record, pool, self.root, self.seed, f"person{slot}")
                for slot in range(self.occlusion.occluders[1])
            ]
        return picks

    def parse(self, records: Sequence[SourceRecord], images: Sequence[np.ndarray]):
        """Part maps of the batch, and each row's donors (parsed in the same model call)."""
        picks = [self._picks(r) for r in records] if self.needs_donors else [[] for _ in records]
        donor_items = [(r.source_path, im) for row in picks for r, im in row if r is not None and im is not None]
        maps = (
            self.parser(
                [r.source_path for r in records] + [p for p, _ in donor_items],
                list(images) + [im for _, im in donor_items],
            )
            if records
            else []
        )
        donor_maps = iter(maps[len(records) :])
        donors = [
            [Donor(im, next(donor_maps), r.source_path) if r is not None and im is not None else None for r, im in row]
            for row in picks
        ]
        texture = self.occlusion.fill_name == "texture"
        return maps[: len(records)], [
            RowDonors(row[0], tuple(row[1:])) if texture and row else RowDonors(None, tuple(row)) for row in donors
        ]

    def finish(
        self,
        records: Sequence[SourceRecord],
        images: Sequence[np.ndarray],
        part_maps: Sequence[np.ndarray],
        donors: Sequence[RowDonors | None],
    ) -> list[dict]:
        """Rows of a batch: occluded together on the device, a group per occlusion probability
        (splits that are not occluded go through the same step with probability 0), then PNG-encoded."""
        occlusions: list = [None] * len(records)
        given = [d or RowDonors() for d in donors]
        probability = [self.occlusion.split_probability(r.split, self.occlude_splits) for r in records]
        for prob in sorted(set(probability)):
            config = replace(self.occlusion, occlusion_prob=prob, preset=None)
            chosen = [i for i, p in enumerate(probability) if p == prob]
            done = occlude_batch(
                [images[i] for i in chosen],
                [part_maps[i] for i in chosen],
                [image_rng(self.seed, records[i].source_path) for i in chosen],
                config,
                [given[i].texture for i in chosen],
                self.device,
                [given[i].people for i in chosen],
            )
            for i, occlusion in zip(chosen, done, strict=True):
                occlusions[i] = occlusion
        return [
            make_row(
                record,
                parts,
                occlusion,
                [d.source_path if d else None for d in row.people],
                image if self.keep_clean else None,
            )
            for record, image, parts, occlusion, row in zip(records, images, part_maps, occlusions, given, strict=True)
        ]


def process(records: Sequence[SourceRecord], stage: Stage, batch_size: int, workers: int) -> Iterator[Output]:
    """Yield (record, row, part map, skip reason) for every record, in record order."""
    if isinstance(stage.parser, NetworkParser) and not stage.needs_donors:
        yield from _pipelined(records, stage, batch_size, workers)
    else:
        yield from _batched(records, stage, batch_size, workers)


def _batched(records: Sequence[SourceRecord], stage: Stage, batch_size: int, workers: int) -> Iterator[Output]:
    """Batch by batch: used for precomputed maps (no model to keep busy) and donors (texture,
    person), which need the parser mid-batch. The next batch is decoded while this one is parsed."""
    root = stage.root
    with _executor(max_workers=max(1, workers)) as pool:
        batches = _batches(records, batch_size)  # lazily: records may be an Arrow-backed RecordTable
        # Futures are never nested (a task waiting on its own pool would deadlock at 1 worker).
        upcoming = next(batches, None)
        pending = [pool.submit(_decode, r, root) for r in upcoming] if upcoming else []
        while (batch := upcoming) is not None:
            images = [future.result() for future in pending]
            if (upcoming := next(batches, None)) is not None:
                pending = [pool.submit(_decode, r, root) for r in upcoming]
            good = [(r, im) for r, im in zip(batch, images, strict=True) if not isinstance(im, DecodeError)]
            good_records, good_images = [r for r, _ in good], [im for _, im in good]
            part_maps, donors = stage.parse(good_records, good_images)
            share = max(1, -(-len(good) // max(1, workers)))  # one slice per worker (none when nothing decoded)
            slices = [slice(start, start + share) for start in range(0, len(good), share)]

            def finish_slice(s: slice) -> list[dict]:
                # pool.map's results are all taken in this iteration: the loop variables cannot change under it
                return stage.finish(good_records[s], good_images[s], part_maps[s], donors[s])  # noqa: B023

            rows = [row for chunk in pool.map(finish_slice, slices) for row in chunk]
            results = dict(zip([r.source_path for r in good_records], zip(rows, part_maps, strict=True), strict=True))
            for record, image in zip(batch, images, strict=True):
                if isinstance(image, DecodeError):
                    yield record, None, None, image.skip_reason()
                else:
                    row, parts = results[record.source_path]
                    yield record, row, parts, None


@contextmanager
def _executor(*args, **kwargs) -> Iterator[ThreadPoolExecutor]:
    """A thread pool that, when the build stops early (an error, Ctrl-C, SIGTERM), drops the tasks
    not yet started instead of running them all first: only running ones are waited for."""
    pool = ThreadPoolExecutor(*args, **kwargs)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _single_threaded_torch() -> None:
    """Worker threads run their torch ops on one thread each: nested OpenMP teams on cores the
    model already keeps busy only queue behind its threads and stall them at barriers."""
    torch.set_num_threads(1)


def _pipelined(records: Sequence[SourceRecord], stage: Stage, batch_size: int, workers: int) -> Iterator[Output]:
    """Decode+resize (workers, an image a task) -> model (streams) -> part maps, occlusion on the
    CPU, encoding (workers, a batch a task), overlapping, with bounded queues so
    memory stays flat whatever the dataset size: decoded images ahead <= (streams + 1) batches;
    images waiting for a full batch of their input size <= 4 batches (then the oldest bucket goes
    as a partial batch); forward passes in flight <= streams + 1 (one waits, so a stream that
    finishes never idles while the main thread waits on a decode; on CUDA a stream only queues
    them, and the device's queue is bounded by the next bound); finished rows not yet yielded
    <= max(4, workers + 1) batches (every worker can finish a batch). Batches only group images of
    one input size (never padded), and each image's logits and occlusion do not depend on its
    batch, so the output is the same for any batch size, worker count or completion order."""
    parser: NetworkParser = stage.parser  # type: ignore[assignment]
    streams = model_streams(parser.device)
    with (
        _executor(max(1, workers), "build-worker", _single_threaded_torch) as pool,
        _executor(streams, "build-model") as model,
    ):
        yield from _Pipeline(stage, parser, pool, model, streams, batch_size, workers).run(records)


class _Pipeline:
    """The queues of `_pipelined` and the steps that move items between them."""

    def __init__(
        self,
        stage: Stage,
        parser: NetworkParser,
        pool: ThreadPoolExecutor,
        model: ThreadPoolExecutor,
        streams: int,
        batch_size: int,
        workers: int,
    ):
        self.stage, self.parser, self.pool, self.model = stage, parser, pool, model
        self.streams, self.batch_size = streams, batch_size
        self.ahead, self.window = (streams + 1) * batch_size, 4 * batch_size
        self.backlog = max(4, workers + 1) * batch_size
        self.loads: deque[tuple[int, SourceRecord, Future]] = deque()
        self.buckets: dict[tuple, list] = {}  # input shape -> [(index, record, image, tensor)]
        self.inflight: deque[tuple[list, Future]] = deque()
        self.results: dict[int, tuple[SourceRecord, Future | str, int]] = {}  # index -> (record, batch, row)
        self.waiting = self.next_out = 0

    def run(self, records: Sequence[SourceRecord]) -> Iterator[Output]:
        todo = iter(enumerate(records))
        self._top_up(todo)
        while self.loads:
            index, record, future = self.loads.popleft()
            self._top_up(todo)
            self._add(index, record, *future.result())
            self._harvest(block=False)
            yield from self._ready(block=len(self.results) > self.backlog)
        for shape in sorted(self.buckets, key=lambda s: self.buckets[s][0][0]):
            self._send(shape)
        while self.inflight:
            self._harvest(block=True)
        yield from self._ready(block=True)

    def _load(self, record: SourceRecord):
        image = _decode(record, self.stage.root)
        return (image, None) if isinstance(image, DecodeError) else (image, self.parser.prepare(image))

    def _finish(self, items: list, logits: Callable[[], torch.Tensor]) -> list[tuple[dict, np.ndarray]]:
        records, images = [r for _, r, _, _ in items], [im for _, _, im, _ in items]
        host = logits()  # interpolation and argmax on the CPU, in the workers, whatever the model's device
        part_maps = [self.parser.postprocess(host[row], image.shape[:2]) for row, image in enumerate(images)]
        rows = self.stage.finish(records, images, part_maps, [None] * len(items))
        return list(zip(rows, part_maps, strict=True))

    def _top_up(self, todo: Iterator[tuple[int, SourceRecord]]) -> None:
        while len(self.loads) < self.ahead and (item := next(todo, None)) is not None:
            self.loads.append((item[0], item[1], self.pool.submit(self._load, item[1])))

    def _add(self, index: int, record: SourceRecord, image, tensor) -> None:
        if tensor is None:
            self.results[index] = (record, image.skip_reason(), 0)
            return
        shape = tuple(tensor.shape)
        self.buckets.setdefault(shape, []).append((index, record, image, tensor))
        self.waiting += 1
        if len(self.buckets[shape]) >= self.batch_size:
            self._send(shape)
        elif self.waiting >= self.window:
            self._send(min(self.buckets, key=lambda s: self.buckets[s][0][0]))

    def _harvest(self, block: bool) -> None:
        while self.inflight and (block or self.inflight[0][1].done()):
            items, future = self.inflight.popleft()
            finished = self.pool.submit(self._finish, items, future.result())
            for row, (index, record, _, _) in enumerate(items):
                self.results[index] = (record, finished, row)
            block = False

    def _send(self, shape: tuple) -> None:
        items = self.buckets.pop(shape)
        self.waiting -= len(items)
        while len(self.inflight) > self.streams:  # one batch queued: a stream that finishes starts the next at once
            self._harvest(block=True)
        # infer_to_host: on CUDA the model thread only queues the work and returns, so the device
        # always has the next batch waiting; the finishing worker waits for the logits' copy.
        self.inflight.append((items, self.model.submit(self.parser.infer_to_host, [t for *_, t in items])))

    def _ready(self, block: bool) -> Iterator[Output]:
        while self.next_out in self.results:
            record, value, position = self.results[self.next_out]
            out: Output
            if isinstance(value, str):
                out = (record, None, None, value)
            elif block or value.done():
                row, parts = value.result()[position]
                out = (record, row, parts, None)
            else:
                return
            del self.results[self.next_out]
            self.next_out += 1
            yield out
