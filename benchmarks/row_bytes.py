"""Encoded bytes per pixel of a build's rows, next to the shard plan's upper bound.

The disk check before a build (builder.staging.check_free_space) refuses a build that cannot fit
by a realistic estimate, builder.shards.REALISTIC_BYTES_PER_PIXEL; this measures what that
constant stands for. Person crops are cut from photos at random places, resized to re-id crop
sizes (100-250 px wide, 250-550 tall, as PRCC's), saved as JPEG and decoded (as a build reads
them), given a part map (tests/support/synthetic.py's pedestrian layout at the crop's size) and occluded
with the default options (occluded_ccreid.occlusion), then PNG-encoded as rows are (builder.rows.make_row).
Printed per source of crops: bytes per pixel of each PNG column and of the whole row, and the
upper bound's size over the measured one.

    python benchmarks/row_bytes.py --photos DIR      # JPEG/PNG photos in DIR (e.g. real re-id crops)
    python benchmarks/row_bytes.py                   # scikit-image's bundled photos, if installed,
                                                     # and synthetic people
Photos without an install: `pip download scikit-image --no-deps` and unzip skimage/data/*.png.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "support")]

from synthetic import draw_person  # noqa: E402

from builder.rows import encode_parts, encode_png  # noqa: E402
from builder.shards import REALISTIC_BYTES_PER_PIXEL, row_bytes_bound  # noqa: E402
from occluded_ccreid.occlusion import OcclusionConfig, image_rng, occlude_batch  # noqa: E402

SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "color.png",
)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def person_crops(photos: list[np.ndarray], count: int, quality: int, rng: np.random.Generator):
    """JPEG-decoded crops of re-id size cut from random places of the photos."""
    for i in range(count):
        photo = photos[i % len(photos)]
        height, width = int(rng.integers(250, 551)), int(rng.integers(100, 251))
        ph, pw = photo.shape[:2]
        box_w = int(rng.integers(min(pw, 60), min(pw, int(ph * width / height)) + 1))  # person aspect
        box_h = min(ph, round(box_w * height / width))
        top, left = int(rng.integers(0, ph - box_h + 1)), int(rng.integers(0, pw - box_w + 1))
        crop = Image.fromarray(photo[top : top + box_h, left : left + box_w]).resize((width, height), Image.BICUBIC)
        yield jpeg_roundtrip(np.asarray(crop), quality)


def synthetic_crops(count: int, quality: int, rng: np.random.Generator):
    for i in range(count):
        height, width = int(rng.integers(250, 551)), int(rng.integers(100, 251))
        yield jpeg_roundtrip(draw_person(height, width, ("bytes", i), ("outfit", i % 7))[0], quality)


def measure(crops: list[np.ndarray]) -> dict[str, float]:
    """Bytes per pixel of each PNG column of the rows of these crops, and the bound's ratio."""
    parts = [draw_person(*c.shape[:2], ("parts", i), ("outfit", i))[1] for i, c in enumerate(crops)]
    occlusions = occlude_batch(crops, parts, [image_rng(0, f"crop{i}") for i in range(len(crops))], OcclusionConfig())
    pixels = sum(c.shape[0] * c.shape[1] for c in crops)
    sizes = {
        "clean": sum(len(encode_png(c)["bytes"]) for c in crops),
        "image": sum(len(encode_png(o.image)["bytes"]) for o in occlusions),
        "mask": sum(len(encode_png(o.mask)["bytes"]) for o in occlusions),
        "parsing": sum(len(encode_parts(p)["bytes"]) for p in parts),
    }
    per_pixel = {k: v / pixels for k, v in sizes.items()}
    per_pixel["row"] = (sizes["image"] + sizes["mask"] + sizes["parsing"]) / pixels
    bound = sum(row_bytes_bound(*c.shape[:2], keep_clean=False) for c in crops)
    per_pixel["bound/row"] = bound / (sizes["image"] + sizes["mask"] + sizes["parsing"])
    return per_pixel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, help="a folder of photos (default: scikit-image's, if installed)")
    parser.add_argument("--crops", type=int, default=200)
    parser.add_argument("--quality", type=int, nargs="+", default=[75, 95], help="JPEG qualities of the crops")
    args = parser.parse_args()
    folder = args.photos
    if folder is None:
        try:
            import skimage

            folder = Path(skimage.__file__).parent / "data"
        except ImportError:
            print("scikit-image is not installed: synthetic people only (pass --photos DIR for real ones)")
    files = (
        [
            p
            for p in sorted(folder.iterdir())
            if p.suffix.lower() in (".jpg", ".jpeg", ".png") and (args.photos is not None or p.name in SKIMAGE_PHOTOS)
        ]
        if folder is not None
        else []
    )
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in files]
    print(
        f"{'crops':<28} {'clean':>6} {'image':>6} {'mask':>6} {'parsing':>7} {'row':>6} {'bound/row':>9}"
        "  (bytes per pixel; bound: builder.shards.row_bytes_bound)"
    )
    for quality in args.quality:
        rng = np.random.default_rng(0)
        sources = {f"synthetic people, q{quality}": list(synthetic_crops(args.crops, quality, rng))}
        if photos:
            sources[f"{len(photos)} photos, q{quality}"] = list(person_crops(photos, args.crops, quality, rng))
        for name, crops in sources.items():
            m = measure(crops)
            print(
                f"{name:<28} {m['clean']:6.3f} {m['image']:6.3f} {m['mask']:6.3f} {m['parsing']:7.3f} "
                f"{m['row']:6.3f} {m['bound/row']:9.2f}"
            )
    print(f"builder.shards.REALISTIC_BYTES_PER_PIXEL = {REALISTIC_BYTES_PER_PIXEL} (row, without clean_image)")


if __name__ == "__main__":
    main()
