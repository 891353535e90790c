"""Who makes which shards: this process, or worker processes (`builder build --processes N`).

A shard's rows depend only on its own records, the seed and the options (builder/processing.py),
so shards can be made anywhere and in any order and the files stay byte-identical. In one process
the decoding, occlusion, PNG encoding and Parquet writing threads share one Python interpreter
lock: on a GPU machine that lock, not the model, sets the pace (~4 ms of lock-holding Python per
crop, see README). With N processes each runs its own pipeline and part parser (its own copy of
the model) on whole shards, as img2dataset distributes shards, and this process only commits
their files to the staging folder (fsync, rename, journal) as they finish.

Workers are spawned, not forked (CUDA and threads do not survive a fork), ignore Ctrl-C (this
process stops them), and are killed by the kernel when this process dies, so a killed build never
leaves a worker writing into a folder that a re-run has taken over.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import BuildStopped
from builder.shards import Shard
from occluded_ccreid.spawning import ignore_interrupts

if TYPE_CHECKING:
    from datasets import Features

    from builder.config import BuildConfig
    from builder.staging import Staging
    from occluded_ccreid.sources import SourceRecord


@dataclass(frozen=True)
class ShardJob:
    """What a worker process needs to make any shard of the build (pickled to it once)."""

    config: BuildConfig
    root: Path
    records: Sequence[SourceRecord]  # all records of the scan (an Arrow-backed RecordTable)
    occlude_splits: frozenset[str]
    features: Features

    @property
    def processes(self) -> int:
        return self.config.processes


_job: ShardJob | None = None
_stage = None
_parent: int | None = None
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> None:
    """Ask the kernel to kill this process when its parent dies (Linux; elsewhere a no-op, and each
    task checks the parent instead)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _start_worker(pickled_job: bytes, cpu_inference: bool, parent: int) -> None:
    """Once per worker: die with the parent, leave Ctrl-C to it, load the part parser."""
    global _job, _stage, _parent
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    ignore_interrupts()
    if cpu_inference:  # as the CLI does, before pyarrow starts threads (the job is unpickled after this)
        from builder.malloc import keep_freed_memory_mapped

        keep_freed_memory_mapped()
    import pickle

    from builder.config import make_parser
    from builder.processing import OCCLUSION_DEVICE, Stage

    job: ShardJob = pickle.loads(pickled_job)
    if not job.config.progress:  # as the CLI's --no-progress: no "Loading weights" bar in each worker
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    parser = make_parser(job.config)
    _stage = Stage(job.root, parser, job.config.seed, job.config.occlusion, job.occlude_splits,
                   job.config.keep_clean, job.records, OCCLUSION_DEVICE)
    _job, _parent = job, parent


def _make_shard(shard: Shard, path: str) -> dict:
    """In a worker: write `shard` to `path` and return its journal entry."""
    from builder.processing import default_workers, process
    from builder.shards import RecordRange
    from builder.writer import write_shard

    if os.getppid() != _parent:
        os._exit(1)
    assert _job is not None and _stage is not None
    workers = _job.config.workers
    if workers is None:  # the parser's default, shared out among the processes
        workers = max(2, default_workers(_stage.parser) // _job.processes)
    records = RecordRange(_job.records, shard.start, shard.stop)
    return write_shard(shard, process(records, _stage, _job.config.batch_size, workers), Path(path), _job.features)


def make_shards_in_processes(todo: Sequence[Shard], job: ShardJob, staging: Staging,
                             on_shard: Callable[[Shard], None] = lambda shard: None) -> None:
    """Make the `todo` shards in `job.processes` worker processes, committing each to `staging` as
    it finishes. At most one shard per worker is queued beyond those running, so a stop loses
    little work; on any error or interrupt the workers are stopped before this returns."""
    import pickle

    from builder.parsing.network import resolve_device

    cpu_inference = job.config.parsing_dir is None and resolve_device(job.config.device).type == "cpu"
    context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(job.processes, mp_context=context, initializer=_start_worker,
                                   initargs=(pickle.dumps(job), cpu_inference, os.getpid()))
    pending: dict[Future, Shard] = {}
    queue = list(todo)
    try:
        while queue or pending:
            while queue and len(pending) < 2 * job.processes:
                shard = queue.pop(0)
                pending[executor.submit(_make_shard, shard, str(staging.shard_tmp(shard.name)))] = shard
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                shard = pending.pop(future)
                staging.commit(shard.name, future.result())  # a worker's error is raised here
                on_shard(shard)
    except BrokenProcessPool:
        codes = _stop(executor)
        raise BuildStopped(
            f"a worker process stopped unexpectedly{f' (exit codes {codes})' if codes else ''}; -9 is usually the "
            f"kernel's out-of-memory killer. Run the same command again to resume (finished shards are kept), "
            f"with fewer --processes if memory is short") from None
    except BaseException:
        _stop(executor)
        raise
    executor.shutdown(wait=True)


def _stop(executor: ProcessPoolExecutor) -> list[int]:
    """Kill the workers now (their unfinished shards are temporary files the next run removes),
    wait for them to be gone, and return the exit codes of those that had already ended on their
    own. ProcessPoolExecutor has no public way to do this before Python 3.14."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    ended = sorted({p.exitcode for p in processes if not p.is_alive() and p.exitcode not in (None, 0)})
    for process in processes:
        if process.is_alive():
            process.kill()
    executor.shutdown(wait=True, cancel_futures=True)
    return ended
