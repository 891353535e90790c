"""CAL's dataset object for a build, made from its label columns only: no image is read.

CAL / Simple-CCReID's training code (and the Occluded-CC-ReID paper's, built on it) takes a
dataset object: lists of ``(img_path, pid, camid, clothes_id)`` tuples (``train``, ``query``,
``gallery``; PRCC ``val``, ``query_same``, ``query_diff``; DeepChange and LaST ``val_query``,
``val_gallery``) and ``num_train_pids``, ``num_train_clothes``, ``pid2clothes``. `cal_dataset`
gives that object with CAL's own numbers, as CAL's class for the source would compute them on
`to_folder`'s export of the build (tests run CAL's unmodified PRCC and LTCC classes on exports and
compare):

* train: pids relabelled 0..N-1 in increasing order; outfits relabelled 0..K-1 in the sort order
  of CAL's outfit key for the source (a string from the file name, e.g. PRCC's ``"001"`` and
  ``"001C"``, LTCC's ``"001_1"``), and ``pid2clothes[pid, clothes] = 1`` (float64, as CAL);
* test lists: the source's pids; outfits numbered over the test lists together as CAL does
  (PRCC: ``2 * rank of the pid among gallery pids``, ``+1`` for camera C);
* DeepChange: the tracklet id in the camid field; LaST: camid = position in path order (offset by
  the query list's length for a gallery; train too), test clothes_id = pid, as CAL's LaST class.

Lists are in the build's row order (PRCC's ``query_same`` / ``query_diff``: its query rows of
camera B / C), so entry i of ``train`` is row i of the ``train`` split. ``img_path`` is
``image_root/<source_path>`` (where `to_folder` writes the image), or the relative source path
without `image_root`. PRCC's object also has CAL's ``gallery_idx``: the single-shot draws of
`evaluation.single_shot_draws` (10 draws, seed 3, CAL's drawing).
Builds of other sources (a manifest) get CAL's generic recipe on the build's own labels: train
relabelled in increasing pid and clothes_id order, other splits as they are, one list per split.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import loading
from ..evaluation import single_shot_draws
from .images import ExportError, first_line, relative_target

CalTuple = tuple[str, int, int, int]


@dataclass
class CALDataset:
    """What CAL's dataset classes hold. Lists other than train/query/gallery (``val``,
    ``query_same``, ...) are in `lists` and read as attributes, as on CAL's objects."""

    train: list[CalTuple]
    query: list[CalTuple]
    gallery: list[CalTuple]
    num_train_pids: int
    num_train_clothes: int
    pid2clothes: np.ndarray  # (num_train_pids, num_train_clothes) float64, 1 where the pid wears the outfit
    lists: dict[str, list[CalTuple]] = field(default_factory=dict)  # by CAL's attribute name
    gallery_idx: dict[int, list[int]] | None = None  # PRCC: CAL's single-shot draws
    dataset: str | None = None

    def __getattr__(self, name: str) -> list[CalTuple]:
        lists = self.__dict__.get("lists", {})
        if name in lists:
            return lists[name]
        raise AttributeError(
            f"{type(self).__name__} of {self.__dict__.get('dataset')} has no {name!r}; "
            f"its lists: train, query, gallery{''.join(', ' + k for k in lists)}"
        )


@dataclass
class _Split:
    """One split's label columns (row order) and how to name its images."""

    source_path: list[str]
    pid: np.ndarray
    camid: np.ndarray
    clothes_id: np.ndarray
    extras: dict[str, np.ndarray]
    path: Callable[[str], str]

    def __len__(self) -> int:
        return len(self.source_path)

    def name(self, i: int) -> str:
        return self.source_path[i].rsplit("/", 1)[-1]


Splits = dict[str, _Split]
_CONVENTIONS: dict[str, Callable[[Splits], CALDataset]] = {}


def _convention(name: str) -> Callable[[Callable[[Splits], CALDataset]], Callable[[Splits], CALDataset]]:
    def register(function: Callable[[Splits], CALDataset]) -> Callable[[Splits], CALDataset]:
        _CONVENTIONS[name] = function
        return function

    return register


def cal_dataset(build: str | Path, image_root: str | Path | None = None, config: str | None = None) -> CALDataset:
    """CAL's dataset object for a build folder or Hub repo (`config`: one of its configs), from
    the label columns and ``source_path`` only (module doc). Pass the folder `to_folder` wrote as
    `image_root` to get paths CAL's ``ImageDataset`` opens."""
    name = loading.dataset_name(build, config)
    extra = ("tracklet_id",) if name == "deepchange" else ()
    columns = ("source_path", "pid", "camid", "clothes_id", *extra)
    kwargs = {"name": config} if config else {}
    try:
        opened = loading.load(build, streaming=True, columns=list(columns), **kwargs)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise ExportError(f"cannot open {build}: {first_line(exc)}") from None
    root = None if image_root is None else os.path.abspath(Path(image_root).expanduser())

    def path(source_path: str) -> str:
        rel = relative_target(source_path)
        return rel.as_posix() if root is None else os.path.join(root, *rel.parts)

    splits = {}
    for split, dataset in opened.items():
        values = loading.labels(dataset, columns)
        splits[split] = _Split(
            [str(p) for p in values["source_path"]],
            values["pid"].astype(np.int64),
            values["camid"].astype(np.int64),
            values["clothes_id"].astype(np.int64),
            {c: values[c].astype(np.int64) for c in extra},
            path,
        )
    result = _CONVENTIONS.get(name or "", _generic)(splits)
    result.dataset = name
    return result


