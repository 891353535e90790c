"""An image processor's resize / center crop / rescale / normalise, reproduced for whole batches.

`transformers` image processors prepare images one by one in NumPy. The benchmark splits the same
steps where they run best: PIL resizing and cropping per image in the reader's decoding threads
(`ImageTransform.resize_and_crop`, pixels as the processor's own PIL resize gives them), and
rescaling and normalising whole batches on the model's device (`ImageTransform.to_pixels`).
`TransformersExtractor` uses it only where it gives the processor's pixel values on probe images
(`probe_images`, `same_pixels`). `prepare_encoded` is the per-image part for a chunk of encoded
images, what a decoding worker process runs (`reading`): so this module imports torch only inside
the functions that need it, and a worker starts without loading torch.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from PIL import Image

from . import BenchmarkError, first_line

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ImageTransform:
    """An image processor's resize / center crop / rescale / normalise, without its per-image NumPy path.

    Resizing is PIL's, with the processor's filter, as the processor itself does it (so pixels are
    identical), and cropping slices the result, per image; rescaling and normalising are torch ops
    on whole batches, on the model's device. `TransformersExtractor` checks it against the processor
    on probe images before use.
    """

    size: tuple[int, int] | int | None  # (height, width), or the shortest edge; None: no resize
    resample: int
    crop: tuple[int, int] | None  # center crop (height, width)
    rescale: float | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None

    @classmethod
    def from_processor(cls, processor: Any) -> ImageTransform | None:
        """The processor's settings, or None when it does something this class does not reproduce."""

        def get(name: str, default: Any = None) -> Any:
            return getattr(processor, name, default)

        if get("do_pad") or get("crop_pct") is not None or get("do_reduce_labels"):
            return None
        size: tuple[int, int] | int | None = None
        if get("do_resize", False):
            spec = dict(get("size") or {})
            if spec.get("height") and spec.get("width") and len([v for v in spec.values() if v]) == 2:
                size = (int(spec["height"]), int(spec["width"]))
            elif spec.get("shortest_edge") and len([v for v in spec.values() if v]) == 1:
                size = int(spec["shortest_edge"])
            else:
                return None
        crop = None
        if get("do_center_crop", False):
            spec = dict(get("crop_size") or {})
            if not (spec.get("height") and spec.get("width")):
                return None
            crop = (int(spec["height"]), int(spec["width"]))
        if crop is None and not isinstance(size, tuple):
            return None  # images of different sizes: cannot be batched
        resample = get("resample")
        normalize = bool(get("do_normalize", False))
        return cls(
            size=size,
            resample=int(resample) if resample is not None else int(Image.Resampling.BILINEAR),
            crop=crop,
            rescale=float(get("rescale_factor")) if get("do_rescale", False) else None,
            mean=tuple(float(v) for v in np.broadcast_to(get("image_mean"), 3)) if normalize else None,
            std=tuple(float(v) for v in np.broadcast_to(get("image_std"), 3)) if normalize else None,
        )

    @property
    def level(self) -> float:
        """One grey level (of 255) in pixel-value units."""
        return (self.rescale or 1.0) / min(self.std or (1.0,))

    def resize_and_crop(self, image: Image.Image) -> np.ndarray:
        """HxWx4 uint8 array of one RGB image at the model's input size: its R, G, B and Pillow's
        padding byte (`rgbx_array`), which `to_pixels` drops on the model's device."""
        if isinstance(self.size, tuple):
            image = image.resize((self.size[1], self.size[0]), self.resample)
        elif self.size is not None:
            width, height = image.size
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = self.size, int(self.size * long / short)  # as transformers rounds it
            new_size = (new_short, new_long) if width <= height else (new_long, new_short)
            image = image.resize(new_size, self.resample)
        array = rgbx_array(image)
        if self.crop is not None:
            height, width = array.shape[:2]
            top, left = (height - self.crop[0]) // 2, (width - self.crop[1]) // 2
            if top < 0 or left < 0:  # transformers pads then; as the processor does, with zeros
                padded = np.zeros((max(height, self.crop[0]), max(width, self.crop[1]), 4), dtype=np.uint8)
                pad_top, pad_left = -(-(padded.shape[0] - height) // 2), -(-(padded.shape[1] - width) // 2)
                padded[pad_top : pad_top + height, pad_left : pad_left + width] = array
                array, top, left = padded, top + pad_top, left + pad_left
            array = array[top : top + self.crop[0], left : left + self.crop[1]]
        return array

    def batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(N, H, W, 4) uint8 tensor of a batch; `to_pixels` finishes it on the device."""
        import torch

        return torch.from_numpy(np.stack([self.resize_and_crop(image) for image in images]))

    # A frozen dataclass cannot hold its own cache; the 4-entry bound caps the transforms kept alive.
    @functools.lru_cache(maxsize=4)  # noqa: B019
    def _affine(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, 3, 1, 1) float32 a and b of x * a + b, on `device`. Made once per device: a copy to CUDA
        at every batch would wait for the GPU to finish the previous batch."""
        import torch

        scale = torch.full((3,), 1.0 if self.rescale is None else self.rescale, dtype=torch.float64)
        shift = torch.zeros(3, dtype=torch.float64)
        if self.mean is not None:
            std = torch.tensor(self.std, dtype=torch.float64)
            scale, shift = scale / std, -torch.tensor(self.mean, dtype=torch.float64) / std
        return scale.float().to(device).view(1, 3, 1, 1), shift.float().to(device).view(1, 3, 1, 1)

    def to_pixels(self, batch: torch.Tensor, device: torch.device) -> torch.Tensor:
        """(N, 3, H, W) float32 pixel values of an (N, H, W, 4) uint8 batch (RGB and a padding byte;
        (N, H, W, 3) works too), as the processor's `pixel_values`."""
        # uint8 crosses to the device (a quarter of float32's bytes; asynchronous from a pinned batch);
        # one pass drops the padding byte, converts and transposes, one multiply-add rescales and
        # normalises: (x * rescale - mean) / std = x * a + b.
        import torch

        images = batch.to(device, non_blocking=True)[..., :3].permute(0, 3, 1, 2)
        pixels = torch.empty(images.shape, dtype=torch.float32, device=device)
        pixels.copy_(images)
        if self.rescale is not None or self.mean is not None:
            scale, shift = self._affine(device)
            pixels.mul_(scale).add_(shift)
        return pixels


def rgbx_array(image: Image.Image) -> np.ndarray:
    """HxWx4 uint8 array of an RGB image as Pillow stores it: R, G, B and a padding byte a pixel.

    Pillow >= 11.2 exports that memory through the Arrow C data interface, without a copy. Packing it
    to 3 bytes a pixel (`np.asarray`, through `Image.tobytes`) holds the GIL, which the decoding
    threads share with the reader and the forward pass: it was the largest lock-holding step of the
    decoding threads (`py-spy --gil`), and two threads packing and stacking 224x224 images ran at
    0.3-0.4x the rate of one, where exporting and stacking ran at 1.2x. Images that Pillow keeps in
    more than one memory block (large ones) cannot be exported and are converted instead.
    """
    if image.mode == "RGB" and hasattr(image, "__arrow_c_array__"):
        try:
            pixels = pa.array(image)  # fixed_size_list<uint8>[4]: one pixel an element
        except ValueError:  # "Image rows are not contiguous in memory"
            pass
        else:
            width, height = image.size
            return np.asarray(pixels.flatten()).reshape(height, width, 4)
    return np.asarray(image.convert("RGBX"))


def same_pixels(ours: torch.Tensor, expected: torch.Tensor, level: float) -> bool:
    """Same pixels up to interpolation rounding: on average within half a grey level.

    Where transformers has no torchvision, its processors resize with PIL as we do and the pixels are
    identical; its torchvision backend rounds a little differently (~1 level at some pixels).
    A wrong size, crop, mean or std differs by tens of levels on the random probes.
    """
    return ours.shape == expected.shape and float((ours - expected).abs().mean()) <= 0.5 * level


def probe_images() -> list[Image.Image]:
    """Deterministic test images of person-crop and odd shapes."""
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((128, 64), (37, 23), (50, 90))
    ]


def decode_image(value: dict, column: str) -> Image.Image:
    """The RGB image of one row's image value ({"bytes", "path"}, as `datasets` stores images)."""
    data = value.get("bytes")
    try:
        image = Image.open(io.BytesIO(data) if data is not None else value["path"])
        if image.mode == "RGB":  # the builds' PNGs: convert would copy every pixel once more
            image.load()
            return image
        return image.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - a row that does not decode is a broken build
        raise BenchmarkError(
            f"a {column} of the dataset does not decode ({first_line(exc)}); rebuild or re-download it"
        ) from None


def prepare_encoded(transform: ImageTransform, column: str, values: Sequence[dict]) -> np.ndarray:
    """(k, H, W, 4) uint8: `values` (image values of `column`) decoded, resized and cropped, stacked."""
    return np.stack([transform.resize_and_crop(decode_image(value, column)) for value in values])


__all__ = ["ImageTransform", "decode_image", "prepare_encoded", "probe_images", "rgbx_array", "same_pixels"]
