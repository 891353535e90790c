"""Streaming rows/s through `datasets` for shards written with the old and the new Parquet options.

The same rows (PRCC-like: a ~128x64..256x128 photo-like crop, its occluder mask and part map as
PNG, the scalar columns) are written twice, with the same shard plan:

* old: `pq.ParquetWriter` defaults as the builder used before (snappy and dictionary encoding on
  every column, no page index, no content-defined chunking) and row groups of 100 rows;
* new: `builder.writer.ShardWriter` (`parquet_writer`: images uncompressed and PLAIN, page
  index, content-defined chunking, row groups bounded by `ROW_GROUP_MAX_BYTES`).

Each is then read with `load_dataset("parquet", data_files=..., streaming=True)` through a torch
`DataLoader` with 0 and 4 workers, alternating old/new `--repeats` times (best run of each is
kept), in two modes: `raw` (image columns not decoded: the Parquet reading alone) and `decoded`
(the `image` column decoded to PIL, as training reads it). Printed: rows/s of each and new/old.

    python benchmarks/streaming.py                 # 8,000 rows, 8 shards; ~8 min on 2 loaded CPU cores
    python benchmarks/streaming.py --rows 800 --repeats 1   # smoke run

Timings on a shared machine are noisy: compare numbers from the same run only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from builder.rows import encode_png  # noqa: E402
from builder.writer import ShardWriter  # noqa: E402
from occluded_ccreid.features import dataset_features  # noqa: E402
from occluded_ccreid.layout import shard_file_name  # noqa: E402

OLD_ROW_GROUP_ROWS = 100


def make_rows(n: int, seed: int = 0) -> list[dict]:
    """Distinct PRCC-like rows: smooth noise crops (PNG ~ tens of KB, as photo crops), masks, part maps."""
    rng = np.random.default_rng(seed)
    sizes = [(256, 128), (224, 96), (192, 96), (128, 64)]
    rows = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        small = rng.integers(0, 255, size=(h // 4, w // 4, 3), dtype=np.uint8)
        image = np.asarray(PILImage.fromarray(small).resize((w, h), PILImage.BILINEAR))
        image = np.clip(image.astype(int) + rng.integers(-6, 6, size=image.shape), 0, 255).astype(np.uint8)
        parts = np.zeros((h, w), np.uint8)
        parts[h // 8 : 7 * h // 8, w // 4 : 3 * w // 4] = 1 + (np.arange(h)[h // 8 : 7 * h // 8, None] * 6 // h)
        mask = np.zeros((h, w), np.uint8)
        mask[h // 3 : 2 * h // 3, w // 4 : 3 * w // 4] = 255
        rows.append(
            {
                "image": encode_png(image),
                "pid": i % 150,
                "camid": i % 3,
                "clothes_id": i % 300,
                "occluded_part": 1 + i % 6,
                "pool_scale": 8,
                "occluded_ratio": float(rng.uniform(0.2, 0.6)),
                "occluder": "parts",
                "fill": "add",
                "coverage_in_band": True,
                "part_visibility": [1.0, 0.5, 1, 1, 1, 1],
                "occluders": [{"occluder": "parts", "part": 1 + i % 6, "pool_scale": 8, "source": None}],
                "person_donors": [],
                "occlusion_mask": encode_png(mask),
                "parsing": encode_png(parts),
                "source_path": f"rgb/train/{i:06d}.jpg",
            }
        )
    return rows


def write_old(rows: list[dict], out: Path, shard_size: int, features) -> list[str]:
    out.mkdir(parents=True)
    schema = features.arrow_schema
    paths = []
    total = -(-len(rows) // shard_size)
    for s in range(total):
        path = out / f"train-{s:05d}-of-{total:05d}.parquet"
        with pq.ParquetWriter(path, schema) as writer:
            chunk = [features.encode_example(r) for r in rows[s * shard_size : (s + 1) * shard_size]]
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema), row_group_size=OLD_ROW_GROUP_ROWS)
        paths.append(str(path))
    return paths


def write_new(rows: list[dict], out: Path, shard_size: int, features) -> list[str]:
    out.mkdir(parents=True)
    total = -(-len(rows) // shard_size)
    paths = []
    for s in range(total):
        writer = ShardWriter(out / shard_file_name("train", s, total), features)
        for row in rows[s * shard_size : (s + 1) * shard_size]:
            writer.add(row)
        writer.close()
        paths.append(str(writer.path))
    return paths


def rows_per_second(files: list[str], workers: int, decode: bool) -> tuple[float, int]:
    import torch
    from datasets import Image, load_dataset

    stream = load_dataset("parquet", data_files=files, split="train", streaming=True)
    for column in ("image", "occlusion_mask", "parsing"):
        stream = stream.cast_column(column, Image(decode=decode and column == "image"))
    loader = torch.utils.data.DataLoader(stream, batch_size=32, num_workers=workers, collate_fn=len)
    start, count = time.perf_counter(), 0
    for batch in loader:
        count += batch
    return count / (time.perf_counter() - start), count


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore", message="This DataLoader will create")  # 4 workers on a 2-core machine: wanted
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="0,4", help="DataLoader worker counts, comma-separated (default 0,4)")
    parser.add_argument("--modes", default="raw,decoded", help="raw and/or decoded (default both)")
    parser.add_argument(
        "--row-group-mb",
        type=float,
        default=None,
        help="row-group bound of the new writer in MiB (default: builder.writer.ROW_GROUP_MAX_BYTES)",
    )
    args = parser.parse_args()
    if args.row_group_mb is not None:
        import builder.writer

        builder.writer.ROW_GROUP_MAX_BYTES = int(args.row_group_mb * (1 << 20))

    features = dataset_features()
    rows = make_rows(args.rows)
    shard_size = -(-args.rows // args.shards)
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "old": write_old(rows, Path(tmp) / "old", shard_size, features),
            "new": write_new(rows, Path(tmp) / "new", shard_size, features),
        }
        for name, paths in files.items():
            size = sum(Path(p).stat().st_size for p in paths)
            groups = sum(pq.ParquetFile(p).metadata.num_row_groups for p in paths)
            print(f"{name}: {len(paths)} shards, {groups} row groups, {size / 1e6:.1f} MB on disk")
        print(f"\n{'mode':<8} {'workers':>7} {'old rows/s':>11} {'new rows/s':>11} {'new/old':>8}")
        for decode in [mode == "decoded" for mode in args.modes.split(",")]:
            for workers in [int(w) for w in args.workers.split(",")]:
                best = {"old": 0.0, "new": 0.0}
                for _ in range(args.repeats):
                    for name in ("old", "new"):
                        rate, count = rows_per_second(files[name], workers, decode)
                        assert count == args.rows, (name, count)
                        best[name] = max(best[name], rate)
                mode = "decoded" if decode else "raw"
                print(
                    f"{mode:<8} {workers:>7} {best['old']:>11.0f} {best['new']:>11.0f} "
                    f"{best['new'] / best['old']:>8.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