# Patterns that CAL's classes search in an image's whole path, not only its file name: a folder of
# the export's path that matches one gives every image the folder's labels instead of its own.
_WHOLE_PATH_PATTERNS: dict[str, tuple[tuple[str, str], ...]] = {
    "ltcc": ((r"\w+_c", "the outfit"), (r"\d+_\d+_c\d+", "the pid and camera")),
    "vcclothes": ((r"\d+-\d+-\d+-\d+", "the pid, camera and outfit"),),
}


def cal_path_problem(dataset: str | None, folder: str | Path) -> str | None:
    """Why CAL's class for `dataset` would misread images below `folder`, or None: its LTCC and
    VC-Clothes classes search their label patterns in the whole path (LTCC: ``(\\w+)_c``), so a
    folder such as ``my_cache`` above the images becomes every image's outfit."""
    for pattern, what in _WHOLE_PATH_PATTERNS.get(dataset or "", ()):
        if match := re.search(pattern, os.path.abspath(Path(folder).expanduser())):
            return (
                f"CAL's {dataset} class searches {pattern!r} in the whole image path and would read {what} "
                f"from {match.group(0)!r} in {folder}; export to a path without it"
            )
    return None


# -- the pieces CAL's classes share ------------------------------------------------------------


def _require(splits: Splits, *names: str) -> None:
    if missing := [n for n in names if n not in splits]:
        raise ExportError(
            f"the build has no split(s) {', '.join(missing)} (it has {', '.join(splits)}); CAL's "
            "dataset class needs them"
        )


def _train(
    split: _Split, key: Callable[[int], Any], camid: np.ndarray | None = None
) -> tuple[list[CalTuple], int, int, np.ndarray]:
    """CAL's `_process_dir_train`: pids in increasing order, outfits in the sort order of `key`
    (CAL's outfit string; the build's clothes_id for a generic build)."""
    keys = [key(i) for i in range(len(split))]
    pid_label = {pid: label for label, pid in enumerate(sorted(set(split.pid.tolist())))}
    clothes_label = {k: label for label, k in enumerate(sorted(set(keys)))}
    cams = split.camid if camid is None else camid
    rows = [
        (split.path(split.source_path[i]), pid_label[int(split.pid[i])], int(cams[i]), clothes_label[keys[i]])
        for i in range(len(split))
    ]
    matrix = np.zeros((len(pid_label), len(clothes_label)))
    for _, pid, _, clothes in rows:
        matrix[pid, clothes] = 1
    return rows, len(pid_label), len(clothes_label), matrix


def _test(
    parts: list[_Split], key: Callable[[_Split, int], str], camid: Callable[[_Split], np.ndarray] | None = None
) -> list[list[CalTuple]]:
    """CAL's test lists: the source's pids, outfits numbered over all `parts` together by `key`."""
    keys = [[key(part, i) for i in range(len(part))] for part in parts]
    clothes_label = {k: label for label, k in enumerate(sorted({k for ks in keys for k in ks}))}
    out = []
    for part, part_keys in zip(parts, keys, strict=True):
        cams = part.camid if camid is None else camid(part)
        out.append(
            [
                (part.path(part.source_path[i]), int(part.pid[i]), int(cams[i]), clothes_label[part_keys[i]])
                for i in range(len(part))
            ]
        )
    return out


def _dataset(
    train: _Split,
    key: Callable[[int], Any],
    lists: dict[str, list[CalTuple]],
    camid: np.ndarray | None = None,
    **extra: Any,
) -> CALDataset:
    rows, num_pids, num_clothes, matrix = _train(train, key, camid)
    return CALDataset(
        rows, lists.pop("query", []), lists.pop("gallery", []), num_pids, num_clothes, matrix, lists, **extra
    )


# -- one function per source, each reading the file names as CAL's class for it does -------------


