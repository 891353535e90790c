"""One output row per source image: the occluded image and its metadata, images PNG-encoded.

PNG keeps exactly the pixels the occlusion produced (and zlib is deterministic), so rebuilt
datasets are byte-identical and the mask/part-map columns can be checked pixel by pixel.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image

from builder.occlusion import Occlusion
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


def make_row(
    record: SourceRecord, parts: np.ndarray, occlusion: Occlusion, fill: str, clean: np.ndarray | None = None
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
        "fill": fill if occlusion.occluder != "none" else "none",
        "coverage_in_band": occlusion.in_band,
        "occlusion_mask": encode_png(occlusion.mask),  # the 8-bit alpha the fill used
        "parsing": encode_png(parts),
        "source_path": record.source_path,
        **record.extras,
    }
    if clean is not None:
        row["clean_image"] = encode_png(clean)
    return row
