"""How far an export's JPEG files are from the build's pixels, per encoder setting, side by side.

An export writes each image whose source name ends in .jpg as JPEG (occluded_ccreid.export.images:
quality 100, 4:4:4 chroma). This prints the mean absolute error per image and channel (mean over
images, and the worst image), the 99th percentile of the per-pixel error, and bytes per pixel, for
that setting and a few cheaper ones, on:
  raw photo crops          re-id-sized crops (128-400 px tall, 5:12) of photos, never JPEG-compressed
  JPEG-decoded crops       the same crops saved at quality 85 4:2:0 and decoded, as PRCC's camera JPEGs are
  flat colours             3000 random single-colour 16x16 images (the YCbCr rounding's worst case)
  uniform noise            8 images of 256x128 uniform random bytes (the DCT's worst case)

    python benchmarks/export_jpeg.py --photos DIR   # JPEG/PNG photos in DIR
    python benchmarks/export_jpeg.py                # scikit-image's bundled photos, if installed
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from occluded_ccreid.export.images import JPEG_OPTIONS  # noqa: E402

SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
)
SETTINGS = [
    ("export (q100 4:4:4)", JPEG_OPTIONS),
    ("q99 4:4:4", {"quality": 99, "subsampling": 0}),
    ("q97 4:4:4", {"quality": 97, "subsampling": 0}),
    ("q95 4:4:4", {"quality": 95, "subsampling": 0}),
    ("q95 4:2:0", {"quality": 95, "subsampling": 2}),
    ("q100 4:2:0", {"quality": 100, "subsampling": 2}),
]


def roundtrip(image: np.ndarray, **options) -> tuple[np.ndarray, int]:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", **options)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")), len(buffer.getvalue())


def photos(folder: Path | None) -> list[Path]:
    if folder is not None:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    try:
        import skimage
    except ImportError:
        return []
    data = Path(skimage.__file__).parent / "data"
    return [data / name for name in SKIMAGE_PHOTOS if (data / name).is_file()]


def crops(paths: list[Path], per_photo: int, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for path in paths:
        image = np.asarray(Image.open(path).convert("RGB"))
        height, width = image.shape[:2]
        for _ in range(per_photo):
            h = int(rng.integers(min(128, height), min(height, 400) + 1))
            w = min(width, max(32, h * 5 // 12))
            r, c = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
            out.append(image[r : r + h, c : c + w].copy())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, help="a folder of photos (default: scikit-image's, if installed)")
    parser.add_argument("--crops-per-photo", type=int, default=8)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    raw = crops(photos(args.photos), args.crops_per_photo, rng)
    flat = [np.full((16, 16, 3), colour, np.uint8) for colour in rng.integers(0, 256, (3000, 3))]
    sets = {
        "raw photo crops": raw,
        "JPEG-decoded crops": [roundtrip(c, quality=85)[0] for c in raw],
        "flat colours": flat,
        "uniform noise": [rng.integers(0, 256, (256, 128, 3), dtype=np.uint8) for _ in range(8)],
    }
    if not raw:
        print("no photos (pass --photos DIR or pip install scikit-image): photo rows left out")
    print(f"{'images':20s} {'setting':20s} {'MAE mean':>9s} {'MAE max':>8s} {'p99':>5s} {'B/px':>6s}")
    for label, images in sets.items():
        if not images:
            continue
        for name, options in SETTINGS:
            errors, p99, sizes = [], [], []
            for image in images:
                decoded, size = roundtrip(image, **options)
                error = np.abs(decoded.astype(np.int16) - image.astype(np.int16))
                errors.append(error.mean())
                p99.append(np.percentile(error, 99))
                sizes.append(size / (image.shape[0] * image.shape[1]))
            print(
                f"{label + f' ({len(images)})':20s} {name:20s} {np.mean(errors):9.3f} {np.max(errors):8.3f} "
                f"{np.mean(p99):5.1f} {np.mean(sizes):6.2f}"
            )


if __name__ == "__main__":
    main()
