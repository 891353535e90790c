"""What does occluding on the fly cost a training loader, per image, beside decoding the stored image?

Builds a synthetic LTCC-layout tree (true part maps, PRCC-like crop sizes) with `--keep-clean`,
then, in one run and one thread, times per image: decoding the stored occluded image (what a
loader does without the transform), and `OcclusionTransform` for each occluder kind (decoding the
clean image and part map, drawing, rendering and fusing; person donors decoded from the split).
Prints milliseconds per image and the ratio to decoding.

    python benchmarks/occlusion_transform.py [--images 300] [--height 384 --width 160]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from synthetic import SyntheticTree, draw_person, make_objects  # noqa: E402

from builder.pipeline import BuildConfig, build  # noqa: E402
from occluded_ccreid.loading import load  # noqa: E402
from occluded_ccreid.occlusion import OcclusionConfig  # noqa: E402
from occluded_ccreid.occlusion.transform import OcclusionTransform, PersonPool, to_array  # noqa: E402


def make_tree(base: Path, images: int, size: tuple[int, int]) -> SyntheticTree:
    tree = SyntheticTree(base / "LTCC", base / "LTCC-parsing")
    for i in range(images):
        pid, clothes = 1 + i % 40, 1 + (i // 40) % 3
        rel = f"train/{pid:03d}_{clothes}_c{1 + i % 12}_{i:06d}.png"
        image, parts = draw_person(*size, rel, (pid, clothes))
        tree._write(rel, image, parts)
    for folder, pid in (("query", 900), ("test", 901)):  # the layout's other splits, one image each
        image, parts = draw_person(*size, folder, (pid, 1))
        tree._write(f"{folder}/{pid:03d}_1_c1_000000.png", image, parts)
    return tree


def per_image_ms(rows: list[dict], work) -> float:
    start = time.perf_counter()
    for row in rows:
        work(row)
    return 1000 * (time.perf_counter() - start) / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=160)
    args = parser.parse_args()
    import torch
    from datasets import Image

    torch.set_num_threads(1)  # as in a loader worker
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        tree = make_tree(base, args.images, (args.height, args.width))
        objects = make_objects(base / "objects")
        out = base / "built"
        build(BuildConfig("ltcc", tree.root, out, parsing_dir=tree.parsing_dir, keep_clean=True, progress=False))
        split = load(out, split="train")
        for column in ("image", "clean_image", "parsing"):
            split = split.cast_column(column, Image(decode=False))  # time the decoding ourselves
        rows = [split[i] for i in range(len(split))]
        people = PersonPool(split)
        decode = per_image_ms(rows, lambda row: to_array(row["image"], "RGB"))
        print(f"{len(rows)} images of {args.height}x{args.width}, one thread, per image:")
        print(f"  {'decode the stored image (PNG)':44s} {decode:7.2f} ms   1.00x")
        kinds = {
            "parts (the paper's)": OcclusionConfig(),
            "rectangle": OcclusionConfig(occluder="rectangle"),
            "person": OcclusionConfig(occluder="person"),
            "objects": OcclusionConfig(occluder="objects", objects_dir=str(objects)),
            "parts,person,objects x 1-3": OcclusionConfig(
                occluder="parts,person,objects", occluders=(1, 3), objects_dir=str(objects)
            ),
        }
        for name, config in kinds.items():
            transform = OcclusionTransform(config, seed=0, people=people)
            epochs = iter(range(1, 10**9))
            cost = per_image_ms(rows, lambda row: transform(row, next(epochs)))  # noqa: B023
            print(f"  {'transform: ' + name:44s} {cost:7.2f} ms {cost / decode:6.2f}x")
        same = np.mean(
            [
                np.array_equal(OcclusionTransform(OcclusionConfig(), 0)(row, 0).image, to_array(row["image"], "RGB"))
                for row in rows[:20]
            ]
        )
        print(f"  (check: epoch 0 equals the built image for {same:.0%} of 20 rows)")


if __name__ == "__main__":
    main()
