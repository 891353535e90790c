"""Any re-id dataset listed in a manifest file: CSV, JSON Lines or Parquet.

Columns: `path` (absolute, or relative to the manifest's folder), `pid` (integer >= 0), `split` (a name
made of letters, digits and `_`), and optionally `camid` (integer) and `clothes_id` (any outfit
label; outfits are numbered 0..K-1 over (pid, label) pairs, as for every source). Every other
column is kept as is. Absent `camid` / `clothes_id` columns give -1 (unknown).
A row that breaks these rules is an error naming its line (CSV, JSONL) or row (Parquet) and
column; a listed file that is missing is skipped and reported like an undecodable image.
"""

from __future__ import annotations

import csv
import json
import posixpath
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import register_source
from .base import LayoutError, Protocol, ScanResult, SourceLayout
from .records import NO_EXTRAS, RecordBuilder, SourceRecord

REQUIRED = ("path", "pid", "split")
OPTIONAL = ("camid", "clothes_id")
# Columns every built row has (occluded_ccreid.features; a test keeps the two lists equal):
# a manifest column of the same name would be overwritten, so it is refused.
RESERVED = frozenset(
    {
        "image",
        "pid",
        "camid",
        "clothes_id",
        "occluded_part",
        "pool_scale",
        "occluded_ratio",
        "occluder",
        "fill",
        "coverage_in_band",
        "occlusion_mask",
        "parsing",
        "source_path",
        "clean_image",
        "part_visibility",
        "occluders",
        "person_donors",
    }
)
_SPLIT = re.compile(r"^[A-Za-z0-9_]+$")
_INTEGER = re.compile(r"^-?[0-9]+$")
_INT32 = (-(2**31), 2**31 - 1)
# Splits in the order re-id code lists them; others follow alphabetically.
_SPLIT_ORDER = ("train", "validation", "val", "validation_query", "validation_gallery", "query", "gallery", "test")


class _Bad(Exception):
    """A value that breaks the manifest's rules: (column, message)."""


