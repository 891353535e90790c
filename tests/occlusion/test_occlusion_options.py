"""Occlusion options: coverage band, rectangles, fills, texture donors, policies."""

import json

import numpy as np
import pytest
import torch
from datasets import load_dataset
from synthetic import draw_person

from builder.cli import main
from builder.images import load_rgb
from builder.processing import pick_donor
from occluded_ccreid.occlusion import (
    FILLS,
    OCCLUDERS,
    Donor,
    OcclusionConfig,
    Target,
    image_rng,
    occlude,
    occlude_batch,
)
from occluded_ccreid.sources import get_source


def person(key="p", height=96, width=48, **kw):
    return draw_person(height, width, key, (1, "AB"), **kw)


def shape_alpha(parts, seed, path, config):
    """The alpha `occlude` used on its first draw: the same stream, the same order of draws."""
    rng = image_rng(seed, path)
    rng.random()  # the occlusion-probability draw
    occluder = OCCLUDERS[config.occluder]
    draw = occluder.draw(Target(parts), rng, config)
    return occluder.render([torch.from_numpy(parts)], [draw], config)[0].alpha.numpy()


@pytest.mark.parametrize("band", [(0.3, 0.6), (0.05, 0.2), (0.25, 1.0)])
def test_rows_are_inside_the_band_or_flagged(band):
    config = OcclusionConfig(min_coverage=band[0], max_coverage=band[1])
    inside = 0
    for i in range(40):
        image, parts = person(f"band{i}")
        occ = occlude(image, parts, image_rng(0, f"x{i}"), config)
        assert occ.in_band == (band[0] <= occ.ratio <= band[1])
        assert 1 <= occ.attempts <= config.max_attempts
        inside += occ.in_band
    assert inside >= 20  # redraws bring most rows inside


def test_impossible_band_keeps_closest_draw_and_flags_it():
    image, parts = person()
    occ = occlude(image, parts, image_rng(0, "x"), OcclusionConfig(min_coverage=0.99))
    assert not occ.in_band and occ.attempts == OcclusionConfig().max_attempts and occ.part > 0


def test_rectangles_reproduce_the_four_positions():
    image, parts = person(height=100, width=50)
    config = OcclusionConfig(occluder="rectangle", min_coverage=0.0)
    expected = {
        "top": (slice(0, 30), slice(None)),
        "bottom": (slice(70, None), slice(None)),
        "left": (slice(None), slice(0, 15)),
        "right": (slice(None), slice(35, None)),
    }
    seen = set()
    for seed in range(40):
        occ = occlude(image, parts, image_rng(seed, "r"), config)
        side = occ.occluder.removeprefix("rectangle-")
        want = np.zeros(parts.shape, dtype=bool)
        want[expected[side]] = True
        np.testing.assert_array_equal(occ.mask, want * np.uint8(255))  # hard edges: 0/255 only
        assert (occ.image[want] == 0).all()  # black, as Feng et al.
        np.testing.assert_array_equal(occ.image[~want], image[~want])
        assert occ.part == 0 and occ.pool_scale == 0
        seen.add(side)
    assert seen == set(expected)


def distinct_donor():
    """A donor whose background is one colour nobody else has, with a person in the middle."""
    image, parts = draw_person(80, 40, "donor", (9, "AB"), scale=0.5)
    image[parts == 0] = (7, 200, 13)
    return Donor(image, parts, "donor.png")


# What each fill blends towards where the alpha is 1, for the fills with a target known up front.
FILL_TARGETS = {
    "white": lambda image: np.full(image.shape, 255.0),
    "black": lambda image: np.zeros(image.shape),
    "mean": lambda image: np.broadcast_to(image.reshape(-1, 3).mean(axis=0).round(), image.shape),
}


