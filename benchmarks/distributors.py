"""`builder build` with each distributor against `local`, side by side in one run, same files.

On the synthetic PRCC-like source of build_throughput.py (JPEG crops 100-250 px wide, 250-550 px
tall), this runs `builder build` in a fresh child process for each configuration: `local`,
`processes` with each count of --processes, and `ray` (a local cluster started by the build, so
its start-up is in the time) with each count of --ray-tasks, and prints images/s over the whole
command (scan, worker start-up, model loads, shards, card), the ratio to `local`, and whether
every folder is byte-identical to the local one. It also prints:

- Ray's fixed overhead alone, in a child: `ray.init` of a local cluster, the first task (a worker
  process starting and importing the builder), `ray.shutdown`;
- with --floor, the model's forward pass alone on the same shapes (SCHP: also the parser's own
  batch-independent path on CUDA, one image a pass on lanes), and each build against it;
- the driver's commit rate (fsync, rename, sha256 of each shard file, as builder.staging does),
  and an estimate of LaST's build time (~228k images) on 1, 8 and 32 GPUs from a per-GPU build
  rate: the best one measured in this run when it ran on CUDA, else --gpu-rate (default: the
  H100 figure in docs/performance.md). Shards are independent, so the estimate scales the rate
  linearly with the GPUs, bounded by what one driver can commit, plus the start-up measured here.

    python benchmarks/distributors.py        # 2-core CPU: 200 images, tiny SegFormer, 128x64 box
    python benchmarks/distributors.py --model schp --device cuda --images 8000 --parse-size 512x256 \\
        --processes 1,2,4 --ray-tasks "" --floor   # one GPU: the SCHP build with 1, 2, 4 workers
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_throughput import child_build, in_child, input_shapes, make_model, make_source, parse_size_arg  # noqa: E402
from build_throughput import child_floor as segformer_floor  # noqa: E402
from schp_throughput import child_floor as schp_floor  # noqa: E402
from schp_throughput import child_parser_floor, make_checkpoint  # noqa: E402

LAST_IMAGES = 228_000  # LaST, all splits (~228k)
H100_BUILD_RATE = 33_698 / 148  # img/s: the SCHP build of PRCC-sized Occluded-PRCC on one H100, local (docs)


def counts(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def child_ray_overhead(cpus: int) -> dict:
    """Seconds of a local Ray cluster's start, its first task (a worker importing the builder), a
    second task on the warm worker, and its shutdown: what a `ray` build pays before any shard."""
    import ray

    def timed(function):
        begin = time.perf_counter()
        function()
        return time.perf_counter() - begin

    @ray.remote
    def touch() -> int:
        import builder.shardmaker  # noqa: F401 - what a shard task imports first (torch, datasets)

        return os.getpid()

    times = {
        "init": timed(
            lambda: ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        )
    }
    times["first task"] = timed(lambda: ray.get(touch.remote()))
    times["warm task"] = timed(lambda: ray.get(touch.remote()))
    times["shutdown"] = timed(ray.shutdown)
    return times


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def commit_rate(folder: Path, scratch: Path) -> tuple[float, int]:
    """Bytes per second the driver commits: each shard written, fsynced, renamed and hashed, as
    builder.staging.Staging.commit does after receiving it; and the shards' total bytes."""
    from occluded_ccreid.layout import sha256_file

    scratch.mkdir(parents=True, exist_ok=True)
    shards = sorted((folder / "data").glob("*.parquet"))
    total = sum(p.stat().st_size for p in shards)
    begin = time.perf_counter()
    for shard in shards:
        tmp = scratch / (shard.name + ".tmp")
        with open(tmp, "wb") as file:
            file.write(shard.read_bytes())
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, scratch / shard.name)
        sha256_file(scratch / shard.name)
    return total / (time.perf_counter() - begin), total


def floors(args, model: Path, source: Path) -> dict[str, float]:
    """The forward pass alone on the build's shapes (and SCHP's own path on CUDA)."""
    from occluded_ccreid.sources import get_source

    paths = [r.source_path for r in get_source("prcc").scan(source).records]
    shapes = input_shapes(source, paths, args.parse_size, True)
    picked = [shapes[i] for i in np.linspace(0, len(shapes) - 1, min(args.floor_images, len(shapes))).astype(int)]
    found = {}
    if args.model == "schp":
        streams = 1 if args.device != "cpu" else 2  # as the build runs the model on each device
        got = in_child(schp_floor, str(model), picked, args.batch_size, 2, args.device, streams)
        found["SCHP forward alone, eager batches"] = statistics.median(got["rates"])
        if args.device != "cpu":
            got = in_child(child_parser_floor, str(model), picked, args.batch_size, 2, args.device, args.parse_size)
            found["SCHP parser path alone (batch-independent)"] = statistics.median(got["rates"])
    else:
        got = in_child(segformer_floor, str(model), picked, args.batch_size, 2, "fp32")
        found["SegFormer forward alone"] = statistics.median(got["rates"])
    return found


def configurations(args) -> list[tuple[str, list[str]]]:
    found = [("local", ["--distributor", "local"])]
    found += [(f"processes {n}", ["--distributor", "processes", "--processes", str(n)]) for n in counts(args.processes)]
    found += [(f"ray {n}", ["--distributor", "ray", "--processes", str(n)]) for n in counts(args.ray_tasks)]
    return found


