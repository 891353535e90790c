"""One stored image, made into the file its source path names: the one place exports encode images.

Builds store every image as PNG. A training codebase finds its files by the source dataset's own
names (CAL's PRCC class globs ``*.jpg``), so each image is written under its ``source_path`` in the
format that name's extension says:

* ``.png``: the stored PNG bytes, unchanged (lossless, nothing decoded);
* ``.jpg`` / ``.jpeg``: JPEG at quality 100 with 4:4:4 chroma (no subsampling; `JPEG_OPTIONS`).
  The mean absolute difference from the build's pixels, per image and channel, is at most one
  grey level (`JPEG_MEAN_ERROR_BOUND`), reached only by flat colours whose RGB -> YCbCr -> RGB
  rounding moves every pixel by one; on photo content it is below 0.5 (measured with
  ``benchmarks/export_jpeg.py``: 0.37 on average and 0.49 at most on raw photo crops, 0.12 on
  JPEG-decoded crops such as PRCC's, 0.48 on uniform noise; quality 95 gives 1.5 / 0.5 / 3.2, and
  4:2:0 chroma 46 on noise);
* ``.bmp``, ``.tif`` / ``.tiff``, ``.webp``: lossless (TIFF with LZW, WebP in lossless mode).

Any other extension is refused: there is no lossless or near-lossless encoder to write it with.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

# Pillow format and save options per extension (lower case). JPEG: quality 100 and 4:4:4 keep the
# mean error within one grey level whatever the content (see the module doc). Not optimize=True:
# Pillow then encodes into a buffer of 2 bytes a pixel, and noisy content at quality 100 needs
# more (uniform noise: 4.1), which fails with "Suspension not allowed here".
JPEG_OPTIONS: dict[str, Any] = {"quality": 100, "subsampling": 0}
FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    ".png": ("PNG", {}),
    ".jpg": ("JPEG", JPEG_OPTIONS),
    ".jpeg": ("JPEG", JPEG_OPTIONS),
    ".bmp": ("BMP", {}),
    ".tif": ("TIFF", {"compression": "tiff_lzw"}),
    ".tiff": ("TIFF", {"compression": "tiff_lzw"}),
    ".webp": ("WEBP", {"lossless": True, "quality": 100, "method": 4, "exact": True}),
}
# The mean absolute error per image and channel that JPEG_OPTIONS stays within (module doc).
JPEG_MEAN_ERROR_BOUND = 1.0


class ExportError(ValueError):
    """An export cannot go on; the message is one line saying what, where and how to fix it."""


def first_line(exc: BaseException) -> str:
    """An exception's message as one line (its first), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def relative_target(source_path: str) -> PurePosixPath:
    """Where a row's file goes below the export folder: its source path (a manifest's absolute
    path without its leading ``/``, as ``--parsing-dir`` maps are named). Refuses paths that
    would leave the folder."""
    rel = PurePosixPath(source_path.lstrip("/"))
    if not source_path.strip("/") or ".." in rel.parts or not rel.name or rel.name.startswith("."):
        raise ExportError(
            f"refusing to write outside the export folder or to a hidden name: source_path {source_path!r}"
        )
    return rel


def image_bytes(image: dict, suffix: str, where: str) -> bytes:
    """The bytes of a stored (undecoded) image, encoded as a file named ``*<suffix>`` must be.

    `image` is a `datasets.Image(decode=False)` value (``bytes``, or a ``path`` to read);
    `where` names the row in errors."""
    data = stored_bytes(image, where)
    fmt = FORMATS.get(suffix.lower())
    if fmt is None:
        raise ExportError(
            f"{where}: cannot write a {suffix or 'extension-less'} file; exports write "
            f"{', '.join(sorted(FORMATS))} (the name says the format)"
        )
    name, options = fmt
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        if name == "PNG" and img.format == "PNG":
            return data  # stored as PNG already: the exact bytes
        img.load()
        if name == "JPEG" and img.mode not in ("RGB", "L", "CMYK"):
            img = img.convert("RGB")  # e.g. RGBA or 16-bit grey: JPEG holds neither
        out = io.BytesIO()
        img.save(out, format=name, **options)
    return out.getvalue()


def stored_bytes(image: dict | None, where: str) -> bytes:
    if image is None:
        raise ExportError(f"{where}: the row has no image")
    data, path = image.get("bytes"), image.get("path")
    if data is not None:
        return data
    if path is None:
        raise ExportError(f"{where}: the row has no image")
    return Path(path).read_bytes()


@dataclass(frozen=True)
class Written:
    path: str  # relative to the export folder, POSIX
    sha256: str
    num_bytes: int


def write_new(root: Path, rel: PurePosixPath, data: bytes) -> Written:
    """Write `data` to ``root/rel`` through a temporary name, so the final name only ever holds a
    whole file. The caller has checked that the target is free or its own."""
    target = root.joinpath(*rel.parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")  # hidden: no loader's glob matches it
    with open(tmp, "wb") as file:
        file.write(data)
    os.replace(tmp, target)
    return Written(rel.as_posix(), hashlib.sha256(data).hexdigest(), len(data))
