"""Throughput and memory of `builder build` next to the model's own speed and a paper-style pipeline.

On a synthetic PRCC-like source (JPEG crops 100-250 px wide, 250-550 px tall, PRCC's folder
layout) and a SegFormer-B0-shaped model with random weights (SegformerConfig's defaults are B0;
ATR's 18 clothes labels, as the default checkpoint; saved with `save_pretrained` and loaded
through the builder's real `from_pretrained` path; random weights cost what trained ones do),
this measures side by side, in one run:

1. `builder build` (the CLI's `main`, progress off) in a fresh child process: images/s over the
   whole command (model load, scan, occlusion, Parquet shards, card; not the imports of torch and
   transformers; `datasets` is imported inside, after the CLI has set its malloc options, see
   builder/malloc.py);
2. the forward-only floor: the same model, parse size, batch size and per-image input shapes
   (aspect kept by default, the whole box with --no-keep-aspect; with --precision bf16 under the
   same CPU autocast) on ready-made normalised channels-last tensors under `torch.inference_mode`,
   torch's default threads, with the same malloc options as the build (no decoding, no
   post-processing); measured
   before and after the build (median of its chunks each); the build is held to the higher of
   the two, and a warning is printed when they disagree (the machine's load changed);
3. a reference pipeline written the way the paper describes it: batch size 1, the image
   processor's default square 512x512 resize, logits back to full size + argmax, the part map
   written to a PNG file; then a second pass that reads each map back, pools x4, interpolates,
   fuses (occluded_ccreid.occlusion.occlude, the same work as the build) and writes the occluded image
   and mask as PNG files. It runs on a subset (--reference-images) right after the first floor,
   model loading not counted, with glibc's default malloc options as such a script would; for
   transparency it is run a second time with the build's malloc options (printed, not the ratio's
   denominator). Its rate is per image like the others.

and then the peak resident memory (VmHWM of the child process) of builds of 2,000 and 8,000
images. Those builds use the same pipeline and parse size with a tiny SegFormer (two stages, 8
and 16 channels) so they finish in minutes: the model's weights and activations are a constant
that does not grow with the dataset, while everything that could grow with it (decoded images,
part maps, rows waiting to be written, report counters, allocator fragmentation from images of
many sizes) is the pipeline's, and a fast model makes any unbounded queue fill fastest.
`--rss-model b0` uses the B0 model for them instead (slower: ~10,000 images at the build rate).

    python benchmarks/build_throughput.py                  # 2,000 images; ~10 min on 2 CPU cores
    python benchmarks/build_throughput.py --quick          # smoke run, < 1 min
    python benchmarks/build_throughput.py --images 1000 --batch-size 16 --workers 2 --parse-size 384x192
    python benchmarks/build_throughput.py --no-keep-aspect  # every crop stretched to 512x256 (one shape)
    python benchmarks/build_throughput.py --precision bf16  # bf16 autocast (CPUs with AVX512-BF16 or AMX)

Timings on a shared machine are noisy: compare numbers from the same run only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing as mp
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REFERENCE_SIZE = (512, 512)  # SegformerImageProcessor's default `size`


# -- synthetic source ----------------------------------------------------------------------------
def _draw(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A pedestrian-like crop: noisy background, head ellipse, torso/arms/legs boxes in outfit colours."""
    base = rng.integers(40, 200, size=3)
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    image = base + 40 * (rows - 0.5) + rng.normal(0, 12, size=(height, width, 1))
    top, bottom, skin = rng.integers(0, 255, size=3), rng.integers(0, 255, size=3), np.array([224, 172, 105])
    dy, dx = rng.uniform(-0.03, 0.03, size=2)
    for (r0, r1, c0, c1), colour in (
        ((0.18, 0.50, 0.30, 0.70), top),
        ((0.18, 0.46, 0.18, 0.30), top),
        ((0.18, 0.46, 0.70, 0.82), top),
        ((0.46, 0.52, 0.18, 0.30), skin),
        ((0.46, 0.52, 0.70, 0.82), skin),
        ((0.50, 0.95, 0.32, 0.49), bottom),
        ((0.50, 0.95, 0.51, 0.68), bottom),
    ):
        rows = slice(round((r0 + dy) * height), round((r1 + dy) * height))
        image[rows, round((c0 + dx) * width) : round((c1 + dx) * width)] = colour
    yy, xx = np.ogrid[:height, :width]
    head = ((yy - (0.10 + dy) * height) / (0.08 * height)) ** 2 + ((xx - (0.5 + dx) * width) / (0.12 * width)) ** 2 <= 1
    image[head] = skin
    image += rng.normal(0, 6, size=image.shape)  # sensor noise: PNG/JPEG sizes like a photo's
    return np.clip(image, 0, 255).astype(np.uint8)


