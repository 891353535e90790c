"""CMC and mAP for (cloth-changing) person re-identification, as the CC-ReID field computes them.

The reference is CAL / Simple-CCReID (`evaluate` and `evaluate_with_clothes` in its
`tools/eval_metrics.py`); the results are the same, computed for all queries at once with NumPy
instead of one Python loop iteration per query, so a 10,000 x 10,000 distance matrix takes seconds.

For each query, every gallery image falls in one of three groups:

* **junk**: ignored, as if it were not in the gallery (it neither counts as a match nor pushes a
  match down the ranking). Which images are junk depends on `mode`:

  - ``"standard"``: same pid *and* same camera as the query (no camera ids given: none);
  - ``"cloth_changing"``: same pid and same camera, or same pid and same clothes;
  - ``"same_clothes"``: same pid and same camera, or same pid and *different* clothes;

* **good**: same pid as the query and not junk (a correct match);
* everything else: a wrong match.

A query whose good set is empty is skipped: it counts in neither CMC nor mAP, and the number of
skipped queries is returned. With junk removed, let r_1 < r_2 < ... < r_n be the 0-based ranks of
the n good images; then ``AP = mean_j (j / (r_j + 1))`` and ``cmc[k] = share of queries with
r_1 <= k``, so ``rank1 = cmc[0]``.

**Ties.** The gallery is ordered by distance, smallest first; gallery images at exactly equal
distance are ordered by their gallery index, lower index first (a stable sort). The result is
therefore fully determined by the inputs, and equals a per-query loop that uses
``np.argsort(dist, kind="stable")``. CAL itself uses NumPy's default (unstable) quicksort, so on
exact ties its numbers can depend on the sort implementation; ours do not. ``-0.0`` and ``0.0`` are
equal distances; NaN distances are rejected.

The published settings of each dataset (which queries, which gallery images, which mode) come from
the source registry: see `protocols` and `evaluate_protocol`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .sources import Protocol, get_source

MODES: tuple[str, ...] = ("standard", "cloth_changing", "same_clothes")

# Elements of the distance matrix handled per chunk of queries. About 40 bytes of temporaries per
# element, so ~85 MB per chunk in flight whatever the matrix size.
_CHUNK_ELEMENTS = 1 << 21
_MAX_THREADS = 4


def evaluate(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    q_clothes: Any = None,
    g_clothes: Any = None,
    mode: str = "standard",
    ranks: Sequence[int] = (1, 5, 10),
    chunk_size: int | None = None,
    num_threads: int | None = None,
) -> dict[str, Any]:
    """CMC and mAP of a query x gallery distance matrix (smaller distance = more similar).

    Args:
        distmat: (num_query, num_gallery) array-like of distances (a CPU torch tensor works).
        q_pids, g_pids, q_camids, g_camids: labels of the query rows and gallery columns. Gallery
            images with the query's pid and camera id are junk; pass another label in place of the
            camera ids to change that rule (DeepChange: tracklet ids), or None for both to count
            every gallery image of the query's identity (LaST).
        q_clothes, g_clothes: clothes ids; required for the ``cloth_changing`` and
            ``same_clothes`` modes, ignored by ``standard``.
        mode: ``"standard"``, ``"cloth_changing"`` or ``"same_clothes"`` (see the module doc).
        ranks: the CMC ranks (1-based) reported as ``rank<k>`` keys.
        chunk_size: queries processed at a time; by default about 2 million matrix elements,
            ~85 MB of temporaries per chunk.
        num_threads: chunks processed at once (default: the available cores, at most 4), so
            memory stays near ``num_threads * 85 MB`` whatever the matrix size.

    Returns:
        ``{"mAP": float, "rank1": float, ..., "cmc": ndarray of num_gallery fractions,
        "num_valid_queries": int, "num_skipped_queries": int}``; all scores are fractions in 0..1.
        ``rank<k>`` for k beyond the gallery size is ``cmc[-1]``.

    Raises:
        ValueError: on mismatched shapes, an unknown mode, NaN distances, missing clothes ids for a
            clothes-aware mode, or when no query has a valid positive (nothing to evaluate).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    dist = np.asarray(distmat)
    if dist.ndim != 2:
        raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got shape {dist.shape}")
    num_q, num_g = dist.shape
    labels = _QueryGalleryLabels.checked(num_q, num_g, mode, q_pids, g_pids, q_camids, g_camids, q_clothes, g_clothes)
    ranks = tuple(int(k) for k in ranks)
    if any(k < 1 for k in ranks):
        raise ValueError(f"ranks are 1-based, got {ranks}")
    if num_g == 0:
        raise ValueError("the gallery is empty")
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // num_g) if chunk_size is None else chunk_size

    def chunk_stats(start: int) -> tuple[float, np.ndarray, int]:
        rows = slice(start, min(start + rows_per_chunk, num_q))
        order = _ranking(dist[rows])
        same_pid, junk = labels.same_pid_and_junk(rows, mode)
        good = same_pid & ~junk
        ap, first_rank = _ap_and_first_rank(
            np.take_along_axis(good, order, axis=1), np.take_along_axis(junk, order, axis=1)
        )
        return float(ap.sum()), np.bincount(first_rank, minlength=num_g), len(first_rank)

    # NumPy's sort and array operations release the GIL, so chunks run in parallel threads.
    # Results are summed in chunk order: the same numbers whatever the number of threads.
    starts = range(0, num_q, rows_per_chunk)
    first_rank_counts = np.zeros(num_g, dtype=np.int64)  # queries whose first match is at rank r
    ap_sum, num_valid = 0.0, 0
    threads = _available_cores() if num_threads is None else num_threads
    with ThreadPoolExecutor(max(1, min(threads, len(starts)))) as pool:
        for chunk_ap_sum, chunk_counts, chunk_valid in pool.map(chunk_stats, starts):
            ap_sum += chunk_ap_sum
            first_rank_counts += chunk_counts
            num_valid += chunk_valid

    if num_valid == 0:
        raise ValueError(
            f"no query has a valid positive in the gallery under mode {mode!r} "
            f"({num_q} queries, {num_g} gallery images); check the split and the mode"
        )
    cmc = np.cumsum(first_rank_counts) / num_valid
    result: dict[str, Any] = {"mAP": ap_sum / num_valid}
    for k in ranks:
        result[f"rank{k}"] = float(cmc[min(k, num_g) - 1])
    result["cmc"] = cmc
    result["num_valid_queries"] = num_valid
    result["num_skipped_queries"] = num_q - num_valid
    return result


