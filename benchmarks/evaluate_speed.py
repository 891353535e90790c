"""Time `occluded_ccreid.evaluation.evaluate` against the per-query loop CC-ReID code uses.

Both run in this process on the same synthetic distance matrix (default 10,000 x 10,000, float32,
LTCC-like labels: identities seen from several cameras in several outfits), so the times printed
side by side are comparable. The loop is CAL / Simple-CCReID's `evaluate_with_clothes` (one
argsort of the whole matrix, then NumPy set operations per query; tests/support/cal_reference.py, the
reference the tests use too), with a stable argsort so both must agree exactly; the script checks
that they do.

    python benchmarks/evaluate_speed.py                 # 10,000 x 10,000, standard + cloth_changing
    python benchmarks/evaluate_speed.py --size 2000 --modes same_clothes
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from cal_reference import cal_evaluate  # noqa: E402

from occluded_ccreid.evaluation import MODES, evaluate  # noqa: E402


def synthetic(size: int, seed: int = 0):
    """LTCC-like labels (~20 images per identity over 12 cameras, 3 outfits) and a weak model."""
    rng = np.random.default_rng(seed)
    num_ids = max(2, size // 20)
    q_pids, g_pids = rng.integers(0, num_ids, size), rng.integers(0, num_ids, size)
    q_cams, g_cams = rng.integers(0, 12, size), rng.integers(0, 12, size)
    q_clothes = q_pids * 3 + rng.integers(0, 3, size)
    g_clothes = g_pids * 3 + rng.integers(0, 3, size)
    dist = rng.random((size, size), dtype=np.float32)
    dist -= 0.3 * (q_pids[:, None] == g_pids[None, :])  # same identity: closer, on average
    return dist, q_pids, g_pids, q_cams, g_cams, q_clothes, g_clothes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000, help="queries = gallery images (default 10000)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=["standard", "cloth_changing"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = synthetic(args.size, args.seed)
    print(f"distance matrix {args.size} x {args.size} float32")
    print(f"{'mode':<16}{'evaluate (s)':>14}{'per-query loop (s)':>20}{'speed-up':>10}{'mAP':>9}{'rank1':>8}")
    for mode in args.modes:
        start = time.perf_counter()
        result = evaluate(*data, mode=mode)
        fast = time.perf_counter() - start
        start = time.perf_counter()
        loop_map, loop_cmc, _ = cal_evaluate(*data, mode=mode)
        slow = time.perf_counter() - start
        if not (
            np.isclose(result["mAP"], loop_map, rtol=0, atol=1e-9)
            and np.allclose(result["cmc"], loop_cmc, rtol=0, atol=1e-9)
        ):
            raise SystemExit(f"{mode}: evaluate and the loop disagree (mAP {result['mAP']} vs {loop_map})")
        print(f"{mode:<16}{fast:>14.2f}{slow:>20.2f}{slow / fast:>9.1f}x{result['mAP']:>9.4f}{result['rank1']:>8.4f}")
    print("results identical (mAP and CMC within 1e-9)")


if __name__ == "__main__":
    main()