def make_source(root: Path, n: int, seed: int = 0, distinct: int = 600) -> Path:
    """A PRCC tree of n JPEG crops (53% train, 15% val, 32% test A/B/C; ~12 images per identity).
    Up to `distinct` different pictures are drawn and reused across paths (sizes vary per picture),
    which keeps making an 8,000-image tree fast; every path still gets its own row and occluder."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pictures = []
    for _ in range(min(n, distinct)):
        height = int(rng.integers(250, 551))
        width = int(np.clip(round(height * rng.uniform(0.30, 0.62)), 100, 250))
        buffer = io.BytesIO()
        Image.fromarray(_draw(rng, height, width)).save(buffer, format="JPEG", quality=90)
        pictures.append(buffer.getvalue())
    root = Path(root)
    for folder in ("train", "val", "test/A", "test/B", "test/C"):
        (root / "rgb" / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pid, cam = i // 12, "ABC"[(i // 4) % 3]
        if i < 0.53 * n:
            rel = f"rgb/train/{pid:04d}/{cam}_cropped_rgb{i:05d}.jpg"
        elif i < 0.68 * n:
            rel = f"rgb/val/{pid:04d}/{cam}_cropped_rgb{i:05d}.jpg"
        else:
            rel = f"rgb/test/{cam}/{pid:04d}/cropped_rgb{i:05d}.jpg"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pictures[i % len(pictures)])
    return root


def make_model(path: Path, kind: str) -> Path:
    """kind "b0": SegformerConfig defaults (B0: hidden sizes 32/64/160/256, depths 2/2/2/2,
    decoder 256); "tiny": two stages of 8 and 16 channels. ATR labels, random weights."""
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    from builder.parsing.schp import LABEL_SETS

    id2label = dict(enumerate(LABEL_SETS[18][1]))  # the ATR checkpoint's labels, in its order
    extra = (
        {}
        if kind == "b0"
        else dict(
            num_encoder_blocks=2,
            depths=[1, 1],
            sr_ratios=[8, 4],
            hidden_sizes=[8, 16],
            patch_sizes=[7, 3],
            strides=[4, 2],
            num_attention_heads=[1, 1],
            mlp_ratios=[2, 2],
            decoder_hidden_size=16,
        )
    )
    config = SegformerConfig(id2label=id2label, label2id={v: k for k, v in id2label.items()}, **extra)
    torch.manual_seed(0)
    with contextlib.redirect_stderr(io.StringIO()):
        SegformerForSemanticSegmentation(config).save_pretrained(path)
        SegformerImageProcessor().save_pretrained(path)
    return path


# -- measurements, each in a fresh child process --------------------------------------------------
def _status_mib(field: str) -> float:
    """VmHWM (peak) or VmRSS (now) of this process, MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    import resource  # no /proc: ru_maxrss (KiB on Linux) is the peak

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ForeignLoad:
    """CPU time the rest of the machine used while a measurement ran (other people's jobs on a
    shared machine): busy time from /proc/stat minus this process's own CPU time, in cores."""

    def __init__(self) -> None:
        self.start = (self._busy(), self._own(), time.perf_counter())

    @staticmethod
    def _busy() -> float:
        try:
            with open("/proc/stat") as stat:
                fields = [int(v) for v in stat.readline().split()[1:]]
        except OSError:
            return float("nan")
        return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle, iowait

    @staticmethod
    def _own() -> float:
        times = os.times()
        return times.user + times.system

    def cores(self) -> float:
        busy, own, wall = self.start
        return max(0.0, (self._busy() - busy) - (self._own() - own)) / (time.perf_counter() - wall)


