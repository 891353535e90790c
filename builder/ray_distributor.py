"""`builder build --distributor ray`: shards made by tasks on a Ray cluster, committed by this process.

`--ray-address ADDRESS` joins an existing cluster (as `ray.init(address=...)`: `auto`, `ray://...`
or a head node's `host:port`); without it a local cluster of this machine's cores (and GPUs) is
started for the build and stopped after it. Every node must see the source images, `--parsing-dir`
and a local `--model` at the same paths (shared storage) and have `occluded-ccreid[builder]`
installed; the build folder is only ever written by this process.

- One task per run of consecutive pending shards (at most TASK_BYTES of planned shard bytes, and
  runs short enough that every worker gets about four), `--processes N` tasks at once (default: as
  many as the cluster has GPUs, or CPUs). `--device` is resolved on this machine as for any build
  (this process loads the parser once, to check and describe it): cuda (or auto where this machine
  has a GPU) makes GPU tasks, cpu CPU tasks. A GPU task asks Ray for one GPU and
  uses it with the whole GPU path (lanes, graphs, the node's cores shared out among its GPUs); a
  CPU task asks for one CPU and runs the CPU path (two single-threaded forward passes); Ray starts
  its worker processes itself, with threads running, so builder/malloc.py's allocator settings are
  not applied there (set MALLOC_* variables in the cluster's environment instead).
- A task writes its shards to a temporary folder on its own node and sends them back through
  Ray's object store as bytes with their journal entries; this process writes each to the staging
  folder and commits it as the task's result arrives. Nothing is assumed about shared storage
  for the output, and no worker ever writes into the build folder (a worker killed mid-task may
  leave its temporary folder, named occluded-shards-*, in its node's temp directory).
- A task whose worker process or node dies is run again, up to RETRIES times (Ray's `max_retries`,
  which counts system failures only); an error in the inputs (a bad part map) is not retried and
  reaches the user as one line. If the driver dies, Ray ends its tasks; the same command resumes.
- Each worker process loads the part parser once per build and keeps it for the tasks that follow.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import BuildError, BuildStopped
from builder.shards import PendingShards, Shard, contiguous_runs

if TYPE_CHECKING:
    from builder.shardmaker import ShardMaker

RETRIES = 3  # runs of a task after its worker died, before the build stops (resumable)
TASK_BYTES = 1_000_000_000  # planned (upper-bound) shard bytes a task sends back at most
TASKS_PER_WORKER = 4  # runs are cut so that each worker gets about this many


def check_ray() -> None:
    """Refuse `--distributor ray` up front when Ray is not installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise BuildError(
            "--distributor ray needs Ray: pip install 'occluded-ccreid[ray]' (or: pip install ray)"
        ) from None


def task_runs(shards: Sequence[Shard], workers: int) -> list[list[Shard]]:
    """The pending shards cut into the runs of consecutive shards that tasks make (see the module
    docstring)."""
    most = max(1, len(shards) // max(1, workers * TASKS_PER_WORKER))
    runs: list[list[Shard]] = []
    for run in contiguous_runs(shards):
        current: list[Shard] = []
        for shard in run:
            if current and (
                len(current) >= most or sum(s.estimated_bytes for s in current) + shard.estimated_bytes > TASK_BYTES
            ):
                runs.append(current)
                current = []
            current.append(shard)
        runs.append(current)
    return runs


_makers: dict[str, ShardMaker] = {}  # in a Ray worker: the maker (and its loaded parser) of each build


def make_run(maker: ShardMaker, build: str, gpu: bool, run: list[Shard]) -> list[tuple[str, dict, bytes]]:
    """In a Ray task: make `run` on this node and return (shard name, journal entry, file bytes) each."""
    local = _makers.get(build)
    if local is None:
        _makers.clear()  # a worker process serves one build at a time
        policy = maker.policy_for("cuda", _gpus_on_this_node()) if gpu else maker.policy_for("cpu", 1)
        local = _makers[build] = maker.on(policy)
    made = []
    with tempfile.TemporaryDirectory(prefix="occluded-shards-") as folder:
        for shard, entry in local.make(run, lambda s: Path(folder) / s.name):
            file = Path(folder) / shard.name
            made.append((shard.name, entry, file.read_bytes()))
            file.unlink()
    return made


def _gpus_on_this_node() -> int:
    """GPU tasks on one node share its cores: each gets the cores of one GPU (builder.devices)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    for info in ray.nodes():
        if info.get("NodeID") == node:
            return max(1, int(info.get("Resources", {}).get("GPU", 1)))
    return 1


def distribute(maker: ShardMaker, pending: PendingShards) -> None:
    """Make the pending shards with Ray tasks, committing each shard as its task's result arrives."""
    if not pending.shards:
        return  # a resumed build that only lacks its card: no cluster to start
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(
            address=maker.config.ray_address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    try:
        _run_tasks(ray, maker, pending)
    finally:
        if started:
            ray.shutdown()


def _run_tasks(ray, maker: ShardMaker, pending: PendingShards) -> None:
    resources = ray.cluster_resources()
    gpu = maker.network and maker.policy.is_cuda  # --device as resolved on this machine (builder.devices)
    if gpu and not resources.get("GPU"):
        raise BuildError(
            f"--device {maker.config.device} asks for GPU tasks, but the Ray cluster has no GPU; "
            "use --device cpu, or a cluster with GPUs"
        )
    workers = maker.config.processes or max(1, int(resources.get("GPU" if gpu else "CPU", 1)))
    # max_calls=0: a worker process keeps its loaded parser for the next task (Ray's default for GPU
    # tasks is a fresh process per task, which would load the model again for every run of shards).
    task = ray.remote(num_gpus=1 if gpu else 0, num_cpus=1, max_retries=RETRIES, retry_exceptions=False, max_calls=0)(
        make_run
    ).options(name="occluded-shards")
    shared, build = ray.put(maker), uuid.uuid4().hex
    runs = task_runs(pending.shards, workers)
    running: dict = {}
    try:
        while runs or running:
            while runs and len(running) < workers:
                run = runs.pop(0)
                running[task.remote(shared, build, gpu, run)] = run
            done, _ = ray.wait(list(running), num_returns=1)
            run = running.pop(done[0])
            by_name = {shard.name: shard for shard in run}
            for name, entry, data in _result(ray, done[0]):
                shard = by_name[name]
                pending.path(shard).write_bytes(data)
                pending.commit(shard, entry)
                pending.progress(shard.num_records)
    finally:
        for ref in running:
            ray.cancel(ref, force=True)


def _result(ray, ref) -> list[tuple[str, dict, bytes]]:
    """A task's result; its input error as itself (one line), a lost worker as BuildStopped."""
    from ray.exceptions import RayTaskError, WorkerCrashedError

    try:
        return ray.get(ref)
    except RayTaskError as exc:
        if isinstance(exc.cause, BuildError):
            raise exc.cause from None
        raise
    except WorkerCrashedError:
        raise BuildStopped(
            f"a Ray worker died {RETRIES + 1} times making the same shards (out of memory?); "
            "run the same command again to resume (finished shards are kept)"
        ) from None