@dataclass(frozen=True)
class _QueryGalleryLabels:
    """The label arrays of one evaluation, checked against the distance matrix's shape."""

    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray | None  # None for both: no same-camera junk
    g_camids: np.ndarray | None
    q_clothes: np.ndarray | None  # None for both: the standard mode
    g_clothes: np.ndarray | None

    @classmethod
    def checked(
        cls,
        num_q: int,
        num_g: int,
        mode: str,
        q_pids: Any,
        g_pids: Any,
        q_camids: Any,
        g_camids: Any,
        q_clothes: Any,
        g_clothes: Any,
    ) -> _QueryGalleryLabels:
        if (q_camids is None) != (g_camids is None):
            raise ValueError("pass both q_camids and g_camids, or neither (no same-camera junk)")
        cams: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
        if q_camids is not None:
            cams = (_labels(q_camids, num_q, "q_camids"), _labels(g_camids, num_g, "g_camids"))
        clothes: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
        if mode != "standard":
            if q_clothes is None or g_clothes is None:
                raise ValueError(f"mode {mode!r} needs q_clothes and g_clothes")
            clothes = (_labels(q_clothes, num_q, "q_clothes"), _labels(g_clothes, num_g, "g_clothes"))
        return cls(_labels(q_pids, num_q, "q_pids"), _labels(g_pids, num_g, "g_pids"), *cams, *clothes)

    def same_pid_and_junk(self, rows: slice, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """(same identity, junk) masks of the query `rows` x every gallery image."""
        same_pid = self.q_pids[rows, None] == self.g_pids[None, :]
        junk = np.zeros_like(same_pid)
        if self.q_camids is not None and self.g_camids is not None:
            junk |= same_pid & (self.q_camids[rows, None] == self.g_camids[None, :])
        if self.q_clothes is not None and self.g_clothes is not None:
            same_clothes = self.q_clothes[rows, None] == self.g_clothes[None, :]
            if mode == "cloth_changing":
                junk |= same_pid & same_clothes
            elif mode == "same_clothes":
                junk |= same_pid & ~same_clothes
        return same_pid, junk


def _available_cores() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(_MAX_THREADS, cores))


