"""`builder build --processes N` against one process, side by side in one run, same files.

On the synthetic PRCC-like source of build_throughput.py and an SCHP checkpoint with random weights
in the official layout (schp_throughput.py), this runs `builder build` in fresh child processes,
alternating one process and N worker processes (builder/distribute.py), and prints images/s over
the whole command (worker start-up and model loads included), the ratio, the peak RSS of the
parent (workers not counted), and whether both builds wrote byte-identical shards.

One process is held back by Python's interpreter lock where the model is fast (a GPU): decoding,
occlusion, PNG encoding and Parquet writing share one lock. Worker processes each have their own.
On a CPU the model streams already keep the cores busy, so expect no gain there; what this checks
on any machine is that the files are the same.

    python benchmarks/build_processes.py                                  # CPU: 160 crops, 128x64 box
    python benchmarks/build_processes.py --device cuda --images 8000 --processes 4 --parse-size 512x256
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_throughput import child_build, in_child, make_source, parse_size_arg  # noqa: E402
from schp_throughput import make_checkpoint  # noqa: E402

from builder.config import DEFAULT_PARSE_SIZE  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--processes", type=int, default=2, help="worker processes to compare with one (default 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=None, help="threads per process (default: the build's)")
    parser.add_argument("--parse-size", type=parse_size_arg, default=None,
                        help="HxW (default 128x64 on CPU, 512x256 elsewhere)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating pairs of builds (default 1)")
    args = parser.parse_args(argv)
    size = args.parse_size or ((128, 64) if args.device == "cpu" else DEFAULT_PARSE_SIZE)
    common = ["--device", args.device, "--batch-size", str(args.batch_size), "--parse-size", f"{size[0]}x{size[1]}"]
    if args.workers is not None:
        common += ["--workers", str(args.workers)]
    work = Path(tempfile.mkdtemp(prefix="build-processes-"))
    try:
        begin = time.perf_counter()
        checkpoint = make_checkpoint(work / "exp-schp-random-pascal-person-part.pth")
        source = make_source(work / "src" / "PRCC", args.images)
        print(f"{args.images} images, device {args.device}, parse size {size[0]}x{size[1]}, batch {args.batch_size}; "
              f"made in {time.perf_counter() - begin:.0f} s", flush=True)
        rates: dict[int, list[float]] = {1: [], args.processes: []}
        shards: dict[int, dict] = {}
        for round_ in range(args.rounds):
            for processes in (1, args.processes):
                out = work / f"out-{processes}"
                got = in_child(child_build, str(source), str(out), str(checkpoint),
                               common + ["--processes", str(processes)])
                rates[processes].append(got["rows"] / got["seconds"])
                report = json.loads((out / "build_report.json").read_text())
                shards[processes] = {name: shard["sha256"] for name, shard in report["shards"].items()}
                print(f"  round {round_ + 1}, {processes} process(es): {rates[processes][-1]:8.2f} img/s "
                      f"({got['rows']} rows in {got['seconds']:.1f} s, parent peak RSS {got['peak_rss_mib']:.0f} MiB; "
                      f"CPU outside the parent, its workers included: {got['foreign_cores']:.2f} cores)", flush=True)
        one, many = max(rates[1]), max(rates[args.processes])
        print()
        print(f"{'one process':<28}{one:>10.2f} img/s")
        print(f"{f'{args.processes} worker processes':<28}{many:>10.2f} img/s")
        print(f"{'ratio':<28}{many / one:>10.2f}")
        print(f"{'shards byte-identical':<28}{str(shards[1] == shards[args.processes]):>10}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
