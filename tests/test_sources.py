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
