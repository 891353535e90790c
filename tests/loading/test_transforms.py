"""The CAL transforms against an independent reference written here with PIL and NumPy, following
CAL's code (data/img_transforms.py) and drawing the same random numbers from the same generators."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
from occluded_ccreid import transforms as T  # noqa: E402

MEAN, STD = np.array(T.IMAGENET_MEAN), np.array(T.IMAGENET_STD)
ERASE_MEAN = (0.4914, 0.4822, 0.4465)  # CAL's RandomErasing default, spelled out independently


def _u(g) -> float:
    return float(torch.rand((), dtype=torch.float64, generator=g))


def _randint(a: int, b: int, g) -> int:
    return int(torch.randint(a, b + 1, (), generator=g))


def _nearest(array: np.ndarray, h: int, w: int) -> np.ndarray:
    rows = np.minimum(np.floor((np.arange(h) + 0.5) * array.shape[0] / h).astype(int), array.shape[0] - 1)
    cols = np.minimum(np.floor((np.arange(w) + 0.5) * array.shape[1] / w).astype(int), array.shape[1] - 1)
    return array[rows][:, cols]


def reference_train(image: Image.Image, mask: np.ndarray, h: int, w: int, seed: int, p=(0.5, 0.5, 0.5)):
    """CAL's train pipeline on a PIL image (+ a label map moved along), draws from per-step generators."""
    g_crop, g_flip, g_erase = (torch.Generator().manual_seed(seed * 1000 + i) for i in range(3))
    img, m = image.resize((w, h), Image.BILINEAR), _nearest(mask, h, w)
    if _u(g_crop) < p[0]:  # RandomCroping
        nw, nh = int(round(w * 1.125)), int(round(h * 1.125))
        x1 = int(round(_u(g_crop) * (nw - w)))
        y1 = int(round(_u(g_crop) * (nh - h)))
        img = img.resize((nw, nh), Image.BILINEAR).crop((x1, y1, x1 + w, y1 + h))
        m = _nearest(m, nh, nw)[y1 : y1 + h, x1 : x1 + w]
    if _u(g_flip) < p[1]:
        img, m = img.transpose(Image.FLIP_LEFT_RIGHT), m[:, ::-1]
    x = (np.asarray(img, dtype=np.float64) / 255.0 - MEAN) / STD  # ToTensor + Normalize, HWC
    x = x.transpose(2, 0, 1).copy()
    if _u(g_erase) < p[2]:  # RandomErasing, CAL's loop
        for _ in range(100):
            area = h * w
            target = (0.02 + (0.4 - 0.02) * _u(g_erase)) * area
            aspect = 0.3 + (1 / 0.3 - 0.3) * _u(g_erase)
            eh, ew = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if ew < w and eh < h:
                x1, y1 = _randint(0, h - eh, g_erase), _randint(0, w - ew, g_erase)
                for c in range(3):
                    x[c, x1 : x1 + eh, y1 : y1 + ew] = ERASE_MEAN[c]
                break
    return x, np.ascontiguousarray(m)


