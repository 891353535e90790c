"""Image features with CAL's test-time conventions, from a `transformers` model or a user callable.

CAL / Simple-CCReID (`extract_img_feature` in its `test.py`) sums the features of an image and of
its horizontal flip, then L2-normalises them; distances are cosine (see `metrics.cosine_distance`).
An extractor splits the work in three: `prepare_image` and `collate` (CPU work, run by the reader's
threads so that it overlaps the forward pass) and `__call__` (the forward passes, returning the summed, not yet
normalised, features). `launch` / `embed` apply the normalisation, the one place it happens.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image, ImageOps

from . import BenchmarkError, first_line
from .preprocessing import ImageTransform, probe_images, same_pixels

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
    if not bool(torch.isfinite(features).all()):  # NaN distances would follow, and no ranking
        bad = int((~torch.isfinite(features)).any(dim=1).sum())
        raise BenchmarkError(
            f"the features of {bad} of {len(features)} images in a batch are infinite or NaN "
            "(with --precision fp16 an overflow: use bf16 or fp32)"
        )
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
            raise BenchmarkError(
                f"--model {model_id}: no such file or folder; give a folder saved with "
                "save_pretrained or a Hub model id such as facebook/dinov2-small"
            )
        try:
            config = AutoConfig.from_pretrained(model_id)
        except (OSError, ValueError) as exc:
            raise BenchmarkError(f"cannot load the model config of {model_id}: {first_line(exc)}") from None
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
            raise BenchmarkError(
                f"{model_id} has no image processor (preprocessor_config.json): {first_line(exc)}"
            ) from None
        self.model = AutoModel.from_pretrained(model_id).to(self.device).eval()
        # The batched transform is used only where it gives the processor's own pixel values.
        probes = probe_images()
        expected = [self.processor(images=[p], return_tensors="pt")["pixel_values"].float() for p in probes]
        if len({tuple(e.shape) for e in expected}) != 1:
            raise BenchmarkError(
                f"the image processor of {model_id} gives inputs of different sizes for different "
                "images, which cannot be batched; use --features with your own preprocessing"
            )
        self.transform = ImageTransform.from_processor(self.processor)
        if self.transform is not None and not all(
            same_pixels(
                self.transform.to_pixels(self.transform.batch([p]), torch.device("cpu")), e, self.transform.level
            )
            for p, e in zip(probes, expected, strict=True)
        ):
            log.warning(
                "the processor of %s does more than resize/crop/rescale/normalise; using it as is (slower)", model_id
            )
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
        self.width: int | None = None  # D of the first call: every later call must give the same

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
            if isinstance(output, torch.Tensor):
                features = output.detach().cpu()
            else:
                features = torch.from_numpy(np.asarray(output))
        except (TypeError, ValueError) as exc:
            raise BenchmarkError(
                f"--features {self.spec} returned {type(output).__name__}, not an array: {exc}"
            ) from None
        numeric = features.is_floating_point() or features.dtype in (torch.int32, torch.int64)
        if features.ndim != 2 or features.shape[0] != len(images) or not numeric:
            raise BenchmarkError(
                f"--features {self.spec} returned shape {tuple(features.shape)} ({features.dtype}) for {len(images)} "
                "images; it must return an N x D array or tensor of numbers"
            )
        if self.width is None:
            self.width = features.shape[1]
        elif features.shape[1] != self.width:
            raise BenchmarkError(
                f"--features {self.spec} returned {features.shape[1]} features per image for one batch and "
                f"{self.width} for an earlier one; it must return the same number D for every image"
            )
        features = features.float()
        if not bool(torch.isfinite(features).all()):
            bad = int((~torch.isfinite(features)).any(dim=1).sum())
            raise BenchmarkError(
                f"--features {self.spec} returned infinite or NaN values for {bad} of {len(images)} images in a batch; "
                "distances between such features are undefined: it must return finite numbers"
            )
        return features

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
            f"--features {spec}: cannot import {module_name!r} ({first_line(exc)}); "
            f"the module must be importable from the working directory {cwd}"
        ) from None
    for name in attribute.split("."):
        if not hasattr(target, name):
            raise BenchmarkError(f"--features {spec}: {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, name)
    if not callable(target):
        raise BenchmarkError(f"--features {spec}: {attribute!r} is a {type(target).__name__}, not a function")
    return target


def make_extractor(
    model: str | None, features: str | None, device: str = "auto", precision: str = "fp32", progress: bool = True
) -> FeatureExtractor:
    """The extractor of `--model` or `--features` (exactly one of them)."""
    if features is not None and model is None:
        return CallableExtractor(features)
    if model is not None and features is None:
        return TransformersExtractor(model, device=device, precision=precision, progress=progress)
    raise BenchmarkError("give exactly one of --model HF_ID_OR_DIR and --features module:function")


__all__ = [
    "CallableExtractor",
    "FeatureExtractor",
    "TransformersExtractor",
    "embed",
    "launch",
    "load_callable",
    "make_extractor",
    "pool",
    "prepare",
]
