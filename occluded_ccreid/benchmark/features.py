"""Image features with CAL's test-time conventions, from a `transformers` model or a user callable.

CAL / Simple-CCReID (`extract_img_feature` in its `test.py`) sums the features of an image and of
its horizontal flip, then L2-normalises them; distances are cosine (see `metrics.cosine_distance`).
An extractor splits the work in three: `prepare_image` and `collate` (CPU work, run by the reader's
threads so that it overlaps the forward pass) and `__call__` (the forward passes, returning the summed, not yet
normalised, features). `launch` / `embed` apply the normalisation, the one place it happens.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import pyarrow as pa
import torch
from PIL import Image, ImageOps

from . import BenchmarkError

log = logging.getLogger(__name__)

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class FeatureExtractor(Protocol):
    def prepare_image(self, image: Image.Image) -> Any:
        """CPU work on one RGB image, done in the reader's decoding threads."""

    def collate(self, items: list[Any]) -> Any:
        """A batch of prepared images, as `__call__` takes it."""

    def __call__(self, prepared: Any) -> torch.Tensor:
        """(N, D) features of the images plus those of their horizontal flips, not normalised."""

    def describe(self) -> dict[str, Any]:
        """What produced the features, for results.json."""


def prepare(extractor: FeatureExtractor, images: Sequence[Image.Image]) -> Any:
    """A batch of RGB images prepared for `extractor`, in this thread."""
    return extractor.collate([extractor.prepare_image(image) for image in images])


def launch(extractor: FeatureExtractor, prepared: Any) -> Callable[[], np.ndarray]:
    """Start the forward pass of a prepared batch; the returned function gives its L2-normalised float32
    features (N, D) on the host.

    On CUDA the call returns once the work is queued: the features are copied to pinned host memory
    without blocking, behind a CUDA event, so the caller can launch the next batch before it waits for
    this one (a plain `.to("cpu")` would wait for the GPU, which would then idle while the host
    prepares the next launch). Elsewhere the features are computed and copied here.
    """
    features = extractor(prepared).detach()
    if features.device.type != "cuda":
        host = features.to("cpu", torch.float32)
        return lambda: _normalised(host)
    host = features.to("cpu", torch.float32, non_blocking=True)  # a CUDA source: pinned memory, asynchronous
    copied = torch.cuda.Event()
    copied.record(torch.cuda.current_stream(features.device))

    def finish() -> np.ndarray:
        copied.synchronize()
        return _normalised(host)

    return finish


def embed(extractor: FeatureExtractor, prepared: Any) -> np.ndarray:
    """L2-normalised float32 features (N, D) of a prepared batch."""
    return launch(extractor, prepared)()


def _normalised(features: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(features, p=2, dim=1).numpy()


# -- transformers image models ----------------------------------------------------------------------


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchmarkError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise BenchmarkError(f"--device {device!r}: {exc}") from None


@dataclass(frozen=True)
class ImageTransform:
    """An image processor's resize / center crop / rescale / normalise, without its per-image NumPy path.

    Resizing is PIL's, with the processor's filter, as the processor itself does it (so pixels are
    identical); cropping, rescaling and normalising are torch ops on whole batches, on the model's
    device. `TransformersExtractor` checks it against the processor on probe images before use.
    """

    size: tuple[int, int] | int | None  # (height, width), or the shortest edge; None: no resize
    resample: int
    crop: tuple[int, int] | None  # center crop (height, width)
    rescale: float | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None

    @classmethod
    def from_processor(cls, processor: Any) -> "ImageTransform | None":
        """The processor's settings, or None when it does something this class does not reproduce."""
        get = lambda name, default=None: getattr(processor, name, default)  # noqa: E731
        if get("do_pad") or get("crop_pct") is not None or get("do_reduce_labels"):
            return None
        size = None
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
                padded[pad_top:pad_top + height, pad_left:pad_left + width] = array
                array, top, left = padded, top + pad_top, left + pad_left
            array = array[top:top + self.crop[0], left:left + self.crop[1]]
        return array

    def batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(N, H, W, 4) uint8 tensor of a batch; `to_pixels` finishes it on the device."""
        return torch.from_numpy(np.stack([self.resize_and_crop(image) for image in images]))

    @functools.lru_cache(maxsize=4)
    def _affine(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, 3, 1, 1) float32 a and b of x * a + b, on `device`. Made once per device: a copy to CUDA
        at every batch would wait for the GPU to finish the previous batch."""
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


def _same(ours: torch.Tensor, expected: torch.Tensor, level: float) -> bool:
    """Same pixels up to interpolation rounding: on average within half a grey level.

    Where transformers has no torchvision, its processors resize with PIL as we do and the pixels are
    identical; its torchvision backend rounds a little differently (~1 level at some pixels).
    A wrong size, crop, mean or std differs by tens of levels on the random probes.
    """
    return ours.shape == expected.shape and float((ours - expected).abs().mean()) <= 0.5 * level


def _probe_images() -> list[Image.Image]:
    """Deterministic test images of person-crop and odd shapes."""
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((128, 64), (37, 23), (50, 90))]


