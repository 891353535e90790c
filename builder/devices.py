"""Where a build computes, and how: the one place that resolves `--device` / `--devices` and the CPU
and CUDA policy of a shard maker (threads, model streams, lanes, allocator).

A shard maker (builder/shardmaker.py) runs on one device with a `DevicePolicy`; a distributor
(builder/distribute.py) runs one maker per entry of `worker_devices()`. The policy depends on the
device and on how many makers share this machine's cores:

- CPU, network parser: two single-threaded forward passes at once (no OpenMP barrier waits behind
  a preempted thread, and part maps that do not depend on the core count) and two decoding/encoding
  threads, whatever the number of makers; glibc keeps freed activations mapped (builder/malloc.py).
- CUDA: one model thread that only queues work, DEVICE_LANES one-image passes in flight, and every
  core but one, shared out among the makers on this machine, for the per-image CPU work (decode,
  occlusion, PNG encoding: ~15 ms an image, which would otherwise cap a fast GPU).
- Precomputed part maps (`--parsing-dir`): no model, two threads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from builder.errors import BuildError

if TYPE_CHECKING:  # torch is imported when a device is resolved: a worker applies its policy before any import
    import torch

DEVICE_LANES = 8  # one-image forward passes in flight on CUDA (SCHP on an H100: 218 img/s with 1, 727 with 8)
CPU_STREAMS = 2  # single-threaded forward passes at once on CPU


def resolve_device(device: str) -> torch.device:
    """auto, cpu, cuda or cuda:N; anything else (tpu, mps, meta, a typo) is an error naming what
    this machine has, since the pipeline runs its model and occlusion on CPU or CUDA only."""
    import torch

    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    choices = ", ".join(["auto", "cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(cuda)] if cuda else []))
    if device == "auto":
        return torch.device("cuda" if cuda else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise BuildError(
            f"--device {device!r} is not one the builder can use; choose from {choices}"
            + ("" if cuda else " (torch sees no CUDA device here)")
        )
    if resolved.type == "cuda" and not cuda:
        raise BuildError(f"--device {device} was asked for but torch sees no CUDA device; use --device cpu")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= cuda:
        raise BuildError(f"--device {device}: this machine has {cuda} CUDA device(s); choose from {choices}")
    return resolved


def worker_devices(device: str, devices: str | None, processes: int) -> tuple[str, ...]:
    """The device of each worker of `builder build --distributor processes`: `processes` workers on
    each of `--devices` (a comma-separated list, or `all`: every CUDA device), or on `--device`."""
    import torch

    if devices is None:
        names = [str(resolve_device(device))]
    elif devices.strip() == "all":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise BuildError("--devices all: torch sees no CUDA device here; use --device cpu with --processes N")
        names = [f"cuda:{i}" for i in range(count)]
    else:
        names = [str(resolve_device(name.strip())) for name in devices.split(",") if name.strip()]
        if not names:
            raise BuildError(f"--devices {devices!r} names no device; give e.g. cuda:0,cuda:1 or all")
    return tuple(name for name in names for _ in range(processes))


def model_streams(device: torch.device) -> int:
    """Forward passes a pipeline submits at once (builder.processing): one on CUDA, where the model
    thread only queues work for the lanes; CPU_STREAMS single-threaded ones on CPU."""
    return 1 if device.type == "cuda" else CPU_STREAMS


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on (containers, taskset)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class DevicePolicy:
    """How one shard maker uses its device and this machine's cores (see the module docstring)."""

    device: str  # a resolved torch device: "cpu", "cuda" or "cuda:N"
    workers: int  # decoding / finishing threads
    model_threads: int | None  # torch threads of each forward pass; None: torch's default
    lanes: int  # CUDA streams one-image passes run on (builder.parsing.network)
    keep_memory_mapped: bool  # glibc settings for CPU inference (builder/malloc.py)

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def prepare_process(self) -> None:
        """First thing in a process that makes shards, before pyarrow or `datasets` start threads."""
        if self.keep_memory_mapped:
            from builder.malloc import keep_freed_memory_mapped

            keep_freed_memory_mapped()


def device_policy(device: str, network: bool, workers: int | None = None, sharing: int = 1) -> DevicePolicy:
    """The policy of a maker on `device` (resolved), with a network parser or precomputed maps,
    `workers` threads if the user chose them, one of `sharing` makers on this machine's cores."""
    cuda = network and device.startswith("cuda")
    if workers is None:  # one core for each maker's main thread, which feeds the GPU
        workers = max(2, (usable_cores() - sharing) // max(1, sharing)) if cuda else 2
    return DevicePolicy(
        device=device,
        workers=workers,
        model_threads=1 if network and not cuda else None,
        lanes=DEVICE_LANES if cuda else 1,
        keep_memory_mapped=network and not cuda,
    )


def prepare_this_process(device: str, network: bool) -> None:
    """The process policy of a build that may run its model here (`builder build`), first thing:
    a wrong --device is left for the build's checks to report."""
    try:
        resolved = str(resolve_device(device))
    except BuildError:
        return
    device_policy(resolved, network).prepare_process()
