"""Load a built Occluded-PRCC / Occluded-LTCC dataset, from a local build folder or the Hub.

A build folder is what the builder writes: ``README.md`` (its YAML ``configs`` maps each split to
``data/<split>-*.parquet``), ``data/<split>-NNNNN-of-NNNNN.parquet`` and ``build_report.json``.
`load` hands it, or a Hub repo id, to `datasets.load_dataset`, so every option of that function
(``cache_dir``, ``revision``, ``num_proc``, ...) works; nothing here needs torch.

The label columns (``pid``, ``camid``, ``clothes_id``) can be read without decoding any image
with `labels`, which is what evaluation and identity-balanced sampling need.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from occluded_ccreid.layout import CARD_NAME, DATA_DIR, REPORT_NAME, declares_configs, shard_split

LABEL_COLUMNS: tuple[str, ...] = ("pid", "camid", "clothes_id")


def load(name_or_path: str | Path, split: str | None = None, streaming: bool = False, **kw: Any) -> Any:
    """`datasets.load_dataset` for a build folder or a Hub repo id (e.g. "user/occluded-prcc").

    Returns a `DatasetDict` (or an `IterableDatasetDict` when streaming) of the splits, or one
    split when `split` is given ("train", "query", "gallery", and "validation" for PRCC).
    A local folder whose README has no ``configs`` block (e.g. copied without it) is still read:
    its splits come from the ``data/<split>-NNNNN-of-NNNNN.parquet`` names.
    """
    from datasets import load_dataset

    path = Path(name_or_path).expanduser()
    if path.is_dir():
        data_files = _data_files(path)
        if data_files is not None:
            return load_dataset("parquet", data_files=data_files, split=split, streaming=streaming, **kw)
        return load_dataset(str(path), split=split, streaming=streaming, **kw)
    if str(name_or_path).startswith((".", "/", "~")):
        raise FileNotFoundError(f"{name_or_path} is not a directory (a build folder or a Hub repo id is expected)")
    if "/" not in str(name_or_path):
        return _load_bare_name(str(name_or_path), split=split, streaming=streaming, **kw)
    return load_dataset(str(name_or_path), split=split, streaming=streaming, **kw)


def _load_bare_name(name: str, **kw: Any) -> Any:
    """A name without a namespace that is no folder here ("occluded-prcc"): most likely a build
    folder looked for in the wrong directory. `datasets` would take it for a Hub id, and may
    answer with a copy it cached under that name from another directory or an older build; say
    so, and when nothing answers, say how to make or name the dataset instead."""
    from datasets import load_dataset

    here = Path.cwd()
    try:
        dataset = load_dataset(name, **kw)
    except OSError as exc:  # DatasetNotFoundError, ConnectionError (offline), ...
        from .sources import get_source

        try:
            source = get_source(name).name  # "occluded-prcc" -> prcc
        except KeyError:
            source = "<dataset>"
        raise FileNotFoundError(
            f"{name!r} is not a folder in {here}, nor a dataset datasets can load ({type(exc).__name__}): give "
            f"the build folder's path, build one with `builder build {source} SOURCE_DIR --out {name}`, or load "
            f"a published build by its full id, '<namespace>/{name}'"
        ) from None
    warnings.warn(
        f"{name!r} is not a folder in {here}: loaded the dataset datasets knows by that name, from the Hub or "
        "from its cache, which may be an old copy of a build made elsewhere; give a build folder's path or "
        f"'<namespace>/{name}' to say which one you mean",
        UserWarning,
        stacklevel=3,
    )
    return dataset


def _data_files(folder: Path) -> dict[str, str] | None:
    """Split -> parquet glob from shard names, or None when the README declares the configs."""
    if declares_configs(folder / CARD_NAME):
        return None
    splits = sorted({split for f in (folder / DATA_DIR).glob("*.parquet") if (split := shard_split(f.name))})
    if not splits:
        return None
    return {s: str(folder / DATA_DIR / f"{s}-*.parquet") for s in splits}


def build_report(path_or_repo: str | Path, config: str | None = None) -> dict:
    """The build's ``build_report.json`` (a folder's own, or a Hub repo's: ``<config>/`` for a
    config pushed with ``builder push --config``), or {} when there is none."""
    folder = Path(path_or_repo).expanduser()
    try:
        if folder.is_dir():
            report_path = folder / REPORT_NAME
            return json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
        from huggingface_hub import hf_hub_download

        names = ([f"{config}/{REPORT_NAME}"] if config else []) + [REPORT_NAME]
        for name in names:
            try:
                return json.loads(
                    Path(hf_hub_download(str(path_or_repo), name, repo_type="dataset")).read_text(encoding="utf-8")
                )
            except Exception:  # noqa: BLE001 - try the next place; none: no report
                continue
    except (OSError, ValueError):
        pass
    return {}


def dataset_name(path_or_repo: str | Path, config: str | None = None, report: dict | None = None) -> str | None:
    """Which source dataset a build is made from ("prcc", "ltcc", ..., "manifest"): its report's
    ``dataset``, else the card's ``pretty_name`` ("Occluded-PRCC" -> "prcc"); None when neither
    names a known source."""
    from .sources import get_source

    report = build_report(path_or_repo, config) if report is None else report
    name = report.get("dataset") or _card_name(path_or_repo)
    if not name:
        return None
    try:
        return get_source(name).name
    except KeyError:
        return None


def _card_name(path_or_repo: str | Path) -> str | None:
    folder = Path(path_or_repo).expanduser()
    try:
        if folder.is_dir():
            text = (folder / CARD_NAME).read_text(encoding="utf-8")
        else:
            from huggingface_hub import hf_hub_download

            card = hf_hub_download(str(path_or_repo), CARD_NAME, repo_type="dataset")
            text = Path(card).read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001 - no card: the caller says it cannot tell
        return None
    match = re.search(r"(?m)^pretty_name:\s*['\"]?([^'\"\n]+)", text)
    return match.group(1).strip() if match else None


def labels(split: Any, columns: tuple[str, ...] = LABEL_COLUMNS) -> dict[str, np.ndarray]:
    """The label columns of one split as NumPy arrays, in row order, without decoding images.

    Works for a `datasets.Dataset` (reads the Arrow columns) and an `IterableDataset` (streams the
    selected columns only). The result plugs into `evaluation.evaluate_protocol`.
    """
    missing = [c for c in columns if c not in (split.column_names or [])]
    if missing:
        raise KeyError(f"columns {missing} are not in the dataset (it has {split.column_names})")
    from datasets import Dataset

    selected = split.select_columns(list(columns))
    if isinstance(selected, Dataset):
        table = selected.with_format("numpy")[:]
        return {c: np.asarray(table[c]) for c in columns}
    values: dict[str, list] = {c: [] for c in columns}
    for batch in selected.iter(batch_size=1024):
        for c in columns:
            values[c].extend(batch[c])
    return {c: np.asarray(v) for c, v in values.items()}


__all__ = ["LABEL_COLUMNS", "REPORT_NAME", "build_report", "dataset_name", "labels", "load"]
