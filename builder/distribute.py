"""Who makes which shards: `builder build --distributor {local,processes,ray}`.

A distributor is a small function of (shard maker, pending shards) that knows nothing about the
work: it hands runs of planned shards to `ShardMaker.make` (builder/shardmaker.py) somewhere and
calls `pending.commit` in this process as each shard's file is complete, as img2dataset
distributes its shards. Only this process (the driver) commits: it makes the file durable, renames
it and journals it (builder.staging), so a kill of the driver or of a worker at any moment leaves
every committed shard for the same command to keep, and the files are byte-identical whatever the
distributor, the number of workers or the order shards finish in.

- `local`: this process, one pass of the pipeline per contiguous run of pending shards.
- `processes`: spawned worker processes on this machine, one shard at a time each: `--processes N`
  of them on `--device`, or N on each of `--devices cuda:0,cuda:1,...` / `--devices all`. In one
  process the decoding, occlusion, PNG and Parquet threads share one interpreter lock, which on a
  GPU machine sets the pace; each worker has its own. Workers write their shard into the staging
  folder under its temporary name; they are spawned (CUDA and threads do not survive a fork),
  ignore Ctrl-C (the driver stops them) and are killed by the kernel when the driver dies.
- `ray`: tasks on a Ray cluster (builder/ray_distributor.py; `pip install 'occluded-ccreid[ray]'`).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import BuildError, BuildStopped
from builder.shards import PendingShards, Shard, contiguous_runs
from occluded_ccreid.spawning import ignore_interrupts

if TYPE_CHECKING:
    from builder.config import BuildConfig
    from builder.shardmaker import ShardMaker


Distributor = Callable[["ShardMaker", PendingShards], None]


def distribute_local(maker: ShardMaker, pending: PendingShards) -> None:
    """Every pending shard in this process; one pass of the pipeline per contiguous run (one run,
    unless a resumed build lost a shard in the middle)."""
    for run in contiguous_runs(pending.shards):
        for shard, entry in maker.make(run, pending.path, lambda: pending.progress(1)):
            pending.commit(shard, entry)


# -- processes ------------------------------------------------------------------------------------

_maker: ShardMaker | None = None
_parent: int | None = None
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> None:
    """Ask the kernel to kill this process when its parent dies (Linux; elsewhere a no-op, and each
    task checks the parent instead)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _start_worker(pickled_maker: bytes, makers: multiprocessing.Queue, parent: int) -> None:
    """Once per worker: die with the parent, leave Ctrl-C to it, take a device, prepare the process."""
    global _maker, _parent
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    ignore_interrupts()
    import pickle

    from builder.devices import DevicePolicy

    policy: DevicePolicy = pickle.loads(makers.get())  # each worker takes one device's policy
    policy.prepare_process()  # before the maker (pyarrow, datasets) is unpickled
    maker: ShardMaker = pickle.loads(pickled_maker)
    if not maker.config.progress:  # as the CLI's --no-progress: no "Loading weights" bar in each worker
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    _maker, _parent = maker.on(policy), parent


def _make_shard(shard: Shard, path: str) -> dict:
    """In a worker: write `shard` to `path` and return its journal entry."""
    if os.getppid() != _parent:
        os._exit(1)
    assert _maker is not None
    [(_, entry)] = _maker.make([shard], lambda s: Path(path))
    return entry


def distribute_processes(maker: ShardMaker, pending: PendingShards) -> None:
    """The pending shards in worker processes (see the module docstring), committed as each finishes.
    At most one shard per worker is queued beyond those running, so a stop loses little work; on
    any error or interrupt the workers are stopped before this returns."""
    if not pending.shards:
        return  # a resumed build that only lacks its card: no worker to start
    import pickle

    from builder.devices import worker_devices

    config = maker.config
    devices = worker_devices(config.device, config.devices, config.processes or 1)
    context = multiprocessing.get_context("spawn")
    policies = context.Queue()
    for device in devices:
        policies.put(pickle.dumps(maker.policy_for(device, sharing=len(devices))))
    executor = ProcessPoolExecutor(
        len(devices),
        mp_context=context,
        initializer=_start_worker,
        initargs=(pickle.dumps(maker), policies, os.getpid()),
    )
    running: dict[Future, Shard] = {}
    queue = list(pending.shards)
    try:
        while queue or running:
            while queue and len(running) < 2 * len(devices):
                shard = queue.pop(0)
                running[executor.submit(_make_shard, shard, str(pending.path(shard)))] = shard
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                shard = running.pop(future)
                pending.commit(shard, future.result())  # a worker's error is raised here
                pending.progress(shard.num_records)
    except BrokenProcessPool:
        codes = _stop(executor)
        raise BuildStopped(
            f"a worker process stopped unexpectedly{f' (exit codes {codes})' if codes else ''}; -9 is usually the "
            f"kernel's out-of-memory killer. Run the same command again to resume (finished shards are kept), "
            f"with fewer --processes if memory is short"
        ) from None
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


# -- the registry ---------------------------------------------------------------------------------


def distribute_ray(maker: ShardMaker, pending: PendingShards) -> None:
    """Tasks on a Ray cluster: builder/ray_distributor.py, imported only when asked for."""
    from builder.ray_distributor import distribute

    distribute(maker, pending)


DISTRIBUTORS: dict[str, Distributor] = {
    "local": distribute_local,
    "processes": distribute_processes,
    "ray": distribute_ray,
}


def choose_distributor(config: BuildConfig) -> str:
    """The distributor `config` asks for (--distributor; by default `local`, or `processes` when
    --processes or --devices ask for worker processes), after checking the options that go with it."""
    name = config.distributor
    if name is None:
        name = "processes" if (config.processes or 1) > 1 or config.devices is not None else "local"
    if name not in DISTRIBUTORS:
        raise BuildError(f"--distributor {name!r} is not one of {', '.join(DISTRIBUTORS)}")
    if config.processes is not None and config.processes < 1:
        raise BuildError(f"--processes must be >= 1 (got {config.processes}); 1 makes every shard in this process")
    if name == "local" and ((config.processes or 1) > 1 or config.devices is not None):
        raise BuildError(
            "--distributor local makes every shard in this process, on --device: use --distributor "
            "processes with --processes N or --devices"
        )
    if name != "ray" and config.ray_address is not None:
        raise BuildError(f"--ray-address is for --distributor ray (got --distributor {name})")
    if name == "ray" and config.devices is not None:
        raise BuildError(
            "--devices is for --distributor processes: under ray, each GPU task is given one GPU "
            "by Ray (use --device cuda)"
        )
    if name == "processes":
        from builder.devices import worker_devices
        from occluded_ccreid.spawning import spawn_problem

        worker_devices(config.device, config.devices, config.processes or 1)  # a wrong device: now, not in a worker
        if problem := spawn_problem():
            asked = f"--devices {config.devices}" if config.devices else f"--processes {config.processes or 1}"
            raise BuildError(f"{asked}: {problem}; or use --processes 1")
    if name == "ray":
        from builder.ray_distributor import check_ray

        check_ray()
    return name