@pytest.mark.parametrize("fill", list(FILLS))
def test_every_fill_changes_only_the_occluder(fill):
    config = OcclusionConfig(fill=fill, min_coverage=0.0)
    for i in range(5):
        image, parts = person(f"fill{i}")
        occ = occlude(image, parts, image_rng(i, "f"), config, distinct_donor())
        alpha = shape_alpha(parts, i, "f", config)  # the first (here: only) draw's shape
        # the record is that shape at 8 bits, soft edges included
        np.testing.assert_array_equal(occ.mask, np.floor(alpha.astype(np.float64) * 255 + 0.5).astype(np.uint8))
        untouched = occ.mask == 0
        np.testing.assert_array_equal(occ.image[untouched], image[untouched])
        changed = (occ.image != image).any(axis=2)
        assert (occ.mask[changed] > 0).all()
        assert changed[occ.mask == 255].mean() > 0.9  # the occluder's core really is covered
        assert occ.occluder == "parts"
        a = occ.mask[..., None] / 255.0
        if fill == "add":
            np.testing.assert_array_equal(occ.image, np.minimum(image.astype(int) + occ.mask[..., None], 255))
        elif fill in FILL_TARGETS:  # the blend with the recorded alpha, within float32 rounding
            want = image * (1 - a) + FILL_TARGETS[fill](image) * a
            assert np.abs(occ.image - want).max() <= 0.5 + 1e-3


def test_texture_takes_its_pixels_from_the_donor_background():
    image, parts = person()
    config = OcclusionConfig(fill="texture", min_coverage=0.0)
    occ = occlude(image, parts, image_rng(0, "t"), config, distinct_donor())
    core = shape_alpha(parts, 0, "t", config) == 1
    assert (occ.image[core] == (7, 200, 13)).all()


def test_donor_is_another_identity_and_deterministic(prcc_tree):
    records = get_source("prcc").scan(prcc_tree.root).records
    for record in records[:10]:
        donor, image = pick_donor(record, records, prcc_tree.root, seed=0)
        assert donor.pid != record.pid
        assert pick_donor(record, records, prcc_tree.root, seed=0)[0] == donor
        np.testing.assert_array_equal(image, load_rgb(prcc_tree.root / donor.source_path))


def build(tree, out, *extra):
    assert (
        main(
            [
                "build",
                "prcc",
                str(tree.root),
                "--out",
                str(out),
                "--parsing-dir",
                str(tree.parsing_dir),
                "--no-progress",
                *extra,
            ]
        )
        == 0
    )
    return load_dataset(str(out)), json.loads((out / "build_report.json").read_text())


def test_policies_occlude_exactly_the_requested_splits_and_share(prcc_tree, tmp_path):
    ds, report = build(
        prcc_tree, tmp_path / "a", "--occlude-splits", "query,gallery", "--occlusion-prob", "0.5", "--keep-clean"
    )
    for split in ("train", "validation"):
        assert set(ds[split]["occluder"]) == {"none"} and set(ds[split]["occluded_ratio"]) == {0.0}
        assert set(ds[split]["occluded_part"]) == {0} and set(ds[split]["pool_scale"]) == {0}
    test_rows = [r for s in ("query", "gallery") for r in ds[s]]
    occluded = [r["occluder"] != "none" for r in test_rows]
    assert 0.25 < np.mean(occluded) < 0.75
    for row in test_rows + list(ds["train"]):
        clean = np.asarray(row["clean_image"])
        np.testing.assert_array_equal(clean, load_rgb(prcc_tree.root / row["source_path"]))
        if row["occluder"] == "none":
            assert not np.asarray(row["occlusion_mask"]).any()
            np.testing.assert_array_equal(np.asarray(row["image"]), clean)
    assert report["occlusion"]["occlude_splits"] == ["gallery", "query"]
    assert report["occlusion"]["occlusion_prob"] == 0.5 and report["occlusion"]["keep_clean"] is True
    card = (tmp_path / "a" / "README.md").read_text()
    assert "occlusion probability 0.5" in card and "`clean_image`" in card


