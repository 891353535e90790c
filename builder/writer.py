"""Rows -> Parquet shards under `data/`, named as the Hub expects: `<split>-00000-of-00003.parquet`.

Shards are cut every `shard_size` rows in row order, so the same rows always give the same files.
The total is only known at the end, so shards are written under a temporary name and renamed
on `close()`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features

ROW_GROUP_SIZE = 100  # small row groups keep random access and the Hub's viewer fast for images


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
        self._shards: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._rows_in_shard = 0

    def add(self, row: dict) -> None:
        self._pending.append(self.features.encode_example(row))
        self.num_rows += 1
        if len(self._pending) >= ROW_GROUP_SIZE:
            self._flush()

    def _flush(self) -> None:
        while self._pending:
            if self._writer is None:
                path = self.data_dir / f"{self.split}-{len(self._shards):05d}.partial"
                self._writer = pq.ParquetWriter(path, self.schema)
                self._shards.append(path)
                self._rows_in_shard = 0
            take = min(len(self._pending), self.shard_size - self._rows_in_shard)
            chunk, self._pending = self._pending[:take], self._pending[take:]
            self._writer.write_table(pa.Table.from_pylist(chunk, schema=self.schema), row_group_size=ROW_GROUP_SIZE)
            self._rows_in_shard += take
            if self._rows_in_shard >= self.shard_size:
                self._writer.close()
                self._writer = None

    def close(self) -> dict[str, dict]:
        """Finish the split; returns {relative shard path: {num_rows, sha256}}."""
        self._flush()
        if self._writer is not None:
            self._writer.close()
        if not self._shards:  # an empty split still gets a (0-row) shard, so its config resolves
            path = self.data_dir / f"{self.split}-00000.partial"
            pq.write_table(self.schema.empty_table(), path)
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
