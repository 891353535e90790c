"""Peak memory of `builder build manifest` at 20,000 rows against 200,000 rows (target: <= 1.10x).

Each build runs in its own child process (`python -c 'builder.cli.main(...)'` from this checkout)
and its peak RSS is read from `wait4` when it exits, so the two numbers are measured the same way,
side by side, in one run. The rows are tiny images (32x16 synthetic pedestrians with their true
part maps, read with --parsing-dir, so no model runs); every row has its own path (hard links to a
few hundred distinct images, so the source takes little disk), pid, split, camid, clothes_id and
one extra column, as a Market-1501-like manifest would.

    python benchmarks/manifest_memory.py                   # 20,000 vs 200,000 rows
    python benchmarks/manifest_memory.py --rows 2000 20000 # quicker
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from synthetic import draw_person  # noqa: E402

DISTINCT = 256  # distinct images; every row links to one of them


def make_source(folder: Path, rows: int) -> Path:
    """Images, part maps and a manifest of `rows` rows under `folder`; returns the manifest."""
    originals = folder / "originals"
    originals.mkdir(parents=True)
    for i in range(DISTINCT):
        image, parts = draw_person(32, 16, ("bench", i), (i % 50, i % 3))
        Image.fromarray(image).save(originals / f"{i}.png")
        Image.fromarray(parts).save(originals / f"{i}.map.png")
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "pid", "split", "camid", "clothes_id", "frame"])
        for row in range(rows):
            sub = f"{row // 1000:04d}"
            rel = f"images/{sub}/{row:07d}.png"
            if row % 1000 == 0:
                (folder / "images" / sub).mkdir(parents=True)
                (folder / "parsing" / "images" / sub).mkdir(parents=True)
            os.link(originals / f"{row % DISTINCT}.png", folder / rel)
            os.link(originals / f"{row % DISTINCT}.map.png", folder / "parsing" / rel)
            pid = row // 20
            split = ("train", "train", "query", "gallery", "gallery")[pid % 5]
            writer.writerow([rel, pid, split, row % 6, f"c{row % 2}", row % 20])
    return manifest


def build_peak_rss(manifest: Path, out: Path, batch_size: int) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one build in a child process."""
    code = "import sys; from builder.cli import main; sys.exit(main())"
    args = [
        sys.executable,
        "-c",
        code,
        "build",
        "manifest",
        str(manifest),
        "--out",
        str(out),
        "--parsing-dir",
        str(manifest.parent / "parsing"),
        "--no-progress",
        "--batch-size",
        str(batch_size),
    ]
    start = time.perf_counter()
    child = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    output = child.stdout.read().decode()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"build failed ({child.returncode}):\n{output}")
    print("   ", output.strip().splitlines()[0])
    return usage.ru_maxrss / 1024, seconds  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs=2, default=[20_000, 200_000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tmp", type=Path, default=None, help="where to put the sources and builds")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for rows in args.rows:
            folder = Path(tmp) / f"src-{rows}"
            start = time.perf_counter()
            manifest = make_source(folder, rows)
            print(f"{rows:,} rows: source written in {time.perf_counter() - start:.0f} s; building ...", flush=True)
            results[rows] = build_peak_rss(manifest, Path(tmp) / f"out-{rows}", args.batch_size)
            rss, seconds = results[rows]
            print(
                f"{rows:>9,} rows: peak RSS {rss:,.0f} MiB, {seconds:,.0f} s ({rows / seconds:,.0f} rows/s)", flush=True
            )
    (small, (rss_small, _)), (large, (rss_large, _)) = results.items()
    print(f"peak RSS {large:,} / {small:,} rows: {rss_large / rss_small:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