def _labels(values: Any, length: int, name: str) -> np.ndarray:
    array = np.asarray(values).reshape(-1)
    if len(array) != length:
        raise ValueError(f"{name} has {len(array)} entries, the distance matrix needs {length}")
    return array


def _ranking(dist: np.ndarray) -> np.ndarray:
    """Gallery indices of each row sorted by (distance, gallery index), i.e. a stable argsort, fast.

    Distances that float32 holds exactly (float16/float32, small integers, float64 that came from
    float32) are turned into order-preserving uint32 bits and packed with the column index into one
    unique uint64 key, which a plain (SIMD) sort orders exactly as a stable argsort would, at about
    2.5x its speed. Other distances use a quicksort argsort and re-sort stably only the rows that
    contain equal distances (rare for genuine float64 distances).
    """
    if dist.dtype.kind not in "fiub":
        raise ValueError(f"distmat must be numeric, got dtype {dist.dtype}")
    with np.errstate(over="ignore"):  # out of float32 range: not exact, takes the other path
        as_f32 = np.add(dist, np.float32(0.0), dtype=np.float32)  # +0.0 also turns -0.0 into 0.0
    if np.isnan(as_f32).any():
        raise ValueError("distmat contains NaN")
    if dist.dtype in (np.float16, np.float32) or np.array_equal(as_f32, dist):
        bits = as_f32.view(np.int32)
        # IEEE floats order like sign-magnitude integers: flip all bits of negatives, the sign bit
        # of the rest, and the bits order like the floats as unsigned integers.
        flip = bits >> 31
        flip |= np.int32(-(2**31))
        bits ^= flip
        key = np.empty(dist.shape, dtype=np.uint64)
        words = key.view(np.uint32)  # little-endian: even words are the low halves
        if np.little_endian:
            words[:, 1::2], words[:, 0::2] = bits.view(np.uint32), np.arange(dist.shape[1], dtype=np.uint32)
        else:
            words[:, 0::2], words[:, 1::2] = bits.view(np.uint32), np.arange(dist.shape[1], dtype=np.uint32)
        key.sort(axis=1)
        return (key & np.uint64(0xFFFFFFFF)).astype(np.intp)
    dist = dist.astype(np.float64, copy=False)
    order = np.argsort(dist, axis=1)
    ordered = np.take_along_axis(dist, order, axis=1)
    tied = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
    if len(tied):
        order[tied] = np.argsort(dist[tied], axis=1, kind="stable")
    return order