def test_band_is_counted_in_report_and_rows(prcc_tree, tmp_path):
    ds, report = build(prcc_tree, tmp_path / "b", "--min-coverage", "0.45", "--max-coverage", "0.5")
    for split, stats in report["splits"].items():
        rows = ds[split]
        assert stats["out_of_band"] == sum(not ok for ok in rows["coverage_in_band"])
        for ratio, ok in zip(rows["occluded_ratio"], rows["coverage_in_band"], strict=True):
            # the stored ratio is float32: compare at that precision
            assert ok == (np.float32(0.45) <= np.float32(ratio) <= np.float32(0.5))
    assert report["occlusion"]["min_coverage"] == 0.45


def test_rectangle_and_texture_builds_record_their_options(prcc_tree, tmp_path):
    ds, report = build(prcc_tree, tmp_path / "r", "--occluder", "rectangle")
    assert {o.split("-")[0] for o in ds["train"]["occluder"]} == {"rectangle"}
    assert set(ds["train"]["fill"]) == {"black"} and report["occlusion"]["fill"] == "black"
    assert "rectangle baseline of Feng et al." in (tmp_path / "r" / "README.md").read_text()
    ds, report = build(prcc_tree, tmp_path / "t", "--fill", "texture", "--workers", "1")
    assert set(ds["query"]["fill"]) == {"texture"}


def test_bad_options_are_refused(prcc_tree, tmp_path, capsys):
    base = [
        "build",
        "prcc",
        str(prcc_tree.root),
        "--out",
        str(tmp_path / "x"),
        "--parsing-dir",
        str(prcc_tree.parsing_dir),
        "--no-progress",
    ]
    assert main(base + ["--min-coverage", "0.8", "--max-coverage", "0.2"]) == 2
    assert "--min-coverage <= --max-coverage" in capsys.readouterr().err
    assert main(base + ["--occlude-splits", "test"]) == 2
    assert "--occlude-splits test not in PRCC's splits" in capsys.readouterr().err
    assert main(base + ["--occlusion-prob", "1.5"]) == 2
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "config",
    [
        OcclusionConfig(),
        OcclusionConfig(min_coverage=0.3, max_coverage=0.45, occlusion_prob=0.7),
        OcclusionConfig(occluder="rectangle", fill="noise"),
        OcclusionConfig(fill="texture", min_coverage=0.2),
    ],
    ids=["paper", "band", "rectangle-noise", "texture"],
)
def test_a_batch_gives_every_image_what_it_gets_alone(config):
    """Images of different sizes (and one with no person) occluded together, in either order,
    give byte for byte what each gives alone: the draw rounds and the pooling per scale share
    nothing between images."""
    sizes = [(96, 48), (130, 40), (64, 60), (24, 10), (101, 37), (96, 48)]
    batch = [person(f"batch{i}", h, w) for i, (h, w) in enumerate(sizes)]
    batch.append((np.full((50, 20, 3), 90, dtype=np.uint8), np.zeros((50, 20), dtype=np.uint8)))
    donors = [distinct_donor()] * len(batch)
    rngs = lambda: [image_rng(3, f"b{i}") for i in range(len(batch))]  # noqa: E731
    alone = [
        occlude(im, parts, rng, config, donor) for (im, parts), rng, donor in zip(batch, rngs(), donors, strict=True)
    ]
    together = occlude_batch([im for im, _ in batch], [p for _, p in batch], rngs(), config, donors)
    backwards = occlude_batch([im for im, _ in batch][::-1], [p for _, p in batch][::-1], rngs()[::-1], config, donors)[
        ::-1
    ]
    assert len({a.attempts for a in alone}) > 1 or config.min_coverage <= 0.05  # rounds really differ in length
    for a, b, c in zip(alone, together, backwards, strict=True):
        for other in (b, c):
            assert np.array_equal(a.image, other.image) and np.array_equal(a.mask, other.mask)
            assert (a.part, a.pool_scale, a.ratio, a.occluder, a.in_band, a.attempts) == (
                other.part,
                other.pool_scale,
                other.ratio,
                other.occluder,
                other.in_band,
                other.attempts,
            )
