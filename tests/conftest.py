"""Shared fixtures. Tests never reach the Hub: offline mode is set before any HF import. Nor do
they use the user's caches: `datasets` and the Hub client cache into a folder of this test run, so
a cached dataset description of an earlier run (pytest reuses its tmp paths) is never read back,
and nothing is left in ~/.cache."""

import atexit
import os
import shutil
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
_CACHE = tempfile.mkdtemp(prefix="occluded-ccreid-tests-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["HF_DATASETS_CACHE"] = os.path.join(_CACHE, "datasets")
os.environ["HF_HUB_CACHE"] = os.path.join(_CACHE, "hub")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from synthetic import make_ltcc_tree, make_prcc_tree, make_tiny_segformer  # noqa: E402


@pytest.fixture(scope="session")
def prcc_tree(tmp_path_factory):
    return make_prcc_tree(tmp_path_factory.mktemp("prcc"))


@pytest.fixture(scope="session")
def ltcc_tree(tmp_path_factory):
    return make_ltcc_tree(tmp_path_factory.mktemp("ltcc"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_segformer(tmp_path_factory.mktemp("model") / "tiny-segformer")


@pytest.fixture(scope="session")
def prcc_build(prcc_tree, tmp_path_factory):
    """A PRCC build from the true part maps (several shards per split)."""
    from builder.pipeline import BuildConfig, build

    out = tmp_path_factory.mktemp("builds") / "occluded-prcc"
    build(BuildConfig("prcc", prcc_tree.root, out, parsing_dir=prcc_tree.parsing_dir, shard_size=8, progress=False))
    return out
