"""Part maps from a `transformers` semantic-segmentation checkpoint.

Preprocessing is done with torch ops using the checkpoint's processor settings (size aside):
transformers' image processors want torchvision for speed, and pedestrian crops are tall, so
images are resized to `parse_size` (H, W; default 512x256, the shape of a person crop) instead of
the processor's square. Logits are interpolated back to each image's full size once, then argmax.
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


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BuildError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return torch.device(device)


class ModelParser:
    def __init__(
        self,
        model_id: str = DEFAULT_MODEL,
        device: str = "auto",
        parse_size: tuple[int, int] = DEFAULT_PARSE_SIZE,
    ):
        from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

        self.model_id = model_id
        self.device = resolve_device(device)
        self.parse_size = parse_size
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

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Resize each HxWx3 uint8 image to parse_size and normalise: an NCHW float batch."""
        resized = [
            F.interpolate(
                torch.from_numpy(image).permute(2, 0, 1)[None].float(),
                size=self.parse_size, mode="bilinear", align_corners=False, antialias=True,
            )
            for image in images
        ]
        batch = torch.cat(resized).to(self.device)
        return (batch * self._mul + self._add).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, paths: Sequence[str], images: Sequence[np.ndarray]) -> list[np.ndarray]:
        logits = self.model(pixel_values=self.preprocess(images)).logits.float()
        maps = []
        for i, image in enumerate(images):
            full = F.interpolate(logits[i : i + 1], size=image.shape[:2], mode="bilinear", align_corners=False)
            labels = full[0].argmax(dim=0).to(torch.int64).cpu().numpy()
            maps.append(self.mapper(labels))
        return maps

    def describe(self) -> dict:
        return {
            "kind": "model",
            "model": self.model_id,
            "labels": {int(k): v for k, v in self.model.config.id2label.items()},
            "parse_size": list(self.parse_size),
            "device": str(self.device),
        }
