"""The occluder kinds (parts, rectangle, person, objects) and several occluders per image, built
from synthetic trees with true part maps: every row's record is checked against pixels and the
true part map (nothing here reads the builder's intermediate values), the training transform
replays built rows at (build seed, epoch 0), and the new options keep builds deterministic,
resumable and inside the coverage band."""

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from synthetic import make_objects, make_prcc_tree

from builder import staging as staging_module
from builder.cli import main
from builder.images import load_rgb
from builder.preview import caption
from occluded_ccreid.loading import load
from occluded_ccreid.occlusion import image_rng
from occluded_ccreid.occlusion.transform import OcclusionTransform, PersonPool

KINDS = ["parts", "rectangle", "person", "objects", "parts,person,objects"]


def decode(value: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(value["bytes"])))


def rows(folder):
    for shard in sorted((folder / "data").glob("*.parquet")):
        split = shard.name.rsplit("-", 3)[0]
        for row in pq.read_table(shard).to_pylist():
            yield split, row


def folder_bytes(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Two identities per split and camera (person donors need another identity): ~30 images."""
    return make_prcc_tree(tmp_path_factory.mktemp("kinds-prcc"), n_train=2, n_test=2, per_camera=1)


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    return make_objects(tmp_path_factory.mktemp("objects") / "voc")


def build(tree, out, *options, objects=None):
    extra = ["--objects-dir", str(objects)] if objects is not None and "objects" in " ".join(options) else []
    return main(
        [
            "build",
            "prcc",
            str(tree.root),
            "--out",
            str(out),
            "--parsing-dir",
            str(tree.parsing_dir),
            "--no-progress",
            "--workers",
            "1",
            *extra,
            *options,
        ]
    )


def true_parts(tree, path):
    return np.asarray(Image.open(tree.parsing_dir / f"{path[:-4]}.png"))


def check_row(tree, split, row, objects, split_pids):
    """Assert the row's record against pixels and the true part map; return whether it is occluded."""
    source = load_rgb(tree.root / row["source_path"])
    image, mask, parts = decode(row["image"]), decode(row["occlusion_mask"]), decode(row["parsing"])
    truth = true_parts(tree, row["source_path"])
    np.testing.assert_array_equal(parts, truth)
    assert mask.shape == truth.shape == image.shape[:2] == source.shape[:2]
    np.testing.assert_array_equal(image[mask == 0], source[mask == 0])  # untouched pixels: the source bytes
    assert (mask[(image != source).any(axis=2)] > 0).all()  # every changed pixel is under the mask
    person = truth > 0
    assert row["occluded_ratio"] == pytest.approx(mask[person].sum(dtype=np.int64) / 255 / person.sum(), abs=1e-6)
    assert len(row["part_visibility"]) == 6
    for part, visible in enumerate(row["part_visibility"], start=1):
        pixels = truth == part
        if not pixels.any():
            assert visible is None
        else:
            assert visible == pytest.approx(1 - mask[pixels].sum(dtype=np.int64) / 255 / pixels.sum(), abs=1e-6)
    drawn = row["occluders"]
    assert row["occluder"] == ("+".join(d["occluder"] for d in drawn) if drawn else "none")
    for d in drawn:
        if d["occluder"] == "person":  # another identity of the same split, one of the row's donors
            assert d["source"] in row["person_donors"] and split_pids[split][d["source"]] != row["pid"]
        elif d["occluder"] == "objects":
            assert (objects / d["source"]).is_file() and d["source"] in ("bag.png", "pole.png", "sub/box.png")
        else:
            assert d["source"] is None
    if len(drawn) == 1 and drawn[0]["occluder"] == "parts":
        assert (mask[truth == drawn[0]["part"]] == 255).all()
    if len(drawn) == 1 and drawn[0]["occluder"].startswith("rectangle"):
        assert set(np.unique(mask)) <= {0, 255}
    if not drawn:
        assert not mask.any() and row["fill"] == "none"
    return bool(drawn)


@pytest.mark.parametrize("count", ["1", "2", "3"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_and_count_records_what_it_drew(tree, objects, tmp_path, kind, count):
    out = tmp_path / "out"
    assert (
        build(
            tree, out, "--occluder", kind, "--occluders", count, "--keep-clean", "--min-coverage", "0", objects=objects
        )
        == 0
    )
    all_rows = list(rows(out))
    split_pids = {}
    for split, row in all_rows:
        split_pids.setdefault(split, {})[row["source_path"]] = row["pid"]
    occluded = [check_row(tree, split, row, objects, split_pids) for split, row in all_rows]
    assert len(all_rows) == len(tree.expected) and sum(occluded) >= len(all_rows) - 1  # the tiny crop may miss
    counts = [len(row["occluders"]) for _, row in all_rows if row["occluders"]]
    if "person" not in kind:  # every slot draws (a person slot draws nothing when its donor has no person)
        assert set(counts) == {int(count)}
    assert {d["occluder"].split("-")[0] for _, row in all_rows for d in row["occluders"]} == set(kind.split(","))
    if int(count) > 1:  # several occluders: the union is recorded, soft where one occluder's edge lies
        assert any(len(row["occluders"]) > 1 for _, row in all_rows)
    # the training transform replays every built row at (build seed, epoch 0) and draws anew at epoch 1
    report = json.loads((out / "build_report.json").read_text())
    differs = 0
    for split in report["splits"]:
        data = load(out, split=split)
        transform = OcclusionTransform.from_report(out, split, people=PersonPool(data))
        for i in range(len(data)):
            row = data[i]
            again = transform(row, epoch=0)
            np.testing.assert_array_equal(again.image, np.asarray(row["image"]))
            np.testing.assert_array_equal(again.mask, np.asarray(row["occlusion_mask"]))
            assert again.occluder == row["occluder"] and [d.as_row() for d in again.drawn] == row["occluders"]
            fresh = transform(row, epoch=1)
            differs += not np.array_equal(fresh.mask, again.mask)
    assert differs >= len(all_rows) // 2


@pytest.mark.parametrize(
    "options",
    [
        ["--occluder", "person,objects", "--occluders", "1-3", "--min-coverage", "0.2", "--max-coverage", "0.6"],
        ["--occluder", "parts,rectangle", "--occluders", "2", "--occlusion-preset", "occluded-duke", "--fill", "noise"],
    ],
    ids=["person-objects", "parts-rectangle-preset"],
)
def test_new_options_are_deterministic_resumable_and_banded(tree, objects, tmp_path, monkeypatch, options):
    reference = tmp_path / "reference"
    assert build(tree, reference, *options, "--batch-size", "1", objects=objects) == 0
    again = tmp_path / "again"
    assert build(tree, again, *options, "--batch-size", "5", "--workers", "2", objects=objects) == 0
    assert folder_bytes(again) == folder_bytes(reference)
    if "person,objects" in options:  # worker processes draw the same donors and objects
        spawned = tmp_path / "spawned"
        assert build(tree, spawned, *options, "--processes", "2", objects=objects) == 0
        assert folder_bytes(spawned) == folder_bytes(reference)
    # a build stopped after its first shard resumes to the same files
    commit = staging_module.Staging.commit

    def stop_after_first(self, name, entry):
        commit(self, name, entry)
        raise KeyboardInterrupt

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(staging_module.Staging, "commit", stop_after_first)
    assert build(tree, resumed, *options, objects=objects) == 130
    monkeypatch.undo()
    assert build(tree, resumed, *options, "--batch-size", "3", objects=objects) == 0
    assert folder_bytes(resumed) == folder_bytes(reference)
    if "--min-coverage" in options:  # the band applies to the union's ratio
        low, high = np.float32(0.2), np.float32(0.6)
        flags = [
            (row["coverage_in_band"], low <= np.float32(row["occluded_ratio"]) <= high)
            for _, row in rows(reference)
            if row["occluders"]
        ]
        assert all(recorded == inside for recorded, inside in flags)
        assert sum(recorded for recorded, _ in flags) >= 0.7 * len(flags)


def test_occluded_duke_preset_occludes_every_query_a_tenth_of_the_gallery_and_no_training_row(tree, tmp_path):
    out = tmp_path / "duke"
    assert build(tree, out, "--occlusion-preset", "occluded-duke") == 0
    for split, row in rows(out):
        occluded = row["occluder"] != "none"
        if split == "query":
            assert occluded or not true_parts(tree, row["source_path"]).any()
        elif split == "gallery":  # the row's own probability draw, as for --occlusion-prob
            assert occluded == (image_rng(0, row["source_path"]).random() < 0.1)
        else:
            assert not occluded
    report = json.loads((out / "build_report.json").read_text())
    assert report["occlusion"]["preset"] == "occluded-duke"
    assert report["occlusion"]["occlude_splits"] == ["gallery", "query"]
    assert "occluded-duke" in (out / "README.md").read_text()


def test_bad_new_options_are_refused_in_one_line(tree, objects, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    Image.new("RGB", (8, 8)).save(empty / "photo.png")
    cases = [
        (["--occluder", "objects", "--objects-dir", str(empty)], "holds no usable RGBA cut-out"),
        (["--occluder", "objects"], "--occluder objects needs --objects-dir DIR"),
        (["--occluder", "parts", "--objects-dir", str(objects)], "--objects-dir is only used by --occluder objects"),
        (["--occluder", "person", "--fill", "black"], "--fill black has no effect with --occluder person"),
        (["--occluder", "people"], "unknown occluder 'people'"),
        (["--occluders", "0"], "need 1 <= K1 <= K2"),
        (["--occluders", "two"], "--occluders expects K or K1-K2"),
        (["--occlusion-preset", "occluded-duke", "--occlude-splits", "query"], "drop --occlude-splits"),
        (["--occlusion-preset", "occluded-duke", "--occlusion-prob", "0.5"], "drop --occlusion-prob"),
    ]
    for options, message in cases:
        assert build(tree, tmp_path / "x", *options) == 2, options
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (options, err)
    assert not (tmp_path / "x").exists()


def test_card_and_preview_name_the_new_kinds(tree, objects, tmp_path):
    out = tmp_path / "mixed"
    assert build(tree, out, "--occluder", "parts,person,objects", "--occluders", "2", objects=objects) == 0
    card = (out / "README.md").read_text()
    for text in (
        "`part_visibility`",
        "`occluders`",
        "`person_donors`",
        "another identity's person",
        "RGBA cut-outs",
        "2 occluders per occluded image",
    ):
        assert text in card, text
    assert (out / "preview.png").is_file()
    for split, row in rows(out):
        shown = caption(split, row)
        names = [d["occluder"] for d in row["occluders"]]
        assert shown.count("+") == max(len(names) - 1, 0)
        assert ("person" in shown) == ("person" in names) and ("object" in shown) == ("objects" in names)


def test_transform_without_clean_images_is_refused(tree, tmp_path):
    out = tmp_path / "plain"
    assert build(tree, out) == 0
    data = load(out, split="train")
    with pytest.raises(ValueError, match="--keep-clean"):
        OcclusionTransform.from_report(out, "train")(data[0], epoch=1)
