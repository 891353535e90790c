"""PyTorch input pipelines over a loaded split: streaming loader and P x K identity-balanced sampling.

This module needs torch (the rest of `occluded_ccreid` does not). Samples are tuples
``(image, pid, camid, clothes_id)``, the order CAL / Simple-CCReID's ``ImageDataset`` returns, where
``image`` is ``transform(PIL RGB image)``. Only the columns asked for are read, so the occlusion
masks and part maps are never decoded during training.

Recipe::

    import occluded_ccreid as oc
    from occluded_ccreid.torch_data import pk_loader, stream_loader

    # training: every batch holds P identities x K images (triplet / CAL-style losses);
    # pid and clothes_id are relabelled 0..N-1, the maps are loader.dataset.label_maps
    train = oc.load("out/occluded-prcc", split="train")
    loader = pk_loader(train, transform, p=8, k=4, num_workers=4)
    for epoch in range(epochs):
        for images, pids, camids, clothes_ids in loader: ...

    # streaming: no download of the whole dataset; rows split among workers by shard
    stream = oc.load("user/occluded-prcc", split="train", streaming=True)
    loader = stream_loader(stream, transform, batch_size=64, num_workers=4)

`transform` is any callable on a PIL image (e.g. a torchvision ``Compose`` with Resize and
ToTensor); batching needs it to return tensors of one size. The default, `to_tensor`, only converts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from .loading import labels

logger = logging.getLogger(__name__)

Transform = Callable[[Any], Any]
SAMPLE_COLUMNS: tuple[str, ...] = ("pid", "camid", "clothes_id")


def to_tensor(image: Any) -> torch.Tensor:
    """PIL image -> float tensor (3, H, W) in 0..1, without torchvision."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def relabel_maps(split: Any) -> dict[str, dict[int, int]]:
    """pid and clothes_id -> 0..N-1 in increasing order (as `export.to_tuples(relabel=True)`).

    Classification heads (identity, and clothes for CAL) need contiguous labels; ``len`` of each
    map is the number of classes. Reads the label columns only (a pass over them when streaming).
    """
    values = labels(split, ("pid", "clothes_id"))
    return {c: {v: i for i, v in enumerate(np.unique(values[c]).tolist())} for c in ("pid", "clothes_id")}


class _Samples:
    """What the map-style and the streaming views share: column selection, transform, relabelling."""

    def __init__(self, split: Any, transform: Transform | None, columns: Sequence[str], relabel: bool):
        self.columns = tuple(columns)
        self.split = split.select_columns(["image", *self.columns])
        self.transform = transform or to_tensor
        self.label_maps = relabel_maps(split) if relabel else {}

    def _sample(self, row: dict) -> tuple:
        maps = self.label_maps
        return (self.transform(row["image"]), *(maps[c][row[c]] if c in maps else row[c] for c in self.columns))


class ReIDDataset(_Samples, Dataset):
    """Map-style view of a `datasets.Dataset` split: item i is ``(transform(image), pid, ...)``.

    `columns` are the label columns after the image (default pid, camid, clothes_id; add e.g.
    "source_path" to trace a sample back). Other columns are dropped before any row is read.
    ``relabel=True`` numbers pid and clothes_id 0..N-1 (see `relabel_maps`), for training.
    """

    def __init__(
        self, split: Any, transform: Transform | None = None, columns: Sequence[str] = SAMPLE_COLUMNS,
        relabel: bool = False,
    ):
        super().__init__(split, transform, columns, relabel)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple:
        return self._sample(self.split[int(index)])


class ReIDStream(_Samples, IterableDataset):
    """Iterable view of a streaming `datasets.IterableDataset` split, same samples as `ReIDDataset`.

    Workers: iteration delegates to the Hugging Face dataset, which, inside a DataLoader worker,
    reads only the shards (parquet files, or row groups after ``.reshard()``) assigned to that
    worker: shard i goes to worker ``i % num_workers``. Every row thus arrives exactly once per
    epoch whatever the number of workers, but workers beyond ``num_shards`` get nothing to do;
    `stream_loader` reshards or lowers ``num_workers`` in that case.
    ``relabel=True`` first streams the label columns once to build `relabel_maps`.
    """

    def __init__(
        self, split: Any, transform: Transform | None = None, columns: Sequence[str] = SAMPLE_COLUMNS,
        relabel: bool = False,
    ):
        super().__init__(split, transform, columns, relabel)

    @property
    def num_shards(self) -> int:
        return self.split.num_shards

    def set_epoch(self, epoch: int) -> None:
        """Reseed a shuffled stream (``split.shuffle(...)``) for a new epoch."""
        self.split.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple]:
        for row in self.split:
            yield self._sample(row)


