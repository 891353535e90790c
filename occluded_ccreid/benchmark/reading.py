"""Open a built dataset for benchmarking and stream its query / gallery splits once, in batches.

Splits are opened with ``streaming=True``: a local build's Parquet shards (or a Hub repo's) are read
as they are, with no Arrow copy in the datasets cache, and memory holds a few batches of images at
a time plus the features. A reader thread reads PNG bytes and hands each image to a pool of threads
that decodes it and does the extractor's CPU-side preparation (PIL releases the GIL), a few batches
ahead, so decoding runs without a pause and overlaps the forward pass. With `processes`, worker
processes decode, resize and crop chunks of each batch instead (`ProcessDecoding`): they share no
GIL with the reader and the forward pass, which a GPU host's many decoding threads otherwise
contend for. On CUDA the forward pass of a batch is launched before the features of the previous
one are waited for, so the GPU does not wait for the host either.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import queue
import re
import threading
from collections import deque
from collections.abc import Generator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import loading
from ..layout import CARD_NAME, REPORT_NAME
from ..sources import Protocol, get_source
from ..spawning import ignore_interrupts, spawn_problem
from . import BenchmarkError, first_line
from .preprocessing import ImageTransform, decode_image, prepare_encoded

if TYPE_CHECKING:  # features imports torch; opening a dataset does not need it
    from .features import FeatureExtractor

EVAL_SPLITS = ("query", "gallery")  # the roles; which split of the build plays each is the user's choice
IMAGE_COLUMNS = ("image", "clean_image")  # the occluded image, and the original when the build kept it
# Read for every protocol; a protocol's own junk column (DeepChange's tracklet_id) is added to them.
LABEL_COLUMNS = ("pid", "camid", "clothes_id", "occluded_part", "occluded_ratio")
log = logging.getLogger(__name__)


@dataclass
class OpenedDataset:
    name: str  # the source dataset, e.g. "prcc": it picks the protocols
    splits: dict[str, Any]  # "query" / "gallery" -> IterableDataset
    split_names: dict[str, str]  # "query" / "gallery" -> the build's split playing that role
    image_columns: tuple[str, ...]  # ("image",) or ("image", "clean_image")
    num_rows: dict[str, int | None]  # for the progress bar, when known


def open_dataset(
    path_or_repo: str, config: str | None = None, query_split: str = "query", gallery_split: str = "gallery"
) -> OpenedDataset:
    """The query and gallery splits of a build folder or Hub repo, and which dataset it is.

    `query_split` / `gallery_split` name the build's splits to use, e.g. DeepChange's or LaST's
    "validation_query" / "validation_gallery" instead of the test pair.
    """
    kwargs = {"name": config} if config else {}
    try:
        splits = loading.load(path_or_repo, streaming=True, **kwargs)
    except FileNotFoundError as exc:
        raise BenchmarkError(f"cannot open dataset {path_or_repo}: {first_line(exc)}") from None
    except (ValueError, OSError) as exc:
        raise BenchmarkError(
            f"cannot load dataset {path_or_repo}{f' (config {config})' if config else ''}: {first_line(exc)}"
        ) from None
    names = {"query": query_split, "gallery": gallery_split}
    if query_split == gallery_split:
        raise BenchmarkError(
            f"--query-split and --gallery-split are both {query_split!r}; pick two splits of "
            f"{path_or_repo} ({', '.join(splits)})"
        )
    missing = [names[role] for role in EVAL_SPLITS if names[role] not in splits]
    if missing:
        raise BenchmarkError(
            f"{path_or_repo} has splits {', '.join(splits) or 'none'} but no {' / '.join(missing)}: the benchmark "
            "needs a query and a gallery split (pick them with --query-split / --gallery-split)"
        )
    chosen = {role: splits[names[role]] for role in EVAL_SPLITS}
    needed = ("image", *LABEL_COLUMNS)
    for role in EVAL_SPLITS:
        have = chosen[role].column_names or []
        if absent := [c for c in needed if c not in have]:
            raise BenchmarkError(
                f"{path_or_repo} split {names[role]} lacks column(s) {', '.join(absent)}; "
                "is it an occluded_ccreid build?"
            )
    has_clean = all("clean_image" in (chosen[role].column_names or []) for role in EVAL_SPLITS)
    report = _build_report(path_or_repo)
    name = report.get("dataset") or _card_name(path_or_repo)
    if not name:
        raise BenchmarkError(
            f"cannot tell which dataset {path_or_repo} is: no {REPORT_NAME} with a 'dataset' key and "
            "no pretty_name in its card"
        )
    try:
        name = get_source(name).name  # "Occluded-PRCC" (a card's pretty_name) -> "prcc"
    except KeyError as exc:
        # A manifest build's card is named after the manifest file (Occluded-celeb): only its report says "manifest".
        hint = "" if report.get("dataset") else f"; put the build's {REPORT_NAME} back beside its data"
        raise BenchmarkError(f"{path_or_repo}: {exc.args[0]}{hint}") from None
    counts = {role: (report.get("splits", {}).get(names[role], {}) or {}).get("num_rows") for role in EVAL_SPLITS}
    return OpenedDataset(name, chosen, names, IMAGE_COLUMNS if has_clean else IMAGE_COLUMNS[:1], counts)


def check_label_columns(opened: OpenedDataset, path_or_repo: str, protocols: Mapping[str, Protocol]) -> tuple[str, ...]:
    """LABEL_COLUMNS and every junk column of `protocols`: what to read from each split, once.
    A column that a protocol needs and a split lacks is refused, naming both."""
    columns = list(LABEL_COLUMNS)
    for name, protocol in protocols.items():
        for column in protocol.label_columns():
            for role in EVAL_SPLITS:
                if column not in (opened.splits[role].column_names or []):
                    raise BenchmarkError(
                        f"protocol {name} of {opened.name} needs the {column} column, which split "
                        f"{opened.split_names[role]} of {path_or_repo} lacks; rebuild it with this "
                        "version of the builder"
                    )
            if column not in columns:
                columns.append(column)
    return tuple(columns)


def _build_report(path_or_repo: str) -> dict:
    folder = Path(path_or_repo).expanduser()
    try:
        if folder.is_dir():
            report_path = folder / REPORT_NAME
            return json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
        from huggingface_hub import hf_hub_download

        report = Path(hf_hub_download(path_or_repo, REPORT_NAME, repo_type="dataset"))
        return json.loads(report.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - no report: the card may still say; open_dataset reports neither
        return {}


def _card_name(path_or_repo: str) -> str | None:
    folder = Path(path_or_repo).expanduser()
    try:
        if folder.is_dir():
            text = (folder / CARD_NAME).read_text(encoding="utf-8")
        else:
            from huggingface_hub import hf_hub_download

            text = Path(hf_hub_download(path_or_repo, CARD_NAME, repo_type="dataset")).read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001
        return None
    match = re.search(r"(?m)^pretty_name:\s*['\"]?([^'\"\n]+)", text)
    return match.group(1).strip() if match else None


@dataclass
class SplitFeatures:
    labels: dict[str, np.ndarray]  # the label columns read (LABEL_COLUMNS and junk columns), in row order
    features: dict[str, np.ndarray]  # image column -> (N, D) float32, L2-normalised


def extract_split(
    split: Any,
    image_columns: tuple[str, ...],
    extractor: FeatureExtractor,
    batch_size: int,
    total: int | None = None,
    desc: str = "",
    progress: bool = True,
    workers: int | None = None,
    label_columns: tuple[str, ...] = LABEL_COLUMNS,
    processes: int | None = None,
    decoder: ThreadDecoding | ProcessDecoding | None = None,
) -> SplitFeatures:
    """Read a split once, in batches, and return its labels (`label_columns`) and the features of
    each image column. Images are decoded by `decoder`, else by `workers` threads or, with
    `processes`, by that many worker processes (`decoding`), started and stopped for this split: a
    caller reading several splits passes one decoder (worker processes take a while to start)."""
    from datasets import Image as ImageFeature
    from tqdm.auto import tqdm

    from .features import launch

    data = split.select_columns([*image_columns, *label_columns])
    for column in image_columns:
        data = data.cast_column(column, ImageFeature(decode=False))  # bytes: decoded in the decoding threads
    labels: dict[str, list] = {c: [] for c in label_columns}
    chunks: dict[str, list[np.ndarray]] = {c: [] for c in image_columns}
    bar = tqdm(total=total, desc=desc, unit="img", disable=not progress)
    in_flight: list[tuple[int, dict]] = []  # the previous batch: its size and its features' finishers per column
    own_decoder = decoder is None
    try:
        if decoder is None:
            decoder = decoding(extractor, workers, processes)
        # closing: the reader and its threads stop as the loop ends, also when a forward pass raises.
        with contextlib.closing(_prefetch(data, image_columns, extractor, decoder, batch_size)) as batches:
            for batch, prepared in batches:
                for column in label_columns:
                    labels[column].extend(batch[column])
                # This batch's forward pass is launched before the previous batch's features are waited
                # for: on CUDA the GPU then computes while the host copies, normalises and launches (on
                # CPU the call has done the work already, and nothing changes).
                in_flight.append((len(batch["pid"]), {c: launch(extractor, prepared[c]) for c in image_columns}))
                if len(in_flight) > 1:
                    _collect(in_flight.pop(0), chunks, bar)
        while in_flight:
            _collect(in_flight.pop(0), chunks, bar)
    finally:
        bar.close()
        if own_decoder and decoder is not None:
            decoder.close()
    if not labels["pid"]:
        raise BenchmarkError(f"split {desc or '?'} is empty")
    return SplitFeatures(
        labels={c: np.asarray(v, dtype=np.float32 if c == "occluded_ratio" else np.int64) for c, v in labels.items()},
        features={c: np.concatenate(v) for c, v in chunks.items()},
    )


def _collect(launched: tuple[int, dict], chunks: dict[str, list[np.ndarray]], bar: Any) -> None:
    rows, finishers = launched
    for column, finish in finishers.items():
        chunks[column].append(finish())
    bar.update(rows)


_DONE = object()
AHEAD = 3  # batches whose images are handed to the decoding threads before the oldest is collated


def default_workers(device_type: str | None = None) -> int:
    """Decoding threads (PIL decodes and resizes without the GIL). With the model on CUDA the cores
    are free: all this process may use but one (the main thread feeds the GPU). Otherwise, at most 8:
    on CPU the model's torch threads need the cores; `device_type` None is a user's --features callable."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    default = max(1, min(8, cores))
    return max(default, cores - 1) if device_type == "cuda" else default


