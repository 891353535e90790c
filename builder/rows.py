"""One output row per source image: the occluded image and its metadata, images PNG-encoded.

PNG keeps exactly the pixels the occlusion produced (and zlib is deterministic), so rebuilt
datasets are byte-identical and the mask/part-map columns can be checked pixel by pixel.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from occluded_ccreid.occlusion import Occlusion
from occluded_ccreid.parts import PART_PALETTE
from occluded_ccreid.sources import SourceRecord

# zlib's run-length strategy after PNG's row filters: on JPEG-decoded photo crops (~400x170) it
# encodes in 3.2 ms against 5.4 ms at the default strategy's level 3 and 12 ms at level 6, for the
# same size as level 3 (73 KiB; 3% over level 6); masks and part maps are long runs anyway.
# Encoding is the largest per-image cost outside the model.
PNG_COMPRESS_LEVEL = 3
PNG_STRATEGY = zlib.Z_RLE


def encode_png(array: np.ndarray) -> dict:
    """An `Image` feature value (bytes, no path) holding `array` as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL, compress_type=PNG_STRATEGY)
    return {"bytes": buffer.getvalue(), "path": None}


# Part maps as palette PNGs at zlib's default strategy, level 6 (Pillow does not filter palette
# lines). benchmarks/parsing_png.py, 200 maps at re-id sizes, against the 8-bit grey PNG at the
# settings above: tests/synthetic.py's maps take 0.617x the bytes in the same time (0.28 ms a map);
# maps with ragged, noisy borders take the same bytes in 1.4-2.3x the time (~1.4 ms a map).
PARTS_COMPRESS_LEVEL = 6


def encode_parts(parts: np.ndarray) -> dict:
    """A part map (values 0..6) as a palette PNG: the pixel values are the part ids, which
    `np.asarray` of the decoded image gives back, and the palette (PART_PALETTE) makes the dataset
    viewer show the parts in colour instead of near-black grey."""
    image = Image.fromarray(parts)  # mode L
    image.putpalette([channel for colour in PART_PALETTE for channel in colour])  # L -> P, values unchanged
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PARTS_COMPRESS_LEVEL)
    return {"bytes": buffer.getvalue(), "path": None}


def make_row(
    record: SourceRecord,
    parts: np.ndarray,
    occlusion: Occlusion,
    person_donors: Sequence[str | None] = (),
    clean: np.ndarray | None = None,
) -> dict:
    row = {
        "image": encode_png(occlusion.image),
        "pid": record.pid,
        "camid": record.camid,
        "clothes_id": record.clothes_id,
        "occluded_part": occlusion.part,
        "pool_scale": occlusion.pool_scale,
        "occluded_ratio": occlusion.ratio,
        "occluder": occlusion.occluder,
        "fill": occlusion.fill,
        "coverage_in_band": occlusion.in_band,
        "part_visibility": list(occlusion.visibility),
        "occluders": [drawn.as_row() for drawn in occlusion.drawn],
        "person_donors": list(person_donors),
        "occlusion_mask": encode_png(occlusion.mask),  # the 8-bit alpha the fill used
        "parsing": encode_parts(parts),
        "source_path": record.source_path,
        **record.extras,
    }
    if clean is not None:
        row["clean_image"] = encode_png(clean)
    return row
