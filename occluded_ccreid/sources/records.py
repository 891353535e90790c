"""The records of a scanned source: `SourceRecord` (one image and its labels), and the table that
holds a whole scan's records column-wise in Arrow.

This module imports nothing from the layouts (`base` and the layout modules build on it), so the
record type and its storage have one home and no import circle.

A build keeps every record of its source for its whole run (rows are made in record order, and
texture donors are drawn from all of them). As Python objects a record costs ~300 bytes, 60 MB
for LaST's 228k images; as Arrow columns it costs its path's bytes plus ~20, so peak memory
stays flat whatever the source size. `RecordTable` is a read-only `Sequence[SourceRecord]` that
turns rows back into records a slice at a time.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NO_EXTRAS: Mapping[str, Any] = MappingProxyType({})


# slots: a 200k-image source holds 200k records for the whole build, so each one is kept small.
@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One image of the source dataset and its labels, before any pixels are read."""

    split: str
    source_path: str  # POSIX path relative to the source root; the image's identity everywhere
    pid: int
    camid: int  # 0-based camera index; -1 where the source has no camera labels
    clothes_key: str | None  # outfit label within the dataset (None: unknown); -> global `clothes_id`
    clothes_id: int = -1  # -1 where the outfit is unknown
    # source-specific columns, declared by ScanResult.extra_columns (one shared empty mapping by default)
    extras: Mapping[str, Any] = field(default_factory=lambda: NO_EXTRAS)


_CHUNK = 1 << 13  # records gathered as Python values before they become Arrow arrays
_SLICE = 4096  # records made at a time when iterating


class RecordBuilder:
    """Collects records one by one into Arrow batches, so a scan never holds them all as objects."""

    def __init__(self, extra_columns: dict[str, str]):
        self.extra_names = list(extra_columns)
        self.schema = pa.schema(
            [
                ("split", pa.int32()),
                ("source_path", pa.string()),
                ("pid", pa.int32()),
                ("camid", pa.int32()),
                ("clothes_key", pa.string()),
            ]
            + [(name, pa.type_for_alias(dtype)) for name, dtype in extra_columns.items()]
        )
        self._split_codes: dict[str, int] = {}
        self._columns: list[list] = [[] for _ in self.schema]
        self._batches: list[pa.RecordBatch] = []

    def add(self, record: SourceRecord) -> None:
        values = (
            self._split_codes.setdefault(record.split, len(self._split_codes)),
            record.source_path,
            record.pid,
            record.camid,
            record.clothes_key,
            *(record.extras.get(n) for n in self.extra_names),
        )
        for column, value in zip(self._columns, values, strict=True):
            column.append(value)
        if len(self._columns[0]) >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._columns[0]:
            self._batches.append(
                pa.record_batch(
                    [
                        pa.array(values, type=field.type)
                        for values, field in zip(self._columns, self.schema, strict=True)
                    ],
                    schema=self.schema,
                )
            )
            self._columns = [[] for _ in self.schema]

    @property
    def split_names(self) -> list[str]:
        return list(self._split_codes)

    def table(self, splits: Sequence[str]) -> RecordTable:
        """The records sorted by (split in `splits` order, path), with global clothes ids."""
        self._flush()
        table = pa.Table.from_batches(self._batches, schema=self.schema).combine_chunks()
        self._batches = []
        order = np.array([list(splits).index(name) for name in self._split_codes], dtype=np.int32)
        split = order[table.column("split").to_numpy()] if len(table) else np.zeros(0, np.int32)
        table = table.set_column(0, "split", pa.array(split, pa.int32()))
        table = table.take(pc.sort_indices(table, [("split", "ascending"), ("source_path", "ascending")]))
        table = table.append_column("clothes_id", pa.array(_clothes_ids(table), pa.int32()))
        pa.default_memory_pool().release_unused()  # the sort's copies: give them back, not keep them mapped
        return RecordTable(table, tuple(splits), self.extra_names)


def _clothes_ids(table: pa.Table) -> np.ndarray:
    """Outfits numbered 0..K-1 in (pid, clothes_key) order over the whole dataset; -1 where unknown."""
    keys = pc.dictionary_encode(table.column("clothes_key")).combine_chunks()
    if len(table) == 0:
        return np.zeros(0, np.int32)
    names = keys.dictionary.to_pylist()
    rank = np.empty(len(names), dtype=np.int64)
    rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))  # Python's str order
    known = keys.indices.is_valid().to_numpy(zero_copy_only=False)
    code = keys.indices.fill_null(0).to_numpy().astype(np.int64)
    pid = table.column("pid").to_numpy().astype(np.int64)
    composite = pid[known] * max(len(names), 1) + rank[code[known]]  # orders like (pid, key)
    ids = np.full(len(table), -1, dtype=np.int32)
    ids[known] = np.unique(composite, return_inverse=True)[1].reshape(-1)
    return ids


class RecordTable(Sequence[SourceRecord]):
    """Read-only records in Arrow columns; indexing and slicing give `SourceRecord`s."""

    def __init__(self, table: pa.Table, splits: tuple[str, ...], extra_names: list[str]):
        self.table, self.splits, self.extra_names = table, splits, extra_names

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return self._records(start, max(start, stop))
        i = operator.index(index)
        i = i + len(self) if i < 0 else i
        if not 0 <= i < len(self):
            raise IndexError(f"record {index} of {len(self)}")
        return self._records(i, i + 1)[0]

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same records (a list of them included), as a list would be."""
        if not isinstance(other, Sequence) or isinstance(other, str) or len(other) != len(self):
            return False
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __iter__(self) -> Iterator[SourceRecord]:
        for start in range(0, len(self), _SLICE):
            yield from self._records(start, min(start + _SLICE, len(self)))

    def _records(self, start: int, stop: int) -> list[SourceRecord]:
        part = self.table.slice(start, stop - start).to_pydict()
        extras = (
            [
                dict(zip(self.extra_names, values, strict=True))
                for values in zip(*(part[n] for n in self.extra_names), strict=True)
            ]
            if self.extra_names
            else [NO_EXTRAS] * (stop - start)
        )
        return [
            SourceRecord(self.splits[s], path, pid, camid, key, clothes, extra)
            for s, path, pid, camid, key, clothes, extra in zip(
                part["split"],
                part["source_path"],
                part["pid"],
                part["camid"],
                part["clothes_key"],
                part["clothes_id"],
                extras,
                strict=True,
            )
        ]
