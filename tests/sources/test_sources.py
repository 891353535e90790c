"""Source layouts: every image once, in the right split, with the labels CAL would read."""

import pytest

from occluded_ccreid.sources import LayoutError, get_source


@pytest.mark.parametrize("name", ["prcc", "ltcc"])
def test_scan_matches_the_tree(name, prcc_tree, ltcc_tree):
    tree = {"prcc": prcc_tree, "ltcc": ltcc_tree}[name]
    scan = get_source(name).scan(tree.root)
    got = {r.source_path: (r.split, r.pid, r.camid, r.clothes_key) for r in scan.records}
    # corrupt files have image extensions: they are records, skipped later when decoding fails
    assert set(got) == set(tree.expected) | set(tree.corrupt)
    assert {p: got[p] for p in tree.expected} == tree.expected
    assert scan.ignored_files == sorted(tree.ignored)
    assert len(scan.records) == len({r.source_path for r in scan.records})


@pytest.mark.parametrize("name", ["prcc", "ltcc"])
def test_clothes_ids_are_global_and_unique_per_outfit(name, prcc_tree, ltcc_tree):
    tree = {"prcc": prcc_tree, "ltcc": ltcc_tree}[name]
    records = get_source(name).scan(tree.root).records
    by_outfit = {}
    for r in records:
        by_outfit.setdefault((r.pid, r.clothes_key), set()).add(r.clothes_id)
    assert all(len(ids) == 1 for ids in by_outfit.values())
    ids = sorted(next(iter(v)) for v in by_outfit.values())
    assert ids == list(range(len(by_outfit)))


def test_prcc_cameras_and_outfits(prcc_tree):
    records = get_source("prcc").scan(prcc_tree.root).records
    for r in records:
        assert r.clothes_key == ("C" if r.camid == 2 else "AB")
    assert {r.camid for r in records if r.split == "gallery"} == {0}
    assert {r.camid for r in records if r.split == "query"} == {1, 2}


def test_missing_split_folder_is_a_clear_error(tmp_path, prcc_tree):
    (tmp_path / "rgb" / "train").mkdir(parents=True)
    with pytest.raises(LayoutError, match=r"missing folder\(s\) rgb/val, rgb/test/A.*Expected layout"):
        get_source("prcc").scan(tmp_path)


def test_wrong_names_are_a_clear_error(tmp_path):
    for folder in ("train", "query", "test"):
        (tmp_path / folder).mkdir()
    (tmp_path / "train" / "person7.png").write_bytes(b"x")
    with pytest.raises(LayoutError, match=r"not named as the LTCC layout expects:\n  train/person7.png"):
        get_source("ltcc").scan(tmp_path)


def test_source_dir_that_does_not_exist(tmp_path):
    with pytest.raises(LayoutError, match="does not exist"):
        get_source("ltcc").scan(tmp_path / "nowhere")


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(KeyError, match="known: deepchange, last, ltcc, manifest, prcc, vcclothes"):
        get_source("market1501")
    assert get_source("occluded-prcc").name == "prcc"


# -- source-scan hygiene: symlinks, dot-files, names that are not ASCII digits ----------------------------


def _prcc_copy(prcc_tree, tmp_path):
    import shutil

    root = tmp_path / "PRCC"
    shutil.copytree(prcc_tree.root, root)
    return root


def test_symlinked_pid_folder_is_followed(prcc_tree, tmp_path):
    import shutil

    root = _prcc_copy(prcc_tree, tmp_path)
    before = {r.source_path for r in get_source("prcc").scan(root).records}
    moved = tmp_path / "elsewhere" / "003"
    shutil.move(root / "rgb" / "train" / "003", moved)
    (root / "rgb" / "train" / "003").symlink_to(moved, target_is_directory=True)
    after = {r.source_path for r in get_source("prcc").scan(root).records}
    assert after == before and any(p.startswith("rgb/train/003/") for p in after)


