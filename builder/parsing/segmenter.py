"""Part maps from a `transformers` semantic-segmentation checkpoint (SegFormer human parsers).

Preprocessing is done with torch ops using the checkpoint's processor settings (size aside; see
builder/parsing/network.py for the sizes and the prepare / infer / postprocess split):
transformers' image processors want torchvision for speed, and the crop is fitted into the
parse box with its own aspect ratio instead of the processor's square. The input is resized with
antialiased bilinear as the processor's PIL resize does, and logits are interpolated back as
transformers' post-processing does (align_corners=False).
"""

from __future__ import annotations

import logging

import torch

from builder.errors import BuildError
from builder.parsing.label_mapping import PartMapper, UnknownLabelsError
from builder.parsing.network import NetworkParser

SEGFORMER_ATR = "mattmdjaga/segformer_b2_clothes"  # public SegFormer-B2 ATR clothes parser


class SegformerParser(NetworkParser):
    def __init__(
        self,
        model_id: str,
        device: str,
        parse_size: tuple[int, int],
        *,
        keep_aspect: bool = True,
        precision: str = "fp32",
        num_threads: int | None = None,
        alias: str | None = None,
    ):
        """`model_id`: a Hub id or a folder holding a transformers semantic-segmentation checkpoint
        with Pascal-Person-Part or ATR/LIP labels. On a CPU with native bf16 (AVX512-BF16, AMX)
        `precision="bf16"` is ~1.7x faster than fp32 for SegFormer."""
        from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

        super().__init__(
            device, parse_size, keep_aspect=keep_aspect, precision=precision, num_threads=num_threads, alias=alias
        )
        self.model_id = model_id
        try:
            # The processor is only read for its normalisation constants; silence its
            # "no torchvision, falling back to PIL" notice.
            logging.getLogger("transformers").setLevel(logging.ERROR)
            processor = AutoImageProcessor.from_pretrained(model_id)
            model = AutoModelForSemanticSegmentation.from_pretrained(model_id)
        except (OSError, ValueError) as exc:
            raise BuildError(
                f"cannot load segmentation model {model_id!r}: {exc}\n"
                "Pass --model with a model alias (schp-pascal, ...), an SCHP checkpoint, a Hub id or folder "
                "holding a transformers semantic-segmentation checkpoint, or --parsing-dir with precomputed "
                "part maps."
            ) from None
        try:
            self.labels = {int(k): v for k, v in model.config.id2label.items()}
            self.mapper = PartMapper(model.config.id2label)
        except UnknownLabelsError as exc:
            raise BuildError(f"model {model_id!r}: {exc}") from None
        self.model = model.eval().to(self.device).to(memory_format=torch.channels_last)
        self.set_normalisation(
            getattr(processor, "rescale_factor", 1 / 255),
            getattr(processor, "image_mean", [0.5, 0.5, 0.5]),
            getattr(processor, "image_std", [0.5, 0.5, 0.5]),
        )

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=batch).logits

    def describe_model(self) -> dict:
        return {
            "architecture": f"{type(self.model).__name__} (transformers)",
            "model": self.model_id,
            "labels": self.labels,
        }
