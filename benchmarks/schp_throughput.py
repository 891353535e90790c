"""`builder build` with SCHP (the default parser) next to SCHP's forward pass alone, and peak memory.

On the synthetic PRCC-like source of build_throughput.py (JPEG crops 100-250 px wide, 250-550 px
tall) and an SCHP checkpoint with random weights in the official layout (`{'state_dict':
{'module.<key>': tensor}}`, ResNet-101, 7 Pascal-Person-Part labels; random weights cost what
trained ones do), this measures side by side, in one run, each in a fresh child process:

1. the forward-only floor: `load_schp` on the same checkpoint, the same parse size, batch size and
   per-image input shapes, on ready-made normalised channels-last tensors under
   `torch.inference_mode`, torch's default threads, the build's malloc options; median of chunks;
2. `builder build prcc ... --model <checkpoint>` through the CLI: images/s over the whole command
   (checkpoint load and hash, scan, occlusion, Parquet, card), and its peak RSS (VmHWM);
3. on a GPU, the parser's own forward path alone (`child_parser_floor`: what the build's model
   thread does, with nothing else running), for the share of the gap that the rest of the build
   costs;
4. the floor again: the build is held to the highest floor, and a warning is printed when other
   processes used the CPU (timings then are not comparable). Images per CPU-second of each
   measuring process are printed too (a rough view when the load changes during the run), and the
   build's CPU time inside SCHP's forward passes against everything else it does.

On CPU each floor is measured two ways, one stream on torch's default threads and the build's own
two single-threaded streams at once (builder/processing.py), and the faster counts.

    python benchmarks/schp_throughput.py             # 40 images, 512x256 box: ~3-6 min on 2 CPU cores
    python benchmarks/schp_throughput.py --quick     # 24 images, 256x128 box
    python benchmarks/schp_throughput.py --images 400 --batch-size 8 --parse-size 512x256

SCHP is a ResNet-101 at stride 16 (87 GFLOPs per 512x256 crop), so CPU builds are slow; on a
GPU pass --device cuda through --build-args and the floor runs there too.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_throughput import (  # noqa: E402 - after the path: the shared benchmark helpers
    ForeignLoad,
    child_build,
    in_child,
    input_shapes,
    make_source,
    parse_size_arg,
)


def make_checkpoint(path: Path, num_classes: int = 7, seed: int = 0) -> Path:
    """Random SCHP weights saved as the official files are: under `state_dict`, `module.` prefix."""
    import torch

    from builder.parsing.schp import SCHP

    torch.manual_seed(seed)
    state = SCHP(num_classes).state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return path


def child_floor(
    checkpoint: str, shapes: list[tuple[int, int]], batch_size: int, chunks: int, device: str, streams: int = 1
) -> dict:
    """SCHP's forward passes alone, over batches of the given input shapes (one shape per batch):
    one stream with torch's default threads, or (`streams` > 1) that many single-threaded streams
    at once, as `builder build` runs the model on CPU (builder/processing.py: model_streams)."""
    from concurrent.futures import ThreadPoolExecutor

    from builder.malloc import keep_freed_memory_mapped

    if device == "cpu":
        keep_freed_memory_mapped()
    import torch

    from builder.parsing.schp import load_schp

    net = load_schp(checkpoint).to(device).to(memory_format=torch.channels_last)
    torch.manual_seed(0)
    batches = []
    for shape in sorted(set(shapes)):
        count = shapes.count(shape)
        for start in range(0, count, batch_size):
            n = min(batch_size, count - start)
            batches.append(torch.randn(n, 3, *shape, device=device).contiguous(memory_format=torch.channels_last))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def run(batch):
        with torch.inference_mode():
            net(batch)

    rates, cpu, images = [], 0.0, 0
    foreign = ForeignLoad()
    with ThreadPoolExecutor(streams, initializer=(lambda: torch.set_num_threads(1)) if streams > 1 else None) as pool:
        list(pool.map(run, batches[:streams]))  # warm-up, every stream
        sync()
        for start in range(chunks):  # every chunk gets the same mix of shapes: chunk rates compare
            chunk = batches[start::chunks]
            begin, begin_cpu = time.perf_counter(), _cpu_seconds()
            list(pool.map(run, chunk))
            sync()
            rates.append(sum(len(b) for b in chunk) / (time.perf_counter() - begin))
            cpu += _cpu_seconds() - begin_cpu
            images += sum(len(b) for b in chunk)
    return {"rates": rates, "foreign_cores": foreign.cores(), "images_per_cpu_second": images / cpu}


def child_parser_floor(
    checkpoint: str,
    shapes: list[tuple[int, int]],
    batch_size: int,
    chunks: int,
    device: str,
    parse_size: tuple[int, int],
) -> dict:
    """The parser's own path without the rest of the build: `SchpParser.infer_to_host` on ready-made
    uint8 tensors of the same shapes and batches, waited for. On CUDA that is the build's forward
    path (pinned uint8 copies, one image a pass on parallel lanes with cuDNN's deterministic
    algorithms, replayed CUDA graphs, logits copied to the host): the most a build can reach."""
    import torch

    from builder.parsing.schp import SchpParser

    parser = SchpParser(checkpoint, device=device, parse_size=parse_size)
    generator = torch.Generator().manual_seed(0)
    batches = []
    for shape in sorted(set(shapes)):
        count = shapes.count(shape)
        for start in range(0, count, batch_size):
            n = min(batch_size, count - start)
            batches.append(
                [torch.randint(0, 256, (3, *shape), generator=generator, dtype=torch.uint8) for _ in range(n)]
            )
    for batch in batches:  # warm-up: every shape (captures its graph on CUDA)
        parser.infer_to_host(batch)()
    rates = []
    for start in range(chunks):
        chunk = batches[start::chunks]
        begin = time.perf_counter()
        waits = [parser.infer_to_host(batch) for batch in chunk]  # queued back to back, as the build does
        for wait in waits:
            wait()
        rates.append(sum(len(b) for b in chunk) / (time.perf_counter() - begin))
    return {"rates": rates}


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def child_build_cpu(source: str, out: str, model: str, args: list[str]) -> dict:
    """child_build, plus the CPU seconds this process used (images per CPU-second compare the work
    done when other processes take the cores unevenly over the run), and the CPU seconds of the
    threads inside the parser's `infer` (the forward passes): what the build spends elsewhere."""
    import threading

    from builder.parsing.network import NetworkParser

    infer, lock, model_cpu = NetworkParser.infer, threading.Lock(), [0.0]

    def timed_infer(self, tensors):
        begin = time.thread_time()
        try:
            return infer(self, tensors)
        finally:
            with lock:
                model_cpu[0] += time.thread_time() - begin

    NetworkParser.infer = timed_infer  # this child process only
    start = _cpu_seconds()
    got = child_build(source, out, model, args)
    return {**got, "cpu_seconds": _cpu_seconds() - start, "model_cpu_seconds": model_cpu[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=40, help="images in the timed build (default 40)")
    parser.add_argument("--floor-images", type=int, default=16, help="images per forward-only measurement")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--parse-size", type=parse_size_arg, default=(512, 256), help="HxW (default 512x256)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the build and the floor)")
    parser.add_argument("--build-args", default="", help="more `builder build` flags")
    parser.add_argument("--workdir", type=Path, default=None, help="keep sources/builds here (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 24 images, 256x128 box")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.floor_images, args.parse_size = 24, 16, (256, 128)
    build_args = [
        "--batch-size",
        str(args.batch_size),
        "--workers",
        str(args.workers),
        "--parse-size",
        f"{args.parse_size[0]}x{args.parse_size[1]}",
        *shlex.split(args.build_args),
    ]
    if args.device != "cpu":
        build_args += ["--device", args.device]  # the last --device wins over child_build's cpu

    import torch

    work = args.workdir or Path(tempfile.mkdtemp(prefix="schp-throughput-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(
            f"torch {torch.__version__}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}; "
            f"device {args.device}, batch {args.batch_size}, workers {args.workers}, "
            f"parse size {args.parse_size[0]}x{args.parse_size[1]}",
            flush=True,
        )
        begin = time.perf_counter()
        checkpoint = make_checkpoint(work / "exp-schp-random-pascal-person-part.pth")
        source = make_source(work / "src" / "PRCC", args.images)
        from occluded_ccreid.sources import get_source

        paths = [r.source_path for r in get_source("prcc").scan(source).records]
        shapes = input_shapes(source, paths, args.parse_size, True)
        picked = np.linspace(0, len(shapes) - 1, min(args.floor_images, len(shapes))).astype(int)
        floor_shapes = [shapes[i] for i in picked]
        print(f"made {len(paths)} images and the checkpoint in {time.perf_counter() - begin:.0f} s", flush=True)

        floors, foreign, per_cpu = [], [], []
        chunks = 2
        # On CPU both ways of running the model alone are measured, and the build is held to the
        # faster: one stream on all threads, and the build's own two single-threaded streams.
        stream_counts = [1, 2] if args.device == "cpu" else [1]

        def run_floor() -> None:
            for streams in stream_counts:
                got = in_child(
                    child_floor, str(checkpoint), floor_shapes, args.batch_size, chunks, args.device, streams
                )
                floors.append(statistics.median(got["rates"]))
                foreign.append(got["foreign_cores"])
                per_cpu.append(got["images_per_cpu_second"])
                print(
                    f"  SCHP forward only, {streams} stream(s): {floors[-1]:.3f} img/s (chunks "
                    f"{', '.join(f'{r:.3f}' for r in got['rates'])}; other processes used "
                    f"{got['foreign_cores']:.2f} cores)",
                    flush=True,
                )

        run_floor()
        parser_floors = []
        if args.device != "cpu":
            got = in_child(
                child_parser_floor, str(checkpoint), floor_shapes, args.batch_size, chunks, args.device, args.parse_size
            )
            parser_floors.append(statistics.median(got["rates"]))
            print(
                f"  SCHP through the parser alone (the build's forward path): {parser_floors[-1]:.3f} img/s "
                f"(chunks {', '.join(f'{r:.3f}' for r in got['rates'])})",
                flush=True,
            )
        got = in_child(child_build_cpu, str(source), str(work / "out"), str(checkpoint), build_args)
        build_rate = got["rows"] / got["seconds"]
        build_per_cpu = got["rows"] / got["cpu_seconds"]
        foreign.append(got["foreign_cores"])
        print(
            f"  builder build: {build_rate:.3f} img/s ({got['rows']} images in {got['seconds']:.1f} s, peak RSS "
            f"{got['peak_rss_mib']:.0f} MiB; other processes used {got['foreign_cores']:.2f} cores)",
            flush=True,
        )
        run_floor()
        if max(foreign) > 0.1:
            print(
                "  WARNING: other processes took CPU time during the run, or the floors before and after the "
                "build disagree: the timings are not comparable; rerun on a quiet machine",
                flush=True,
            )
        print(
            f"  (floors in order: {', '.join(f'{f:.3f}' for f in floors)} img/s; images per CPU-second: "
            f"{', '.join(f'{f:.3f}' for f in per_cpu)}, build {build_per_cpu:.3f})"
        )
        print(
            f"  the build's CPU: {got['cpu_seconds']:.1f} s, of which SCHP's forward passes "
            f"{got['model_cpu_seconds']:.1f} s ({got['rows'] / got['model_cpu_seconds']:.3f} images per CPU-second "
            f"inside the build) and everything else {got['cpu_seconds'] - got['model_cpu_seconds']:.1f} s"
        )
        print()
        print(f"{'SCHP builder build':<36}{build_rate:>10.3f} img/s")
        print(f"{'SCHP forward pass alone (floor)':<36}{max(floors):>10.3f} img/s")
        print(f"{'build / forward':<36}{build_rate / max(floors):>10.2f}   (target >= 0.9)")
        if parser_floors:
            print(
                f"{'parser path alone':<36}{max(parser_floors):>10.3f} img/s   (build / parser path "
                f"{build_rate / max(parser_floors):.2f})"
            )
        print(
            f"{'  per CPU-second (build / forward)':<36}{build_per_cpu / max(per_cpu):>10.2f}   "
            "(rough: efficiency per CPU-second also moves with the load)"
        )
        print(f"{'peak RSS of the build':<36}{got['peak_rss_mib']:>10.0f} MiB")
        print(f"total {time.perf_counter() - begin:.0f} s")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
