"""A whole build written back into its source dataset's layout, for code that reads folders.

``to_folder(build, out)`` writes every row's image to ``out/<source_path>`` in the format that
name says (`images.py`), plus the files the source layout needs besides its images (DeepChange's
``<folder>-bbox.txt`` lists, `SourceLayout.list_files`), so the source's usual loader (CAL /
Simple-CCReID's PRCC, LTCC, VC-Clothes, DeepChange, LaST classes, and the Occluded-PRCC paper's,
which are CAL's with the folder renamed) reads ``out`` as it reads the original download, with the
same labels. Optionally:

* ``clean=True``: a ``--keep-clean`` build's original images as a second tree, ``out/clean/``,
  in the same layout (same names, same list files);
* ``masks=True``: each row's ``occlusion_mask`` and ``parsing`` as the PNGs the build stores, in
  ``out/occlusion_mask/`` and ``out/parsing/``, named ``<source_path>.png`` (``x.jpg`` ->
  ``x.jpg.png``), the first name ``builder build --parsing-dir`` reads. They are not beside the
  images: LTCC's loader takes every ``*.png`` of a split folder for an image.

Safety (`staging.py`): the export is written to ``.<out>.export-partial/`` beside ``out`` and
renamed into place when complete; the same call resumes an interrupted one; an existing ``out``
is only accepted when empty or a finished export with the same settings, never written into.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .. import loading
from ..sources import SourceLayout, SourceRecord, get_source
from .cal import cal_path_problem
from .images import JPEG_OPTIONS, ExportError, Written, first_line, image_bytes, relative_target, write_new
from .staging import MARKER_NAME, Staging, first_difference, read_marker

CLEAN_DIR = "clean"
MASK_COLUMNS = ("occlusion_mask", "parsing")


@dataclass(frozen=True)
class ExportResult:
    out: Path
    dataset: str | None  # the source dataset ("prcc", ...) when the build says; None otherwise
    rows: dict[str, int]  # rows exported per split
    files: int  # files in the export (images, masks, list files)
    kept: int  # files kept from an interrupted run of the same export
    already_complete: bool  # `out` already held this export: nothing was written


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def to_folder(
    build: str | Path,
    out: str | Path,
    *,
    config: str | None = None,
    splits: Sequence[str] | None = None,
    clean: bool = False,
    masks: bool = False,
    progress: bool = True,
    workers: int | None = None,
    log: Callable[[str], None] = say,
) -> ExportResult:
    """Write a build folder or Hub repo (`config`: one of its configs) into `out` in its source's
    layout (module doc). `splits` picks some splits (default: all). Raises `ExportError` (one
    line) on anything that stops it; running the same call again resumes."""
    out = _check_out(Path(out), build)
    splits_found = _open(build, config)
    chosen = list(splits) if splits else list(splits_found)
    if unknown := [s for s in chosen if s not in splits_found]:
        raise ExportError(f"{build} has no split(s) {', '.join(unknown)}; it has {', '.join(splits_found)}")
    report = loading.build_report(build, config)
    name = loading.dataset_name(build, config, report)
    columns = _columns(splits_found, chosen, build, clean, masks, name)
    fingerprint = {
        "build": _build_id(build, config, report),
        "splits": chosen,
        "clean": clean,
        "masks": masks,
        "jpeg": JPEG_OPTIONS,
        "dataset": name,
    }
    marker = read_marker(out) if out.is_dir() else None
    if marker is not None:
        why = first_difference(marker.get("fingerprint") or {}, fingerprint)
        if why is None:
            log(f"{out} already holds this export (complete); nothing to do")
            return ExportResult(out, name, marker.get("rows", {}), len(marker.get("files", {})), 0, True)
        raise ExportError(f"{out} holds another export ({why}); choose another OUT or delete it first")
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty folder or an export of this tool; choose a new OUT")
    if problem := cal_path_problem(name, out):
        log(f"warning: {problem}")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Staging(out, fingerprint, log)
    try:
        kept = staging.open()
        total = sum((report.get("splits", {}).get(s, {}) or {}).get("num_rows") or 0 for s in chosen) or None
        rows = _write_rows(
            staging, {s: splits_found[s] for s in chosen}, columns, clean, masks, name, progress, total, workers
        )
        staging.finish({"dataset": name, "rows": rows})
    finally:
        staging.close()
    return ExportResult(out, name, rows, len(staging.done), kept, False)


def _check_out(out: Path, build: str | Path) -> Path:
    out = Path(os.path.abspath(out.expanduser()))
    if out.is_symlink():
        raise ExportError(f"OUT {out} is a symlink; give the folder itself (a finished export is renamed into place)")
    if out == out.parent or Path.cwd().resolve().is_relative_to(out.resolve()):
        raise ExportError(f"OUT {out} is the current folder or above it; choose a new folder")
    local = Path(build).expanduser()
    if local.is_dir():
        a, b = out.resolve(), local.resolve()
        if a.is_relative_to(b) or b.is_relative_to(a):
            raise ExportError(f"OUT {out} and the build {local} lie inside one another; choose OUT elsewhere")
    return out


def _open(build: str | Path, config: str | None) -> dict[str, Any]:
    kwargs = {"name": config} if config else {}
    try:
        return dict(loading.load(build, streaming=True, **kwargs))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise ExportError(f"cannot open {build}{f' (config {config})' if config else ''}: {first_line(exc)}") from None


def _columns(
    found: dict[str, Any], chosen: list[str], build: str | Path, clean: bool, masks: bool, name: str | None
) -> list[str]:
    columns = ["image", "source_path", "pid", "camid"]
    columns += ["clean_image"] if clean else []
    columns += list(MASK_COLUMNS) if masks else []
    columns += list(get_source(name).extra_columns) if name else []
    for split in chosen:
        have = found[split].column_names or []
        if clean and "clean_image" not in have:
            raise ExportError(
                f"split {split} of {build} has no clean_image column: --clean needs a build made "
                "with builder build --keep-clean"
            )
        if absent := [c for c in columns if c not in have]:
            raise ExportError(
                f"split {split} of {build} lacks column(s) {', '.join(absent)}; is it an occluded_ccreid build?"
            )
    return columns


def _build_id(build: str | Path, config: str | None, report: dict) -> dict:
    """What the exported files depend on: the build's report, and for a folder its shard files'
    names, sizes and modification times (a rebuilt folder is another build)."""
    found: dict[str, Any] = {
        "source": str(build) if not Path(build).expanduser().is_dir() else os.path.abspath(Path(build).expanduser()),
        "config": config,
    }
    found["report_sha256"] = hashlib.sha256(repr(sorted(report.items())).encode()).hexdigest() if report else None
    folder = Path(build).expanduser()
    if folder.is_dir():
        digest = hashlib.sha256()
        for file in sorted(folder.rglob("*.parquet")):
            stat = file.stat()
            digest.update(f"{file.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        found["data_files"] = digest.hexdigest()
    return found


@dataclass(frozen=True)
class _Job:
    rel: PurePosixPath  # target below OUT
    image: dict  # stored image value (bytes/path)
    where: str  # the row, for errors


def _row_jobs(row: dict, split: str, clean: bool, masks: bool) -> Iterator[_Job]:
    source_path = row["source_path"]
    rel = relative_target(source_path)
    where = f"split {split}, row {source_path!r}"
    yield _Job(rel, row["image"], where)
    if clean:
        yield _Job(PurePosixPath(CLEAN_DIR, rel), row["clean_image"], where + " (clean_image)")
    if masks:
        for column in MASK_COLUMNS:
            # x.jpg -> x.jpg.png: x.jpg and x.png of one folder keep apart (the name --parsing-dir reads first)
            yield _Job(PurePosixPath(column, f"{rel}.png"), row[column], f"{where} ({column})")


def _encode_and_write(staging: Staging, job: _Job) -> Written:
    return write_new(staging.tree, job.rel, image_bytes(job.image, job.rel.suffix, job.where))


def _write_rows(
    staging: Staging,
    splits: dict[str, Any],
    columns: list[str],
    clean: bool,
    masks: bool,
    name: str | None,
    progress: bool,
    total: int | None,
    workers: int | None,
) -> dict[str, int]:
    """Every row's files, encoded by a pool of threads (Pillow's codecs release the GIL), at most
    a few per thread in flight; then the layout's list files."""
    from datasets import Image
    from tqdm.auto import tqdm

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = workers or min(8, cores)
    owner: dict[str, str] = {}  # target -> the row that writes it: two rows may never share a file
    records: list[SourceRecord] = []
    rows: dict[str, int] = {}
    pending: deque[Future] = deque()
    image_columns = [c for c in ("image", "clean_image", *MASK_COLUMNS) if c in columns]
    lists = _has_list_files(name)  # records are kept (~300 bytes a row) only for a layout that lists them
    with ThreadPoolExecutor(workers) as pool, tqdm(total=total, desc="export", unit="img", disable=not progress) as bar:
        try:
            for split, dataset in splits.items():
                selected = dataset.select_columns(columns)
                for column in image_columns:
                    selected = selected.cast_column(column, Image(decode=False))
                rows[split] = 0
                for row in selected:
                    rows[split] += 1
                    if lists:
                        records.append(_record(split, row, columns))
                    for job in _row_jobs(row, split, clean, masks):
                        _claim(owner, job)
                        if job.rel.as_posix() not in staging.done:
                            pending.append(pool.submit(_encode_and_write, staging, job))
                    bar.update(1)
                    while len(pending) > 4 * workers:
                        staging.record(pending.popleft().result())
            while pending:
                staging.record(pending.popleft().result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    _write_list_files(staging, records, name, clean, owner)
    return rows


def _has_list_files(name: str | None) -> bool:
    return name is not None and type(get_source(name)).list_files is not SourceLayout.list_files


def _record(split: str, row: dict, columns: list[str]) -> SourceRecord:
    known = ("image", "source_path", "pid", "camid", "clean_image", *MASK_COLUMNS)
    extras = {c: row[c] for c in columns if c not in known}
    return SourceRecord(split, row["source_path"], int(row["pid"]), int(row["camid"]), None, extras=extras)


def _claim(owner: dict[str, str], job: _Job) -> None:
    key = job.rel.as_posix()
    if key == MARKER_NAME:
        raise ExportError(f"{job.where}: its file name {key} is the export's own marker; rename the source file")
    if key in owner:
        raise ExportError(
            f"{job.where} and {owner[key]} would both be written to {key}; an export needs distinct "
            "file names (two source paths that differ only in the extension, or a source folder "
            f"named {CLEAN_DIR}/, occlusion_mask/ or parsing/)"
        )
    owner[key] = job.where


def _write_list_files(
    staging: Staging, records: list[SourceRecord], name: str | None, clean: bool, owner: dict[str, str]
) -> None:
    """The layout's files besides its images (DeepChange's lists), in each tree."""
    if not _has_list_files(name):
        return
    assert name is not None
    for rel_text, text in get_source(name).list_files(records).items():
        for rel in [PurePosixPath(rel_text)] + ([PurePosixPath(CLEAN_DIR, rel_text)] if clean else []):
            _claim(owner, _Job(rel, {}, f"list file {rel_text}"))
            data = text.encode("utf-8")
            done = staging.done.get(rel.as_posix())
            if done is not None and done.sha256 == hashlib.sha256(data).hexdigest():
                continue
            staging.record(write_new(staging.tree, rel, data))
