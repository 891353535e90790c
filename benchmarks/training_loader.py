"""Training-loader rows/s: occluded_ccreid's pk_loader beside a plain `datasets` + DataLoader loop.

One build of PRCC-like rows (photo-like crops of 128x64 .. 256x128 stored as PNG, with their
occlusion mask and part map, written by the builder's ShardWriter) is read for training with
CAL's train transform (384 x 192) in three ways, each with 0 and 2 DataLoader workers:

* plain: ``load(...).with_transform(per-image transform)`` + ``DataLoader(shuffle=True, batch_size=64)``,
  what a user writes without this package;
* pk_loader: `torch_data.pk_loader` (P=16 identities x K=4), the same transform per image;
* pk_loader + batched: workers only resize (uint8), the random augmentation runs on each batch.

Printed: rows/s of each and the ratio to plain with the same workers; then the per-image cost of
each stage of a training sample in one process (decoding, the occlusion transform drawn afresh per
epoch (`occluded_ccreid.occlusion.transform`), the transform, ...). To add a stage (e.g.
an occlusion augmentation), append one ``Stage`` to `stages`; to add a loader, one entry to `LOADERS`.

    python benchmarks/training_loader.py                  # 2,048 rows, best of 2 runs
    python benchmarks/training_loader.py --rows 512 --repeats 1   # smoke run

Timings on a shared machine are noisy: compare numbers from the same run only.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from builder.rows import encode_png  # noqa: E402
from builder.writer import ShardWriter  # noqa: E402
from occluded_ccreid.features import dataset_features  # noqa: E402
from occluded_ccreid.loading import load  # noqa: E402
from occluded_ccreid.occlusion import OcclusionConfig, part_visibility  # noqa: E402
from occluded_ccreid.occlusion.transform import OcclusionTransform  # noqa: E402

BATCH = 64


def write_build(out: Path, rows: int, shards: int = 4, seed: int = 0) -> Path:
    """A build folder of `rows` PRCC-like training rows (150 identities)."""
    rng = np.random.default_rng(seed)
    sizes = [(256, 128), (224, 96), (192, 96), (128, 64)]
    features = dataset_features()
    (out / "data").mkdir(parents=True)
    per_shard = -(-rows // shards)
    for s in range(shards):
        writer = ShardWriter(out / "data" / f"train-{s:05d}-of-{shards:05d}.parquet", features)
        for i in range(s * per_shard, min(rows, (s + 1) * per_shard)):
            h, w = sizes[i % len(sizes)]
            small = rng.integers(0, 255, size=(h // 4, w // 4, 3), dtype=np.uint8)
            image = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR))
            parts = np.zeros((h, w), np.uint8)
            parts[h // 8 : 7 * h // 8, w // 4 : 3 * w // 4] = 2
            mask = np.zeros((h, w), np.uint8)
            mask[h // 3 : 2 * h // 3, w // 4 : 3 * w // 4] = 255
            writer.add(
                {
                    "image": encode_png(image),
                    "pid": i % 150,
                    "camid": i % 3,
                    "clothes_id": i % 300,
                    "occluded_part": 2,
                    "pool_scale": 8,
                    "occluded_ratio": 0.3,
                    "occluder": "parts",
                    "fill": "add",
                    "coverage_in_band": True,
                    "occlusion_mask": encode_png(mask),
                    "parsing": encode_png(parts),
                    "source_path": f"rgb/train/{i:06d}.jpg",
                    "part_visibility": list(part_visibility(mask, parts)),
                    "occluders": [{"occluder": "parts", "part": 2, "pool_scale": 8, "source": None}],
                    "person_donors": [],
                }
            )
        writer.close()
    return out


# -- loaders: each returns an iterable of batches whose first element is the image batch ------------------


def plain_loader(train: Any, workers: int, height: int, width: int) -> tuple[Any, Callable]:
    import torch

    from occluded_ccreid.transforms import cal_train_transform

    transform = cal_train_transform(height, width)

    def apply(batch: dict) -> dict:
        batch["image"] = [transform(image) for image in batch["image"]]
        return batch

    split = train.select_columns(["image", "pid", "camid", "clothes_id"]).with_transform(apply)
    loader = torch.utils.data.DataLoader(split, batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True)
    return loader, lambda batch: batch


def pk(train: Any, workers: int, height: int, width: int) -> tuple[Any, Callable]:
    from occluded_ccreid.torch_data import pk_loader
    from occluded_ccreid.transforms import cal_train_transform

    return pk_loader(train, cal_train_transform(height, width), p=16, k=4, num_workers=workers), lambda batch: batch


def pk_batched(train: Any, workers: int, height: int, width: int) -> tuple[Any, Callable]:
    from occluded_ccreid.torch_data import pk_loader
    from occluded_ccreid.transforms import Resize, cal_train_transform

    augment = cal_train_transform(height, width)
    loader = pk_loader(train, Resize(height, width), p=16, k=4, num_workers=workers)
    return loader, lambda batch: augment(batch[0])


LOADERS: dict[str, Callable[..., tuple[Any, Callable]]] = {
    "plain datasets + DataLoader": plain_loader,
    "pk_loader": pk,
    "pk_loader + batched augmentation": pk_batched,
}


def rows_per_second(make: Callable, train: Any, workers: int, height: int, width: int) -> float:
    loader, finish = make(train, workers, height, width)
    start, count = time.perf_counter(), 0
    for batch in loader:
        images = finish(batch)
        images = images["image"] if isinstance(images, dict) else images[0] if isinstance(images, list) else images
        count += len(images)
    return count / (time.perf_counter() - start)


# -- per-image stages ----------------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    run: Callable[[], object]  # processes `per_call` images
    per_call: int = 1


def stages(train: Any, height: int, width: int) -> list[Stage]:
    import torch

    from occluded_ccreid.transforms import Resize, cal_train_transform

    undecoded = type(train.features["image"])(decode=False)
    raw = train.select_columns(["image", "parsing", "source_path"])
    raw = raw.cast_column("image", undecoded).cast_column("parsing", undecoded)
    encoded = [raw[i]["image"]["bytes"] for i in range(64)]
    # the stored image stands for a `--keep-clean` build's clean_image: the transform decodes it and the part map
    clean_rows = [
        {"clean_image": raw[i]["image"], "parsing": raw[i]["parsing"], "source_path": raw[i]["source_path"]}
        for i in range(64)
    ]
    occlude = OcclusionTransform(OcclusionConfig(), seed=0)
    pictures = [Image.open(io.BytesIO(b)).convert("RGB") for b in encoded]
    transform = cal_train_transform(height, width)
    batch = torch.stack([Resize(height, width)(p) for p in pictures])
    counter = iter(range(1 << 30))

    def picture() -> Image.Image:
        return pictures[next(counter) % len(pictures)]

    def decode() -> Image.Image:
        return Image.open(io.BytesIO(encoded[next(counter) % len(encoded)])).convert("RGB")

    return [
        Stage("decode image (PNG -> PIL RGB)", decode),
        Stage(
            "occlude afresh: parts (decodes clean + map)",
            lambda: occlude(clean_rows[(n := next(counter)) % len(clean_rows)], epoch=1 + n),
        ),
        Stage("cal_train_transform, per image", lambda: transform(picture())),
        Stage("Resize only (workers of the batched loader)", lambda: Resize(height, width)(picture())),
        Stage(f"cal_train_transform on a batch of {BATCH}", lambda: transform(batch), per_call=BATCH),
    ]


def per_image_ms(stage: Stage, images: int) -> float:
    calls = max(1, images // stage.per_call)
    start = time.perf_counter()
    for _ in range(calls):
        stage.run()
    return (time.perf_counter() - start) / (calls * stage.per_call) * 1000


def main() -> None:
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", default="0,2", help="DataLoader worker counts, comma-separated (default 0,2)")
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the main process (DataLoader workers use 1); default 1"
    )
    args = parser.parse_args()
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        train = load(write_build(Path(tmp) / "build", args.rows), split="train", cache_dir=str(Path(tmp) / "cache"))
        print(f"{len(train)} rows, {args.height}x{args.width}, torch threads {torch.get_num_threads()}\n")
        print(f"{'loader':<34} {'workers':>7} {'rows/s':>8} {'/plain':>7}")
        for workers in [int(w) for w in args.workers.split(",")]:
            best: dict[str, float] = {}
            for _ in range(args.repeats):  # alternate the loaders, keep each one's best
                for name, make in LOADERS.items():
                    rate = rows_per_second(make, train, workers, args.height, args.width)
                    best[name] = max(best.get(name, 0.0), rate)
            plain = best["plain datasets + DataLoader"]
            for name, rate in best.items():
                print(f"{name:<34} {workers:>7} {rate:>8.0f} {rate / plain:>7.2f}", flush=True)
        print(f"\n{'stage (one process)':<48} {'ms/image':>9}")
        for stage in stages(train, args.height, args.width):
            print(f"{stage.name:<48} {per_image_ms(stage, min(args.rows, 256)):>9.2f}", flush=True)


if __name__ == "__main__":
    main()
