"""Decoding quirks and the occlusion algorithm on known part maps."""

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import draw_person

from builder.images import DecodeError, load_rgb
from occluded_ccreid.occlusion import grow_mask, image_rng, occlude


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "RGB", "CMYK"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    rgb = np.random.default_rng(0).integers(0, 255, (24, 10, 3), dtype=np.uint8)
    pil = Image.fromarray(rgb)
    if mode == "I;16":
        pil = Image.fromarray(np.asarray(pil.convert("L")).astype("<u2") * 257)
    elif mode != "RGB":
        pil = pil.convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    pil.save(path)
    out = load_rgb(path)
    assert out.shape == (24, 10, 3) and out.dtype == np.uint8
    if mode in ("L", "I;16"):
        np.testing.assert_array_equal(out[..., 0], np.asarray(Image.fromarray(rgb).convert("L")))


def test_corrupt_file_raises_decode_error(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 garbage")
    with pytest.raises(DecodeError):
        load_rgb(path)


def person(height=96, width=48, missing=()):
    return draw_person(height, width, ("occlusion-test", height, missing), (1, "AB"), missing=missing)


def test_occluder_covers_the_part_and_ratio_matches_mask():
    image, parts = person()
    for seed in range(20):
        occ = occlude(image, parts, image_rng(seed, "a.jpg"))
        assert 1 <= occ.part <= 6 and occ.mask.dtype == np.uint8
        assert (occ.mask[parts == occ.part] == 255).all()  # the part itself is fully occluded
        assert ((occ.mask > 0) & (occ.mask < 255)).any()  # soft edges: levels between 0 and 255
        person_px = parts > 0
        assert occ.ratio == pytest.approx(occ.mask[person_px].sum(dtype=np.int64) / (255 * person_px.sum()), rel=1e-12)
        # additive fusion with exactly the recorded alpha: source + level, saturating at white
        np.testing.assert_array_equal(occ.image, np.minimum(image.astype(int) + occ.mask[..., None], 255))


def test_pooling_grows_the_mask_and_the_largest_scale_grows_it_most():
    _, parts = person(256, 128)
    part = torch.from_numpy(parts == 6)
    areas = [int((grow_mask(part, k) >= 0.5).sum()) for k in (3, 5, 7, 9)]
    assert min(areas) >= int(part.sum())
    assert areas[-1] > 1.3 * areas[0]


def test_absent_part_is_redrawn_among_present_parts():
    image, parts = person(missing=(1, 2, 3, 4, 5))  # only lower legs
    assert {occlude(image, parts, image_rng(s, "x")).part for s in range(30)} == {6}


def test_no_person_is_kept_unoccluded():
    image = np.full((40, 20, 3), 100, dtype=np.uint8)
    occ = occlude(image, np.zeros((40, 20), dtype=np.uint8), image_rng(0, "x"))
    assert occ.part == 0 and occ.pool_scale == 0 and occ.ratio == 0 and not occ.mask.any()
    assert occ.mask.dtype == np.uint8
    np.testing.assert_array_equal(occ.image, image)


def test_tiny_crop():
    image, parts = person(24, 10)
    occ = occlude(image, parts, image_rng(0, "tiny"))
    assert occ.mask.shape == (24, 10) and (occ.mask[parts == occ.part] == 255).all()


def test_rng_depends_on_seed_and_path_only():
    draw = lambda s, p: image_rng(s, p).integers(0, 2**31, 4).tolist()  # noqa: E731
    assert draw(0, "a") == draw(0, "a")
    assert draw(0, "a") != draw(1, "a") and draw(0, "a") != draw(0, "b")


def test_read_only_inputs_are_taken_without_warnings():
    """np.asarray of a PIL image is read-only: torch cannot share it and would warn."""
    import warnings

    image, parts = person()
    image.flags.writeable = parts.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        occ = occlude(image, parts, image_rng(0, "ro"))
    assert occ.part > 0 and (occ.mask[parts == occ.part] == 255).all()
