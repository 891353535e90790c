"""`occluded_ccreid.evaluation` against hand-computed cases and an independent per-query loop."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from cal_reference import cal_evaluate as reference

from occluded_ccreid.evaluation import MODES, evaluate, evaluate_protocol, protocol_indices, protocols
from occluded_ccreid.sources import get_source, source_names

# -- hand-computed cases ---------------------------------------------------------------------------------

# One query: pid 1, camera 0, clothes 10. Gallery (distance, pid, camera, clothes):
#   g0 0.10  pid 1 cam 1 clothes 10   same pid, other camera, same clothes
#   g1 0.20  pid 2 cam 1 clothes 20   wrong identity
#   g2 0.30  pid 1 cam 2 clothes 11   same pid, other camera, other clothes
#   g3 0.05  pid 1 cam 0 clothes 11   same pid, same camera: junk in every mode
#   g4 0.40  pid 3 cam 2 clothes 30   wrong identity
DIST = np.array([[0.10, 0.20, 0.30, 0.05, 0.40]])
LABELS = dict(
    q_pids=np.array([1]),
    g_pids=np.array([1, 2, 1, 1, 3]),
    q_camids=np.array([0]),
    g_camids=np.array([1, 1, 2, 0, 2]),
    q_clothes=np.array([10]),
    g_clothes=np.array([10, 20, 11, 11, 30]),
)


def test_standard_by_hand():
    # junk g3; ranking g0 (hit), g1, g2 (hit), g4 -> hits at ranks 1 and 3 (1-based).
    r = evaluate(DIST, **LABELS, mode="standard", ranks=(1, 2, 3, 5))
    assert r["mAP"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert (r["rank1"], r["rank2"], r["rank3"], r["rank5"]) == (1.0, 1.0, 1.0, 1.0)
    assert r["num_valid_queries"] == 1 and r["num_skipped_queries"] == 0


def test_cloth_changing_by_hand():
    # junk g3 (same camera) and g0 (same clothes); ranking g1, g2 (hit), g4.
    r = evaluate(DIST, **LABELS, mode="cloth_changing", ranks=(1, 2))
    assert r["mAP"] == pytest.approx(1 / 2)
    assert (r["rank1"], r["rank2"]) == (0.0, 1.0)
    np.testing.assert_array_equal(r["cmc"], [0, 1, 1, 1, 1])


def test_same_clothes_by_hand():
    # junk g3 (same camera) and g2 (other clothes); ranking g0 (hit), g1, g4.
    r = evaluate(DIST, **LABELS, mode="same_clothes")
    assert r["mAP"] == pytest.approx(1.0)
    assert r["rank1"] == 1.0


def test_standard_mode_needs_no_clothes():
    labels = {k: v for k, v in LABELS.items() if "clothes" not in k}
    assert evaluate(DIST, **labels)["mAP"] == pytest.approx(5 / 6)


def test_ties_are_broken_by_gallery_index():
    # Query pid 1 cam 0; a wrong match and a right one at the same distance.
    q = dict(q_pids=[1], q_camids=[0])
    wrong_first = evaluate([[0.5, 0.5]], g_pids=[2, 1], g_camids=[1, 1], **q, ranks=(1, 2))
    right_first = evaluate([[0.5, 0.5]], g_pids=[1, 2], g_camids=[1, 1], **q, ranks=(1, 2))
    assert (wrong_first["rank1"], wrong_first["rank2"], wrong_first["mAP"]) == (0.0, 1.0, 0.5)
    assert (right_first["rank1"], right_first["mAP"]) == (1.0, 1.0)
    # -0.0 ties with 0.0, in float32 and float64 alike.
    for dtype in (np.float32, np.float64):
        r = evaluate(np.array([[0.0, -0.0]], dtype=dtype), g_pids=[2, 1], g_camids=[1, 1], **q)
        assert r["rank1"] == 0.0


def test_ties_among_several_hits_and_junk():
    # All at distance 1: order is gallery order. g0 junk (same camera), g1 wrong, g2 hit, g3 hit.
    r = evaluate(np.ones((1, 4)), [7], [7, 8, 7, 7], [0], [0, 1, 1, 2], ranks=(1, 2))
    assert r["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert (r["rank1"], r["rank2"]) == (0.0, 1.0)


def test_query_without_valid_positive_is_skipped():
    # Query 0 as in the hand case; query 1 (pid 2, camera 1) only has its own camera's image of pid 2.
    dist = np.vstack([DIST, [[0.3, 0.1, 0.2, 0.4, 0.5]]])
    r = evaluate(dist, q_pids=[1, 2], g_pids=LABELS["g_pids"], q_camids=[0, 1], g_camids=LABELS["g_camids"])
    assert r["num_valid_queries"] == 1 and r["num_skipped_queries"] == 1
    assert r["mAP"] == pytest.approx(5 / 6)
    assert r["rank1"] == 1.0


def test_ranks_beyond_gallery_and_fractions():
    r = evaluate(DIST, **LABELS, ranks=(1, 50))
    assert r["rank50"] == r["cmc"][-1] == 1.0
    assert r["cmc"].shape == (5,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mode="CC"), "unknown mode"),
        (dict(mode="cloth_changing", q_clothes=None), "needs q_clothes"),
        (dict(g_pids=[1, 2, 3]), "g_pids has 3"),
        (dict(ranks=(0,)), "1-based"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate(DIST, **{**LABELS, **kwargs})


def test_nan_and_nothing_to_evaluate_are_errors():
    with pytest.raises(ValueError, match="NaN"):
        evaluate(np.array([[np.nan, 1, 1, 1, 1]]), **LABELS)
    with pytest.raises(ValueError, match="no query has a valid positive"):
        evaluate(DIST, **{**LABELS, "g_pids": np.array([5, 2, 5, 1, 3])})


# -- against the loop on random inputs -------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.float16])
def test_matches_reference_loop_on_random_inputs(mode, dtype):
    rng = np.random.default_rng(zlib.crc32(f"{mode}-{np.dtype(dtype).name}".encode()))
    num_q, num_g = 61, 157
    if dtype in (np.int64, np.float16):
        dist = rng.integers(0, 12, (num_q, num_g)).astype(dtype)  # many ties
    else:
        dist = (rng.random((num_q, num_g)) * 4 - 1).astype(dtype)
        dist[:, ::7] = dist[:, :1]  # ties in every row
    q_pids, g_pids = rng.integers(0, 10, num_q), rng.integers(0, 10, num_g)
    q_cam, g_cam = rng.integers(0, 3, num_q), rng.integers(0, 3, num_g)
    q_clo, g_clo = q_pids * 2 + rng.integers(0, 2, num_q), g_pids * 2 + rng.integers(0, 2, num_g)
    expected_map, expected_cmc, expected_valid = reference(
        dist.astype(np.float64), q_pids, g_pids, q_cam, g_cam, q_clo, g_clo, mode
    )
    results = []
    for chunk_size, num_threads in ((None, None), (1, 1), (8, 3), (8, 1)):
        r = evaluate(
            dist, q_pids, g_pids, q_cam, g_cam, q_clo, g_clo, mode=mode, chunk_size=chunk_size, num_threads=num_threads
        )
        results.append(r)
        assert r["mAP"] == pytest.approx(expected_map, abs=1e-12)
        np.testing.assert_allclose(r["cmc"], expected_cmc, atol=1e-12)
        assert r["num_valid_queries"] == expected_valid
        assert r["rank1"] == pytest.approx(expected_cmc[0]) and r["rank10"] == pytest.approx(expected_cmc[9])
    assert results[2]["mAP"] == results[3]["mAP"]  # threads do not change the summation order


def test_matches_reference_with_genuine_float64_and_string_labels():
    rng = np.random.default_rng(3)
    dist = rng.normal(size=(40, 90))
    q_pids = np.array([f"p{i}" for i in rng.integers(0, 6, 40)])
    g_pids = np.array([f"p{i}" for i in rng.integers(0, 6, 90)])
    q_cam, g_cam = rng.integers(0, 4, 40), rng.integers(0, 4, 90)
    expected_map, expected_cmc, _ = reference(dist, q_pids, g_pids, q_cam, g_cam, q_cam, g_cam, "standard")
    r = evaluate(dist, q_pids, g_pids, q_cam, g_cam)
    assert r["mAP"] == pytest.approx(expected_map, abs=1e-12)
    np.testing.assert_allclose(r["cmc"], expected_cmc, atol=1e-12)


# -- published settings ------------------------------------------------------------------------------------


def test_protocols_come_from_the_source_registry():
    prcc = protocols("occluded-prcc")
    assert list(prcc) == ["same_clothes", "cloth_changing"]
    assert tuple(prcc.values()) == get_source("prcc").protocols
    assert (prcc["same_clothes"].query_camids, prcc["same_clothes"].gallery_camids) == ((1,), (0,))
    assert (prcc["cloth_changing"].query_camids, prcc["cloth_changing"].gallery_camids) == ((2,), (0,))
    ltcc = protocols("LTCC")
    assert {name: p.mode for name, p in ltcc.items()} == {
        "general": "standard",
        "cloth_changing": "cloth_changing",
        "same_clothes": "same_clothes",
    }
    assert all(p.mode in MODES for name in source_names() for p in protocols(name).values())
    with pytest.raises(KeyError):
        protocols("market1501")


def _prcc_like(rng):
    """Query cameras B (1) and C (2), gallery camera A (0), PRCC-style outfits (A+B vs C)."""
    q_pids, g_pids = rng.integers(0, 8, 50), np.repeat(np.arange(8), 4)
    q_cam, g_cam = rng.integers(1, 3, 50), np.zeros(32, dtype=int)
    query = {"pid": q_pids, "camid": q_cam, "clothes_id": q_pids * 2 + (q_cam == 2)}
    gallery = {"pid": g_pids, "camid": g_cam, "clothes_id": g_pids * 2}
    return rng.random((50, 32)).astype(np.float32), query, gallery


def test_evaluate_protocol_selects_rows_by_camera():
    rng = np.random.default_rng(5)
    dist, query, gallery = _prcc_like(rng)
    for name, protocol in protocols("prcc").items():
        rows, cols = protocol_indices(protocol, query["camid"], gallery["camid"])
        assert set(query["camid"][rows]) == set(protocol.query_camids)
        expected = evaluate(dist[rows], query["pid"][rows], gallery["pid"], query["camid"][rows], gallery["camid"])
        got = evaluate_protocol(dist, query, gallery, protocol)
        assert got["mAP"] == pytest.approx(expected["mAP"]), name
        assert got["num_valid_queries"] == len(rows)


def test_evaluate_protocol_ltcc_cloth_changing_is_the_mode_on_everything():
    rng = np.random.default_rng(6)
    dist, query, gallery = _prcc_like(rng)
    gallery = {**gallery, "clothes_id": gallery["pid"] * 2 + np.arange(32) % 2}
    got = evaluate_protocol(dist, query, gallery, protocols("ltcc")["cloth_changing"])
    expected = evaluate(
        dist,
        query["pid"],
        gallery["pid"],
        query["camid"],
        gallery["camid"],
        query["clothes_id"],
        gallery["clothes_id"],
        mode="cloth_changing",
    )
    assert got["mAP"] == expected["mAP"]
    with pytest.raises(ValueError, match="shape"):
        evaluate_protocol(dist[:, :5], query, gallery, protocols("ltcc")["general"])


def test_torch_tensor_distances():
    torch = pytest.importorskip("torch")
    r = evaluate(torch.tensor(DIST, dtype=torch.float32), **LABELS)
    assert r["mAP"] == pytest.approx(5 / 6)
