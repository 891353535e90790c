"""Peak memory of `builder build` on a small LTCC tree with one huge PNG, next to the same tree without it.

    python benchmarks/huge_image_memory.py                 # one 13000x13000 PNG (169 Mpx)
    python benchmarks/huge_image_memory.py --side 6000

Each build runs in its own process (the CLI, a tiny SegFormer with the 18 ATR labels of the default
checkpoint, so the full-size logits are as large as the default model's); the peak RSS of that
process is read with wait4. Prints both peaks, their ratio, and what the build did with the
huge image (builder.images.MAX_PIXELS: skipped with a reason in build_report.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Linux carries a process's peak RSS across fork and exec into its children, so this process stays
# small (standard library only) and makes the tree, the model and the huge PNG in another process.
SETUP = r"""
import sys
from pathlib import Path
import numpy as np
from PIL import Image
sys.path[:0] = [sys.argv[1] + "/tests/support"]
from synthetic import make_ltcc_tree, make_tiny_segformer
ATR = ["Background", "Hat", "Hair", "Sunglasses", "Upper-clothes", "Skirt", "Pants", "Dress", "Belt",
       "Left-shoe", "Right-shoe", "Face", "Left-leg", "Right-leg", "Left-arm", "Right-arm", "Bag", "Scarf"]
tmp, side = Path(sys.argv[2]), int(sys.argv[3])
make_ltcc_tree(tmp / "src", quirks=False)
make_tiny_segformer(tmp / "model", dict(enumerate(ATR)))
row = np.random.default_rng(0).integers(0, 255, size=(1, side, 3), dtype=np.uint8)
# noise rows repeated: quick to write, still 3 bytes a pixel once decoded
Image.fromarray(np.repeat(row, side, axis=0)).save(tmp / "huge.png", compress_level=1)
"""
RUN = "import sys; from builder.cli import main; sys.exit(main(sys.argv[1:]))"
HUGE_NAME = "001_1_c1_999.png"


def build_peak(args: list[str]) -> tuple[int, int, str]:
    """(exit status, peak RSS in MiB, stderr) of one CLI build in a fresh interpreter; wait4 gives
    the peak of a process the kernel killed for memory too."""
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([sys.executable, "-c", RUN, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return child.returncode, usage.ru_maxrss // 1024, err.read()


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--side", type=int, default=13000, help="side of the square huge PNG (default 13000)")
    options = cli.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(
            [sys.executable, "-c", SETUP, str(ROOT), str(tmp), str(options.side)], check=True, capture_output=True
        )
        source = tmp / "src" / "LTCC"
        common = ["--model", str(tmp / "model"), "--device", "cpu", "--no-progress"]
        status, plain, err = build_peak(["build", "ltcc", str(source), "--out", str(tmp / "plain"), *common])
        assert status == 0, err
        (tmp / "huge.png").rename(source / "train" / HUGE_NAME)
        status, big, err = build_peak(["build", "ltcc", str(source), "--out", str(tmp / "huge"), *common])
        print(f"peak RSS, build without the huge image: {plain} MiB")
        print(
            f"peak RSS, build with one {options.side}x{options.side} PNG: {big} MiB (exit {status}); "
            f"ratio {big / plain:.2f}"
        )
        if status == 0:
            report = json.loads((tmp / "huge" / "build_report.json").read_text())
            skips = [s["reason"] for s in report["skipped"] if s["source_path"].endswith(HUGE_NAME)]
            print(f"huge image: {'skipped: ' + skips[0] if skips else 'built as a row'}")
        else:
            print(err[-2000:])


if __name__ == "__main__":
    main()
