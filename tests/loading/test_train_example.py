"""The tiny CAL-style DDP run (examples/train_cal_ddp.py): 2 gloo processes, one epoch on a synthetic build."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from synthetic import make_prcc_tree  # noqa: E402
from test_distributed import run_processes  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    from builder.pipeline import BuildConfig, build

    tree = make_prcc_tree(tmp_path_factory.mktemp("prcc6"), n_train=6, n_test=4, quirks=False)
    out = tmp_path_factory.mktemp("builds") / "occluded-prcc"
    build(BuildConfig("prcc", tree.root, out, parsing_dir=tree.parsing_dir, shard_size=16, progress=False))
    return out


def _rank(rank: int, world_size: int, build: str) -> dict:
    import train_cal_ddp

    return train_cal_ddp.run(build, epochs=1, height=64, width=32, p=2, k=2)


def test_two_process_ddp_run_trains_and_is_scored(build):
    a, b = run_processes(_rank, 2, str(build))
    assert a["steps"] == b["steps"] > 0
    assert all(math.isfinite(x) for x in a["losses"] + b["losses"])
    assert torch.equal(a["weights"], b["weights"])  # DDP kept the replicas identical
    assert torch.equal(a["query_features"], b["query_features"])  # gathered in row order on both ranks
    assert a["results"].keys() == b["results"].keys() and a["results"]
    for name, result in a["results"].items():
        assert result["rank1"] == b["results"][name]["rank1"] and result["mAP"] == b["results"][name]["mAP"]
        assert result["num_valid_queries"] > 0 and 0 <= result["rank1"] <= 1 and 0 < result["mAP"] <= 1
