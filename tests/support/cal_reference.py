"""CAL / Simple-CCReID's per-query evaluation loop, written plainly: the independent reference
that `occluded_ccreid.evaluation.evaluate` is checked against (tests) and timed against
(benchmarks/evaluate_speed.py)."""

from __future__ import annotations

import numpy as np


def cal_evaluate(distmat, q_pids, g_pids, q_camids, g_camids, q_clothes, g_clothes, mode="standard"):
    """CAL's `evaluate` / `evaluate_with_clothes` (tools/eval_metrics.py) for the three modes:
    one argsort of the whole matrix (stable, so ties agree with `evaluate`), then NumPy set
    operations per query. Returns (mAP, CMC curve, number of queries with a valid positive)."""
    num_q, num_g = distmat.shape
    index = np.argsort(distmat, axis=1, kind="stable")
    all_ap, cmc_sum, num_valid = [], np.zeros(num_g), 0
    for i in range(num_q):
        query_index = np.argwhere(g_pids == q_pids[i]).flatten()
        camera_index = np.argwhere(g_camids == q_camids[i]).flatten()
        cloth_index = np.argwhere(g_clothes == q_clothes[i]).flatten()
        good = np.setdiff1d(query_index, camera_index, assume_unique=True)
        junk = np.intersect1d(query_index, camera_index)
        if mode == "cloth_changing":
            good = np.setdiff1d(good, cloth_index, assume_unique=True)
            junk = np.union1d(junk, np.intersect1d(query_index, cloth_index))
        elif mode == "same_clothes":
            good = np.intersect1d(good, cloth_index)
            junk = np.union1d(junk, np.setdiff1d(query_index, cloth_index))
        if good.size == 0:
            continue  # CAL skips queries without a positive in the gallery
        order = index[i][np.isin(index[i], junk, invert=True)]
        rows_good = np.flatnonzero(np.isin(order, good))
        all_ap.append(sum((j + 1) / (row + 1) for j, row in enumerate(rows_good)) / len(good))
        cmc = np.zeros(num_g)
        cmc[rows_good[0] :] = 1.0
        cmc_sum += cmc
        num_valid += 1
    return float(np.mean(all_ap)), cmc_sum / num_valid, num_valid
