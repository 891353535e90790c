"""A streamed split shared among DDP processes ("nodes") so that every node yields the same rows.

`datasets.distributed.split_dataset_by_node` gives node r the shards r, r+N, ... when the number
of shards divides among the N nodes, else every node reads every shard and keeps one row in N.
Shards rarely hold equal rows (``--shard-size`` builds have a short last shard; byte-sized builds
differ by one row), so nodes get different row counts and, in DDP, the longer ones wait forever
for the others at their extra steps. `plan_node_rows` reads each shard's row count from the
Parquet footers (no row is read) and finds the number of rows every node is sure to have,
whatever the shard order (streams shuffled per epoch included); `EvenStreamLoader` stops every
node there, in batches of the same size. When that drops more than ``max_dropped`` of the split,
`NodeSplitError` says which ``--shard-size`` splits evenly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

# Iterables of `datasets` that keep every row of the one below them (selection, shuffling, batching).
_ROW_KEEPING = {
    "SelectColumnsIterable",
    "BufferShuffledExamplesIterable",
    "InterleavedShardsExamplesIterable",
    "RebatchedArrowExamplesIterable",
    "FormattedExamplesIterable",
    "ShuffledDataSourcesArrowExamplesIterable",
}


class NodeSplitError(ValueError):
    """A streamed split that cannot be shared evenly among the processes; the message says how to fix it."""


def shard_rows(split: Any) -> list[int] | None:
    """Row count of each shard of a streamed Parquet split, in shard order, from the file footers.

    None when the stream is not a plain Parquet stream (filtered, mapped, generated...): its rows
    cannot be known without reading them.
    """
    from datasets.iterable_dataset import ArrowExamplesIterable

    ex = split._ex_iterable
    while not isinstance(ex, ArrowExamplesIterable):
        if type(ex).__name__ not in _ROW_KEEPING or not hasattr(ex, "ex_iterable"):
            return None
        ex = ex.ex_iterable
    files = ex.kwargs.get("files")
    if not files or ex.num_shards != split.num_shards or not all(isinstance(f, str) for f in files):
        return None
    groups = ex.kwargs.get("row_groups_list") or [None] * len(files)
    footers: dict[str, Any] = {}
    rows = []
    for file, group in zip(files, groups, strict=True):
        if file not in footers:
            footers[file] = _footer(file)
        meta = footers[file]
        rows.append(meta.num_rows if group is None else sum(meta.row_group(g).num_rows for g in group))
    return rows


def _footer(file: str) -> Any:
    import fsspec
    import pyarrow.parquet as pq

    with fsspec.open(file, "rb") as f:  # local paths and hf:// URLs; only the footer is fetched
        return pq.read_metadata(f)


@dataclass(frozen=True)
class NodePlan:
    """How a streamed split of `total` rows in shards of `shards` rows is shared by `nodes` processes."""

    shards: tuple[int, ...]
    nodes: int
    rows: int  # rows every node yields
    by_shard: bool  # whole shards per node (else every node reads all and keeps one row in `nodes`)

    @property
    def total(self) -> int:
        return sum(self.shards)

    @property
    def dropped(self) -> int:
        return self.total - self.rows * self.nodes


def plan_node_rows(shards: list[int], nodes: int, streams_per_node: int) -> NodePlan:
    """The rows each of `nodes` processes is sure to get, as `split_dataset_by_node` shares shards.

    By shard (shards divide among nodes): the least a node can get is its share of the smallest
    shards, whatever their order. By row: a node keeps the rows at positions r, r + nodes, ... of
    each of its `streams_per_node` reader streams (DataLoader workers), so at least
    floor(len / nodes) of each: ceil((total - streams * (nodes - 1)) / nodes) in all.
    """
    total = sum(shards)
    if len(shards) % nodes == 0:
        return NodePlan(tuple(shards), nodes, sum(sorted(shards)[: len(shards) // nodes]), True)
    streams = max(1, min(streams_per_node, len(shards)))
    return NodePlan(tuple(shards), nodes, max(0, -(-(total - streams * (nodes - 1)) // nodes)), False)


def check_plan(plan: NodePlan, max_dropped: float) -> None:
    """Refuse, in one line, a plan that drops more than `max_dropped` (a share) of the split's rows."""
    if plan.dropped <= max_dropped * plan.total:
        return
    total, nodes = plan.total, plan.nodes
    got = [sum(plan.shards[r::nodes]) for r in range(nodes)] if plan.by_shard else None
    counts = f"unequal rows ({', '.join(map(str, got))})" if got else "unequal rows"
    head = (
        f"stream_loader: the {len(plan.shards)} shard(s) of this split ({_summary(plan.shards)} rows) give "
        f"{nodes} processes {counts}; every process must run the same steps under DDP, and cutting each to "
        f"{plan.rows} rows would drop {plan.dropped} of {total} ({plan.dropped / total:.1%}, above "
        f"max_dropped={max_dropped:g})"
    )
    need = math.ceil(plan.dropped / total * 1000) / 1000
    if total % nodes:
        raise NodeSplitError(
            f"{head}: {total} rows do not divide among {nodes} processes whatever the shard size; "
            f"use a number of processes that divides {total}, or pass max_dropped={need:g}"
        )
    size = shard_size_for(total, nodes, max(plan.shards))
    raise NodeSplitError(
        f"{head}: rebuild with --shard-size {size} ({total // size} shards of {size} rows, "
        f"{total // nodes} per process), or pass max_dropped={need:g}"
    )


