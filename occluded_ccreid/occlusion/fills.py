"""Fills: how an occluder's alpha is fused into the image (the occluder kinds draw the alpha).

Each fill gets the image (HxWx3 uint8 tensor), the recorded alpha (HxW float, level / 255, on the
image's device), the image's generator and an optional texture donor, and returns the occluded
image. Where the alpha is 0 every fill gives back the source bytes: image * 1 + target * 0 and
image + 0 are exact, so the `occlusion_mask` column bounds every changed pixel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageFilter

from ..parts import NONE


@dataclass(frozen=True)
class Donor:
    """Another image of the same source dataset whose background textures an occluder."""

    image: np.ndarray  # HxWx3 uint8
    parts: np.ndarray  # HxW uint8 part map
    source_path: str


def blend(image: torch.Tensor, alpha: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """image * (1 - alpha) + target * alpha, rounded: exact (the source bytes) where alpha is 0."""
    a = alpha[..., None]
    return (image.float() * (1 - a) + target.float() * a).round_().clamp_(0, 255).to(torch.uint8)


def fill_add(image, alpha, rng, donor):
    """The paper's fusion: image + 255 * occluder, saturating at white."""
    return (image.float() + 255.0 * alpha[..., None]).round_().clamp_(0, 255).to(torch.uint8)


def fill_white(image, alpha, rng, donor):
    return blend(image, alpha, torch.full_like(image, 255))


def fill_black(image, alpha, rng, donor):
    return blend(image, alpha, torch.zeros_like(image))


def fill_mean(image, alpha, rng, donor):
    mean = image.float().mean(dim=(0, 1)).round()
    return blend(image, alpha, mean.expand(image.shape))


def fill_noise(image, alpha, rng, donor):
    noise = torch.from_numpy(rng.integers(0, 256, size=tuple(image.shape), dtype=np.uint8)).to(image.device)
    return blend(image, alpha, noise)


def fill_blur(image, alpha, rng, donor):
    radius = max(2.0, 0.06 * max(image.shape[:2]))  # blurs a person's details away at any size
    blurred = Image.fromarray(image.cpu().numpy()).filter(ImageFilter.GaussianBlur(radius))
    return blend(image, alpha, torch.from_numpy(np.asarray(blurred).copy()).to(image.device))


def background_patch(donor: Donor, height: int, width: int) -> np.ndarray | None:
    """The donor's largest background strip beside the person (left/right/above/below its
    bounding box), resized to height x width; None when the donor has no such strip."""
    person = donor.parts != NONE
    rows, cols = np.flatnonzero(person.any(axis=1)), np.flatnonzero(person.any(axis=0))
    h, w = person.shape
    if not rows.size:
        strips = [(0, h, 0, w)]
    else:
        strips = [(0, h, 0, cols[0]), (0, h, cols[-1] + 1, w), (0, rows[0], 0, w), (rows[-1] + 1, h, 0, w)]
    r0, r1, c0, c1 = max(strips, key=lambda s: (s[1] - s[0]) * (s[3] - s[2]))
    if (r1 - r0) < 2 or (c1 - c0) < 2:
        return None
    patch = Image.fromarray(donor.image[r0:r1, c0:c1]).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(patch).copy()


def fill_texture(image, alpha, rng, donor):
    """Scene clutter: background pixels of another identity's image, over the occluder's box."""
    if donor is None:
        raise ValueError("the texture fill needs a donor image")
    ys, xs = torch.nonzero(alpha > 0, as_tuple=True)
    if not ys.numel():
        return image.clone()
    r0, r1, c0, c1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    patch = background_patch(donor, r1 - r0, c1 - c0)
    if patch is None:  # the donor is person from edge to edge: no background to borrow
        return fill_mean(image, alpha, rng, donor)
    target = image.clone()
    target[r0:r1, c0:c1] = torch.from_numpy(patch).to(image.device)
    return blend(image, alpha, target)


PASTE = "paste"  # not a fill of FILLS: occluders with their own pixels (person, objects) are blended onto the image

Fill = Callable[[torch.Tensor, torch.Tensor, np.random.Generator, "Donor | None"], torch.Tensor]
FILLS: dict[str, Fill] = {
    "add": fill_add,
    "white": fill_white,
    "black": fill_black,
    "mean": fill_mean,
    "noise": fill_noise,
    "blur": fill_blur,
    "texture": fill_texture,
}
