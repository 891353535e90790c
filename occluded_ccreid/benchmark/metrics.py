"""Every protocol of the dataset in every setting the build allows, and breakdowns by the query's occlusion.

Scores come from `occluded_ccreid.evaluate_protocol` (CAL's CMC / mAP). Both are averages over
queries, so a breakdown is `evaluate_protocol` on the query rows of one group (one occluded part,
one occluded-ratio bin) against the whole gallery: exactly what evaluating those queries alone gives.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..evaluation import evaluate_protocol, protocol_indices
from ..parts import PART_NAMES
from ..sources import Protocol
from . import BenchmarkError
from .reading import SplitFeatures

# setting -> (query image column, gallery image column, what it measures)
SETTINGS: dict[str, tuple[str, str, str]] = {
    "occluded": ("image", "image", "occluded queries vs occluded gallery: the dataset as built"),
    "clean": ("clean_image", "clean_image", "the same images without occluders"),
    "clean_gallery": ("image", "clean_image", "occluded queries vs clean gallery (gallery occlusion off)"),
    "clean_query": ("clean_image", "image", "clean queries vs occluded gallery (query occlusion off)"),
}
RANKS = (1, 5, 10)
DEFAULT_RATIO_EDGES = (0.1, 0.2, 0.3, 0.4, 0.5)


def cosine_distance(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """1 - cosine similarity of L2-normalised features, in float64.

    The similarity is float32 (as CAL's matrix product); 1 - s is then exact in float64, so the
    ranking is exactly that of CAL's ``-s`` distance, ties included.
    """
    return 1.0 - (query @ gallery.T).astype(np.float64)


def settings_of(image_columns: Sequence[str]) -> dict[str, tuple[str, str]]:
    return {name: (q, g) for name, (q, g, _) in SETTINGS.items() if q in image_columns and g in image_columns}


def ratio_bins(edges: Sequence[float]) -> list[tuple[str, float, float]]:
    """(label, low, high] bins of occluded_ratio; the first bin, "0%", holds unoccluded queries."""
    edges = sorted(float(e) for e in edges)
    if not edges or edges[0] <= 0 or edges[-1] >= 1:
        raise BenchmarkError(f"--ratio-bins must lie strictly between 0 and 1, got {edges}")
    bounds = [0.0, *edges, 1.0]
    bins = [("0%", -np.inf, 0.0)]
    bins += [(f"{lo:.0%}-{hi:.0%}", lo, hi) for lo, hi in itertools.pairwise(bounds)]
    return bins


def unknown_labels(protocol: Protocol, labels: Mapping[str, np.ndarray]) -> list[str]:
    """The labels `protocol` uses that are unknown (-1) in every row of a split: LaST's cameras, a
    manifest's absent camid / clothes_id. Scored anyway, such a protocol would count no match, or
    (same_clothes without clothes) quietly become another protocol."""
    return [c for c in protocol.label_columns() if bool((labels[c] == -1).all())]


def benchmark_metrics(
    query: SplitFeatures,
    gallery: SplitFeatures,
    protocols: Mapping[str, Protocol],
    image_columns: Sequence[str],
    ratio_edges: Sequence[float] = DEFAULT_RATIO_EDGES,
) -> dict[str, Any]:
    """``{"protocols": {name: {setting: scores, "drop": ...}}, "by_part": ..., "by_ratio": ...}``."""
    groups = _query_groups(query, gallery, protocols, ratio_edges)
    scores = _scores_by_setting(query, gallery, protocols, image_columns, groups)
    results: dict[str, Any] = {"protocols": {}, "by_part": {}, "by_ratio": {}}
    for name in protocols:
        results["protocols"][name] = {setting: by["protocols"][name] for setting, by in scores.items()}
        if "clean" in scores:
            results["protocols"][name]["drop"] = _drop(
                scores["clean"]["protocols"][name], scores["occluded"]["protocols"][name]
            )
        for key in ("by_part", "by_ratio"):
            results[key][name] = {
                group: _group_entry(scores, key, name, group, rows) for group, rows in groups[key][name].items()
            }
    return results


def _query_groups(
    query: SplitFeatures, gallery: SplitFeatures, protocols: Mapping[str, Protocol], ratio_edges: Sequence[float]
) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """``{"by_part" | "by_ratio": {protocol: {group: query rows}}}``, non-empty groups only."""
    bins = ratio_bins(ratio_edges)
    # The occluded_ratio column is float32: compare it with float32 edges, so 0.1 falls in "0%-10%".
    ratios = query.labels["occluded_ratio"].astype(np.float32)
    groups: dict[str, dict[str, dict[str, np.ndarray]]] = {"by_part": {}, "by_ratio": {}}
    for name, protocol in protocols.items():
        q_rows, _ = protocol_indices(protocol, query.labels["camid"], gallery.labels["camid"])
        parts = query.labels["occluded_part"][q_rows]
        groups["by_part"][name] = {
            PART_NAMES[p]: q_rows[parts == p] for p in range(len(PART_NAMES)) if (parts == p).any()
        }
        in_bins = {
            label: (ratios[q_rows] > np.float32(low)) & (ratios[q_rows] <= np.float32(high))
            for label, low, high in bins
        }
        groups["by_ratio"][name] = {label: q_rows[mask] for label, mask in in_bins.items() if mask.any()}
    return groups


def _scores_by_setting(
    query: SplitFeatures,
    gallery: SplitFeatures,
    protocols: Mapping[str, Protocol],
    image_columns: Sequence[str],
    groups: dict[str, dict[str, dict[str, np.ndarray]]],
) -> dict[str, dict]:
    """setting -> {"protocols": {name: scores}, "by_part": {name: {group: scores}}, "by_ratio": ...}."""
    # One distance matrix at a time (PRCC: 7,416 x 3,384 float64 = 200 MB each).
    scores: dict[str, dict] = {}
    for setting, (q_column, g_column) in settings_of(image_columns).items():
        distmat = cosine_distance(query.features[q_column], gallery.features[g_column])
        by = scores[setting] = {"protocols": {}, "by_part": {}, "by_ratio": {}}
        for name, protocol in protocols.items():
            whole = _scores(distmat, query.labels, gallery.labels, protocol, None, RANKS)
            if whole is None:
                raise BenchmarkError(f"protocol {name}: no query has a correct match in the gallery")
            by["protocols"][name] = whole
            for key in ("by_part", "by_ratio"):
                by[key][name] = {
                    group: _scores(distmat, query.labels, gallery.labels, protocol, rows, (1,))
                    for group, rows in groups[key][name].items()
                }
        del distmat
    return scores


def _group_entry(scores: dict[str, dict], key: str, name: str, group: str, rows: np.ndarray) -> dict[str, Any]:
    """One group's occluded scores, with the other settings' beside them and the drop."""
    empty = {"mAP": None, "rank1": None, "queries": 0}  # no query of the group has a match
    entry = {**(scores["occluded"][key][name][group] or empty), "query_rows": int(len(rows))}
    for setting in scores:
        if setting != "occluded":
            entry[setting] = scores[setting][key][name][group] or empty
    if "clean" in scores and entry["mAP"] is not None and entry["clean"]["mAP"] is not None:
        entry["drop"] = _drop(entry["clean"], entry)
    return entry


def _scores(
    distmat: np.ndarray,
    q_labels: Mapping[str, np.ndarray],
    g_labels: Mapping[str, np.ndarray],
    protocol: Protocol,
    rows: np.ndarray | None,
    ranks: Sequence[int],
) -> dict[str, Any] | None:
    """evaluate_protocol's scores, on the query rows `rows` only (None: all); None when no query of
    them has a correct match in the gallery."""
    if rows is not None:
        distmat = distmat[rows]
        q_labels = {k: v[rows] for k, v in q_labels.items()}
    try:
        result = evaluate_protocol(distmat, q_labels, g_labels, protocol, ranks=ranks)
    except ValueError as exc:
        if "no query has a valid positive" in str(exc):
            return None
        raise BenchmarkError(f"protocol {protocol.name}: {exc}") from None
    scores = {"mAP": float(result["mAP"]), **{f"rank{k}": result[f"rank{k}"] for k in ranks}}
    scores["queries"] = int(result["num_valid_queries"])  # the queries averaged over
    if result["num_skipped_queries"]:
        scores["skipped_queries"] = int(result["num_skipped_queries"])  # no correct match in the gallery
    return scores


def _drop(clean: Mapping[str, Any], occluded: Mapping[str, Any]) -> dict[str, float]:
    """What occlusion costs: clean minus occluded, per metric (positive = occlusion hurts)."""
    return {k: clean[k] - occluded[k] for k in ("mAP", *(f"rank{r}" for r in RANKS)) if k in clean and k in occluded}


__all__ = [
    "DEFAULT_RATIO_EDGES",
    "SETTINGS",
    "benchmark_metrics",
    "cosine_distance",
    "ratio_bins",
    "settings_of",
    "unknown_labels",
]