class ThreadDecoding:
    """Each image a task of `workers` threads in this process: the extractor's `prepare_image` of
    the decoded image (PIL releases the GIL while it decodes and resizes)."""

    def __init__(self, extractor: FeatureExtractor, workers: int) -> None:
        self.extractor = extractor
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="benchmark-decode")

    def submit(self, values: list[dict], column: str) -> list[Future]:
        return [self.pool.submit(self._prepare, value, column) for value in values]

    def _prepare(self, value: dict, column: str) -> Any:
        return self.extractor.prepare_image(decode_image(value, column))

    def results(self, futures: list[Future]) -> list[Any]:
        """The prepared images of one `submit`, in order."""
        return [future.result() for future in futures]

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class ProcessDecoding:
    """Chunks of each batch decoded, resized and cropped by `processes` spawned worker processes
    (`prepare_encoded` with the extractor's picklable `ImageTransform`, what its `prepare_image`
    does), one chunk per process and batch. The workers hold no GIL of this process, whose reader
    and forward pass then have it to themselves; the cost is the pickling of the PNG bytes there and
    of the pixels back."""

    def __init__(self, transform: ImageTransform, processes: int) -> None:
        self.transform, self.processes = transform, processes
        self.pool = ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn"), initializer=ignore_interrupts
        )

    def submit(self, values: list[dict], column: str) -> list[Future]:
        size = -(-len(values) // self.processes)
        try:
            return [
                self.pool.submit(prepare_encoded, self.transform, column, values[start : start + size])
                for start in range(0, len(values), size)
            ]
        except BrokenProcessPool:
            raise self._broken() from None

    def results(self, futures: list[Future]) -> list[np.ndarray]:
        try:
            return [image for future in futures for image in future.result()]
        except BrokenProcessPool:
            raise self._broken() from None

    @staticmethod
    def _broken() -> BenchmarkError:
        return BenchmarkError(
            "a decoding worker process stopped unexpectedly (out of memory?); run again with "
            "fewer --processes, or without it to decode in threads"
        )

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def decoding(
    extractor: FeatureExtractor, workers: int | None = None, processes: int | None = None
) -> ThreadDecoding | ProcessDecoding:
    """How images are decoded: in `processes` worker processes where asked and possible, else in
    `workers` threads (default: `default_workers` for the extractor's device). Close it after use."""
    if workers is None:
        workers = default_workers(getattr(getattr(extractor, "device", None), "type", None))
    check_processes(processes, callable_features=not hasattr(extractor, "transform"))
    if not processes:
        return ThreadDecoding(extractor, workers)
    transform = getattr(extractor, "transform", None)
    if not isinstance(transform, ImageTransform):
        log.warning(
            "--processes: the image processor of this model is used as is, in this process; decoding "
            "in %d threads instead",
            workers,
        )
        return ThreadDecoding(extractor, workers)
    return ProcessDecoding(transform, processes)


def check_processes(processes: int | None, callable_features: bool) -> None:
    """Refuse a `processes` that cannot work, before any work: not a count, a --features callable
    (it takes the decoded images in this process), or a program that cannot spawn workers."""
    if processes is None:
        return
    if processes < 1:
        raise BenchmarkError(f"--processes must be >= 1, got {processes}")
    if callable_features:
        raise BenchmarkError(
            "--processes decodes for a --model; a --features callable takes the decoded images in "
            "this process, so drop --processes"
        )
    if problem := spawn_problem():
        raise BenchmarkError(f"--processes {processes}: {problem}; or drop --processes")


def _prefetch(
    data: Any,
    image_columns: tuple[str, ...],
    extractor: FeatureExtractor,
    decoder: ThreadDecoding | ProcessDecoding,
    batch_size: int,
) -> Generator[tuple[dict, dict], None, None]:
    """(batch, prepared images per column), in the split's order. A reader thread reads batches and
    hands every image to `decoder`, for up to AHEAD batches, so the decoding never waits for a
    batch's tail or for the reader; the reader then collates the oldest batch (in its order) and
    queues it, at most two ahead of the forward pass. Images not yet decoded when it stops are
    dropped (their tasks cancelled); the decoder stays open for its owner to reuse or close."""
    reader = _Reader(data, image_columns, extractor, decoder, batch_size)
    thread = threading.Thread(target=reader.read, name="benchmark-reader", daemon=True)
    thread.start()
    try:
        while (item := reader.ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        reader.stop.set()
        thread.join()


class _Reader:
    """The reader thread of `_prefetch`: batches in, (batch, prepared images) out on `ready`, then
    _DONE or the exception that stopped it."""

    def __init__(
        self,
        data: Any,
        image_columns: tuple[str, ...],
        extractor: FeatureExtractor,
        decoder: ThreadDecoding | ProcessDecoding,
        batch_size: int,
    ) -> None:
        self.data, self.image_columns, self.batch_size = data, image_columns, batch_size
        self.extractor, self.decoder = extractor, decoder
        self.ready: queue.Queue = queue.Queue(maxsize=2)
        self.stop = threading.Event()

    def put(self, item: object) -> None:
        while not self.stop.is_set():
            try:
                self.ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def collate(self, batch: dict, futures: dict[str, list[Future]]) -> None:
        # Waiting here cannot deadlock at workers=1: the reader is not one of the pool's threads.
        prepared = {c: self.extractor.collate(self.decoder.results(futures[c])) for c in self.image_columns}
        self.put((batch, prepared))

    def read(self) -> None:
        pending: deque[tuple[dict, dict[str, list[Future]]]] = deque()
        try:
            for batch in self.data.iter(batch_size=self.batch_size):
                if self.stop.is_set():
                    return
                pending.append((batch, {c: self.decoder.submit(batch[c], c) for c in self.image_columns}))
                if len(pending) >= AHEAD:
                    self.collate(*pending.popleft())
            while pending and not self.stop.is_set():
                self.collate(*pending.popleft())
            self.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self.put(exc)
        finally:
            for _, futures in pending:  # after an error or a stop: images not yet decoded are dropped
                for column_futures in futures.values():
                    for future in column_futures:
                        future.cancel()


__all__ = [
    "EVAL_SPLITS",
    "IMAGE_COLUMNS",
    "LABEL_COLUMNS",
    "OpenedDataset",
    "ProcessDecoding",
    "SplitFeatures",
    "ThreadDecoding",
    "check_label_columns",
    "check_processes",
    "decoding",
    "default_workers",
    "extract_split",
    "open_dataset",
]