@_convention("prcc")
def _prcc(s: Splits) -> CALDataset:
    _require(s, "train", "validation", "query", "gallery")

    def key(split: _Split) -> Callable[[int], str]:  # the pid folder, + "C" for camera C
        return lambda i: split.source_path[i].split("/")[-2] + ("C" if split.camid[i] == 2 else "")

    gallery, query = s["gallery"], s["query"]
    rank = {pid: label for label, pid in enumerate(sorted(set(gallery.pid.tolist())))}  # CAL: camera A's pids
    if absent := sorted(set(query.pid.tolist()) - set(rank)):
        raise ExportError(
            f"PRCC query identities {absent[:5]} have no gallery (camera A) image; CAL's PRCC class "
            "numbers outfits by the gallery's identities"
        )

    def test(split: _Split) -> list[CalTuple]:
        return [
            (
                split.path(split.source_path[i]),
                int(split.pid[i]),
                int(split.camid[i]),
                rank[int(split.pid[i])] * 2 + int(split.camid[i] == 2),
            )
            for i in range(len(split))
        ]

    queries = test(query)
    lists = {
        "query": queries,
        "gallery": test(gallery),
        "val": _train(s["validation"], key(s["validation"]))[0],
        "query_same": [t for t in queries if t[2] == 1],
        "query_diff": [t for t in queries if t[2] == 2],
    }
    draws = single_shot_draws(gallery.pid)
    return _dataset(s["train"], key(s["train"]), lists, gallery_idx={d: idx.tolist() for d, idx in enumerate(draws)})


_LTCC_CLOTHES = re.compile(r"(\w+)_c")


@_convention("ltcc")
def _ltcc(s: Splits) -> CALDataset:
    _require(s, "train", "query", "gallery")

    def key(split: _Split, i: int) -> str:  # "<pid>_<clothes>" as written
        match = _LTCC_CLOTHES.search(split.name(i))
        return match.group(1) if match else ""

    query, gallery = _test([s["query"], s["gallery"]], key)
    return _dataset(s["train"], lambda i: key(s["train"], i), {"query": query, "gallery": gallery})


_VC_NAME = re.compile(r"(\d+)-(\d+)-(\d+)-(\d+)")


@_convention("vcclothes")
def _vcclothes(s: Splits) -> CALDataset:
    _require(s, "train", "query", "gallery")

    def key(split: _Split, i: int) -> str:  # pid text + clothes text
        match = _VC_NAME.search(split.name(i))
        return match.group(1) + match.group(3) if match else ""

    query, gallery = _test([s["query"], s["gallery"]], key)
    return _dataset(s["train"], lambda i: key(s["train"], i), {"query": query, "gallery": gallery})


@_convention("deepchange")
def _deepchange(s: Splits) -> CALDataset:
    _require(s, "train", "validation_query", "validation_gallery", "query", "gallery")

    def key(split: _Split, i: int) -> str:  # "P<pid>" + clothes key
        names = split.name(i).split(".")[0].split("_")
        return names[0] + names[2]

    def tracklet(split: _Split) -> np.ndarray:  # CAL puts the tracklet id in the camid field
        return split.extras["tracklet_id"]

    val_query, val_gallery = _test([s["validation_query"], s["validation_gallery"]], key, tracklet)
    query, gallery = _test([s["query"], s["gallery"]], key, tracklet)
    lists = {"query": query, "gallery": gallery, "val_query": val_query, "val_gallery": val_gallery}
    return _dataset(s["train"], lambda i: key(s["train"], i), lists, camid=tracklet(s["train"]))


@_convention("last")
def _last(s: Splits) -> CALDataset:
    _require(s, "train", "validation_query", "validation_gallery", "query", "gallery")

    def key(i: int) -> str:  # "<pid>_<last field>"
        names = s["train"].name(i).split(".")[0].split("_")
        return names[0] + "_" + names[-1]

    def positions(split: _Split, offset: int = 0) -> np.ndarray:  # CAL's camid: the place in path order
        place = {p: n for n, p in enumerate(sorted(split.source_path))}
        return np.array([offset + place[p] for p in split.source_path], dtype=np.int64)

    def listed(split: _Split, offset: int) -> list[CalTuple]:  # clothes_id: the pid
        cams = positions(split, offset)
        return [
            (split.path(p), int(split.pid[i]), int(cams[i]), int(split.pid[i])) for i, p in enumerate(split.source_path)
        ]

    lists = {
        "query": listed(s["query"], 0),
        "gallery": listed(s["gallery"], len(s["query"])),
        "val_query": listed(s["validation_query"], 0),
        "val_gallery": listed(s["validation_gallery"], len(s["validation_query"])),
    }
    return _dataset(s["train"], key, lists, camid=positions(s["train"]))


def _generic(s: Splits) -> CALDataset:
    """A manifest build (or an unnamed one): train relabelled by the build's own labels, the
    other splits as they are."""

    def rows(split: _Split) -> list[CalTuple]:
        return [
            (split.path(split.source_path[i]), int(split.pid[i]), int(split.camid[i]), int(split.clothes_id[i]))
            for i in range(len(split))
        ]

    lists = {name: rows(split) for name, split in s.items() if name != "train"}
    if "train" not in s:
        return CALDataset([], lists.pop("query", []), lists.pop("gallery", []), 0, 0, np.zeros((0, 0)), lists)
    train = s["train"]
    return _dataset(train, lambda i: int(train.clothes_id[i]), lists)