def shard_size_for(total: int, nodes: int, near: int) -> int:
    """The --shard-size closest to `near` whose build gives `nodes` processes whole, full shards:
    a divisor of total / nodes (then every shard has that many rows and their number divides)."""
    per_node = total // nodes
    divisors = [d for d in range(1, math.isqrt(per_node) + 1) if per_node % d == 0]
    divisors += [per_node // d for d in divisors]
    return min(divisors, key=lambda d: (abs(d - near), -d))


def _summary(rows: tuple[int, ...]) -> str:
    if len(rows) <= 6:
        return ", ".join(map(str, rows))
    return f"{min(rows)}..{max(rows)}, {sum(rows)} in all"


class EvenStreamLoader(DataLoader):
    """A DataLoader over one node's share of a stream that yields exactly `rows_per_node` rows.

    DataLoader workers each batch their own rows, so a worker's last batch can be short and the
    number of batches differ between nodes with equal rows: batches are re-cut here to
    `batch_size` rows (all full but the last, which ``drop_last`` drops), the same count on
    every node. Iteration stops at `rows_per_node` rows and shuts the workers down.
    """

    def __init__(self, *args: Any, rows_per_node: int, **kw: Any):
        super().__init__(*args, **kw)
        self.rows_per_node = rows_per_node

    def __len__(self) -> int:
        rows, size = self.rows_per_node, self.batch_size
        if size is None:
            return rows
        return rows // size if self.drop_last else -(-rows // size)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        batches = super().__iter__()
        try:
            if self.batch_size is None:
                yield from itertools.islice(batches, self.rows_per_node)
            else:
                yield from _recut(batches, self.batch_size, self.rows_per_node, self.drop_last)
        finally:
            del batches  # stops the workers when the loop ends early


def _recut(batches: Iterator[Any], size: int, rows: int, drop_last: bool) -> Iterator[Any]:
    pending: list[Any] = []
    have = 0
    for batch in batches:
        n = min(_length(batch), rows)
        pending.append(_slice(batch, 0, n))
        have += n
        rows -= n
        while have >= size:
            merged = _cat(pending)
            yield _slice(merged, 0, size)
            have -= size
            pending = [_slice(merged, size, size + have)] if have else []
        if rows == 0:
            break
    if have and not drop_last:
        yield _cat(pending)


def _length(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, dict):
        return _length(next(iter(batch.values())))
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], (torch.Tensor, tuple, list, dict)):
        return _length(batch[0])
    return len(batch)


def _slice(batch: Any, a: int, b: int) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch[a:b]
    if isinstance(batch, dict):
        return {k: _slice(v, a, b) for k, v in batch.items()}
    if isinstance(batch, tuple) and batch and isinstance(batch[0], (torch.Tensor, tuple, list, dict)):
        return (
            type(batch)(_slice(v, a, b) for v in batch)
            if not hasattr(batch, "_fields")
            else type(batch)(*(_slice(v, a, b) for v in batch))
        )
    if isinstance(batch, list) and batch and isinstance(batch[0], (torch.Tensor, tuple, list, dict)):
        return [_slice(v, a, b) for v in batch]
    return batch[a:b]


def _cat(parts: list[Any]) -> Any:
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if isinstance(first, dict):
        return {k: _cat([p[k] for p in parts]) for k in first}
    if isinstance(first, (tuple, list)) and first and isinstance(first[0], (torch.Tensor, tuple, list, dict)):
        fields = [_cat([p[i] for p in parts]) for i in range(len(first))]
        return type(first)(*fields) if hasattr(first, "_fields") else type(first)(fields)
    return [x for p in parts for x in p]


__all__ = [
    "EvenStreamLoader",
    "NodePlan",
    "NodeSplitError",
    "check_plan",
    "plan_node_rows",
    "shard_rows",
    "shard_size_for",
]
