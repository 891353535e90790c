"""Part maps from a `transformers` semantic-segmentation checkpoint.

Preprocessing is done with torch ops using the checkpoint's processor settings (size aside):
transformers' image processors want torchvision for speed, and pedestrian crops are tall, so
instead of the processor's square each image is scaled to fit inside the `parse_size` box (H, W;
default 512x256) with its own aspect ratio, both sides rounded to a multiple of 32
(`input_size`): a narrow crop is neither stretched (the parser sees people in their own
proportions) nor paid for at the full box width. `keep_aspect=False` stretches every image to
exactly `parse_size` instead (one input shape for all, so batches never wait for a same-shape
partner; useful on accelerators that prefer static shapes).

The work is split in three steps so a pipeline can run them where they fit best:

* `prepare(image)`: resize one HxWx3 uint8 image to its input size (uint8 CHW tensor, antialiased
  bilinear as the processor's PIL resize does). Cheap, thread-safe: decode workers can do it.
* `infer(tensors)`: normalise and run the model on tensors of one input size (one shape per
  call); returns the low-resolution logits on the model's device. This is the only step that
  needs the model.
* `postprocess(logits, (height, width))`: one image's logits interpolated back to its full size
  once, argmax, label mapping: the HxW uint8 part map. Thread-safe: finishing workers can do it.

`__call__(paths, images)` chains the three for a batch of any shapes. A part map depends only
on its own image: batches are never padded, images of different input sizes go through separate
forward passes, and every step is per image (the model's forward pass gives bitwise the same
logits for an image whatever else is in its batch; tests/test_segmenter.py checks it).
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from builder.errors import BuildError
from builder.parsing.label_mapping import PartMapper, UnknownLabelsError

DEFAULT_MODEL = "mattmdjaga/segformer_b2_clothes"  # public SegFormer-B2 ATR clothes parser
DEFAULT_PARSE_SIZE = (512, 256)
SIZE_MULTIPLE = 32  # SegFormer's deepest stage has stride 32: sides that divide evenly
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
log = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively here (AVX512-BF16 or AMX); elsewhere it is emulated, slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_device(device: str) -> torch.device:
    """auto, cpu, cuda or cuda:N; anything else (tpu, mps, meta, a typo) is an error naming what
    this machine has, since the pipeline runs its model and occlusion on CPU or CUDA only."""
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    choices = ", ".join(["auto", "cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(cuda)] if cuda else []))
    if device == "auto":
        return torch.device("cuda" if cuda else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise BuildError(f"--device {device!r} is not one the builder can use; choose from {choices}"
                         + ("" if cuda else " (torch sees no CUDA device here)"))
    if resolved.type == "cuda" and not cuda:
        raise BuildError(f"--device {device} was asked for but torch sees no CUDA device; use --device cpu")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= cuda:
        raise BuildError(f"--device {device}: this machine has {cuda} CUDA device(s); choose from {choices}")
    return resolved


def fit_size(height: int, width: int, box: tuple[int, int], multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
    """The largest size of the image's aspect ratio inside `box` (H, W), each side rounded to the
    nearest multiple of `multiple` (at least one multiple, at most the box's side)."""
    scale = min(box[0] / height, box[1] / width)

    def side(length: float, limit: int) -> int:
        return int(min(max(multiple, multiple * round(length * scale / multiple)), max(limit, multiple)))

    return side(height, box[0]), side(width, box[1])


class ModelParser:
    def __init__(
        self,
        model_id: str = DEFAULT_MODEL,
        device: str = "auto",
        parse_size: tuple[int, int] = DEFAULT_PARSE_SIZE,
        *,
        keep_aspect: bool = True,
        precision: str = "fp32",
        num_threads: int | None = None,
    ):
        """`precision` "bf16" (CUDA or CPU) / "fp16" (CUDA) runs the forward pass under autocast:
        opt in, as part maps can differ from fp32 ones at part borders; on a CPU with native bf16
        (AVX512-BF16, AMX) it is ~1.7x faster than fp32 for SegFormer. `num_threads`: torch threads
        of the thread that calls `infer` (default: torch's count when the parser is made), set
        there on first use, so pipelines may run their own worker threads single-threaded."""
        from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

        if precision not in PRECISIONS:
            raise BuildError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        self.model_id = model_id
        self.device = resolve_device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise BuildError(f"precision fp16 is for CUDA devices; on {self.device} use bf16 or fp32")
        if precision == "bf16" and self.device.type == "cpu" and not cpu_has_native_bf16():
            log.warning("this CPU has no native bf16 (AVX512-BF16 or AMX): --precision bf16 runs emulated, "
                        "slower than fp32")
        self.parse_size = tuple(int(v) for v in parse_size)
        if len(self.parse_size) != 2 or min(self.parse_size) < 1:
            raise BuildError(f"--parse-size must be two positive sides HxW, got {'x'.join(map(str, parse_size))}")
        if keep_aspect and any(side % SIZE_MULTIPLE for side in self.parse_size):
            # fit_size() rounds every input side to a multiple: a box that is not one would run at
            # another size than the one the report records. Refused rather than silently adjusted.
            height, width = self.parse_size
            fit = "x".join(str(max(SIZE_MULTIPLE, s // SIZE_MULTIPLE * SIZE_MULTIPLE)) for s in self.parse_size)
            raise BuildError(f"--parse-size {height}x{width}: each side must be a multiple of {SIZE_MULTIPLE} "
                             f"(inputs are fitted into the box in multiples of {SIZE_MULTIPLE}); use e.g. {fit}, "
                             f"or --no-keep-aspect to stretch every crop to exactly {height}x{width}")
        self.keep_aspect = keep_aspect
        self.precision = precision
        self.num_threads = num_threads or torch.get_num_threads()
        try:
            # The processor is only read for its normalisation constants; silence its
            # "no torchvision, falling back to PIL" notice.
            logging.getLogger("transformers").setLevel(logging.ERROR)
            processor = AutoImageProcessor.from_pretrained(model_id)
            model = AutoModelForSemanticSegmentation.from_pretrained(model_id)
        except (OSError, ValueError) as exc:
            raise BuildError(
                f"cannot load segmentation model {model_id!r}: {exc}\n"
                "Pass --model with a Hub id or a local folder holding a transformers "
                "semantic-segmentation checkpoint, or --parsing-dir with precomputed part maps."
            ) from None
        try:
            self.mapper = PartMapper(model.config.id2label)
        except UnknownLabelsError as exc:
            raise BuildError(f"model {model_id!r}: {exc}") from None
        self.model = model.eval().to(self.device).to(memory_format=torch.channels_last)
        scale = getattr(processor, "rescale_factor", 1 / 255)
        mean = torch.tensor(getattr(processor, "image_mean", [0.5, 0.5, 0.5]), dtype=torch.float32)
        std = torch.tensor(getattr(processor, "image_std", [0.5, 0.5, 0.5]), dtype=torch.float32)
        # (x * scale - mean) / std as one multiply-add per channel
        self._mul = (scale / std).view(1, 3, 1, 1).to(self.device)
        self._add = (-mean / std).view(1, 3, 1, 1).to(self.device)

    # -- sizes ---------------------------------------------------------------------------------
    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The model input size (H, W) of an image of this size: a function of the size alone,
        so it can also key batches (images of one input size share a forward pass)."""
        if not self.keep_aspect:
            return self.parse_size
        return fit_size(height, width, self.parse_size)

    # -- the three steps -----------------------------------------------------------------------
    def prepare(self, image: np.ndarray) -> torch.Tensor:
        """One HxWx3 uint8 image resized to its input size: a 3xHxW uint8 tensor (CPU)."""
        size = self.input_size(*image.shape[:2])
        pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]  # NHWC memory
        if tuple(pixels.shape[2:]) != size:
            pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=True)
        return pixels[0]

    @torch.inference_mode()
    def infer(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits (N x labels x H/4 x W/4, float32, on the model's device) of prepared images that
        share one input size."""
        if torch.get_num_threads() != self.num_threads:
            torch.set_num_threads(self.num_threads)  # per calling thread; once per thread
        shape = tensors[0].shape
        if any(t.shape != shape for t in tensors):
            raise ValueError("infer() takes images of one input size; group them by input_size()")
        batch = torch.empty((len(tensors), *shape), dtype=torch.float32, memory_format=torch.channels_last)
        for i, tensor in enumerate(tensors):
            batch[i].copy_(tensor)
        batch = batch.to(self.device, non_blocking=True)
        batch.mul_(self._mul).add_(self._add)
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            logits = self.model(pixel_values=batch).logits
        else:
            with torch.autocast(self.device.type, dtype=dtype):
                logits = self.model(pixel_values=batch).logits
        return logits.float()

    @torch.inference_mode()
    def postprocess(self, logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        """One image's logits (labels x h x w) -> its HxW uint8 part map. The logits are
        interpolated to full size once. On CPU the argmax over labels is numpy's: ~6x faster than
        torch's for 18 labels, with the same rule (the first maximum), so the same labels."""
        full = F.interpolate(logits[None], size=tuple(size), mode="bilinear", align_corners=False)[0]
        if full.device.type == "cpu":
            labels = full.numpy().argmax(axis=0)
        else:  # argmax where the logits are: one plane crosses to the host, not one per label
            labels = full.argmax(dim=0).cpu().numpy()
        return self.mapper(labels)

    def __call__(self, paths: Sequence[str], images: Sequence[np.ndarray]) -> list[np.ndarray]:
        prepared = [self.prepare(image) for image in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, tensor in enumerate(prepared):
            groups.setdefault(tuple(tensor.shape), []).append(i)
        maps: list[np.ndarray | None] = [None] * len(images)
        for indices in groups.values():
            logits = self.infer([prepared[i] for i in indices])
            for row, i in enumerate(indices):
                maps[i] = self.postprocess(logits[row], images[i].shape[:2])
        return maps  # type: ignore[return-value]

    def check_present(self, source_paths: Sequence[str]) -> None:
        """A model parses any image: nothing to check up front."""

    def describe(self) -> dict:
        info = {
            "kind": "model",
            "model": self.model_id,
            "labels": {int(k): v for k, v in self.model.config.id2label.items()},
            "parse_size": list(self.parse_size),
            "device": str(self.device),
        }
        info["keep_aspect"] = self.keep_aspect  # True: parse_size is the box each image is fitted into
        if self.precision != "fp32":
            info["precision"] = self.precision
        return info