def child_build(source: str, out: str, model: str, args: list[str]) -> dict:
    """`builder build` through the CLI; peak RSS, and RSS sampled every 0.5 s while it runs."""
    import json
    import threading

    from builder.malloc import keep_freed_memory_mapped

    # The CLI applies these itself, but only threads started after them share the main arena, and
    # this harness starts an RSS sampler thread before the CLI runs (see builder/malloc.py).
    keep_freed_memory_mapped()
    import torch  # noqa: F401 - imports are not the build's time, except `datasets`, which the CLI
    import transformers  # noqa: F401 - imports after setting the malloc options

    from builder.cli import main

    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            samples.append(_status_mib("VmRSS"))

    sampler = threading.Thread(target=sample, daemon=True)
    foreign = ForeignLoad()
    start = time.perf_counter()
    sampler.start()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(
            [
                "build",
                "prcc",
                source,
                "--out",
                out,
                "--model",
                model,
                "--device",
                "cpu",
                "--no-progress",
                "--overwrite",
                *args,
            ]
        )
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if code != 0:
        raise RuntimeError(f"builder build exited with {code}")
    rows = json.loads((Path(out) / "build_report.json").read_text())["num_rows"]
    quartiles = [samples[min(len(samples) - 1, int(q * len(samples)))] for q in (0.25, 0.5, 0.75)] if samples else []
    return {
        "rows": rows,
        "seconds": seconds,
        "peak_rss_mib": _status_mib("VmHWM"),
        "rss_quartiles": quartiles,
        "foreign_cores": foreign.cores(),
    }


def child_floor(model: str, shapes: list[tuple[int, int]], batch_size: int, chunks: int, precision: str) -> dict:
    """Forward passes alone, over batches of the given input shapes (one shape per batch), with the
    malloc options `builder build` uses for CPU inference."""
    from builder.malloc import keep_freed_memory_mapped

    keep_freed_memory_mapped()
    import torch
    from transformers import AutoModelForSemanticSegmentation

    net = AutoModelForSemanticSegmentation.from_pretrained(model).eval().to(memory_format=torch.channels_last)
    torch.manual_seed(0)
    batches = []
    for shape in sorted(set(shapes)):
        count = shapes.count(shape)
        for start in range(0, count, batch_size):
            n = min(batch_size, count - start)
            batches.append(torch.randn(n, 3, *shape).contiguous(memory_format=torch.channels_last))
    rates = []
    foreign = ForeignLoad()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    with torch.inference_mode(), autocast:
        net(pixel_values=batches[0])  # warm-up
        for start in range(chunks):  # every chunk gets the same mix of shapes: chunk rates compare
            chunk = batches[start::chunks]
            begin = time.perf_counter()
            for batch in chunk:
                net(pixel_values=batch)
            rates.append(sum(len(b) for b in chunk) / (time.perf_counter() - begin))
    return {"rates": rates, "images": len(shapes), "foreign_cores": foreign.cores()}


