"""The `parsing` column's encoding: palette PNG (what builds write, builder.rows.encode_parts)
against the 8-bit grey PNG written before (builder.rows.encode_png), side by side.

Both hold the same values 0..6 (checked with np.asarray for every map). Maps are tests/support/synthetic.py's
pedestrians at re-id crop sizes (100-250 px wide, 250-550 tall): as drawn (clean part borders), and
"ragged" (labels at a quarter of the size with 8% of them replaced at random, upsampled: borders
like a model's). Printed: kB of all maps and ms a map for each encoding, and their ratios.

    python benchmarks/parsing_png.py [--maps 100]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "support")]

from synthetic import draw_person  # noqa: E402

from builder.rows import encode_parts, encode_png  # noqa: E402


def part_maps(count: int, ragged: bool) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    maps = []
    for i in range(count):
        height, width = int(rng.integers(250, 551)), int(rng.integers(100, 251))
        parts = draw_person(height, width, ("parts", i), ("outfit", i % 7))[1]
        if ragged:
            small = np.asarray(Image.fromarray(parts).resize((width // 4, height // 4), Image.Resampling.NEAREST))
            small = small.copy()
            noise = rng.random(small.shape) < 0.08
            small[noise] = rng.integers(0, 7, int(noise.sum()))
            parts = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR))
        maps.append(np.clip(parts, 0, 6).astype(np.uint8))
    return maps


def measure(maps: list[np.ndarray], encode) -> tuple[int, float]:
    """(bytes of all maps, ms a map), the best of three timings."""
    size, best = 0, float("inf")
    for _ in range(3):
        start = time.perf_counter()
        encoded = [encode(parts)["bytes"] for parts in maps]
        best = min(best, time.perf_counter() - start)
        size = sum(len(b) for b in encoded)
    for parts, data in zip(maps, encoded, strict=True):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), parts)
    return size, 1000 * best / len(maps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=100)
    args = parser.parse_args()
    print(f"{'maps':<14} {'grey kB':>8} {'ms':>6} {'palette kB':>10} {'ms':>6} {'bytes ratio':>11} {'time ratio':>10}")
    for name, ragged in (("clean", False), ("ragged", True)):
        maps = part_maps(args.maps, ragged)
        (grey, grey_ms), (palette, palette_ms) = measure(maps, encode_png), measure(maps, encode_parts)
        print(
            f"{name:<14} {grey / 1e3:8.1f} {grey_ms:6.2f} {palette / 1e3:10.1f} {palette_ms:6.2f} "
            f"{palette / grey:11.3f} {palette_ms / grey_ms:10.3f}"
        )


if __name__ == "__main__":
    main()
