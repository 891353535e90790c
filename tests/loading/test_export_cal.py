"""CAL's own, unmodified dataset classes (tests/support/cal) read exports of builds: every row is
found, with the build's labels, and pixels within the stated bound. `cal_dataset` gives the same
object from the label columns alone."""

from __future__ import annotations

import glob as glob_module
import importlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from occluded_ccreid.export import JPEG_MEAN_ERROR_BOUND, cal_dataset, to_folder
from occluded_ccreid.export.cal import cal_path_problem
from occluded_ccreid.loading import load

pytest.importorskip("torch")  # CAL's tools/utils.py imports it

CAL_DIR = Path(__file__).resolve().parents[1] / "support" / "cal"
# source -> (CAL module, class, folder name the class expects under its root, the lists it builds)
CAL_CLASSES = {
    "prcc": ("prcc", "PRCC", "prcc", ("train", "val", "query_same", "query_diff", "gallery")),
    "ltcc": ("ltcc", "LTCC", "LTCC_ReID", ("train", "query", "gallery")),
    "vcclothes": ("vcclothes", "VCClothes", "VC-Clothes", ("train", "query", "gallery")),
    "deepchange": (
        "deepchange",
        "DeepChange",
        "DeepChangeDataset",
        ("train", "val_query", "val_gallery", "query", "gallery"),
    ),
    "last": ("last", "LaST", "last", ("train", "val_query", "val_gallery", "query", "gallery")),
}
# the build's split behind each of CAL's lists
SPLIT_OF = {
    "train": "train",
    "val": "validation",
    "query_same": "query",
    "query_diff": "query",
    "query": "query",
    "gallery": "gallery",
    "val_query": "validation_query",
    "val_gallery": "validation_gallery",
}


@pytest.fixture(scope="module")
def cal():
    """CAL's modules, imported as its code imports them (`data.datasets.prcc`, `tools.utils`)."""
    saved_path, saved_modules = list(sys.path), dict(sys.modules)
    sys.path.insert(0, str(CAL_DIR))
    if importlib.util.find_spec("h5py") is None:  # imported, never used by these classes
        sys.modules["h5py"] = types.ModuleType("h5py")
    try:
        modules = {
            name: importlib.import_module(f"data.datasets.{module}") for name, (module, *_rest) in CAL_CLASSES.items()
        }
        modules["loader"] = importlib.import_module("data.dataset_loader")
        yield modules
    finally:
        sys.path[:] = saved_path
        for name in [n for n in sys.modules if n not in saved_modules and n.split(".")[0] in ("data", "tools", "h5py")]:
            del sys.modules[name]


def _build(name: str, tree, out: Path) -> Path:
    from builder.pipeline import BuildConfig, build

    build(
        BuildConfig(name, tree.root, out, parsing_dir=tree.parsing_dir, shard_size=8, progress=False, keep_clean=True)
    )
    return out


@pytest.fixture(scope="module")
def builds(tmp_path_factory, prcc_tree, ltcc_tree):
    from synthetic import make_deepchange_tree, make_last_tree, make_vcclothes_tree

    base = tmp_path_factory.mktemp("exportbuilds")
    trees = {
        "prcc": prcc_tree,
        "ltcc": ltcc_tree,
        "vcclothes": make_vcclothes_tree(base / "vc"),
        "deepchange": make_deepchange_tree(base / "dc"),
        "last": make_last_tree(base / "last"),
    }
    return {name: _build(name, tree, base / f"occluded-{name}") for name, tree in trees.items()}


def _rows(build: Path) -> dict[str, dict]:
    """source_path -> the build's row (labels, stored images), over every split."""
    out = {}
    for split, dataset in load(build).items():
        for row in dataset:
            out[row["source_path"]] = {**row, "split": split}
    return out


def _root(tmp_path_factory) -> Path:
    """A folder whose path has no "<word>_c" (a test's tmp_path has "test_cal..."): CAL's LTCC
    class reads the outfit from the whole path, so such a folder gives every image one outfit
    (`to_folder` warns about it)."""
    root = tmp_path_factory.mktemp("root")
    assert cal_path_problem("ltcc", root) is None
    return root


def _sorted_glob(pattern, *args, **kwargs):
    return sorted(glob_module.glob(pattern, *args, **kwargs))


def _run_cal(cal, name: str, root: Path, monkeypatch, sort: bool):
    cls = CAL_CLASSES[name][1]
    with monkeypatch.context() as patch:
        if sort:  # a filesystem that lists in name order: CAL's lists are then in the build's row order
            patch.setattr(cal[name], "glob", types.SimpleNamespace(glob=_sorted_glob))
        return getattr(cal[name], cls)(root=str(root))


def _mean_error(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a.convert("RGB"), dtype=np.int16), np.asarray(b.convert("RGB"), dtype=np.int16)
    assert x.shape == y.shape
    return float(np.abs(x - y).mean())


