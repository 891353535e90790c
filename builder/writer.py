"""Rows -> Parquet shards under `data/`, named as the Hub expects: `<split>-00000-of-00003.parquet`.

Which records go into which shard is fixed beforehand by the shard plan (builder.shards), so the
same inputs always give the same files. Each shard is written under a temporary name and handed
to the staging folder (builder.staging), which makes it durable and journals it.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features

from builder.report import SplitStats

if TYPE_CHECKING:
    from builder.shards import Shard
    from builder.staging import Staging

ROW_GROUP_SIZE = 100  # small row groups keep random access and the Hub's viewer fast for images


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hash in chunks: a shard can be hundreds of MB, and memory must not grow with it."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def parquet_writer(path: Path, features: Features) -> pq.ParquetWriter:
    """The one place where a shard's Parquet writer and its file options are chosen."""
    return pq.ParquetWriter(path, features.arrow_schema)


class ShardWriter:
    """The rows of one shard -> one Parquet file, in row groups of ROW_GROUP_SIZE rows."""

    def __init__(self, path: Path, features: Features):
        self.path, self.features = path, features
        self.schema = features.arrow_schema
        self.num_rows = 0
        self._pending: list[dict] = []
        self._writer = parquet_writer(path, features)

    def add(self, row: dict) -> None:
        self._pending.append(self.features.encode_example(row))
        self.num_rows += 1
        if len(self._pending) >= ROW_GROUP_SIZE:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.Table.from_pylist(self._pending, schema=self.schema),
                                     row_group_size=ROW_GROUP_SIZE)
            self._pending = []

    def close(self) -> None:
        """A shard whose images were all skipped holds the schema and no row group: `datasets`
        cannot read a row group of 0 rows."""
        self._flush()
        self._writer.close()

    def abort(self) -> None:
        """Drop the unfinished file (frees the space on a full disk; a resumed run redoes it)."""
        try:
            self._writer.close()
        finally:
            self.path.unlink(missing_ok=True)


Result = tuple  # (record, row | None, part map | None, skip reason | None), as pipeline.process yields


def write_shards(shards: Sequence[Shard], results: Iterator[Result], staging: Staging, features: Features,
                 on_record: Callable[[], None] = lambda: None) -> None:
    """Write the planned `shards` in order from `results` (one per record of those shards, in
    order) and commit each to `staging` with the report statistics it contributes."""
    for shard in shards:
        writer = ShardWriter(staging.shard_tmp(shard.name), features)
        stats, skipped = SplitStats(), []
        try:
            taken = 0
            for record, row, parts, skip in itertools.islice(results, shard.num_records):
                taken += 1
                on_record()
                if skip is not None:
                    skipped.append({"source_path": record.source_path, "split": record.split, "reason": skip})
                    continue
                writer.add(row)
                stats.add(row, no_person=not parts.any())
            if taken != shard.num_records:
                raise RuntimeError(f"{shard.name}: got {taken} of its {shard.num_records} records")
            writer.close()
        except BaseException:
            writer.abort()
            raise
        staging.commit(shard.name, {"split": shard.split, "num_rows": writer.num_rows, "stats": asdict(stats),
                                    "skipped": skipped})
