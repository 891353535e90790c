"""Samplers for DistributedDataParallel training and evaluation, and gathering features back.

* `PKSampler`: P identities x K images per batch; with several processes ("replicas"), every
  rank draws from one shared plan per (seed, epoch) and the ranks' identities within a step are
  disjoint, every rank yielding the same number of batches (DDP hangs otherwise).
* `InferenceSampler` + `gather_rows`: each rank extracts features for one contiguous block of
  a split (CAL's ``DistributedInferenceSampler``); `gather_rows` concatenates the blocks in rank
  order, i.e. row order, and drops the padding (CAL's ``concat_all_gather``).

``num_replicas`` / ``rank`` default to ``torch.distributed``'s world size and rank when a process
group is initialised, else to one process.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from .loading import labels


def world(num_replicas: int | None = None, rank: int | None = None) -> tuple[int, int]:
    """(num_replicas, rank): the given values, else torch.distributed's, else (1, 0)."""
    initialised = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"rank must be in 0..num_replicas-1, got rank={rank}, num_replicas={num_replicas}")
    return int(num_replicas), int(rank)


class PKSampler(Sampler[int]):
    """Indices such that each run of ``p * k`` consecutive indices holds P identities x K images.

    Use it with ``DataLoader(dataset, batch_size=p * k, sampler=sampler, drop_last=True)`` (see
    `torch_data.pk_loader`). Each epoch, as torchreid's ``RandomIdentitySampler``: every identity's
    images are shuffled and cut into groups of K (an identity with fewer than K images is drawn K
    times with replacement; a last incomplete group is dropped), then steps take one group from
    each of ``P x num_replicas`` identities drawn at random among those with groups left, until
    fewer remain. So an epoch covers (nearly) every image once and its length can vary slightly
    from epoch to epoch.

    **Several processes.** Step s of the shared plan is split by identity: rank r gets the groups
    r*P .. r*P+P-1. The ranks' identities in a step are thus disjoint, every rank yields the same
    number of batches, and the union over ranks of an epoch is exactly the epoch of
    ``PKSampler(pids, P * num_replicas, k, seed)`` in one process. Needs P x num_replicas
    identities (CAL's ``DistributedRandomIdentitySampler`` instead shuffles groups of K and deals
    them out, so a batch may repeat an identity).

    Deterministic: epoch e is drawn from ``numpy.random.default_rng([seed, e])``, the same on every
    rank. The epoch advances by one each time the sampler is iterated; call `set_epoch` at the
    start of each epoch (as with torch's ``DistributedSampler``) or on resume.

    Args:
        pids: the pid of each row, or a split (its "pid" column is read, no image decoded).
        p: identities per batch on each rank; k: images per identity.
        seed: the same on every rank.
        num_replicas, rank: default from torch.distributed (see the module doc).
    """

    def __init__(
        self, pids: Any, p: int, k: int, seed: int = 0, num_replicas: int | None = None, rank: int | None = None
    ):
        if p < 1 or k < 1:
            raise ValueError(f"p and k must be positive, got p={p}, k={k}")
        self.num_replicas, self.rank = world(num_replicas, rank)
        if hasattr(pids, "column_names"):
            pids = labels(pids, ("pid",))["pid"]
        pids = np.asarray(pids).reshape(-1)
        self.p, self.k, self.seed = p, k, seed
        unique, inverse = np.unique(pids, return_inverse=True)
        needed = p * self.num_replicas
        if len(unique) < needed:
            per = f" x {self.num_replicas} processes" if self.num_replicas > 1 else ""
            raise ValueError(f"P={p} identities per batch{per} but the data has only {len(unique)}")
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse, minlength=len(unique)))[:-1]
        self._by_pid: list[np.ndarray] = np.split(order, bounds)
        self.epoch = 0
        self._cached: tuple[int, np.ndarray] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _plan(self, epoch: int) -> np.ndarray:
        """All ranks' steps of one epoch: (steps, P * num_replicas * K) indices."""
        if self._cached is not None and self._cached[0] == epoch:
            return self._cached[1]
        rng = np.random.default_rng([self.seed, epoch])
        groups: list[list[np.ndarray]] = []
        for indices in self._by_pid:
            if len(indices) < self.k:
                drawn = rng.choice(indices, size=self.k, replace=True)
            else:
                drawn = rng.permutation(indices)
            groups.append([drawn[i * self.k : (i + 1) * self.k] for i in range(len(drawn) // self.k)])
        per_step = self.p * self.num_replicas
        available = [i for i, g in enumerate(groups) if g]
        steps: list[np.ndarray] = []
        while len(available) >= per_step:
            chosen = rng.choice(len(available), size=per_step, replace=False)
            picked = [available[c] for c in chosen]
            steps.append(np.concatenate([groups[i].pop() for i in picked]))
            emptied = {i for i in picked if not groups[i]}
            if emptied:
                available = [i for i in available if i not in emptied]
        plan = np.stack(steps) if steps else np.zeros((0, per_step * self.k), dtype=np.int64)
        self._cached = (epoch, plan)
        return plan

    def _mine(self, epoch: int) -> np.ndarray:
        width = self.p * self.k
        return self._plan(epoch)[:, self.rank * width : (self.rank + 1) * width].reshape(-1)

    def __len__(self) -> int:
        return len(self._mine(self.epoch))

    def __iter__(self) -> Iterator[int]:
        mine = self._mine(self.epoch)
        self.epoch += 1
        return iter(mine.tolist())


class InferenceSampler(Sampler[int]):
    """Rank r's contiguous block of rows ``[r * m, (r + 1) * m)``, ``m = ceil(n / num_replicas)``.

    Padding: so that every rank has m rows (``all_gather`` needs equal sizes), the last rows are
    followed by copies of row n-1, ``m * num_replicas - n`` of them (fewer than num_replicas),
    all on the last rank(s); `gather_rows(..., n)` drops them. As CAL's DistributedInferenceSampler.
    Use with ``shuffle=False`` and ``drop_last=False`` (see `torch_data.inference_loader`).
    """

    def __init__(self, num_rows: Any, num_replicas: int | None = None, rank: int | None = None):
        self.num_rows = num_rows if isinstance(num_rows, int) else len(num_rows)
        if self.num_rows < 1:
            raise ValueError("InferenceSampler needs at least one row")
        self.num_replicas, self.rank = world(num_replicas, rank)
        self.per_rank = math.ceil(self.num_rows / self.num_replicas)

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int]:
        start = self.rank * self.per_rank
        return iter(min(i, self.num_rows - 1) for i in range(start, start + self.per_rank))


def gather_rows(local: torch.Tensor, num_rows: int) -> torch.Tensor:
    """Every rank's `InferenceSampler` block of rows (features, labels...) -> all rows, in row order.

    ``all_gather`` of equal-size blocks, concatenated in rank order, cut to `num_rows` (the
    padding goes). Every rank gets the result, on `local`'s device (NCCL needs CUDA tensors, gloo
    CPU ones). Without an initialised process group it returns ``local[:num_rows]``.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local[:num_rows]
    size = torch.tensor([local.shape[0]], device=local.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    if len({int(s) for s in sizes}) != 1:
        raise ValueError(
            f"gather_rows needs the same number of rows on every rank (InferenceSampler gives that), "
            f"got {[int(s) for s in sizes]}"
        )
    blocks = [torch.empty_like(local) for _ in sizes]
    dist.all_gather(blocks, local.contiguous())
    return torch.cat(blocks)[:num_rows]


__all__ = ["InferenceSampler", "PKSampler", "gather_rows", "world"]
