"""Feature extraction of `python -m occluded_ccreid.benchmark` against the model's forward pass alone.

On a build-shaped folder of synthetic PRCC-like crops (PNG, 100-250 px wide, 250-550 px tall, the
builds' schema) and a transformers image model with random weights (a ViT-Ti/16 at 224x224 by default;
random weights cost what trained ones do), this measures side by side, in one run, alternating:

1. extraction: `reading.extract_split` on the query split, as the command runs it: the Parquet
   shard streamed, PNG decoding and the processor's resize in the decoding threads, normalisation,
   one forward pass over each batch and its horizontal flip, pooling, flip sum, L2 normalisation,
   features back on the CPU;
2. the forward pass alone: the same model, batch size, precision and device on ready-made pixel
   tensors (each batch and its flip, already on the device), under `torch.inference_mode`.

Both count features per second (one feature = one image, two forward passes). The ratio is
extraction / forward; the target is >= 0.85. Rounds alternate the two, so a change in the machine's
load hits both; the median round is reported.

A third line, host side alone, runs the extraction with a forward pass that returns at once: the
rate at which reading, decoding and collating can feed any model on this machine. Extraction
cannot beat the lower of it and the forward pass; where it is the lower one (a fast GPU), the host
side (cores, or Python's GIL shared by the decoding threads) is what to speed up. With
`--processes N` each round also runs both with the command's `--processes N` (decoding in worker
processes instead of threads), side by side.

    python benchmarks/feature_extraction.py                      # CPU, 64 images, ViT-Ti/16, 5 rounds
    python benchmarks/feature_extraction.py --device cuda --images 4096 --batch-size 128 --precision bf16
    python benchmarks/feature_extraction.py --model vit-b16 --images 64 --rounds 3
    python benchmarks/feature_extraction.py --device cuda --model vit-s16 --images 1024 --batch-size 64 --processes 15

Timings on a shared machine are noisy: compare numbers from the same run only.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

MODELS = {  # name -> (config class, kwargs)
    "vit-s16": (
        "ViTConfig",
        dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
    ),
    "vit-b16": ("ViTConfig", dict()),
    "vit-tiny": (
        "ViTConfig",
        dict(hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768),
    ),
}


def make_build(folder: Path, images: int, seed: int = 0) -> Path:
    """A folder with the layout and schema of a PRCC build: query and gallery shards, build_report.json."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from occluded_ccreid.features import dataset_features

    rng = np.random.default_rng(seed)
    (folder / "data").mkdir(parents=True, exist_ok=True)

    def png(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return buffer.getvalue()

    def crop(height: int, width: int) -> np.ndarray:
        # A pedestrian-like crop: smooth background, body boxes, mild sensor noise (PNG size of real crops).
        image = np.empty((height, width, 3), np.uint8)
        image[:] = rng.integers(40, 200, 3)
        for r0, r1, c0, c1 in ((0.05, 0.2, 0.4, 0.6), (0.2, 0.55, 0.3, 0.7), (0.55, 0.95, 0.32, 0.68)):
            image[int(r0 * height) : int(r1 * height), int(c0 * width) : int(c1 * width)] = rng.integers(0, 255, 3)
        noise = rng.integers(-6, 7, (height, width, 1))
        return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)

    counts = {"query": images, "gallery": max(8, images // 8)}
    for split, n in counts.items():
        rows = {k: [] for k in dataset_features()}
        for i in range(n):
            height, width = int(rng.integers(250, 551)), int(rng.integers(100, 251))
            part = int(rng.integers(0, 7))
            rows["image"].append({"bytes": png(crop(height, width)), "path": None})
            rows["pid"].append(i % 50)
            rows["camid"].append(0 if split == "gallery" else 1 + i % 2)
            rows["clothes_id"].append(i % 50 * 2 + (i % 2))
            rows["occluded_part"].append(part)
            rows["pool_scale"].append(4 if part else 0)
            rows["occluded_ratio"].append(float(rng.uniform(0.05, 0.5)) if part else 0.0)
            rows["occluder"].append("parts" if part else "none")
            rows["fill"].append("add")
            rows["coverage_in_band"].append(True)
            rows["part_visibility"].append([None] * 6)
            drawn = {"occluder": "parts", "part": part, "pool_scale": 4, "source": None}
            rows["occluders"].append([drawn] if part else [])
            rows["person_donors"].append([])
            rows["occlusion_mask"].append({"bytes": png(np.zeros((height, width), np.uint8)), "path": None})
            rows["parsing"].append({"bytes": png(np.zeros((height, width), np.uint8)), "path": None})
            rows["source_path"].append(f"{split}/{i:06d}.jpg")
        # Written with pyarrow and the declared schema (its `huggingface` metadata included), not
        # Dataset.from_dict: that fingerprints the table with dill, which fails on some pyarrow builds.
        schema = dataset_features().arrow_schema
        pq.write_table(pa.Table.from_pydict(rows, schema=schema), folder / "data" / f"{split}-00000-of-00001.parquet")
    report = {"dataset": "prcc", "splits": {s: {"num_rows": n} for s, n in counts.items()}}
    (folder / "build_report.json").write_text(json.dumps(report))
    return folder


def make_model(folder: Path, name: str) -> Path:
    import torch
    import transformers

    config_class, kwargs = MODELS[name]
    torch.manual_seed(0)
    config = getattr(transformers, config_class)(image_size=224, patch_size=16, **kwargs)
    transformers.AutoModel.from_config(config).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(folder)
    return folder


class HostSideOnly:
    """An extractor's reading-side work (`prepare_image`, `collate`) with a forward pass that returns at
    once: extraction with it measures how fast the host can feed a model."""

    def __init__(self, extractor) -> None:
        self.extractor, self.device = extractor, extractor.device
        self.transform = extractor.transform  # what decoding worker processes run (--processes)

    def prepare_image(self, image):
        return self.extractor.prepare_image(image)

    def collate(self, items):
        return self.extractor.collate(items)

    def __call__(self, prepared):
        import torch

        return torch.ones(len(prepared), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="vit-tiny", help=f"{', '.join(MODELS)}, or a save_pretrained folder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: the command's)")
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="also measure decoding in this many worker processes (the command's --processes)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", type=Path, help="keep the synthetic build here and reuse it in later runs")
    args = parser.parse_args()

    import torch

    from occluded_ccreid.benchmark.features import PRECISIONS, TransformersExtractor, pool, prepare
    from occluded_ccreid.benchmark.reading import decoding, default_workers, extract_split, open_dataset

    with tempfile.TemporaryDirectory(prefix="feature-extraction-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        build = args.data or tmp / "build"
        if not (build / "build_report.json").is_file():
            make_build(build, args.images)
        model_dir = Path(args.model) if args.model not in MODELS else make_model(tmp / "model", args.model)
        print(f"data: {build}, ready in {time.perf_counter() - t0:.1f} s; model {args.model}")
        extractor = TransformersExtractor(str(model_dir), device=args.device, precision=args.precision)
        device = extractor.device
        opened = open_dataset(str(build))
        workers = args.workers or default_workers(device.type)  # as the command picks them for this device
        print(
            f"device {device}, precision {args.precision}, batch size {args.batch_size}, torch threads "
            f"{torch.get_num_threads()}, decoding threads {workers}, preprocessing: "
            f"{extractor.describe()['preprocessing']}"
        )

        # Ready-made inputs of the forward-only floor: the same images, batches and flips, on the device.
        from PIL import Image

        query = opened.splits["query"].select_columns(["image"])
        images = [
            Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB")
            for row in query.cast_column("image", __import__("datasets").Image(decode=False))
        ]
        batches = []
        for start in range(0, len(images), args.batch_size):
            prepared = prepare(extractor, images[start : start + args.batch_size])
            pixels = extractor.transform.to_pixels(prepared, device) if extractor.transform else prepared.to(device)
            batches.append(torch.cat([pixels, pixels.flip(3)]))
        # The extraction's batches leave the decoding side in pinned memory on CUDA (asynchronous copies).
        print(f"collated batches in pinned memory: {prepared.is_pinned()}")
        dtype = PRECISIONS[args.precision]

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        def forward_only() -> float:
            sync()
            start = time.perf_counter()
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                for both in batches:
                    pool(extractor.model(pixel_values=both))
            sync()
            return len(images) / (time.perf_counter() - start)

        def extraction(decoder, host_only: bool = False) -> float:
            sync()
            start = time.perf_counter()
            timed = HostSideOnly(extractor) if host_only else extractor
            result = extract_split(
                opened.splits["query"], ("image",), timed, args.batch_size, progress=False, decoder=decoder
            )
            sync()
            assert result.features["image"].shape[0] == len(images)
            return len(images) / (time.perf_counter() - start)

        # One decoder per kind for the whole run, as the command keeps one for its splits.
        decoders = {"threads": decoding(extractor, workers)}
        if args.processes:
            start = time.perf_counter()
            decoders[f"{args.processes} processes"] = decoding(extractor, processes=args.processes)
            extraction(decoders[f"{args.processes} processes"], host_only=True)
            print(f"worker processes started and warmed up in {time.perf_counter() - start:.1f} s (once per command)")
        forward_only(), extraction(decoders["threads"])  # warm-up: first-call allocations, kernel selection
        rounds = []
        for r in range(args.rounds):
            fwd = forward_only()
            measured = {name: (extraction(d), extraction(d, host_only=True)) for name, d in decoders.items()}
            rounds.append((fwd, measured))
            print(
                f"round {r + 1}: forward alone {fwd:8.1f} features/s"
                + "".join(
                    f"\n  decoding in {name}: extraction {ext:8.1f} features/s, ratio {ext / fwd:.3f}; "
                    f"host side alone {host:8.1f} features/s"
                    for name, (ext, host) in measured.items()
                )
            )
        fwd_med = statistics.median(fwd for fwd, _ in rounds)
        print(f"median: forward alone {fwd_med:.1f} features/s")
        for name in decoders:
            median = statistics.median(m[name][0] / fwd for fwd, m in rounds)
            ext_med, host_med = (statistics.median(m[name][i] for _, m in rounds) for i in range(2))
            print(
                f"  decoding in {name}: extraction {ext_med:.1f} features/s, ratio {median:.3f} (target >= 0.85: "
                f"{'met' if median >= 0.85 else 'NOT met'}); host side alone {host_med:.1f} features/s "
                f"({host_med / fwd_med:.2f} x the forward pass)"
            )
        for decoder in decoders.values():
            decoder.close()


if __name__ == "__main__":
    main()