@pytest.mark.parametrize("name", ["prcc", "ltcc"])
def test_cal_classes_read_the_export_with_the_builds_labels_and_pixels(
    name, cal, builds, tmp_path_factory, monkeypatch
):
    build = builds[name]
    _, _, folder, lists = CAL_CLASSES[name]
    root = _root(tmp_path_factory)
    result = to_folder(build, root / folder, clean=True, masks=True, progress=False)
    rows = _rows(build)
    assert sum(result.rows.values()) == len(rows)
    dataset = _run_cal(cal, name, root, monkeypatch, sort=False)

    # every row found, once, from the split it belongs to
    found = {}
    for attribute in lists:
        for path, pid, camid, clothes in getattr(dataset, attribute):
            rel = Path(path).relative_to(root / folder).as_posix()
            assert rel not in found, rel
            assert rows[rel]["split"] == SPLIT_OF[attribute], (rel, attribute)
            found[rel] = (attribute, pid, camid, clothes)
    assert set(found) == set(rows)

    # labels: cameras equal; test pids equal; train pids and all outfits a relabelling of the build's
    for rel, (attribute, pid, camid, _) in found.items():
        assert camid == rows[rel]["camid"], rel
        if attribute not in ("train", "val"):
            assert pid == rows[rel]["pid"], rel
    for group in ({"train"}, {"val"}, set(lists) - {"train", "val"}):
        pairs = {(rows[rel]["pid"], f[1]) for rel, f in found.items() if f[0] in group}
        outfits = {(rows[rel]["clothes_id"], f[3]) for rel, f in found.items() if f[0] in group}
        for mapping in (pairs, outfits):
            assert len({a for a, _ in mapping}) == len(mapping) == len({b for _, b in mapping}), (group, mapping)
    assert dataset.num_train_pids == len({rows[r]["pid"] for r in rows if rows[r]["split"] == "train"})
    assert dataset.num_train_clothes == len({rows[r]["clothes_id"] for r in rows if rows[r]["split"] == "train"})

    # pixels, read by CAL's ImageDataset: PNG names exact, JPEG names within the bound
    images = cal["loader"].ImageDataset([(str(root / folder / rel), *f[1:]) for rel, f in found.items()])
    for i, rel in enumerate(found):
        image, *_ = images[i]
        error = _mean_error(image, rows[rel]["image"])
        assert error <= (JPEG_MEAN_ERROR_BOUND if rel.endswith(".jpg") else 0.0), (rel, error)
        clean = Image.open(root / folder / "clean" / rel)
        assert _mean_error(clean, rows[rel]["clean_image"]) <= (JPEG_MEAN_ERROR_BOUND if rel.endswith(".jpg") else 0.0)
        for column in ("occlusion_mask", "parsing"):
            written = Image.open(root / folder / column / f"{rel}.png")
            assert np.array_equal(np.asarray(written), np.asarray(rows[rel][column])), (rel, column)


@pytest.mark.parametrize("name", list(CAL_CLASSES))
def test_cal_dataset_equals_cals_class_on_the_export(name, cal, builds, tmp_path_factory, monkeypatch):
    """`cal_dataset` (label columns only) gives CAL's object: the same lists, in the same order
    when CAL's globs list in name order, and the same counts and pid2clothes."""
    build = builds[name]
    _, _, folder, lists = CAL_CLASSES[name]
    root = _root(tmp_path_factory)
    to_folder(build, root / folder, progress=False)
    ours = cal_dataset(build, image_root=root / folder)
    theirs = _run_cal(cal, name, root, monkeypatch, sort=True)
    for attribute in lists:
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert ours.num_train_pids == theirs.num_train_pids
    assert ours.num_train_clothes == theirs.num_train_clothes
    assert np.array_equal(ours.pid2clothes, theirs.pid2clothes) and ours.pid2clothes.dtype == theirs.pid2clothes.dtype
    if name == "prcc":
        assert ours.gallery_idx == theirs.gallery_idx  # single-shot draws: CAL's, on a gallery in the same order
    unsorted = _run_cal(cal, name, root, monkeypatch, sort=False)  # the filesystem's own order
    for attribute in lists:
        assert sorted(getattr(ours, attribute)) == sorted(getattr(unsorted, attribute)), attribute


def test_cal_dataset_reads_no_image(builds, monkeypatch):
    """Only the label columns are read: decoding or even selecting an image column would fail."""
    import datasets

    def refuse(*args, **kwargs):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(datasets.Image, "decode_example", refuse)
    ours = cal_dataset(builds["prcc"])
    assert ours.dataset == "prcc" and ours.train and all(not Path(t[0]).is_absolute() for t in ours.train)
    assert ours.train[0][0].startswith("rgb/train/")
    with pytest.raises(AttributeError, match="val_query"):
        ours.val_query  # noqa: B018 - PRCC has no such list; the error lists the ones it has
