"""Shards are written the way `datasets` >= 4.1 writes image Parquet, read back from the files' metadata.

Checked per column chunk of every row group: image columns (the Image struct's `bytes` and `path`)
uncompressed and PLAIN-encoded, with no dictionary page; every other column snappy with dictionary
encoding; an offset index (the page index) on every column; the content-defined chunking options
in the file's key-value metadata; and row groups cut by bytes, not rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from synthetic import make_prcc_tree

import builder.writer as writer
from builder.pipeline import BuildConfig, build

BOUND = 20_000  # bytes per row group: the synthetic rows are ~5-15 KB, so groups of 2-4 rows
IMAGE_COLUMNS = {"image", "occlusion_mask", "parsing"}


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("parquet")
    tree = make_prcc_tree(root / "src")
    patch = pytest.MonkeyPatch()
    patch.setattr(writer, "ROW_GROUP_MAX_BYTES", BOUND)
    try:
        build(
            BuildConfig("prcc", tree.root, root / "out", parsing_dir=tree.parsing_dir, shard_size=1000, progress=False)
        )
    finally:
        patch.undo()
    return sorted((root / "out" / "data").glob("*.parquet"))


def _chunks(path: Path):
    meta = pq.ParquetFile(path).metadata
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        for j in range(group.num_columns):
            yield group.column(j)


def test_image_columns_uncompressed_plain_others_snappy_dictionary(shards):
    seen = set()
    for path in shards:
        for chunk in _chunks(path):
            top = chunk.path_in_schema.split(".")[0]
            seen.add(top)
            if top in IMAGE_COLUMNS:
                assert chunk.compression == "UNCOMPRESSED", (path.name, chunk.path_in_schema)
                assert "PLAIN" in chunk.encodings and not {"RLE_DICTIONARY", "PLAIN_DICTIONARY"} & set(chunk.encodings)
                assert chunk.dictionary_page_offset is None
            else:
                assert chunk.compression == "SNAPPY", (path.name, chunk.path_in_schema)
                if top != "coverage_in_band":  # booleans have no dictionary encoding in Parquet
                    assert "RLE_DICTIONARY" in chunk.encodings, (path.name, chunk.path_in_schema, chunk.encodings)
    assert IMAGE_COLUMNS | {"pid", "camid", "clothes_id", "source_path"} <= seen


def test_page_index_and_content_defined_chunking(shards):
    for path in shards:
        for chunk in _chunks(path):
            assert chunk.has_offset_index, (path.name, chunk.path_in_schema)
        metadata = pq.ParquetFile(path).metadata.metadata
        assert json.loads(metadata[b"content_defined_chunking"]) == writer.CDC_OPTIONS
        assert b"huggingface" in metadata  # datasets' features, as before


def _row_bytes(row: dict) -> int:
    """Independent count of a row's payload: image bytes and strings, 8 bytes per other value."""
    total = 0
    for value in row.values():
        if isinstance(value, dict):
            value = value["bytes"] or b""
        total += len(value.encode() if isinstance(value, str) else value) if isinstance(value, (bytes, str)) else 8
    return total


def test_row_groups_are_bounded_in_bytes(shards):
    groups = 0
    for path in shards:
        parquet = pq.ParquetFile(path)
        last = parquet.num_row_groups - 1
        for i in range(parquet.num_row_groups):
            sizes = [_row_bytes(row) for row in parquet.read_row_group(i).to_pylist()]
            groups += 1
            # a group closes on the row that reaches the bound, never later
            assert sum(sizes[:-1]) < BOUND, (path.name, i, sizes)
            if i < last:
                assert sum(sizes) >= BOUND, (path.name, i, sizes)
    assert groups > len(shards)  # the bound, not the shard, cut them
