"""Hand a split to an existing ReID codebase as the list of tuples its dataset classes consume.

CC-ReID code (CAL / Simple-CCReID, torchreid and their many forks) does not read Hugging Face
datasets: a dataset class builds ``train``, ``query`` and ``gallery`` lists of tuples and an
``ImageDataset`` opens ``img_path`` with PIL. These functions produce those lists, writing the
occluded images to a folder when the codebase needs paths.

Column mapping (our column -> their tuple field):

=================  =========================================  ===========================
ours               CAL / Simple-CCReID                         torchreid (>= 1.4 / older)
=================  =========================================  ===========================
``image``          ``img_path`` (file written to image_dir)    ``img_path``
``pid``            ``pid``                                     ``pid``
``camid``          ``camid`` (0-based, as CAL's loaders)       ``camid``
``clothes_id``     ``clothes_id``                              (no field; dropped)
(constant)         --                                          ``dsetid`` (0) / absent
=================  =========================================  ===========================

Tuples are ``(img_path, pid, camid, clothes_id)`` for CAL (`to_tuples`) and
``(img_path, pid, camid, dsetid)`` or ``(img_path, pid, camid)`` for torchreid (`to_torchreid`).

Relabelling: CAL and torchreid train classifiers, so their train lists number identities (and for
CAL outfits) 0..N-1; pass ``relabel=True`` for the train split. Query and gallery keep the
dataset's pids. ``clothes_id`` is already unique per (pid, outfit) over the whole dataset, which is
what CAL's clothes-based evaluation compares, so test splits need no relabelling either.
`pid2clothes` builds the (num_pids, num_clothes) matrix CAL's clothes-adversarial loss expects.

Written files: ``image_dir/<source_path>``, in the format the source path's extension names
(`occluded_ccreid.export.images`: PNG bytes as stored, JPEG at quality 100 with 4:4:4 chroma), so
``rgb/test/C/001/xx.jpg`` is a JPEG named as in PRCC. Names are deterministic; a file already
there is left as it is when it holds the same bytes and refused otherwise (nothing the export did
not write is ever replaced). A second row with the same source path gets ``__dup<k>`` before the
extension. For a whole build in its source's layout, with resume and a progress bar, use
`occluded_ccreid.export.to_folder`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .images import ExportError, image_bytes, relative_target, write_new


def to_tuples(
    split: Any, image_dir: str | Path | None = None, relabel: bool = False
) -> list[tuple[Any, int, int, int]]:
    """``(image, pid, camid, clothes_id)`` per row, in row order: the shape CAL's datasets use.

    Args:
        split: one split, a `datasets.Dataset` or a streaming `IterableDataset`.
        image_dir: where to write the occluded images; the tuples then hold their absolute paths
            (as str). Without it the tuples hold decoded PIL images and nothing is written.
        relabel: renumber pid and clothes_id to 0..N-1 (in increasing order), for a train split.
    """
    rows = _rows(split, decode=image_dir is None)
    if image_dir is None:
        out = [(r["image"], int(r["pid"]), int(r["camid"]), int(r["clothes_id"])) for r in rows]
    else:
        root = Path(image_dir).expanduser().resolve()
        seen: dict[str, int] = {}
        out = []
        for r in rows:
            path = _write_image(r["image"], root, r["source_path"], seen)
            out.append((str(path), int(r["pid"]), int(r["camid"]), int(r["clothes_id"])))
    return _relabel(out) if relabel else out


def to_torchreid(split: Any, image_dir: str | Path, relabel: bool = False, dsetid: int | None = 0) -> list[tuple]:
    """``(img_path, pid, camid, dsetid)`` per row (torchreid >= 1.4), or ``(img_path, pid, camid)``
    with ``dsetid=None`` (older torchreid). torchreid reads paths, so images are written to
    `image_dir`; pass ``relabel=True`` for the train split."""
    rows = to_tuples(split, image_dir=image_dir, relabel=relabel)
    if dsetid is None:
        return [(path, pid, camid) for path, pid, camid, _ in rows]
    return [(path, pid, camid, dsetid) for path, pid, camid, _ in rows]


def pid2clothes(tuples: list[tuple]) -> np.ndarray:
    """(num_pids, num_clothes) 0/1 matrix: which outfits each identity wears, as CAL builds it.

    Expects relabelled tuples (``to_tuples(train, ..., relabel=True)``)."""
    pids = np.array([t[1] for t in tuples], dtype=np.int64)
    clothes = np.array([t[3] for t in tuples], dtype=np.int64)
    shape = (pids.max() + 1, clothes.max() + 1) if len(pids) else (0, 0)
    matrix = np.zeros(shape, dtype=np.float32)
    matrix[pids, clothes] = 1.0
    return matrix


def _rows(split: Any, decode: bool) -> Iterable[dict]:
    """Rows with only the columns an export needs, so the masks and part maps are never decoded."""
    from datasets import Image

    columns = ["image", "pid", "camid", "clothes_id", "source_path"]
    return split.select_columns(columns).cast_column("image", Image(decode=decode))


def _relabel(rows: list[tuple]) -> list[tuple]:
    pid_map = {p: i for i, p in enumerate(sorted({r[1] for r in rows}))}
    clothes_map = {c: i for i, c in enumerate(sorted({r[3] for r in rows}))}
    return [(img, pid_map[pid], camid, clothes_map[cid]) for img, pid, camid, cid in rows]


def _write_image(image: dict, root: Path, source_path: str, seen: dict[str, int]) -> Path:
    """Write one stored image under `root`, named after its source path, in that name's format."""
    rel = relative_target(source_path)
    key = rel.as_posix()
    count = seen.get(key, 0)
    seen[key] = count + 1
    if count:
        rel = rel.with_name(f"{rel.stem}__dup{count}{rel.suffix}")
    data = image_bytes(image, rel.suffix, f"row {source_path!r}")
    target = root.joinpath(*rel.parts)
    if target.is_file() and target.read_bytes() == data:
        return target
    if target.exists() or target.is_symlink():
        raise ExportError(
            f"{target} exists with other content; to_tuples never replaces a file: "
            "choose an empty image_dir or move the file away"
        )
    write_new(root, rel, data)
    return target


__all__ = ["pid2clothes", "to_torchreid", "to_tuples"]