def stream_loader(
    split: Any,
    transform: Transform | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    columns: Sequence[str] = SAMPLE_COLUMNS,
    relabel: bool = False,
    **loader_kw: Any,
) -> DataLoader:
    """DataLoader over a streaming split, each row exactly once per epoch across workers.

    With fewer shards than workers the split is first resharded per parquet row group; if that is
    still too few, ``num_workers`` is lowered to the number of shards (with a warning) instead of
    starting workers that would sit idle. Shuffle the stream before, e.g.
    ``split.shuffle(seed=0, buffer_size=1000)``; a sampler cannot be used on a stream.
    """
    if num_workers > split.num_shards:
        split = split.reshard()
    if num_workers > split.num_shards:
        logger.warning(
            "the split has %d shard(s), fewer than num_workers=%d; using %d worker(s)",
            split.num_shards, num_workers, split.num_shards,
        )
        num_workers = split.num_shards
    samples = ReIDStream(split, transform, columns, relabel=relabel)
    return DataLoader(samples, batch_size=batch_size, num_workers=num_workers, **loader_kw)


class PKSampler(Sampler[int]):
    """Indices such that each run of ``p * k`` consecutive indices holds P identities x K images.

    Use it with ``DataLoader(dataset, batch_size=p * k, sampler=sampler)`` (see `pk_loader`).
    Each epoch, as torchreid's ``RandomIdentitySampler``: every identity's images are shuffled and
    cut into groups of K (an identity with fewer than K images is drawn K times with replacement;
    a last incomplete group is dropped), then batches take one group from each of P identities
    drawn at random among those with groups left, until fewer than P remain. So an epoch covers
    (nearly) every image once and its length can vary slightly from epoch to epoch.

    Deterministic: epoch e is drawn from ``numpy.random.default_rng([seed, e])``. The epoch
    advances by one each time the sampler is iterated; `set_epoch` sets it (e.g. on resume).

    Args:
        pids: the pid of each row, or a split (its "pid" column is read, no image decoded).
        p: identities per batch; k: images per identity.
    """

    def __init__(self, pids: Any, p: int, k: int, seed: int = 0):
        if p < 1 or k < 1:
            raise ValueError(f"p and k must be positive, got p={p}, k={k}")
        if hasattr(pids, "column_names"):
            pids = labels(pids, ("pid",))["pid"]
        pids = np.asarray(pids).reshape(-1)
        self.p, self.k, self.seed = p, k, seed
        unique, inverse = np.unique(pids, return_inverse=True)
        if len(unique) < p:
            raise ValueError(f"P={p} identities per batch but the data has only {len(unique)}")
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse, minlength=len(unique)))[:-1]
        self._by_pid: list[np.ndarray] = np.split(order, bounds)
        self.epoch = 0
        self._cached: tuple[int, np.ndarray] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _plan(self, epoch: int) -> np.ndarray:
        if self._cached is not None and self._cached[0] == epoch:
            return self._cached[1]
        rng = np.random.default_rng([self.seed, epoch])
        groups: list[list[np.ndarray]] = []
        for indices in self._by_pid:
            if len(indices) < self.k:
                drawn = rng.choice(indices, size=self.k, replace=True)
            else:
                drawn = rng.permutation(indices)
            groups.append([drawn[i * self.k:(i + 1) * self.k] for i in range(len(drawn) // self.k)])
        available = [i for i, g in enumerate(groups) if g]
        batches: list[np.ndarray] = []
        while len(available) >= self.p:
            chosen = rng.choice(len(available), size=self.p, replace=False)
            picked = [available[c] for c in chosen]
            batches.extend(groups[i].pop() for i in picked)
            emptied = {i for i in picked if not groups[i]}
            if emptied:
                available = [i for i in available if i not in emptied]
        plan = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
        self._cached = (epoch, plan)
        return plan

    def __len__(self) -> int:
        return len(self._plan(self.epoch))

    def __iter__(self) -> Iterator[int]:
        plan = self._plan(self.epoch)
        self.epoch += 1
        return iter(plan.tolist())


def pk_loader(
    split: Any,
    transform: Transform | None = None,
    p: int = 8,
    k: int = 4,
    num_workers: int = 0,
    seed: int = 0,
    columns: Sequence[str] = SAMPLE_COLUMNS,
    relabel: bool = True,
    **loader_kw: Any,
) -> DataLoader:
    """Training DataLoader over a (non-streaming) split: batches of P identities x K images.

    Labels are relabelled 0..N-1 by default (training heads need it); the maps, and so the number
    of classes, are ``loader.dataset.label_maps``.
    """
    sampler = PKSampler(split, p, k, seed=seed)
    return DataLoader(
        ReIDDataset(split, transform, columns, relabel=relabel), batch_size=p * k, sampler=sampler,
        num_workers=num_workers, drop_last=True, **loader_kw,
    )


__all__ = ["PKSampler", "ReIDDataset", "ReIDStream", "pk_loader", "relabel_maps", "stream_loader", "to_tensor"]
