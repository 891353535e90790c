"""PyTorch input pipelines over a loaded split: P x K training batches, streaming, inference, DDP.

This module needs torch (the rest of `occluded_ccreid` does not). Samples are tuples
``(image, pid, camid, clothes_id)``, the order CAL / Simple-CCReID's ``ImageDataset`` returns, where
``image`` is ``transform(PIL RGB image)``. Only the columns asked for are read, so the occlusion
masks and part maps are never decoded unless asked for.

Recipe (see docs/training.md)::

    import occluded_ccreid as oc
    from occluded_ccreid.torch_data import inference_loader, pk_loader, stream_loader
    from occluded_ccreid.transforms import cal_test_transform, cal_train_transform

    # training: every batch holds P identities x K images (triplet / CAL-style losses); pid and
    # clothes_id are relabelled 0..N-1, the maps are loader.dataset.label_maps. Under DDP each
    # rank gets P identities of its own per step: call loader.sampler.set_epoch(epoch).
    train = oc.load("out/occluded-prcc", split="train")
    loader = pk_loader(train, cal_train_transform(), p=8, k=4, num_workers=4)

    # evaluation: each rank one block of rows; distributed.gather_rows puts them back in order
    query = inference_loader(oc.load("out/occluded-prcc", split="query"), cal_test_transform())

    # streaming: no download of the whole dataset; rows split among workers (and DDP ranks) by shard
    stream = oc.load("user/occluded-prcc", split="train", streaming=True)
    loader = stream_loader(stream, cal_train_transform(), batch_size=64, num_workers=4)

`transform` is any callable on a PIL image; batching needs it to return tensors of one size (the
default, `to_tensor`, only converts). **Label maps**: ask for ``occlusion_mask`` and/or ``parsing``
in `columns` and each comes as an (H, W) uint8 tensor (values as stored). A `transforms.Transform`
moves them along with the image (same crop and flip); with any other callable they are resized,
nearest neighbour, to the transformed image's size by `ReIDDataset.collate`, which is right for
transforms that only resize.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate

from . import transforms as T
from .distributed import InferenceSampler, PKSampler, world
from .loading import labels
from .node_split import EvenStreamLoader, check_plan, plan_node_rows, shard_rows

logger = logging.getLogger(__name__)

Transform = Callable[[Any], Any]
SAMPLE_COLUMNS: tuple[str, ...] = ("pid", "camid", "clothes_id")
MAP_COLUMNS: tuple[str, ...] = ("occlusion_mask", "parsing")  # per-pixel labels: nearest-neighbour only


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


def _is_stream(split: Any) -> bool:
    from datasets import IterableDataset as HFIterable

    return isinstance(split, HFIterable)


class _Samples:
    """What the map-style and the streaming views share: column selection, transform, relabelling."""

    def __init__(self, split: Any, transform: Transform | None, columns: Sequence[str], relabel: bool):
        self.columns = tuple(columns)
        self.split = split.select_columns(["image", *self.columns])
        self.transform = transform or to_tensor
        self.label_maps = relabel_maps(split) if relabel else {}
        self._map_positions = [i for i, c in enumerate(self.columns) if c in MAP_COLUMNS]

    def _sample(self, row: dict) -> tuple:
        maps = self.label_maps
        values = [maps[c][row[c]] if c in maps else row[c] for c in self.columns]
        if not self._map_positions:
            return (self.transform(row["image"]), *values)
        label_maps = torch.stack([T.as_label_map(values[i]) for i in self._map_positions])
        if isinstance(self.transform, T.Transform):  # same crop / flip for the image and its maps
            image, label_maps = self.transform(row["image"], label_maps)
        else:
            image = self.transform(row["image"])
        for i, m in zip(self._map_positions, label_maps, strict=True):
            values[i] = m
        return (image, *values)

    def collate(self, samples: list[tuple]) -> Any:
        """``default_collate``, after resizing label maps (nearest) to their image's size."""
        if self._map_positions:
            fixed = []
            for sample in samples:
                size = (int(sample[0].shape[-2]), int(sample[0].shape[-1]))
                values = list(sample)
                for i in self._map_positions:
                    values[i + 1] = T.resize_maps(values[i + 1][None, None], size)[0, 0]
                fixed.append(tuple(values))
            samples = fixed
        return default_collate(samples)


