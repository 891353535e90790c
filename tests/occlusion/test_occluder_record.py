"""Every row's occluder record equals what was drawn, checked against pixels: synthetic PRCC trees
with true part maps (`--parsing-dir`), one build per fill and occluder option. For each row the
source image is decoded again and compared with the stored image, the 8-bit `occlusion_mask`
and the true part map; nothing here reads the builder's own intermediate values."""

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from synthetic import make_prcc_tree

from builder.cli import main
from builder.images import load_rgb
from occluded_ccreid.occlusion import FILLS


def decode(value: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(value["bytes"])))


def rows(folder):
    for shard in sorted((folder / "data").glob("*.parquet")):
        yield from pq.read_table(shard).to_pylist()


def check_rows_against_pixels(folder, tree) -> dict:
    """Assert the record of every row; return counts for the caller's own checks."""
    seen = {"rows": 0, "occluded": 0, "soft": 0}
    for row in rows(folder):
        seen["rows"] += 1
        source = load_rgb(tree.root / row["source_path"])
        image, mask, parts = decode(row["image"]), decode(row["occlusion_mask"]), decode(row["parsing"])
        assert mask.dtype == np.uint8 and mask.shape == parts.shape == image.shape[:2] == source.shape[:2]
        truth = Image.open(tree.parsing_dir / f"{row['source_path'][:-4]}.png")
        np.testing.assert_array_equal(parts, np.asarray(truth))
        untouched = mask == 0
        np.testing.assert_array_equal(image[untouched], source[untouched])  # byte-identical to the source
        changed = (image != source).any(axis=2)
        assert (mask[changed] > 0).all()
        person = parts > 0
        weighted = mask[person].astype(np.int64).sum() / 255 / person.sum()  # alpha-weighted coverage
        assert row["occluded_ratio"] == pytest.approx(weighted, rel=2**-23, abs=0)  # float32 storage
        if row["occluder"] == "none":
            assert not mask.any() and row["occluded_ratio"] == 0.0 and row["fill"] == "none"
            continue
        seen["occluded"] += 1
        seen["soft"] += bool(((mask > 0) & (mask < 255)).any())
        if row["occluder"].startswith("rectangle"):
            assert set(np.unique(mask)) <= {0, 255}
        else:
            assert (mask[parts == row["occluded_part"]] == 255).all()  # the chosen part is fully occluded
        if row["fill"] == "add":  # the paper's fusion with exactly the recorded alpha
            np.testing.assert_array_equal(image, np.minimum(source.astype(int) + mask[..., None], 255))
        if row["fill"] in ("add", "white"):
            assert (image[mask == 255] == 255).all()
        if row["fill"] == "black":
            assert (image[mask == 255] == 0).all()
    return seen


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory):
    """One identity per split and camera, plus the grayscale and the tiny crop: 11 images."""
    return make_prcc_tree(tmp_path_factory.mktemp("small-prcc"), n_train=1, n_test=1, per_camera=1)


def test_the_paper_build_records_what_it_drew(prcc_build, prcc_tree):
    seen = check_rows_against_pixels(prcc_build, prcc_tree)
    assert seen["occluded"] == seen["rows"] == len(prcc_tree.expected)
    assert seen["soft"] == seen["occluded"]  # soft edges are recorded, not cut at a threshold


@pytest.mark.parametrize(
    "options",
    [["--fill", fill] for fill in FILLS if fill != "add"]
    + [
        ["--occluder", "rectangle"],
        ["--occlusion-prob", "0.5"],
        ["--occlusion-prob", "0"],
        ["--min-coverage", "0.3", "--max-coverage", "0.4"],
    ],
    ids=lambda options: " ".join(options),
)
def test_every_option_records_what_it_drew(small_tree, tmp_path, options):
    out = tmp_path / "out"
    assert (
        main(
            [
                "build",
                "prcc",
                str(small_tree.root),
                "--out",
                str(out),
                "--parsing-dir",
                str(small_tree.parsing_dir),
                "--no-progress",
                "--workers",
                "1",
                *options,
            ]
        )
        == 0
    )
    seen = check_rows_against_pixels(out, small_tree)
    assert seen["rows"] == len(small_tree.expected)
    if options == ["--occlusion-prob", "0"]:
        assert seen["occluded"] == 0
    elif "--occlusion-prob" in options:
        assert 0 < seen["occluded"] < seen["rows"]
    else:
        assert seen["occluded"] == seen["rows"]
    if "rectangle" not in options and seen["occluded"]:
        assert seen["soft"] == seen["occluded"]
    if "--min-coverage" in options:  # the band applies to the same alpha-weighted number
        low, high = (np.float32(options[options.index(flag) + 1]) for flag in ("--min-coverage", "--max-coverage"))
        flags = [(row["coverage_in_band"], low <= np.float32(row["occluded_ratio"]) <= high) for row in rows(out)]
        assert all(recorded == inside for recorded, inside in flags) and any(recorded for recorded, _ in flags)