def test_symlink_loop_is_a_layout_error_naming_it(prcc_tree, tmp_path):
    root = _prcc_copy(prcc_tree, tmp_path)
    (root / "rgb" / "train" / "002" / "again").symlink_to(root / "rgb" / "train", target_is_directory=True)
    with pytest.raises(LayoutError, match=r"symlink loop: .*rgb/train/002/again leads back to .*rgb/train"):
        get_source("prcc").scan(root)


def test_dot_files_are_never_images(prcc_tree, ltcc_tree, tmp_path):
    """AppleDouble files beside images: ignored and reported in every split, never a layout error
    (LTCC's name check) nor a skipped image (PRCC's test folders take any name)."""
    import shutil

    root = _prcc_copy(prcc_tree, tmp_path)
    for folder in ("rgb/train/001", "rgb/test/B/100"):
        (root / folder / "._A_cropped_rgb001.jpg").write_bytes(b"\x00\x05\x16\x07")
    scan = get_source("prcc").scan(root)
    assert {"rgb/train/001/._A_cropped_rgb001.jpg", "rgb/test/B/100/._A_cropped_rgb001.jpg"} <= set(scan.ignored_files)
    assert not any("/." in r.source_path for r in scan.records)
    ltcc = tmp_path / "LTCC"
    shutil.copytree(ltcc_tree.root, ltcc)
    (ltcc / "train" / "._001_1_c3_000001.png").write_bytes(b"\x00\x05\x16\x07")
    (ltcc / "query" / ".cache").mkdir()
    (ltcc / "query" / ".cache" / "050_1_c5_1.png").write_bytes(b"x")
    scan = get_source("ltcc").scan(ltcc)
    assert {"train/._001_1_c3_000001.png", "query/.cache/050_1_c5_1.png"} <= set(scan.ignored_files)


@pytest.mark.parametrize("name", ["\u00b2", "\u0661", "1a"])  # superscript two, Arabic-Indic one
def test_pid_folders_that_are_not_ascii_digits_are_named(prcc_tree, tmp_path, name):
    root = _prcc_copy(prcc_tree, tmp_path)
    (root / "rgb" / "train" / "001").rename(root / "rgb" / "train" / name)
    with pytest.raises(LayoutError, match=rf"not named as the PRCC layout expects:\n  rgb/train/{name}/"):
        get_source("prcc").scan(root)


def test_one_pid_spelled_two_ways_is_refused(prcc_tree, tmp_path):
    root = _prcc_copy(prcc_tree, tmp_path)
    (root / "rgb" / "val" / "001").rename(root / "rgb" / "val" / "1")
    with pytest.raises(LayoutError, match=r"pid 1: '001' \(rgb/train/001/.*\), '1' \(rgb/val/1/.*\)\nRename"):
        get_source("prcc").scan(root)


def test_record_table_is_a_sequence_of_the_records_with_clothes_in_pid_key_order():
    import random

    from occluded_ccreid.sources import SourceRecord
    from occluded_ccreid.sources.records import RecordBuilder

    rng = random.Random(0)
    records = [
        SourceRecord(
            rng.choice(["b", "a"]),
            f"p/{i:05d}-{rng.random()}.jpg",
            rng.randint(-2, 30),
            rng.randint(0, 3),
            rng.choice([None, "10", "9", "x", "é"]),
            extras={"t": i},
        )
        for i in range(20000)
    ]
    builder = RecordBuilder({"t": "int64"})
    for record in records:
        builder.add(record)
    table = builder.table(("b", "a"))
    expected = sorted(records, key=lambda r: (("b", "a").index(r.split), r.source_path))
    outfits = sorted({(r.pid, r.clothes_key) for r in records if r.clothes_key is not None})  # Python's order
    ids = {outfit: i for i, outfit in enumerate(outfits)}
    assert [(r.source_path, r.clothes_id) for r in table] == [
        (r.source_path, -1 if r.clothes_key is None else ids[(r.pid, r.clothes_key)]) for r in expected
    ]
    assert [dict(r.extras) for r in table[5:9]] == [dict(r.extras) for r in expected[5:9]]
    assert table[-1].source_path == expected[-1].source_path and len(table) == 20000
    assert table == list(table) and table != list(table)[:-1]
    with pytest.raises(IndexError):
        table[20000]