def child_reference(source: str, out: str, model: str, paths: list[str], build_malloc: bool = False) -> dict:
    """The paper-style pipeline: per image, square resize, forward, masks to PNG; then a second pass."""
    if build_malloc:
        from builder.malloc import keep_freed_memory_mapped

        keep_freed_memory_mapped()
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    from builder.images import load_rgb
    from builder.parsing.label_mapping import PartMapper
    from occluded_ccreid.occlusion import image_rng, occlude

    processor = AutoImageProcessor.from_pretrained(model)  # size 512x512, PIL resize
    net = AutoModelForSemanticSegmentation.from_pretrained(model).eval()
    mapper = PartMapper(net.config.id2label)
    start = time.perf_counter()  # model loading not counted: the reference runs on a small subset
    masks, images = Path(out) / "parsing", Path(out) / "occluded"
    with torch.inference_mode():
        for rel in paths:  # pass 1: part masks to PNG
            image = load_rgb(Path(source) / rel)
            inputs = processor(images=image, return_tensors="pt")
            logits = net(**inputs).logits
            labels = processor.post_process_semantic_segmentation(
                SimpleNamespace(logits=logits), target_sizes=[image.shape[:2]]
            )[0]
            target = (masks / rel).with_suffix(".png")
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mapper(labels.numpy())).save(target)
    for rel in paths:  # pass 2: read the masks back, pool x4, interpolate, fuse, write
        image = load_rgb(Path(source) / rel)
        parts = np.asarray(Image.open((masks / rel).with_suffix(".png")))
        occlusion = occlude(image, parts, image_rng(0, rel))
        target = (images / rel).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(occlusion.image).save(target)
        Image.fromarray(occlusion.mask).save(target.with_name(target.stem + "_mask.png"))  # 8-bit alpha
    return {"rows": len(paths), "seconds": time.perf_counter() - start}


def _child_main(connection, function, args) -> None:
    try:
        connection.send((True, function(*args)))
    except BaseException:  # noqa: BLE001 - report anything to the parent
        import traceback

        connection.send((False, traceback.format_exc()))
    finally:
        connection.close()


def in_child(function, *args):
    """Run function(*args) in a fresh spawned interpreter (own torch threads, own peak RSS)."""
    context = mp.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(send, function, args))
    process.start()
    send.close()
    try:
        ok, value = receive.recv()
    except EOFError:
        ok, value = False, f"child process died (exit code {process.join() or process.exitcode})"
    process.join()
    if not ok:
        raise RuntimeError(f"{function.__name__} failed in its child process:\n{value}")
    return value


# -- the run -----------------------------------------------------------------------------------
def input_shapes(source: Path, paths: list[str], parse_size: tuple[int, int], keep_aspect: bool):
    """Model input shape of each image, as the build's parser computes it."""
    from PIL import Image

    from builder.parsing.network import fit_size

    if not keep_aspect:
        return [parse_size] * len(paths)
    shapes = []
    for rel in paths:
        with Image.open(source / rel) as img:
            shapes.append(fit_size(img.height, img.width, parse_size))
    return shapes


