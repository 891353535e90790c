"""oc.load of a bare name ("occluded-prcc") that is no folder here: how to build or name one, and a
warning when datasets answers with a copy it cached under that name (issue 23)."""

import warnings

import pytest
from synthetic import make_prcc_tree

import occluded_ccreid as oc
from builder.cli import main


@pytest.fixture
def prcc(tmp_path):
    return make_prcc_tree(tmp_path / "data", n_train=2, n_test=2, per_camera=1, quirks=False)


def build(tree, out) -> int:
    return main(
        ["build", "prcc", str(tree.root), "--out", str(out), "--parsing-dir", str(tree.parsing_dir), "--no-progress"]
    )


# -- oc.load of a bare name ------------------------------------------------------------------------------


def test_load_of_a_bare_name_that_is_no_folder(prcc, tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        oc.load("occluded-prcc", cache_dir=cache)
    assert str(error.value) == (
        f"'occluded-prcc' is not a folder in {tmp_path}, nor a dataset datasets can load (ConnectionError): give the "
        "build folder's path, build one with `builder build prcc SOURCE_DIR --out occluded-prcc`, or load a "
        "published build by its full id, '<namespace>/occluded-prcc'"
    )

    # Loaded once by its bare name from beside it, a build stays in datasets' cache under that name;
    # from any other folder the bare name then finds that copy: said, not silent.
    assert build(prcc, tmp_path / "occluded-prcc") == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(oc.load("occluded-prcc", split="query", cache_dir=cache)) == 4  # the folder: no warning
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.warns(
        UserWarning,
        match=r"^'occluded-prcc' is not a folder in .*elsewhere: loaded the dataset "
        r"datasets knows by that name, from the Hub or from its cache",
    ):
        assert len(oc.load("occluded-prcc", split="query", cache_dir=cache)) == 4
