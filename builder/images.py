"""Decode a source image to an RGB uint8 array, whatever mode it was saved in."""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}

# Largest image a build decodes: 2048x2048 pixels. Person crops are far smaller (PRCC and LTCC
# crops are well under 1 Mpx; a whole 1080p frame is 2 Mpx). Memory is what the limit bounds: an
# image being finished holds ~150 bytes a pixel for a moment (its full-size logits, 18 float32
# planes for the default model, and the occlusion's planes), ~0.6 GB at the limit; a 13000x13000
# PNG would need over 20 GB. Larger images are skipped, with their size, in the build report.
MAX_PIXELS = 2048 * 2048


class DecodeError(Exception):
    """The file cannot be decoded as an image; the build skips it and reports the reason."""

    skip_prefix = "cannot decode image"

    def skip_reason(self) -> str:
        return f"{self.skip_prefix}: {self}"


class ImageTooLargeError(DecodeError):
    """The image has more than MAX_PIXELS pixels; it is skipped before its pixels are decoded."""

    skip_prefix = "image too large"


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def open_regular(path: str | Path) -> BinaryIO:
    """`path` opened for binary reading if it is a regular file (a link to one included); else
    DecodeError. A FIFO, device or socket is never opened: a FIFO named `x.jpg` would block the
    build for ever waiting for a writer, and opening some devices acts on them. The file is
    checked by its stat first and again on the opened descriptor, opened without waiting, so one
    swapped in between is refused too."""
    try:
        _check_regular(os.stat(path).st_mode)
        file = open(path, "rb", opener=_without_waiting)  # noqa: SIM115 - returned open, closed by the caller
    except OSError as exc:  # missing, a link loop (ELOOP), no permission, ...
        raise DecodeError(f"{type(exc).__name__}: {exc}") from exc
    try:
        _check_regular(os.fstat(file.fileno()).st_mode)
        os.set_blocking(file.fileno(), True)
    except BaseException:
        file.close()
        raise
    return file


def _check_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise DecodeError(f"{kind}, not a regular file: never read")


def _without_waiting(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))  # a FIFO opens at once, without a writer


def load_rgb(path: str | Path) -> np.ndarray:
    """HxWx3 uint8. Grayscale is replicated, 16-bit is scaled to 8-bit, alpha (RGBA, LA, palette
    transparency) is composited over black, everything else goes through PIL's RGB conversion.
    Images of more than MAX_PIXELS pixels raise ImageTooLargeError from their header alone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Palette images with Transparency ..."
            with open_regular(path) as file, Image.open(file) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise ImageTooLargeError(
                        f"{width}x{height} (WxH) is {width * height / 1e6:.1f} Mpx, above the builder's limit of "
                        f"{MAX_PIXELS / 1e6:.1f} Mpx (builder.images.MAX_PIXELS), which bounds a build's memory"
                    )
                img.load()
                return _to_rgb(img)
    except UnidentifiedImageError as exc:  # its text names the file object, not the image
        raise DecodeError(f"{type(exc).__name__}: no image format recognised") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DecodeError(f"{type(exc).__name__}: {exc}") from exc


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(img, dtype=np.float64)
        scale = 257.0 if img.mode != "I" or values.max() > 255 else 1.0
        gray = np.clip(np.rint(values / scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info or img.mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