class ReIDDataset(_Samples, Dataset):
    """Map-style view of a `datasets.Dataset` split: item i is ``(transform(image), pid, ...)``.

    `columns` are the label columns after the image (default pid, camid, clothes_id; add e.g.
    "source_path" to trace a sample back, "occlusion_mask" / "parsing" for the label maps). Other
    columns are dropped before any row is read. ``relabel=True`` numbers pid and clothes_id
    0..N-1 (see `relabel_maps`), for training. Batch it with ``collate_fn=dataset.collate``.
    """

    def __init__(
        self,
        split: Any,
        transform: Transform | None = None,
        columns: Sequence[str] = SAMPLE_COLUMNS,
        relabel: bool = False,
    ):
        if _is_stream(split):
            raise TypeError(
                "ReIDDataset needs a map-style split (oc.load(..., streaming=False)); "
                "a streamed split goes to ReIDStream or stream_loader"
            )
        super().__init__(split, transform, columns, relabel)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple:
        return self._sample(self.split[int(index)])

    def __getitems__(self, indices: Sequence[int]) -> list[tuple]:
        """A DataLoader batch's rows in one read of the Arrow table (~10% less time a row than one by one)."""
        batch = self.split[[int(i) for i in indices]]
        return [self._sample({c: values[j] for c, values in batch.items()}) for j in range(len(indices))]


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
        self,
        split: Any,
        transform: Transform | None = None,
        columns: Sequence[str] = SAMPLE_COLUMNS,
        relabel: bool = False,
    ):
        super().__init__(split, transform, columns, relabel)

    @property
    def num_shards(self) -> int:
        return self.split.num_shards

    def set_epoch(self, epoch: int) -> None:
        """Reseed a shuffled stream (``split.shuffle(...)``) for a new epoch."""
        self.split.set_epoch(epoch)

    def split_by_node(self, rank: int, num_replicas: int) -> None:
        """Keep this process's share of the rows (`datasets.distributed.split_dataset_by_node`);
        the label maps stay those of the whole split."""
        from datasets.distributed import split_dataset_by_node

        self.split = split_dataset_by_node(self.split, rank=rank, world_size=num_replicas)

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
    num_replicas: int | None = None,
    rank: int | None = None,
    max_dropped: float = 0.01,
    **loader_kw: Any,
) -> DataLoader:
    """DataLoader over a streaming split, each row at most once per epoch across workers and ranks.

    With fewer shards than workers the split is first resharded per parquet row group; if that is
    still too few, ``num_workers`` is lowered to the number of shards (with a warning) instead of
    starting workers that would sit idle. Shuffle the stream before, e.g.
    ``split.shuffle(seed=0, buffer_size=1000)``; a sampler cannot be used on a stream.

    **DDP** (``num_replicas`` / ``rank``, default from torch.distributed): each rank reads its own
    shards (`datasets.distributed.split_dataset_by_node`) and yields exactly the same number of
    rows, in the same number of batches, as every other rank: the rows every rank is sure to have
    (`node_split.plan_node_rows`, from the Parquet footers), the few beyond that left out (a
    warning says how many). A split whose shards would leave out more than ``max_dropped`` of its
    rows is refused with `node_split.NodeSplitError`, naming a ``--shard-size`` that splits evenly.
    Not resharded under DDP (row groups hold unequal rows): workers are capped at the rank's shards.
    """
    replicas, rank = world(num_replicas, rank)
    if replicas > 1:
        return _node_loader(
            split, transform, batch_size, num_workers, columns, relabel, replicas, rank, max_dropped, loader_kw
        )
    if num_workers > split.num_shards:
        split = split.reshard()
    num_workers = _cap_workers(num_workers, split.num_shards)
    samples = ReIDStream(split, transform, columns, relabel=relabel)
    if batch_size is not None:  # batch_size=None: samples one by one, not collated
        loader_kw.setdefault("collate_fn", samples.collate)
    return DataLoader(samples, batch_size=batch_size, num_workers=num_workers, **loader_kw)


def _cap_workers(num_workers: int, shards: int) -> int:
    if num_workers > shards:
        logger.warning(
            "the split has %d shard(s) for this process, fewer than num_workers=%d; using %d worker(s)",
            shards,
            num_workers,
            shards,
        )
        return shards
    return num_workers