def parse_size_arg(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="images in the timed build (default 2000)")
    parser.add_argument("--floor-images", type=int, default=192, help="images per forward-only measurement")
    parser.add_argument("--reference-images", type=int, default=60, help="images through the paper-style pipeline")
    parser.add_argument("--rss-images", default="2000,8000", help="build sizes whose peak RSS is compared")
    parser.add_argument("--rss-model", choices=["tiny", "b0"], default="tiny", help="model of the RSS builds")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--parse-size", type=parse_size_arg, default=(512, 256), help="HxW (default 512x256)")
    parser.add_argument(
        "--keep-aspect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="builds with --keep-aspect (default) or --no-keep-aspect; the floor uses the same shapes",
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="builds with --precision (the floor runs under the same autocast)",
    )
    parser.add_argument("--build-args", default="", help='more `builder build` flags: --build-args="--shard-size 500"')
    parser.add_argument("--skip", default="", help="comma list of parts to skip: build,floor,reference,rss")
    parser.add_argument("--workdir", type=Path, default=None, help="keep sources/builds here (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="smoke run (< 1 min): 64 images, RSS builds of 60 and 240")
    return parser


def _measure_speed(
    args: argparse.Namespace,
    skip: set[str],
    work: Path,
    b0: Path,
    source: Path,
    paths: list[str],
    build_args: list[str],
    keep_aspect: bool,
) -> dict[str, float]:
    """images/s of the build, the forward pass alone (floor) and the paper-style reference."""
    results: dict[str, float] = {}
    shapes = input_shapes(source, paths, args.parse_size, keep_aspect)
    picked = np.linspace(0, len(shapes) - 1, min(args.floor_images, len(shapes))).astype(int)
    floor_shapes = [shapes[i] for i in picked]

    subset = [paths[i] for i in np.linspace(0, len(paths) - 1, min(args.reference_images, len(paths))).astype(int)]
    floor_call = (child_floor, str(b0), floor_shapes, args.batch_size, 2 if args.quick else 4, args.precision)
    reference_call = (child_reference, str(source), str(work / "reference"), str(b0), subset)
    floor_medians: list[float] = []
    foreign_loads: list[float] = []

    def report_floor(got: dict) -> None:
        floor_medians.append(statistics.median(got["rates"]))
        chunk_rates = ", ".join(f"{r:.1f}" for r in got["rates"])
        print(
            f"  forward only: {floor_medians[-1]:.2f} img/s (chunks {chunk_rates}; "
            f"other processes used {got['foreign_cores']:.2f} cores)",
            flush=True,
        )
        foreign_loads.append(got["foreign_cores"])

    # Each measurement in a fresh child (malloc options are per process): the floor, the reference
    # right after it (default malloc, then the build's), the build, and in full runs the floor
    # again. The higher floor is the one the build is held to, and a change of load on the
    # machine during the run shows as two floors that disagree.
    if "floor" not in skip:
        report_floor(in_child(*floor_call))
    if "reference" not in skip:
        for build_malloc in (False, True):
            got = in_child(*reference_call, build_malloc)
            rate = got["rows"] / got["seconds"]
            results["reference" + ("_build_malloc" if build_malloc else "")] = rate
            print(
                f"  reference{' (build malloc options)' if build_malloc else ''}: {rate:.2f} img/s "
                f"({got['rows']} images in {got['seconds']:.1f} s)",
                flush=True,
            )
    shutil.rmtree(work / "reference", ignore_errors=True)
    if "build" not in skip:
        got = in_child(child_build, str(source), str(work / "out"), str(b0), build_args)
        results["build"] = got["rows"] / got["seconds"]
        print(
            f"  builder build: {results['build']:.2f} img/s ({got['rows']} images in {got['seconds']:.1f} s, "
            f"peak RSS {got['peak_rss_mib']:.0f} MiB; other processes used {got['foreign_cores']:.2f} cores)",
            flush=True,
        )
        foreign_loads.append(got["foreign_cores"])
        shutil.rmtree(work / "out", ignore_errors=True)
        if "floor" not in skip and not args.quick:
            report_floor(in_child(*floor_call))
    if floor_medians:
        results["floor"] = max(floor_medians)
    if floor_medians and min(floor_medians) < 0.85 * max(floor_medians) or max(foreign_loads, default=0) > 0.1:
        print(
            "  WARNING: other processes took CPU time during the run, or the floors before and after the "
            "build disagree: the timings are not comparable; rerun on a quiet machine",
            flush=True,
        )

    return results


def _measure_rss(
    args: argparse.Namespace, skip: set[str], work: Path, b0: Path, build_args: list[str]
) -> dict[int, float]:
    """Peak RSS in MiB of builds of each of --rss-images sizes."""
    # Quick RSS builds are too small to fill a 1000-row shard; smaller shards let every buffer that
    # is bounded by the shard size reach its bound, as it does in the full-size builds.
    rss_args = ["--shard-size", "50"] if args.quick else []
    rss_sizes = [int(v) for v in args.rss_images.split(",") if v]
    rss: dict[int, float] = {}
    if "rss" not in skip and rss_sizes:
        rss_model = b0 if args.rss_model == "b0" else make_model(work / "segformer-tiny", "tiny")
        for n in rss_sizes:
            src = make_source(work / f"rss-{n}" / "PRCC", n, seed=1)
            got = in_child(child_build, str(src), str(work / f"rss-out-{n}"), str(rss_model), build_args + rss_args)
            rss[n] = got["peak_rss_mib"]
            print(
                f"  RSS build of {got['rows']} images ({args.rss_model} model): peak {rss[n]:.0f} MiB "
                f"(RSS at 1/4, 1/2, 3/4 of the build: {', '.join(f'{v:.0f}' for v in got['rss_quartiles'])}), "
                f"{got['rows'] / got['seconds']:.1f} img/s",
                flush=True,
            )
            shutil.rmtree(work / f"rss-{n}", ignore_errors=True)
            shutil.rmtree(work / f"rss-out-{n}", ignore_errors=True)

    return rss


def _print_summary(args: argparse.Namespace, results: dict[str, float], rss: dict[int, float]) -> None:
    print()
    print(f"{'measurement':<44}{'images/s':>10}")
    for key, label in (
        ("build", f"builder build ({args.images} images)"),
        ("floor", "forward pass alone (floor)"),
        ("reference", "paper-style reference (batch 1, 512x512)"),
        ("reference_build_malloc", "  the same with the build's malloc options"),
    ):
        if key in results:
            print(f"{label:<44}{results[key]:>10.2f}")
    if "build" in results and "floor" in results:
        print(f"{'build / forward':<44}{results['build'] / results['floor']:>10.2f}   (target >= 0.85)")
    if "build" in results and "reference" in results:
        print(f"{'build / reference':<44}{results['build'] / results['reference']:>10.2f}   (target >= 4)")
    if "build" in results and "reference_build_malloc" in results:
        ratio = results["build"] / results["reference_build_malloc"]
        print(f"{'  with the build malloc in both':<44}{ratio:>10.2f}")
    if rss:
        for n, mib in rss.items():
            print(f"{f'peak RSS, build of {n} images':<44}{mib:>9.0f} MiB")
        low, high = rss[min(rss)], rss[max(rss)]
        note = "smoke-run sizes: not at steady state" if args.quick else "target <= 1.10"
        print(f"{f'RSS {max(rss)} / RSS {min(rss)}':<44}{high / low:>10.3f}   ({note})")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.images, args.floor_images, args.reference_images = 64, 32, 4
        args.rss_images = "60,240"
    skip = set(filter(None, args.skip.split(",")))
    extra = shlex.split(args.build_args) + ([] if args.keep_aspect else ["--no-keep-aspect"])
    build_args = [
        "--batch-size",
        str(args.batch_size),
        "--workers",
        str(args.workers),
        "--parse-size",
        f"{args.parse_size[0]}x{args.parse_size[1]}",
        "--precision",
        args.precision,
        *extra,
    ]

    import torch

    work = args.workdir or Path(tempfile.mkdtemp(prefix="build-throughput-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(
            f"torch {torch.__version__}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}; "
            f"batch {args.batch_size}, workers {args.workers}, parse size {args.parse_size[0]}x{args.parse_size[1]}, "
            f"{args.precision}"
            f"{' ' + ' '.join(extra) if extra else ''}",
            flush=True,
        )
        begin = time.perf_counter()
        b0 = make_model(work / "segformer-b0", "b0")
        source = make_source(work / "src" / "PRCC", args.images)
        from occluded_ccreid.sources import get_source

        paths = [r.source_path for r in get_source("prcc").scan(source).records]
        print(f"made {len(paths)} images and the models in {time.perf_counter() - begin:.0f} s", flush=True)
        keep_aspect = "--no-keep-aspect" not in extra
        results = _measure_speed(args, skip, work, b0, source, paths, build_args, keep_aspect)
        rss = _measure_rss(args, skip, work, b0, build_args) if "rss" not in skip else {}
        _print_summary(args, results, rss)
        print(f"total {time.perf_counter() - begin:.0f} s")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
