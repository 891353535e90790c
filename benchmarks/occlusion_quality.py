"""How well do occluders hit the person? The paper's part occluder, with and without a coverage
band, against Feng et al.'s rectangles, on the same synthetic source.

The synthetic pedestrians are drawn at varied scales and offsets inside their crops, as loose
detections are, with true part maps, so `occluded_ratio` (the alpha-weighted share of the person
under the occluder) is exact. Prints per method: the share of occluded images whose occluder
covers under 5% of the person, the mean and spread of `occluded_ratio`, rows outside the band, and
how often each part is hit.

    python benchmarks/occlusion_quality.py [--images 600]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from synthetic import SIZES, SyntheticTree, draw_person  # noqa: E402

from builder.pipeline import BuildConfig, build  # noqa: E402
from occluded_ccreid.occlusion import OcclusionConfig  # noqa: E402
from occluded_ccreid.parts import PART_NAMES  # noqa: E402

METHODS = {
    "paper (no band)": OcclusionConfig(min_coverage=0.0),
    "paper + band [0.05, 1] (default)": OcclusionConfig(),
    "paper + band [0.2, 0.5]": OcclusionConfig(min_coverage=0.2, max_coverage=0.5),
    "Feng et al. rectangles": OcclusionConfig(occluder="rectangle", min_coverage=0.0),
}


def make_loose_ltcc(base: Path, images: int) -> SyntheticTree:
    """An LTCC-layout tree whose people fill 45-100% of the crop at random offsets."""
    tree = SyntheticTree(base / "LTCC", base / "LTCC-parsing")
    rng = np.random.default_rng(0)
    folders = ["train", "query", "test"]
    for i in range(images):
        pid, clothes = 1 + i % 40, 1 + (i // 40) % 3
        rel = f"{folders[i % 3]}/{pid:03d}_{clothes}_c{1 + i % 12}_{i:06d}.png"
        scale = float(rng.uniform(0.45, 1.0))
        slack = (1 - scale) / 2
        offset = (float(rng.uniform(-slack, slack)), float(rng.uniform(-slack, slack)))
        image, parts = draw_person(*SIZES[i % len(SIZES)], rel, (pid, clothes), scale=scale, offset=offset)
        tree._write(rel, image, parts)
    return tree


def measure(tree: SyntheticTree, out: Path, config: OcclusionConfig) -> dict:
    import pyarrow.parquet as pq

    build(BuildConfig("ltcc", tree.root, out, parsing_dir=tree.parsing_dir, occlusion=config, progress=False))
    table = pq.read_table(
        sorted((out / "data").glob("*.parquet")),
        columns=["occluded_ratio", "occluded_part", "occluder", "coverage_in_band"],
    )
    occluded = np.array([o != "none" for o in table["occluder"].to_pylist()])
    ratio = np.array(table["occluded_ratio"].to_pylist())[occluded]
    parts = np.bincount(np.array(table["occluded_part"].to_pylist())[occluded], minlength=len(PART_NAMES))
    return {
        "occluded": int(occluded.sum()),
        "under_5pct": float((ratio < 0.05).mean()),
        "mean": float(ratio.mean()),
        "std": float(ratio.std()),
        "out_of_band": int((~np.array(table["coverage_in_band"].to_pylist())).sum()),
        "parts": parts[1:] / max(1, occluded.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tree = make_loose_ltcc(Path(tmp), args.images)
        print(f"{args.images} synthetic crops, people at 45-100% of the crop size, true part maps\n")
        header = (
            f"{'method':34s} {'<5% of person':>13s} {'mean ratio':>10s} {'std':>6s} {'out of band':>11s}   "
            + " ".join(f"{n[:8]:>8s}" for n in PART_NAMES[1:])
        )
        print(header)
        print("-" * len(header))
        for i, (name, config) in enumerate(METHODS.items()):
            r = measure(tree, Path(tmp) / f"out{i}", config)
            parts = (
                " ".join(f"{p:8.1%}" for p in r["parts"])
                if config.occluder == "parts"
                else " ".join(f"{'-':>8s}" for _ in r["parts"])
            )
            print(
                f"{name:34s} {r['under_5pct']:13.1%} {r['mean']:10.3f} {r['std']:6.3f} {r['out_of_band']:11d}   {parts}"
            )
        print("\nparts columns: share of occluded images whose occluder is that part")


if __name__ == "__main__":
    main()