@register_source
class Manifest(SourceLayout):
    name = "manifest"
    pretty_name = "Manifest"
    splits = ()  # read from the file
    expected_layout = (
        "  FILE.csv | FILE.jsonl | FILE.parquet with columns\n"
        "    path (absolute or relative to the file's folder), pid (integer >= 0), split (letters, digits, _)\n"
        "    optional: camid (integer), clothes_id (outfit label); any other column is kept"
    )
    homepage = ""
    citation = ""
    protocols = (
        Protocol(
            "general",
            "standard",
            description="all queries against the whole gallery; same-camera images "
            "of the query's identity are ignored (needs camid)",
        ),
        Protocol(
            "cloth_changing",
            "cloth_changing",
            description="as general, and gallery images of the query's "
            "identity in the same clothes are ignored (needs camid and clothes_id)",
        ),
        Protocol(
            "same_clothes",
            "same_clothes",
            description="as general, and gallery images of the query's "
            "identity in other clothes are ignored (needs camid and clothes_id)",
        ),
        Protocol(
            "any_camera",
            "standard",
            junk_column=None,
            description="every gallery image of the query's "
            "identity is a match, whatever its camera (for datasets without camera labels)",
        ),
    )
    notes = (
        "Rows come from a manifest file; `source_path` is the listed path, normalised (relative to the "
        "manifest's folder, or absolute), `camid` / `clothes_id` are -1 when the manifest has no such column, "
        "and columns after `source_path` are copied from the manifest."
    )

    def scan(self, root: str | Path) -> ScanResult:
        file = Path(root)
        if not file.is_file():
            raise LayoutError(f"manifest {file} does not exist or is not a file. Expected:\n{self.expected_layout}")
        reader = _READERS.get(file.suffix.lower())
        if reader is None:
            raise LayoutError(f"manifest {file}: unknown format {file.suffix!r}; use .csv, .jsonl or .parquet")
        try:
            return self._scan(file, reader)
        except UnicodeDecodeError as exc:  # rows are read lazily, so anywhere in the scan
            raise LayoutError(
                f"manifest {file} is not UTF-8 text (byte {exc.object[exc.start]:#04x} cannot be "
                "decoded); save it as UTF-8"
            ) from None

    def _scan(self, file: Path, reader) -> ScanResult:
        folder = file.resolve().parent
        # the listed dataset is named after its file: market1501.csv -> Occluded-market1501
        self.pretty_name = file.stem
        columns, extra_types, rows = reader(file)
        if missing := [c for c in REQUIRED if c not in columns]:
            raise LayoutError(
                f"manifest {file} has no column(s) {', '.join(missing)} (it has {', '.join(columns)}). "
                f"Expected:\n{self.expected_layout}"
            )
        extras = [c for c in columns if c not in REQUIRED and c not in OPTIONAL]
        if reserved := [c for c in extras if c in RESERVED]:
            raise LayoutError(
                f"manifest {file}: column(s) {', '.join(reserved)} are names of built columns; rename them"
            )
        has = {c: c in columns for c in OPTIONAL}
        types = {c: extra_types.get(c, "string") for c in extras}
        records, ignored = RecordBuilder(types), []
        for where, row in rows:
            try:
                record = _record(row, folder, has, extras)
            except _Bad as exc:
                column, message = exc.args
                raise LayoutError(f"manifest {file} {where}, column {column}: {message}") from None
            if posixpath.basename(record.source_path).startswith("."):
                ignored.append(record.source_path)  # `._x.jpg`, `.DS_Store`: never images
            else:
                records.add(record)
        if not records.split_names:
            raise LayoutError(f"manifest {file} lists no images")
        splits = tuple(
            sorted(
                records.split_names,
                key=lambda s: (_SPLIT_ORDER.index(s) if s in _SPLIT_ORDER else len(_SPLIT_ORDER), s),
            )
        )
        table = records.table(splits)
        self._refuse_duplicates(file, folder, table.table.column("source_path"), has, extras)
        return ScanResult(table, sorted(ignored), splits, folder, types)

    def _refuse_duplicates(self, file: Path, folder: Path, paths, has: dict[str, bool], extras: list[str]) -> None:
        """Each image once: found on the Arrow column, then the file is read again for the lines."""
        import pyarrow.compute as pc

        counts = pc.value_counts(paths)
        repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
        if len(repeated) == 0:
            return
        path = repeated[0].as_py()
        lines = [
            where
            for where, row in _READERS[file.suffix.lower()](file)[2]
            if _record(row, folder, has, extras).source_path == path
        ]
        raise LayoutError(
            f"manifest {file} {lines[1]}: {path} is already listed at {lines[0]}; each image may appear once"
        )


def _record(row: dict[str, Any], folder: Path, has: dict[str, bool], extras: list[str]) -> SourceRecord:
    path = row.get("path")
    if not isinstance(path, str) or not path.strip():
        raise _Bad("path", f"expected a file path, got {path!r}")
    clothes = None
    if has["clothes_id"]:
        value = row.get("clothes_id")
        if value is None or value == "" or isinstance(value, (bool, float, list, dict)):
            raise _Bad("clothes_id", f"expected an outfit label (integer or text), got {value!r}")
        clothes = sys.intern(str(value))
    split = row.get("split")
    if not isinstance(split, str) or not _SPLIT.match(split):
        raise _Bad("split", f"expected a split name of letters, digits and _, got {split!r}")
    return SourceRecord(
        split=sys.intern(split),
        source_path=_source_path(path, folder),
        pid=_pid(row),
        camid=_int(row, "camid") if has["camid"] else -1,
        clothes_key=clothes,
        extras={c: row.get(c) for c in extras} if extras else NO_EXTRAS,
    )


def _int(row: dict[str, Any], column: str) -> int:
    value = row.get(column)
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not _INT32[0] <= value <= _INT32[1]:
        raise _Bad(column, f"expected an integer (32-bit), got {value!r}")
    return value


def _pid(row: dict[str, Any]) -> int:
    """A pid >= 0. Datasets mark junk or distractor images with -1 (Market-1501), but a pid here is
    an identity: evaluation would match every two rows of pid -1 as the same person."""
    pid = _int(row, "pid")
    if pid < 0:
        raise _Bad(
            "pid",
            f"{pid} is negative; a pid is an identity, and evaluation would match every two rows of "
            f"pid {pid} as one person: drop junk rows, and give distractor images a pid no query has",
        )
    return pid