def _node_loader(
    split: Any,
    transform: Transform | None,
    batch_size: int,
    num_workers: int,
    columns: Sequence[str],
    relabel: bool,
    replicas: int,
    rank: int,
    max_dropped: float,
    loader_kw: dict,
) -> DataLoader:
    rows = shard_rows(split)
    if rows is None:
        raise ValueError(
            "stream_loader: under DDP the rows of each shard must be known to give every process the "
            "same number; this stream is not a plain Parquet stream (filtered or mapped?): "
            "load it with oc.load(..., streaming=True) and filter in the training loop"
        )
    shards_here = split.num_shards // replicas if split.num_shards % replicas == 0 else split.num_shards
    num_workers = _cap_workers(num_workers, shards_here)
    plan = plan_node_rows(rows, replicas, num_workers)
    check_plan(plan, max_dropped)
    if plan.dropped:
        logger.warning(
            "stream_loader: %d of %d rows left out each epoch so that the %d processes run the same "
            "steps (%d rows each)",
            plan.dropped,
            plan.total,
            replicas,
            plan.rows,
        )
    samples = ReIDStream(split, transform, columns, relabel=relabel)
    samples.split_by_node(rank, replicas)
    if batch_size is not None:
        loader_kw.setdefault("collate_fn", samples.collate)
    return EvenStreamLoader(
        samples, batch_size=batch_size, num_workers=num_workers, rows_per_node=plan.rows, **loader_kw
    )


def pk_loader(
    split: Any,
    transform: Transform | None = None,
    p: int = 8,
    k: int = 4,
    num_workers: int = 0,
    seed: int = 0,
    columns: Sequence[str] = SAMPLE_COLUMNS,
    relabel: bool = True,
    num_replicas: int | None = None,
    rank: int | None = None,
    **loader_kw: Any,
) -> DataLoader:
    """Training DataLoader over a (non-streaming) split: batches of P identities x K images.

    Labels are relabelled 0..N-1 by default (training heads need it); the maps, and so the number
    of classes, are ``loader.dataset.label_maps``. Under DDP (``num_replicas`` / ``rank``, default
    from torch.distributed) see `distributed.PKSampler`; call ``loader.sampler.set_epoch(epoch)``.
    """
    if _is_stream(split):
        raise TypeError(
            "pk_loader needs a map-style split to draw identities from "
            "(oc.load(..., streaming=False)); for a streamed split use stream_loader"
        )
    sampler = PKSampler(split, p, k, seed=seed, num_replicas=num_replicas, rank=rank)
    dataset = ReIDDataset(split, transform, columns, relabel=relabel)
    loader_kw.setdefault("collate_fn", dataset.collate)
    return DataLoader(dataset, batch_size=p * k, sampler=sampler, num_workers=num_workers, drop_last=True, **loader_kw)


def inference_loader(
    split: Any,
    transform: Transform | None = None,
    batch_size: int = 128,
    num_workers: int = 0,
    columns: Sequence[str] = SAMPLE_COLUMNS,
    num_replicas: int | None = None,
    rank: int | None = None,
    **loader_kw: Any,
) -> DataLoader:
    """Feature-extraction DataLoader: this rank's contiguous block of rows, in order (no relabelling).

    Under DDP every rank gets ``ceil(len(split) / num_replicas)`` rows, the last rank padded with
    copies of the last row (`distributed.InferenceSampler`); after extraction,
    ``distributed.gather_rows(features, len(split))`` on every rank gives all rows in row order.
    """
    if _is_stream(split):
        raise TypeError(
            "inference_loader needs a map-style split (oc.load(..., streaming=False)); "
            "for a streamed split use stream_loader"
        )
    dataset = ReIDDataset(split, transform, columns)
    loader_kw.setdefault("collate_fn", dataset.collate)
    sampler = InferenceSampler(len(dataset), num_replicas=num_replicas, rank=rank)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        shuffle=False,
        drop_last=False,
        **loader_kw,
    )


__all__ = [
    "MAP_COLUMNS",
    "PKSampler",
    "ReIDDataset",
    "ReIDStream",
    "inference_loader",
    "pk_loader",
    "relabel_maps",
    "stream_loader",
    "to_tensor",
]