class TransformersExtractor:
    """A `transformers` image model (AutoModel) and its image processor's settings.

    The feature is the model's pooled output, or the mean of its last hidden state (over tokens, or
    over space for convolutional models) when it has none.
    """

    def __init__(self, model_id: str, device: str = "auto", precision: str = "fp32", progress: bool = True) -> None:
        from transformers import AutoConfig, AutoImageProcessor, AutoModel
        from transformers.models.auto.modeling_auto import MODEL_MAPPING
        from transformers.utils import logging as hf_logging

        if not progress:
            hf_logging.disable_progress_bar()  # "Loading weights" bars

        if precision not in PRECISIONS:
            raise BenchmarkError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        self.device = resolve_device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise BenchmarkError(f"--precision fp16 is for CUDA devices; on {self.device} use bf16 or fp32")
        self.model_id, self.precision = str(model_id), precision
        if str(model_id).startswith((".", "/", "~")) and not Path(model_id).expanduser().exists():
            raise BenchmarkError(f"--model {model_id}: no such file or folder; give a folder saved with "
                                 "save_pretrained or a Hub model id such as facebook/dinov2-small")
        try:
            config = AutoConfig.from_pretrained(model_id)
        except (OSError, ValueError) as exc:
            raise BenchmarkError(f"cannot load the model config of {model_id}: {_first_line(exc)}") from None
        model_class = MODEL_MAPPING.get(type(config), None)
        if model_class is None or getattr(model_class, "main_input_name", None) != "pixel_values":
            takes = getattr(model_class, "main_input_name", "unknown inputs") if model_class else "no AutoModel class"
            raise BenchmarkError(
                f"{model_id} is not an image model (a {config.model_type!r} model: {takes}, not pixel_values); "
                "pass an image backbone (ViT, DINOv2, ResNet, ...) or your own --features module:function"
            )
        try:
            self.processor = AutoImageProcessor.from_pretrained(model_id)
        except (OSError, ValueError) as exc:
            raise BenchmarkError(f"{model_id} has no image processor (preprocessor_config.json): {_first_line(exc)}") from None
        self.model = AutoModel.from_pretrained(model_id).to(self.device).eval()
        # The batched transform is used only where it gives the processor's own pixel values.
        probes = _probe_images()
        expected = [self.processor(images=[p], return_tensors="pt")["pixel_values"].float() for p in probes]
        if len({tuple(e.shape) for e in expected}) != 1:
            raise BenchmarkError(f"the image processor of {model_id} gives inputs of different sizes for different "
                                 "images, which cannot be batched; use --features with your own preprocessing")
        self.transform = ImageTransform.from_processor(self.processor)
        if self.transform is not None and not all(
            _same(self.transform.to_pixels(self.transform.batch([p]), torch.device("cpu")), e, self.transform.level)
            for p, e in zip(probes, expected)
        ):
            log.warning("the processor of %s does more than resize/crop/rescale/normalise; using it as is (slower)", model_id)
            self.transform = None

    def prepare_image(self, image: Image.Image) -> np.ndarray | Image.Image:
        return self.transform.resize_and_crop(image) if self.transform is not None else image

    def collate(self, items: list[Any]) -> torch.Tensor:
        # Run in the reader's thread. For CUDA the batch goes to pinned memory, whence the copy to the
        # GPU is asynchronous (from pageable memory it waits for the GPU's queued work).
        pin = self.device.type == "cuda"
        if self.transform is not None:
            if not pin:
                return torch.from_numpy(np.stack(items))
            batch = torch.empty((len(items), *items[0].shape), dtype=torch.uint8, pin_memory=True)
            np.stack(items, out=batch.numpy())
            return batch
        pixels = self.processor(images=items, return_tensors="pt")["pixel_values"]
        return pixels.pin_memory() if pin else pixels

    @torch.inference_mode()
    def __call__(self, prepared: torch.Tensor) -> torch.Tensor:
        # One forward pass over the batch and its mirror image; the halves are summed, as CAL does.
        # Flipping commutes with the per-pixel normalisation, so the uint8 batch is flipped (cheaper).
        # The batch crosses to the device first (asynchronously from pinned memory; a flip or cat on the
        # host would make a pageable copy, whose transfer waits for the GPU).
        batch = prepared.to(self.device, non_blocking=True)
        if self.transform is not None:
            both = self.transform.to_pixels(torch.cat([batch, batch.flip(2)]), self.device)
        else:
            pixels = batch.to(torch.float32)
            both = torch.cat([pixels, pixels.flip(3)])
        n = len(prepared)
        dtype = PRECISIONS[self.precision]
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            features = pool(self.model(pixel_values=both)).float()
        return features[:n] + features[n:]

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "model_type": self.model.config.model_type,
            "pooling": "pooler_output, else mean of last_hidden_state",
            "preprocessing": "processor settings, batched" if self.transform is not None else "image processor",
            "device": str(self.device),
            "precision": self.precision,
        }


