"""CAL / Simple-CCReID's image transforms in plain torch (there is no torchvision for this torch).

CAL's pipelines (``build_img_transforms`` in its ``data/__init__.py``, defaults from its config)::

    train: Resize(384, 192) -> RandomCroping(p=0.5) -> RandomHorizontalFlip(0.5) -> ToTensor
           -> Normalize(ImageNet) -> RandomErasing(0.5, sl=0.02, sh=0.4, r1=0.3, mean=(0.4914, 0.4822, 0.4465))
    test:  Resize(384, 192) -> ToTensor -> Normalize(ImageNet)

`cal_train_transform` and `cal_test_transform` build them from the classes below. Every transform
takes a PIL image, a (C, H, W) tensor or a batch (N, C, H, W) of same-size tensors, so the same
object runs per image in DataLoader workers or per batch after collation (e.g. on the GPU).
Images stay uint8 until `ToFloat`, as CAL's stay PIL images until ``ToTensor``.

**Label maps.** ``t(image, maps)`` also moves (M, H, W) / (N, M, H, W) uint8 label maps (the
``occlusion_mask`` and ``parsing`` columns) through the geometric steps with the image: the same
crop and flip, nearest-neighbour resizing; photometric steps leave them alone. It returns
``(image, maps)``; ``t(image)`` returns the image.

**Differences from CAL** (all measured in tests/loading/test_transforms.py):

* resizing is ``torch.nn.functional.interpolate(mode="bilinear", antialias=True)``, PIL's
  bilinear filter: on uint8 CPU tensors it equals ``PIL.Image.resize(BILINEAR)`` up to 1 grey
  level (float and GPU tensors are resized in float and rounded, also within 1 level);
* label maps use ``mode="nearest-exact"`` (source pixel ``floor((i + 0.5) * in / out)``), PIL's
  NEAREST except where a sample point falls exactly on a pixel border;
* random numbers come from torch (a ``torch.Generator`` or torch's global generator, which
  DataLoader seeds per worker) instead of Python's ``random``; each transform documents its draws.

**Generators.** A random transform draws from its own `generator` when given one. Draws are per
image in batch order, so a batch and a loop over its images give the same output only when each
random step has its own generator (``seed=`` of `cal_train_transform` does that). Leave generators
out in DataLoader workers: each worker would get a copy and repeat the same draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
CAL_ERASING_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)  # CAL's RandomErasing default

Maps = torch.Tensor | None


def as_uint8_tensor(image: Any) -> torch.Tensor:
    """PIL image / HxWx3 array -> (3, H, W) uint8 tensor; tensors are returned unchanged."""
    if isinstance(image, torch.Tensor):
        return image
    if hasattr(image, "convert"):
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def as_label_map(image: Any) -> torch.Tensor:
    """A one-channel PIL image (``occlusion_mask``, ``parsing``) or array -> (H, W) uint8 tensor, values kept."""
    if isinstance(image, torch.Tensor):
        return image
    return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))


def _uniform(generator: torch.Generator | None) -> float:
    """One draw in [0, 1), double precision as Python's ``random.random``."""
    return float(torch.rand((), dtype=torch.float64, generator=generator))


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """Integer in [low, high], both ends included (Python's ``random.randint``)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


class Transform:
    """Base of the transforms here: ``t(image)`` -> image, ``t(image, maps)`` -> (image, maps).

    Subclasses implement `forward` on a batch: image (N, C, H, W), maps (N, M, H, W) or None.
    """

    def __call__(self, image: Any, maps: Any = None) -> Any:
        image = as_uint8_tensor(image)
        if maps is not None:
            maps = as_label_map(maps)
        single = image.dim() == 3
        if single:
            image = image[None]
            maps = maps[None] if maps is not None else None
        if maps is not None and maps.shape[-2:] != image.shape[-2:]:
            raise ValueError(
                f"label maps of size {tuple(maps.shape[-2:])} do not match the image's {tuple(image.shape[-2:])}"
            )
        image, maps = self.forward(image, maps)
        if single:
            image = image[0]
            maps = maps[0] if maps is not None else None
        return image if maps is None else (image, maps)

    def forward(self, image: torch.Tensor, maps: Maps) -> tuple[torch.Tensor, Maps]:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "generator")
        return f"{type(self).__name__}({fields})"


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear with antialiasing (PIL's filter); uint8 in -> uint8 out (rounded, as PIL stores it)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    if image.dtype == torch.uint8 and image.device.type == "cpu":  # torch's uint8 kernel follows PIL's
        return F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
    out = F.interpolate(image.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8) if image.dtype == torch.uint8 else out


def resize_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest neighbour (labels must not be blended): source pixel floor((i + 0.5) * in / out)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps, size=size, mode="nearest-exact")


class Resize(Transform):
    """To (height, width), aspect ratio not kept (torchvision's ``Resize((h, w))``, CAL's first step)."""

    def __init__(self, height: int, width: int):
        self.height, self.width = int(height), int(width)

    def forward(self, image: torch.Tensor, maps: Maps) -> tuple[torch.Tensor, Maps]:
        size = (self.height, self.width)
        return resize_image(image, size), (resize_maps(maps, size) if maps is not None else None)


def _crop_each(batch: torch.Tensor, boxes: Sequence[tuple[int, int]], size: tuple[int, int]) -> torch.Tensor:
    h, w = size
    return torch.stack([b[:, top : top + h, left : left + w] for b, (top, left) in zip(batch, boxes, strict=True)])


class RandomCroping(Transform):
    """CAL's ``RandomCroping``: with probability p, enlarge the image 1.125x and crop its size back.

    Draws per image: u; if u < p, x = round(u1 * (W' - W)) then y = round(u2 * (H' - H)) (the
    crop's left and top), W' = round(1.125 W), H' = round(1.125 H); Python's round (half to even).
    """

    def __init__(self, p: float = 0.5, scale: float = 1.125, generator: torch.Generator | None = None):
        self.p, self.scale, self.generator = p, scale, generator

    def forward(self, image: torch.Tensor, maps: Maps) -> tuple[torch.Tensor, Maps]:
        height, width = image.shape[-2:]
        big = (int(round(height * self.scale)), int(round(width * self.scale)))
        chosen, boxes = [], []
        for i in range(len(image)):
            if _uniform(self.generator) >= self.p:
                continue
            left = int(round(_uniform(self.generator) * (big[1] - width)))
            top = int(round(_uniform(self.generator) * (big[0] - height)))
            chosen.append(i)
            boxes.append((top, left))
        if not chosen:
            return image, maps
        index = torch.tensor(chosen, device=image.device)
        image = image.clone()
        image[index] = _crop_each(resize_image(image[index], big), boxes, (height, width))
        if maps is not None:
            maps = maps.clone()
            maps[index] = _crop_each(resize_maps(maps[index], big), boxes, (height, width))
        return image, maps


class RandomPadCrop(Transform):
    """Pad by `padding` on every side (zeros), then crop the original size at a random place
    (torchreid / TransReID's ``Pad(10)`` + ``RandomCrop``; CAL uses `RandomCroping` instead).

    Draws per image: u; if u < p, top = randint(0, 2 * padding) then left = randint(0, 2 * padding).
    """

    def __init__(self, padding: int = 10, p: float = 1.0, generator: torch.Generator | None = None):
        self.padding, self.p, self.generator = int(padding), p, generator

    def forward(self, image: torch.Tensor, maps: Maps) -> tuple[torch.Tensor, Maps]:
        pad, size = self.padding, (int(image.shape[-2]), int(image.shape[-1]))
        chosen, boxes = [], []
        for i in range(len(image)):
            if _uniform(self.generator) >= self.p:
                continue
            top = _randint(0, 2 * pad, self.generator)
            chosen.append(i)
            boxes.append((top, _randint(0, 2 * pad, self.generator)))
        if not chosen or pad == 0:
            return image, maps
        index = torch.tensor(chosen, device=image.device)
        image = image.clone()
        image[index] = _crop_each(F.pad(image[index], (pad,) * 4), boxes, size)
        if maps is not None:
            maps = maps.clone()
            maps[index] = _crop_each(F.pad(maps[index], (pad,) * 4), boxes, size)
        return image, maps


class RandomHorizontalFlip(Transform):
    """Mirror left-right with probability p. Draws per image: u; flipped if u < p."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None):
        self.p, self.generator = p, generator

    def forward(self, image: torch.Tensor, maps: Maps) -> tuple[torch.Tensor, Maps]:
        chosen = [i for i in range(len(image)) if _uniform(self.generator) < self.p]
        if not chosen:
            return image, maps
        index = torch.tensor(chosen, device=image.device)
        image = image.clone()
        image[index] = image[index].flip(-1)
        if maps is not None:
            maps = maps.clone()
            maps[index] = maps[index].flip(-1)
        return image, maps


class ToFloat(Transform):
    """uint8 0..255 -> float32 0..1 (``ToTensor``'s scaling); float input is left as is."""

    def forward(self, image: torch.Tensor, maps: Maps) -> tuple[torch.Tensor, Maps]:
        return (image.float().div_(255.0) if image.dtype == torch.uint8 else image), maps


class Normalize(Transform):
    """(x - mean) / std per channel, ImageNet's by default, on float images."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        self.mean, self.std = tuple(mean), tuple(std)

    def forward(self, image: torch.Tensor, maps: Maps) -> tuple[torch.Tensor, Maps]:
        if not image.is_floating_point():
            raise TypeError("Normalize needs a float image: put ToFloat() before it")
        mean = torch.tensor(self.mean, dtype=image.dtype, device=image.device)[:, None, None]
        std = torch.tensor(self.std, dtype=image.dtype, device=image.device)[:, None, None]
        return (image - mean) / std, maps


class RandomErasing(Transform):
    """CAL's ``RandomErasing`` (Zhong et al. 2017): with probability p, fill one random rectangle
    of the (normalised) image with `mean`.

    Draws per image: u; if u < p, up to 100 attempts of: area share s = sl + (sh - sl) u1, aspect
    a = r1 + (1/r1 - r1) u2, h = round(sqrt(s H W a)), w = round(sqrt(s H W / a)); the first
    attempt with w < W and h < H draws top = randint(0, H - h), left = randint(0, W - w) and
    erases; none: the image is unchanged. A one-channel image gets mean[0], as in CAL.
    """

    def __init__(
        self,
        p: float = 0.5,
        sl: float = 0.02,
        sh: float = 0.4,
        r1: float = 0.3,
        mean: Sequence[float] = CAL_ERASING_MEAN,
        generator: torch.Generator | None = None,
    ):
        self.p, self.sl, self.sh, self.r1, self.mean, self.generator = p, sl, sh, r1, tuple(mean), generator

    def box(self, height: int, width: int) -> tuple[int, int, int, int] | None:
        """(top, left, h, w) of one image's rectangle, or None (consumes that image's draws)."""
        g = self.generator
        if _uniform(g) >= self.p:
            return None
        for _ in range(100):
            area = (self.sl + (self.sh - self.sl) * _uniform(g)) * height * width
            aspect = self.r1 + (1 / self.r1 - self.r1) * _uniform(g)
            h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if w < width and h < height:
                return _randint(0, height - h, g), _randint(0, width - w, g), h, w
        return None

    def forward(self, image: torch.Tensor, maps: Maps) -> tuple[torch.Tensor, Maps]:
        if not image.is_floating_point():
            raise TypeError("RandomErasing works on float images (CAL erases after Normalize): put ToFloat() before it")
        channels, height, width = image.shape[1:]
        boxes = [self.box(height, width) for _ in range(len(image))]
        if not any(boxes):
            return image, maps
        fill = torch.tensor(self.mean[:3] if channels == 3 else self.mean[:1], dtype=image.dtype, device=image.device)
        image = image.clone()
        for i, box in enumerate(boxes):
            if box is not None:
                top, left, h, w = box
                # CAL fills the 3 channels of an RGB image with its mean, else channel 0 with mean[0]
                image[i, : len(fill), top : top + h, left : left + w] = fill[:, None, None]
        return image, maps


class Compose(Transform):
    """Apply transforms in turn. Callables that are not `Transform`s get the image only, so a
    geometric one of yours would leave label maps behind: write it as a `Transform`."""

    def __init__(self, transforms: Sequence[Callable[..., Any]]):
        self.transforms = list(transforms)

    def forward(self, image: torch.Tensor, maps: Maps) -> tuple[torch.Tensor, Maps]:
        for t in self.transforms:
            if isinstance(t, Transform):
                image, maps = t.forward(image, maps)
            else:
                image = t(image)
        return image, maps

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(map(repr, self.transforms)) + ")"


def _generators(seed: int | None, count: int) -> list[torch.Generator | None]:
    return [None if seed is None else torch.Generator().manual_seed(seed * 1000 + i) for i in range(count)]


def cal_train_transform(
    height: int = 384,
    width: int = 192,
    crop_p: float = 0.5,
    flip_p: float = 0.5,
    erase_p: float = 0.5,
    pad_crop: int | None = None,
    seed: int | None = None,
) -> Compose:
    """CAL's training pipeline; its defaults (384 x 192, each augmentation with probability 0.5).

    ``pad_crop=10`` replaces CAL's enlarge-and-crop by pad-10-and-crop (torchreid's recipe).
    ``seed``: each random step gets its own ``torch.Generator`` (seeded ``seed * 1000 + step``),
    for reproducible single-process or batched use; leave None in DataLoader workers.
    """
    g_crop, g_flip, g_erase = _generators(seed, 3)
    crop = RandomCroping(crop_p, generator=g_crop) if pad_crop is None else RandomPadCrop(pad_crop, crop_p, g_crop)
    return Compose(
        [
            Resize(height, width),
            crop,
            RandomHorizontalFlip(flip_p, g_flip),
            ToFloat(),
            Normalize(),
            RandomErasing(erase_p, generator=g_erase),
        ]
    )


def cal_test_transform(height: int = 384, width: int = 192) -> Compose:
    """CAL's test pipeline: resize, scale to 0..1, ImageNet normalisation."""
    return Compose([Resize(height, width), ToFloat(), Normalize()])


__all__ = [
    "CAL_ERASING_MEAN",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Compose",
    "Normalize",
    "RandomCroping",
    "RandomErasing",
    "RandomHorizontalFlip",
    "RandomPadCrop",
    "Resize",
    "ToFloat",
    "Transform",
    "as_label_map",
    "as_uint8_tensor",
    "cal_test_transform",
    "cal_train_transform",
    "resize_image",
    "resize_maps",
]
