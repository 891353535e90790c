"""PRCC's single-shot evaluation against an independent implementation written here: CAL's own
drawing loop (global `random`, seed 3) and a per-query loop over one gallery image per identity."""

from __future__ import annotations

import random

import numpy as np
import pytest

from occluded_ccreid.evaluation import (
    SINGLE_SHOT_DRAWS,
    SINGLE_SHOT_SEED,
    evaluate_protocol,
    evaluate_single_shot,
    protocols,
    single_shot_draws,
)


def _prcc_like(seed: int = 0):
    """Gallery: camera A, 1-5 images per identity, identities interleaved; queries on B and C."""
    rng = np.random.default_rng(seed)
    g_pids = np.array([pid for pid in range(12) for _ in range(int(rng.integers(1, 6)))])
    rng.shuffle(g_pids)
    q_pids = np.repeat(np.arange(12), 4)
    q_camids = np.tile([1, 1, 2, 2], 12)
    query = {"pid": q_pids, "camid": q_camids, "clothes_id": 2 * q_pids + (q_camids == 2)}
    gallery = {"pid": g_pids, "camid": np.zeros_like(g_pids), "clothes_id": 2 * g_pids}
    dist = rng.random((len(q_pids), len(g_pids)))
    dist[q_pids[:, None] == g_pids[None, :]] -= 0.3  # better than chance
    return dist, query, gallery


def _cal_draws(g_pids) -> dict[int, list[int]]:
    """CAL's PRCC loader, `_process_dir_test`, as written there."""
    pid2imgidx: dict = {}
    for idx, pid in enumerate(g_pids):
        if pid not in pid2imgidx:
            pid2imgidx[pid] = []
        pid2imgidx[pid].append(idx)
    gallery_idx = {}
    random.seed(3)
    for idx in range(0, 10):
        gallery_idx[idx] = []
        for pid in pid2imgidx:
            gallery_idx[idx].append(random.choice(pid2imgidx[pid]))
    return gallery_idx


def _per_query(dist, q_pids, g_pids, ranks=(1, 5)):
    """mAP and rank-k with one gallery image per identity, one query at a time."""
    aps, hits = [], {k: [] for k in ranks}
    for row, pid in zip(dist, q_pids, strict=True):
        order = sorted(range(len(row)), key=lambda j: (row[j], j))
        place = [g_pids[j] for j in order].index(pid)  # the identity's one image
        aps.append(1.0 / (place + 1))
        for k in ranks:
            hits[k].append(place < k)
    return {"mAP": float(np.mean(aps)), **{f"rank{k}": float(np.mean(hits[k])) for k in ranks}}


def test_draws_are_cals():
    _, _, gallery = _prcc_like()
    state = random.getstate()
    try:
        expected = _cal_draws(gallery["pid"].tolist())
    finally:
        random.setstate(state)
    ours = single_shot_draws(gallery["pid"])
    assert (SINGLE_SHOT_DRAWS, SINGLE_SHOT_SEED) == (10, 3)
    assert {i: d.tolist() for i, d in enumerate(ours)} == expected
    assert all(sorted(gallery["pid"][d].tolist()) == list(range(12)) for d in ours)  # one image per identity
    assert len({tuple(d) for d in ours}) > 1  # the draws differ


@pytest.mark.parametrize("name", ["same_clothes", "cloth_changing"])
def test_single_shot_equals_a_per_query_loop(name):
    dist, query, gallery = _prcc_like()
    protocol = protocols("prcc")[name]
    q_rows = np.flatnonzero(np.isin(query["camid"], protocol.query_camids))
    result = evaluate_single_shot(dist, query, gallery, protocol, ranks=(1, 5))
    per_draw = []
    for cols in _cal_draws(gallery["pid"].tolist()).values():
        per_draw.append(_per_query(dist[np.ix_(q_rows, cols)], query["pid"][q_rows], gallery["pid"][cols]))
    for key in ("mAP", "rank1", "rank5"):
        assert result[key] == pytest.approx(np.mean([d[key] for d in per_draw])), key
        assert [d[key] for d in result["draws"]] == pytest.approx([d[key] for d in per_draw]), key
    assert result["num_draws"] == 10 and result["seed"] == 3 and result["gallery_size"] == 12
    multi = evaluate_protocol(dist, query, gallery, protocol)
    assert result["mAP"] != multi["mAP"]  # a different number: say which one you report


def test_single_shot_seed_and_draws_are_parameters():
    dist, query, gallery = _prcc_like(1)
    protocol = protocols("prcc")["cloth_changing"]
    one = evaluate_single_shot(dist, query, gallery, protocol, draws=1, seed=7)
    assert one["num_draws"] == 1 and len(one["draws"]) == 1
    again = evaluate_single_shot(dist, query, gallery, protocol, draws=1, seed=7)
    assert one["draws"] == again["draws"] and np.array_equal(one["cmc"], again["cmc"])
    with pytest.raises(ValueError, match="draws must be at least 1"):
        evaluate_single_shot(dist, query, gallery, protocol, draws=0)