def _source_path(text: str, folder: Path) -> str:
    """The listed path, normalised: relative to the manifest's folder when it lies below it, else absolute."""
    path = posixpath.normpath(text.strip())
    if path == ".." or path.startswith("../"):
        path = posixpath.normpath(posixpath.join(folder.as_posix(), path))
    return path


# -- readers: (columns, dtypes of typed extra columns, iterator of (where, row)) ------------------------


def _read_csv(file: Path):
    # rows() below closes the handle, after this function has returned
    handle = open(file, newline="", encoding="utf-8-sig")  # noqa: SIM115
    reader = csv.reader(handle)
    header = next(reader, None)
    if not header or any(not name.strip() for name in header) or len(set(header)) != len(header):
        handle.close()
        raise LayoutError(f"manifest {file} line 1: expected a header of distinct column names, got {header!r}")
    header = [name.strip() for name in header]

    def rows() -> Iterator[tuple[str, dict]]:
        with handle:
            for values in reader:
                if not values or values == [""]:
                    continue
                if len(values) != len(header):
                    raise LayoutError(
                        f"manifest {file} line {reader.line_num}: {len(values)} fields, the header has {len(header)}"
                    )
                yield f"line {reader.line_num}", dict(zip(header, values, strict=True))

    return header, {}, rows()


_JSON_TYPES = {bool: "bool", int: "int64", float: "float64", str: "string"}


def _read_jsonl(file: Path):
    """Two passes (the columns and their types first), so that rows are not all held in memory."""
    columns: dict[str, None] = {}
    seen: dict[str, dict[str, int]] = {}  # column -> {type name: first line}
    with open(file, encoding="utf-8") as handle:
        for number, row in _json_lines(file, handle):
            for key, value in row.items():
                columns.setdefault(key)
                if value is not None:
                    seen.setdefault(key, {}).setdefault(type(value).__name__, number)
    types: dict[str, str] = {}
    for column, kinds in seen.items():
        if column in REQUIRED or column in OPTIONAL:
            continue
        names = set(kinds)
        if names <= {"bool"} or names <= {"int"} or names <= {"str"}:
            types[column] = _JSON_TYPES[{"bool": bool, "int": int, "str": str}[names.pop()]]
        elif names <= {"int", "float"}:
            types[column] = "float64"
        else:
            odd = sorted(kinds.items(), key=lambda item: item[1])[1:] or list(kinds.items())
            kind, line = odd[0]
            raise LayoutError(
                f"manifest {file} line {line}, column {column}: a {kind} value where other lines have "
                f"{', '.join(k for k in kinds if k != kind)}; an extra column holds one type of "
                "number, booleans or text"
            )

    def rows() -> Iterator[tuple[str, dict]]:
        with open(file, encoding="utf-8") as handle:
            for number, row in _json_lines(file, handle):
                yield f"line {number}", row

    return list(columns), types, rows()


def _json_lines(file: Path, handle) -> Iterator[tuple[int, dict]]:
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LayoutError(f"manifest {file} line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise LayoutError(f"manifest {file} line {number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def _read_parquet(file: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
    except (OSError, pa.ArrowException) as exc:
        raise LayoutError(f"manifest {file} cannot be read as Parquet: {exc}") from None
    schema = parquet.schema_arrow
    types: dict[str, str] = {}
    for column in schema:
        if column.name in REQUIRED or column.name in OPTIONAL:
            continue
        t = column.type
        if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
            types[column.name] = str(t)
        elif pa.types.is_floating(t):
            types[column.name] = {16: "float16", 32: "float32", 64: "float64"}[t.bit_width]
        else:
            raise LayoutError(
                f"manifest {file}, column {column.name}: type {t} is not supported in an extra column "
                "(numbers, booleans or text)"
            )

    def rows() -> Iterator[tuple[str, dict]]:
        number = 0
        for batch in parquet.iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                number += 1
                yield f"row {number}", row

    return schema.names, types, rows()


_READERS = {".csv": _read_csv, ".jsonl": _read_jsonl, ".parquet": _read_parquet}
