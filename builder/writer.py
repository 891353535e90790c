"""Rows -> Parquet shards under `data/`, named as the Hub expects: `<split>-00000-of-00003.parquet`.

Which records go into which shard is fixed beforehand by the shard plan (builder.shards), so the
same inputs always give the same files. Each shard is written under a temporary name by a shard
maker (builder.shardmaker), wherever it runs; the build's driver then hands it to the staging folder
(builder.staging), which makes it durable and journals it. (staging imports this module, never the
other way round.)

Every shard is written by `parquet_writer`, with the options `datasets` (>= 4.1) uses for image
Parquet (its `ParquetWriter` and `get_parquet_column_options`), because they are what the Hub's
dataset viewer and uploads are tuned for:
- image columns (the struct's `bytes` and `path`) uncompressed and PLAIN: PNG bytes do not
  compress further, and without a dictionary or a compression pass, content-defined chunking
  sees the PNG bytes themselves, so a rebuilt config re-uploads only the rows that changed;
- every other column snappy-compressed with dictionary encoding, as `datasets` writes them;
- a page index (column and offset indexes), which the viewer uses to read only the pages it shows;
- content-defined chunking (`datasets.config.DEFAULT_CDC_OPTIONS`), recorded in the file's
  metadata under `content_defined_chunking` as `datasets` records it;
- row groups bounded in bytes (`ROW_GROUP_MAX_BYTES`, uncompressed), not in rows: reading one
  row needs its whole row group, and `IterableDataset.reshard()` splits a shard per row group.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features
from datasets.arrow_writer import get_parquet_column_options

from builder.report import SplitStats

if TYPE_CHECKING:
    from builder.shards import Shard

# -- Parquet options (one place: which rows go in which shard is builder.shards', the file format here)
ROW_GROUP_MAX_BYTES = 32 << 20  # uncompressed bytes of one row group (~400 PRCC rows of ~80 KB)
CDC_OPTIONS = {"min_chunk_size": 256 * 1024, "max_chunk_size": 1024 * 1024, "norm_level": 0}  # datasets' defaults


def parquet_column_options(features: Features, schema: pa.Schema) -> dict:
    """Per-leaf `compression` / `use_dictionary` / `column_encoding`, as `datasets` writes them: columns
    whose storage embeds file bytes (Image) uncompressed and PLAIN, others snappy + dictionary, keyed
    by Parquet's leaf paths (`occluders.list.element.source` for the list columns)."""
    return get_parquet_column_options(features, schema)


def parquet_writer(path: Path, features: Features) -> pq.ParquetWriter:
    """A writer of one shard with the options described in the module docstring."""
    schema = features.arrow_schema
    writer = pq.ParquetWriter(
        path,
        schema,
        write_page_index=True,
        use_content_defined_chunking=CDC_OPTIONS,
        **parquet_column_options(features, schema),
    )
    writer.add_key_value_metadata({"content_defined_chunking": json.dumps(CDC_OPTIONS)})
    return writer


def row_nbytes(row: dict) -> int:
    """About the Arrow size of an encoded row: its bytes and strings, 8 bytes per other value."""
    size = 0
    for value in row.values():
        if isinstance(value, dict):
            value = value.get("bytes") or b""
        size += len(value) if isinstance(value, (bytes, str)) else 8
    return size


class ShardWriter:
    """The rows of one shard -> one Parquet file, in row groups of at most ROW_GROUP_MAX_BYTES."""

    def __init__(self, path: Path, features: Features):
        self.path, self.features = path, features
        self.schema = features.arrow_schema
        self.num_rows = 0
        self._pending: list[dict] = []
        self._pending_bytes = 0
        self._writer = parquet_writer(path, features)

    def add(self, row: dict) -> None:
        encoded = self.features.encode_example(row)
        self._pending.append(encoded)
        self._pending_bytes += row_nbytes(encoded)
        self.num_rows += 1
        if self._pending_bytes >= ROW_GROUP_MAX_BYTES:  # one row group per flush
            self._flush()

    def _flush(self) -> None:
        if self._pending:  # one row group per flush
            self._writer.write_table(
                pa.Table.from_pylist(self._pending, schema=self.schema), row_group_size=len(self._pending)
            )
            self._pending, self._pending_bytes = [], 0

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


Result = tuple  # (record, row | None, part map | None, skip reason | None), as processing.process yields


def write_shard(
    shard: Shard,
    results: Iterator[Result],
    path: Path,
    features: Features,
    on_record: Callable[[], None] = lambda: None,
) -> dict:
    """Write one planned shard to `path` from the next `shard.num_records` of `results` and return
    its journal entry (split, rows, the report statistics it contributes, its skipped records).
    On any error the unfinished file is removed."""
    writer = ShardWriter(path, features)
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
    return {"split": shard.split, "num_rows": writer.num_rows, "stats": asdict(stats), "skipped": skipped}
