"""Decode a source image to an RGB uint8 array, whatever mode it was saved in."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


class DecodeError(Exception):
    """The file cannot be decoded as an image; the build skips it and reports the reason."""


def load_rgb(path: str | Path) -> np.ndarray:
    """HxWx3 uint8. Grayscale is replicated, 16-bit is scaled to 8-bit, alpha (RGBA, LA, palette
    transparency) is composited over black, everything else goes through PIL's RGB conversion."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Palette images with Transparency ..."
            with Image.open(path) as img:
                img.load()
                return _to_rgb(img)
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
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