def estimate_last(rate: float, source: str, bytes_per_image: float, driver_rate: float, startup: float) -> None:
    print(
        f"\nLaST (~{LAST_IMAGES:,} images) at {rate:.0f} img/s per GPU ({source}); rows of "
        f"{bytes_per_image / 1e3:.0f} KB (this run's) committed by one driver at {driver_rate / 1e6:.0f} MB/s; "
        f"start-up {startup:.0f} s:"
    )
    for gpus in (1, 8, 32):
        compute = LAST_IMAGES / (rate * gpus)
        commit = LAST_IMAGES * bytes_per_image / driver_rate
        total = max(compute, commit) + startup
        bound = "the driver's commits" if commit > compute else "the GPUs"
        print(
            f"  {gpus:>2} GPU(s): {total / 60:7.1f} min   (bound by {bound}; compute {compute:.0f} s, "
            f"commits {commit:.0f} s)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument(
        "--model",
        choices=["tiny", "b0", "schp"],
        default="tiny",
        help="random-weight model: tiny SegFormer (default), SegFormer-B0, or SCHP (the default parser)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--parse-size", type=parse_size_arg, default=None, help="HxW (default 128x64 on CPU, 512x256 elsewhere)"
    )
    parser.add_argument("--shard-size", type=int, default=16, help="images per shard (default 16)")
    parser.add_argument("--processes", default="1,2", help="worker counts of --distributor processes (default 1,2)")
    parser.add_argument("--ray-tasks", default="1,2", help="tasks at once of --distributor ray ('' for none)")
    parser.add_argument("--floor", action="store_true", help="also measure the forward pass alone")
    parser.add_argument("--floor-images", type=int, default=64)
    parser.add_argument(
        "--gpu-rate",
        type=float,
        default=None,
        help=f"per-GPU build rate for the LaST estimate (default: measured on CUDA, else "
        f"{H100_BUILD_RATE:.0f}, the H100 figure)",
    )
    args = parser.parse_args(argv)
    args.parse_size = args.parse_size or ((128, 64) if args.device == "cpu" else (512, 256))
    if counts(args.ray_tasks):
        try:
            import ray  # noqa: F401
        except ImportError:
            print("ray is not installed (pip install 'occluded-ccreid[ray]'): skipping the ray builds")
            args.ray_tasks = ""
    common = [
        "--device",
        args.device,
        "--batch-size",
        str(args.batch_size),
        "--shard-size",
        str(args.shard_size),
        "--parse-size",
        f"{args.parse_size[0]}x{args.parse_size[1]}",
    ]
    work = Path(tempfile.mkdtemp(prefix="distributors-"))
    try:
        begin = time.perf_counter()
        model = (
            make_checkpoint(work / "exp-schp-random-pascal-person-part.pth")
            if args.model == "schp"
            else make_model(work / f"segformer-{args.model}", args.model)
        )
        source = make_source(work / "src" / "PRCC", args.images)
        print(
            f"{args.images} images, {args.model} model, device {args.device}, parse size "
            f"{args.parse_size[0]}x{args.parse_size[1]}, batch {args.batch_size}, {os.cpu_count()} CPUs; "
            f"made in {time.perf_counter() - begin:.0f} s",
            flush=True,
        )
        results: dict[str, dict] = {}
        for name, extra in configurations(args):
            out = work / "out" / name.replace(" ", "-")
            got = in_child(child_build, str(source), str(out), str(model), common + extra)
            got["digest"] = folder_digest(out)
            results[name] = got
            print(
                f"  {name:<14} {got['rows'] / got['seconds']:8.2f} img/s ({got['rows']} rows in "
                f"{got['seconds']:.1f} s; other processes used {got['foreign_cores']:.2f} cores)",
                flush=True,
            )
        overhead = in_child(child_ray_overhead, os.cpu_count() or 1) if counts(args.ray_tasks) else None
        found_floors = floors(args, model, source) if args.floor else {}

        local = results["local"]
        local_rate = local["rows"] / local["seconds"]
        print(f"\n{'distributor':<16}{'img/s':>10}{'vs local':>10}{'seconds':>10}  identical to local")
        for name, got in results.items():
            rate = got["rows"] / got["seconds"]
            print(
                f"{name:<16}{rate:>10.2f}{rate / local_rate:>10.2f}{got['seconds']:>10.1f}  "
                f"{got['digest'] == local['digest']}"
            )
        if overhead:
            print(
                f"Ray's fixed overhead (local cluster of {os.cpu_count()} CPUs): "
                + ", ".join(f"{key} {value:.1f} s" for key, value in overhead.items())
                + f"; {sum(overhead.values()):.1f} s in all"
            )
        for what, floor in found_floors.items():
            best = max(got["rows"] / got["seconds"] for got in results.values())
            print(
                f"{what}: {floor:.2f} img/s; best build / it: {best / floor:.2f}; "
                + ", ".join(f"{name} {got['rows'] / got['seconds'] / floor:.2f}" for name, got in results.items())
            )

        driver_rate, total = commit_rate(work / "out" / "local", work / "commit")
        report = json.loads((work / "out" / "local" / "build_report.json").read_text())
        bytes_per_image = total / max(1, report["num_rows"])
        if args.gpu_rate is not None:
            rate, origin = args.gpu_rate, "--gpu-rate"
        elif args.device.startswith("cuda"):
            best = max(results, key=lambda n: results[n]["rows"] / results[n]["seconds"])
            rate, origin = results[best]["rows"] / results[best]["seconds"], f"measured here: {best}"
        else:
            rate, origin = H100_BUILD_RATE, "the H100 build of docs/performance.md, local"
        startup = (overhead or {}).get("init", 0.0) + (overhead or {}).get("first task", 0.0)
        estimate_last(rate, origin, bytes_per_image, driver_rate, startup)
        print(f"total {time.perf_counter() - begin:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