def _ap_and_first_rank(good: np.ndarray, junk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AP and 0-based rank of the first match of each query that has a match, junk removed.

    `good` and `junk` are boolean (queries, gallery) masks in ranked order. Good and junk images
    are few per query (same pid only), so the work is on their positions, not on the full rows.
    """
    num_g = good.shape[1]
    good_row, good_col = np.nonzero(good)  # row-major: sorted by row, then by position
    junk_row, junk_col = np.nonzero(junk)
    # Rank among non-junk images = position - number of junk images before it in the same row.
    good_key = good_row.astype(np.int64) * num_g + good_col
    junk_key = junk_row.astype(np.int64) * num_g + junk_col
    junk_before = np.searchsorted(junk_key, good_key) - np.searchsorted(junk_key, good_row.astype(np.int64) * num_g)
    rank = good_col - junk_before
    # j-th good image of its row (1-based): its index in the flat list minus where its row starts.
    num_good = np.bincount(good_row, minlength=good.shape[0])
    row_start = np.cumsum(num_good) - num_good
    j = np.arange(1, len(good_row) + 1) - row_start[good_row]
    precision_sum = np.bincount(good_row, weights=j / (rank + 1), minlength=good.shape[0])
    has_good = num_good > 0
    ap = precision_sum[has_good] / num_good[has_good]
    first_rank = rank[row_start[has_good]]
    return ap, first_rank


# -- published settings ---------------------------------------------------------------------------


def protocols(dataset_name: str) -> dict[str, Protocol]:
    """The published evaluation settings of a dataset, by name, as its source layout declares them.

    Accepts "prcc", "ltcc", "occluded-prcc", "Occluded_LTCC", ... PRCC: ``same_clothes`` (query
    camera B vs gallery camera A) and ``cloth_changing`` (query camera C vs gallery camera A), both in
    ``standard`` mode; LTCC: ``general``, ``cloth_changing`` and ``same_clothes``; VC-Clothes:
    ``general`` and the camera-restricted ``same_clothes`` (cameras 2+3) and ``cloth_changing``
    (cameras 3+4); DeepChange: ``general`` with same-tracklet junk; LaST: ``general`` without junk.
    """
    return {p.name: p for p in get_source(dataset_name).protocols}


def protocol_indices(protocol: Protocol, q_camids: Any, g_camids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the query rows and gallery columns that a protocol evaluates."""
    return _select(protocol.query_camids, q_camids), _select(protocol.gallery_camids, g_camids)


def _label_arrays(source: Any, junk_column: str | None = None) -> dict[str, np.ndarray]:
    keys = ("pid", "camid", "clothes_id") + ((junk_column,) if junk_column not in (None, "camid") else ())
    if hasattr(source, "select_columns"):  # a datasets split
        from .loading import labels

        return labels(source, keys)
    return {key: np.asarray(source[key]).reshape(-1) for key in keys}


def _select(camids: tuple[int, ...] | None, values: Any) -> np.ndarray:
    values = np.asarray(values).reshape(-1)
    if camids is None:
        return np.arange(len(values))
    return np.flatnonzero(np.isin(values, camids))


def evaluate_protocol(
    distmat: Any,
    query: Mapping[str, Any],
    gallery: Mapping[str, Any],
    protocol: Protocol,
    ranks: Sequence[int] = (1, 5, 10),
) -> dict[str, Any]:
    """Evaluate one published setting from the full query x gallery distance matrix.

    `query` and `gallery` give "pid", "camid" and "clothes_id" per row (and the protocol's
    `junk_column`, e.g. DeepChange's "tracklet_id"), in the order of the distance matrix: a loaded
    split (streaming or not; images are not decoded) or a dict of arrays such as
    `occluded_ccreid.loading.labels(split, columns)`. The protocol picks the rows and columns by
    camera, the label that defines junk and the mode; the result is `evaluate`'s, for that subset.
    """
    column = protocol.junk_column
    q, g = _label_arrays(query, column), _label_arrays(gallery, column)
    q_idx, g_idx = protocol_indices(protocol, q["camid"], g["camid"])
    if len(q_idx) == 0 or len(g_idx) == 0:
        raise ValueError(
            f"protocol {protocol.name!r} selects {len(q_idx)} query and {len(g_idx)} gallery rows; "
            "is this the right dataset and split?"
        )
    dist = np.asarray(distmat)
    if dist.shape != (len(q["pid"]), len(g["pid"])):
        raise ValueError(f"distmat has shape {dist.shape}, labels say {(len(q['pid']), len(g['pid']))}")
    dist = dist[np.ix_(q_idx, g_idx)] if (len(q_idx), len(g_idx)) != dist.shape else dist
    return evaluate(
        dist,
        q["pid"][q_idx],
        g["pid"][g_idx],
        q[column][q_idx] if column else None,
        g[column][g_idx] if column else None,
        q["clothes_id"][q_idx],
        g["clothes_id"][g_idx],
        mode=protocol.mode,
        ranks=ranks,
    )


# -- single-shot --------------------------------------------------------------------------------

# PRCC's single-shot setting (Yang et al.): the gallery holds one image per identity, drawn at random;
# the scores are the mean over several draws. CAL's PRCC loader draws its `gallery_idx` 10 times
# with Python's `random` seeded with 3; these are its numbers.
SINGLE_SHOT_DRAWS = 10
SINGLE_SHOT_SEED = 3


def single_shot_draws(g_pids: Any, draws: int = SINGLE_SHOT_DRAWS, seed: int = SINGLE_SHOT_SEED) -> list[np.ndarray]:
    """`draws` galleries of one image per identity: arrays of indices into `g_pids`, one per
    identity in the order identities first appear in `g_pids`.

    Drawn as CAL's PRCC loader draws its ``gallery_idx``: ``random.Random(seed)`` and, for each
    draw and each identity, ``random.choice`` of that identity's gallery indices. So on a gallery
    list in the same order (a build's gallery rows are in source-path order), the draws are CAL's.
    """
    pids = np.asarray(g_pids).reshape(-1)
    by_pid: dict[Any, list[int]] = {}
    for index, pid in enumerate(pids.tolist()):
        by_pid.setdefault(pid, []).append(index)
    rng = random.Random(seed)
    return [np.array([rng.choice(indices) for indices in by_pid.values()], dtype=np.intp) for _ in range(draws)]


def evaluate_single_shot(
    distmat: Any,
    query: Mapping[str, Any],
    gallery: Mapping[str, Any],
    protocol: Protocol,
    draws: int = SINGLE_SHOT_DRAWS,
    seed: int = SINGLE_SHOT_SEED,
    ranks: Sequence[int] = (1, 5, 10),
) -> dict[str, Any]:
    """A published setting scored single-shot: `evaluate_protocol`'s rows and rules, but against
    `draws` galleries of one image per identity (`single_shot_draws` over the protocol's gallery
    columns, `seed`), and the mean of the draws. `evaluate_protocol` itself is multi-shot: every
    gallery image counts. PRCC's papers report both; single-shot scores are higher.

    Returns ``{"mAP", "rank1", ..., "cmc"}`` as means over the draws, ``"draws"`` (each draw's
    ``{"mAP", "rank<k>"...}``), ``"num_draws"``, ``"seed"`` and ``"gallery_size"`` (identities).
    """
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    column = protocol.junk_column
    q, g = _label_arrays(query, column), _label_arrays(gallery, column)
    dist = np.asarray(distmat)
    if dist.shape != (len(q["pid"]), len(g["pid"])):
        raise ValueError(f"distmat has shape {dist.shape}, labels say {(len(q['pid']), len(g['pid']))}")
    q_idx, g_idx = protocol_indices(protocol, q["camid"], g["camid"])
    if len(q_idx) == 0 or len(g_idx) == 0:
        raise ValueError(
            f"protocol {protocol.name!r} selects {len(q_idx)} query and {len(g_idx)} gallery rows; "
            "is this the right dataset and split?"
        )
    results = []
    for chosen in single_shot_draws(g["pid"][g_idx], draws, seed):
        cols = g_idx[chosen]
        results.append(
            evaluate(
                dist[np.ix_(q_idx, cols)],
                q["pid"][q_idx],
                g["pid"][cols],
                q[column][q_idx] if column else None,
                g[column][cols] if column else None,
                q["clothes_id"][q_idx],
                g["clothes_id"][cols],
                mode=protocol.mode,
                ranks=ranks,
            )
        )
    keys = ["mAP"] + [f"rank{int(k)}" for k in ranks]
    mean: dict[str, Any] = {key: float(np.mean([r[key] for r in results])) for key in keys}
    mean["cmc"] = np.mean([r["cmc"] for r in results], axis=0)
    mean["draws"] = [{key: r[key] for key in keys} for r in results]
    mean["num_draws"], mean["seed"], mean["gallery_size"] = draws, seed, len(results[0]["cmc"])
    return mean


__all__ = [
    "MODES",
    "SINGLE_SHOT_DRAWS",
    "SINGLE_SHOT_SEED",
    "evaluate",
    "evaluate_protocol",
    "evaluate_single_shot",
    "protocol_indices",
    "protocols",
    "single_shot_draws",
]