def pool(outputs: Any) -> torch.Tensor:
    """(N, D) of a transformers model output: its pooled output, else the mean of its last hidden state."""
    pooled = getattr(outputs, "pooler_output", None)
    if pooled is not None:
        return pooled.flatten(1)  # (N, C, 1, 1) for convolutional models
    hidden = outputs.last_hidden_state
    return hidden.mean(dim=(2, 3)) if hidden.ndim == 4 else hidden.mean(dim=1)


# -- user callables -----------------------------------------------------------------------------


class CallableExtractor:
    """`module:function`, a callable taking a list of RGB PIL images and returning (N, D) features."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.function = load_callable(spec)

    def prepare_image(self, image: Image.Image) -> tuple[Image.Image, Image.Image]:
        return image, ImageOps.mirror(image)

    def collate(self, items: list[tuple[Image.Image, Image.Image]]) -> tuple[list[Image.Image], list[Image.Image]]:
        return [image for image, _ in items], [mirrored for _, mirrored in items]

    def __call__(self, prepared: tuple[list[Image.Image], list[Image.Image]]) -> torch.Tensor:
        images, mirrored = prepared
        return self._call(images) + self._call(mirrored)

    def _call(self, images: list[Image.Image]) -> torch.Tensor:
        output = self.function(images)
        try:
            features = output.detach().cpu() if isinstance(output, torch.Tensor) else torch.from_numpy(np.asarray(output))
        except (TypeError, ValueError) as exc:
            raise BenchmarkError(f"--features {self.spec} returned {type(output).__name__}, not an array: {exc}") from None
        if features.ndim != 2 or features.shape[0] != len(images) or not (features.is_floating_point() or features.dtype in (torch.int32, torch.int64)):
            raise BenchmarkError(
                f"--features {self.spec} returned shape {tuple(features.shape)} ({features.dtype}) for {len(images)} "
                "images; it must return an N x D array or tensor of numbers"
            )
        return features.float()

    def describe(self) -> dict[str, Any]:
        return {"features": self.spec}


def load_callable(spec: str) -> Callable[[list[Image.Image]], Any]:
    """The function named `module:function` (dots allowed on both sides), the module importable from
    the working directory."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise BenchmarkError(f"--features expects module:function (e.g. my_reid:extract), got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise BenchmarkError(
            f"--features {spec}: cannot import {module_name!r} ({_first_line(exc)}); "
            f"the module must be importable from the working directory {cwd}"
        ) from None
    for name in attribute.split("."):
        if not hasattr(target, name):
            raise BenchmarkError(f"--features {spec}: {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, name)
    if not callable(target):
        raise BenchmarkError(f"--features {spec}: {attribute!r} is a {type(target).__name__}, not a function")
    return target


def make_extractor(model: str | None, features: str | None, device: str = "auto",
                   precision: str = "fp32", progress: bool = True) -> FeatureExtractor:
    """The extractor of `--model` or `--features` (exactly one of them)."""
    if (model is None) == (features is None):
        raise BenchmarkError("give exactly one of --model HF_ID_OR_DIR and --features module:function")
    if features is not None:
        return CallableExtractor(features)
    return TransformersExtractor(model, device=device, precision=precision, progress=progress)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["CallableExtractor", "FeatureExtractor", "ImageTransform", "TransformersExtractor", "embed", "launch",
           "load_callable", "make_extractor", "pool", "prepare"]
