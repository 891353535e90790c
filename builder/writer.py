"""Rows -> Parquet shards under `data/`, named as the Hub expects: `<split>-00000-of-00003.parquet`.

Shards are cut every `shard_size` rows in row order, so the same rows always give the same files.
The total is only known at the end, so shards are written under a temporary name and renamed
on `close()`.

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

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features
from datasets.features.features import require_storage_embed

# -- Parquet options (one place: the shard plan lives below, the file format here) ---------------
ROW_GROUP_MAX_BYTES = 32 << 20  # uncompressed bytes of one row group (~400 PRCC rows of ~80 KB)
CDC_OPTIONS = {"min_chunk_size": 256 * 1024, "max_chunk_size": 1024 * 1024, "norm_level": 0}  # datasets' defaults


def parquet_column_options(features: Features, schema: pa.Schema) -> dict:
    """Per-leaf `compression` / `use_dictionary` / `column_encoding`, as datasets' get_parquet_column_options:
    columns whose storage embeds file bytes (Image) uncompressed and PLAIN, others snappy + dictionary."""
    compression: dict[str, str] = {}
    dictionary: list[str] = []
    encoding: dict[str, str] = {}
    for field in schema:
        embed = require_storage_embed(features[field.name])
        # Parquet names leaf columns by path; ours are scalars or Image structs {bytes, path} (no lists)
        leaves = [f"{field.name}.{sub.name}" for sub in field.type] if pa.types.is_struct(field.type) else [field.name]
        for leaf in leaves:
            compression[leaf] = "none" if embed else "snappy"
            if embed:
                encoding[leaf] = "PLAIN"
            else:
                dictionary.append(leaf)
    return {"compression": compression, "use_dictionary": dictionary, "column_encoding": encoding}


def parquet_writer(path: Path, features: Features) -> pq.ParquetWriter:
    """A writer of one shard with the options described in the module docstring."""
    schema = features.arrow_schema
    writer = pq.ParquetWriter(
        path, schema, write_page_index=True, use_content_defined_chunking=CDC_OPTIONS,
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


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hash in chunks: a shard can be hundreds of MB, and memory must not grow with it."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class SplitWriter:
    def __init__(self, data_dir: Path, split: str, features: Features, shard_size: int):
        self.data_dir, self.split, self.features, self.shard_size = data_dir, split, features, shard_size
        self.schema = features.arrow_schema
        self.num_rows = 0
        self._pending: list[dict] = []
        self._pending_bytes = 0
        self._shards: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._rows_in_shard = 0

    def add(self, row: dict) -> None:
        encoded = self.features.encode_example(row)
        self._pending.append(encoded)
        self._pending_bytes += row_nbytes(encoded)
        self.num_rows += 1
        if self._pending_bytes >= ROW_GROUP_MAX_BYTES:  # one row group per flush
            self._flush()

    def _flush(self) -> None:
        while self._pending:
            if self._writer is None:
                path = self.data_dir / f"{self.split}-{len(self._shards):05d}.partial"
                self._writer = parquet_writer(path, self.features)
                self._shards.append(path)
                self._rows_in_shard = 0
            take = min(len(self._pending), self.shard_size - self._rows_in_shard)
            chunk, self._pending = self._pending[:take], self._pending[take:]
            self._writer.write_table(pa.Table.from_pylist(chunk, schema=self.schema), row_group_size=len(chunk))
            self._rows_in_shard += take
            if self._rows_in_shard >= self.shard_size:
                self._writer.close()
                self._writer = None
        self._pending_bytes = 0

    def close(self) -> dict[str, dict]:
        """Finish the split; returns {relative shard path: {num_rows, sha256}}."""
        self._flush()
        if self._writer is not None:
            self._writer.close()
        if not self._shards:  # an empty split still gets a (0-row) shard, so its config resolves
            path = self.data_dir / f"{self.split}-00000.partial"
            with parquet_writer(path, self.features) as writer:
                writer.write_table(self.schema.empty_table())
            self._shards.append(path)
        shards = {}
        total = len(self._shards)
        for i, partial in enumerate(self._shards):
            final = partial.with_name(f"{self.split}-{i:05d}-of-{total:05d}.parquet")
            partial.rename(final)
            shards[f"data/{final.name}"] = {
                "num_rows": pq.ParquetFile(final).metadata.num_rows,
                "sha256": sha256_file(final),
            }
        return shards
