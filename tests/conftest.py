"""Shared fixtures. Tests never reach the Hub: offline mode is set before any HF import."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

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