def _photo(h: int, w: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(h // 4, 2), max(w // 4, 2), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.BILINEAR)


def _labels(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 7, size=(h, w), dtype=np.uint8)


@pytest.mark.parametrize("size", [(128, 64), (97, 41), (300, 120)])
def test_resize_matches_pil_within_one_level(size):
    image = _photo(*size, seed=1)
    for h, w in [(64, 32), (96, 48), (200, 90)]:
        ours = T.Resize(h, w)(image).permute(1, 2, 0).numpy().astype(int)
        pil = np.asarray(image.resize((w, h), Image.BILINEAR)).astype(int)
        assert ours.shape == pil.shape and np.abs(ours - pil).max() <= 1
        assert (ours == pil).mean() > 0.8  # measured: 85-100% of values equal
        as_float = T.Resize(h, w)(T.as_uint8_tensor(image).float()).permute(1, 2, 0).numpy()
        assert np.abs(as_float - pil).max() <= 1.01  # the float path (GPU) is PIL's within a level too
        labels = _labels(*size, seed=2)
        assert np.array_equal(
            T.resize_maps(torch.from_numpy(labels)[None, None], (h, w))[0, 0].numpy(), _nearest(labels, h, w)
        )


@pytest.mark.parametrize("seed", range(12))
def test_train_pipeline_equals_reference(seed):
    size = [(128, 64), (110, 50), (60, 30)][seed % 3]
    image, mask = _photo(*size, seed=seed), _labels(*size, seed=seed)
    ours, ours_mask = T.cal_train_transform(64, 32, seed=seed)(image, torch.from_numpy(mask)[None])
    ref, ref_mask = reference_train(image, mask, 64, 32, seed)
    assert ours.shape == (3, 64, 32) and ours.dtype == torch.float32
    diff = np.abs(ours.numpy() - ref)
    # both resize with PIL's bilinear filter; rounding may differ by one grey level per resize (two
    # resizes when cropped). A wrong crop offset, flip or erased box would differ by ~0.3 to 2.
    assert diff.max() < 2.5 / 255 / min(T.IMAGENET_STD), diff.max()
    assert np.array_equal(ours_mask[0].numpy(), ref_mask)


def test_every_augmentation_happens_across_seeds():
    """The reference comparison above is not vacuous: each step both acts and not across its seeds."""
    image = T.as_uint8_tensor(_photo(64, 32, seed=0))
    for step in (T.RandomCroping, T.RandomHorizontalFlip):
        steps = [step(generator=torch.Generator().manual_seed(s * 1000)) for s in range(12)]
        changed = [not torch.equal(t(image), image) for t in steps]
        assert 0 < sum(changed) < 12, step
    erased = [T.RandomErasing(generator=torch.Generator().manual_seed(s * 1000 + 2)).box(64, 32) for s in range(12)]
    assert any(b is None for b in erased) and any(b is not None for b in erased)


def test_batched_equals_one_at_a_time():
    images = torch.stack([T.Resize(64, 32)(_photo(100 + 4 * i, 50, seed=i)) for i in range(8)])
    maps = torch.from_numpy(np.stack([_labels(64, 32, seed=i) for i in range(8)]))[:, None]
    batch_out, batch_maps = T.cal_train_transform(64, 32, seed=5)(images, maps)
    single = T.cal_train_transform(64, 32, seed=5)
    for i in range(8):
        out, m = single(images[i], maps[i])
        assert torch.equal(out, batch_out[i]) and torch.equal(m, batch_maps[i])
    batch = T.cal_train_transform(64, 32, pad_crop=10, seed=3)(images)
    loop = T.cal_train_transform(64, 32, pad_crop=10, seed=3)
    assert all(torch.equal(batch[i], loop(images[i])) for i in range(8))


def test_pad_crop_against_reference():
    image = T.as_uint8_tensor(_photo(40, 20, seed=3))
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        out = T.RandomPadCrop(10, p=0.5, generator=g)(image)
        g = torch.Generator().manual_seed(seed)
        ref = image.numpy()
        if _u(g) < 0.5:
            top, left = _randint(0, 20, g), _randint(0, 20, g)
            ref = np.pad(ref, ((0, 0), (10, 10), (10, 10)))[:, top : top + 40, left : left + 20]
        assert np.array_equal(out.numpy(), ref)


def test_test_pipeline_and_erasing_on_one_channel():
    image = _photo(128, 64, seed=4)
    ref = (np.asarray(image.resize((32, 64), Image.BILINEAR), dtype=np.float64) / 255 - MEAN) / STD
    out = T.cal_test_transform(64, 32)(image).permute(1, 2, 0).numpy()
    assert np.abs(out - ref).max() <= 1.01 / 255 / min(T.IMAGENET_STD)
    grey = torch.zeros(2, 64, 32)
    erased = T.RandomErasing(p=1.0, generator=torch.Generator().manual_seed(0))(grey)
    assert torch.unique(erased[0]).tolist() == [0.0, pytest.approx(0.4914)] and torch.count_nonzero(erased[1]) == 0


def test_refusals():
    with pytest.raises(TypeError, match="ToFloat"):
        T.Normalize()(torch.zeros(3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="do not match"):
        T.Resize(8, 4)(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(1, 5, 4, dtype=torch.uint8))


# -- label maps through the loaders --------------------------------------------------------------------------


def _blocky_split():
    """Rows whose image is grey = 30 x part label, in 8x8 blocks, with that part map in `parsing`."""
    from datasets import Dataset

    from occluded_ccreid.features import dataset_features

    rows: dict[str, list] = {name: [] for name in dataset_features()}
    for n, (h, w) in enumerate([(64, 32), (96, 48), (80, 40), (64, 32)]):
        blocks = np.random.default_rng(n).integers(0, 7, size=(h // 8, w // 8), dtype=np.uint8)
        parts = np.kron(blocks, np.ones((8, 8), dtype=np.uint8))
        rows["image"].append(Image.fromarray(np.repeat(parts[:, :, None] * 30, 3, axis=2)))
        rows["parsing"].append(Image.fromarray(parts))
        rows["occlusion_mask"].append(Image.fromarray((parts > 3).astype(np.uint8) * 255))
        # the mask covers parts 4..6 fully and leaves 1..3 visible
        rows["part_visibility"].append([(0.0 if p > 3 else 1.0) if (parts == p).any() else None for p in range(1, 7)])
        rows["occluders"].append([])
        rows["person_donors"].append([])
        for column, value in (
            ("pid", n % 2),
            ("camid", 0),
            ("clothes_id", n % 2),
            ("occluded_part", 0),
            ("pool_scale", 0),
            ("occluded_ratio", 0.0),
            ("occluder", "none"),
            ("fill", "none"),
            ("coverage_in_band", True),
            ("source_path", f"x/{n}.png"),
        ):
            rows[column].append(value)
    return Dataset.from_dict(rows, features=dataset_features())


def test_pk_loader_moves_label_maps_with_the_image():
    from occluded_ccreid.torch_data import pk_loader

    columns = ("pid", "occlusion_mask", "parsing")
    torch.manual_seed(0)
    loader = pk_loader(_blocky_split(), T.cal_train_transform(48, 24, erase_p=0.0), p=2, k=2, columns=columns)
    flips = 0
    for _ in range(4):
        for images, _, masks, parts in loader:
            assert masks.shape == parts.shape == (4, 48, 24) and parts.dtype == torch.uint8
            grey = images * torch.tensor(T.IMAGENET_STD)[:, None, None] + torch.tensor(T.IMAGENET_MEAN)[:, None, None]
            grey = (grey[:, 0] * 255 / 30).round()
            # away from block borders (where bilinear blends two labels) the image shows the map's label
            pooled = torch.nn.functional.max_pool2d(parts[:, None].float(), 5, 1, 2)[:, 0]
            low = -torch.nn.functional.max_pool2d(-parts[:, None].float(), 5, 1, 2)[:, 0]
            inside = pooled == low
            assert inside.float().mean() > 0.1
            agree = (grey[inside] == parts[inside].float()).float().mean()
            assert agree > 0.99, agree  # maps only resized, not cropped / flipped with the image: 48%
            assert torch.equal(masks > 0, parts > 3)
            flips += 1
    assert flips == 4 * len(loader)


def test_label_maps_resized_to_a_plain_callable_output():
    from occluded_ccreid.torch_data import ReIDDataset, to_tensor

    split = _blocky_split()
    dataset = ReIDDataset(split, lambda im: to_tensor(im.resize((16, 32))), columns=("pid", "parsing"))
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, collate_fn=dataset.collate)
    images, _, parts = next(iter(loader))
    assert images.shape == (4, 3, 32, 16) and parts.shape == (4, 32, 16)
    for i in range(4):
        source = np.asarray(split[i]["parsing"])
        assert np.array_equal(parts[i].numpy(), _nearest(source, 32, 16))
