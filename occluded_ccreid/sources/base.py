"""What a source layout is: how one re-id dataset lies on disk and how its labels are read."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, NamedTuple

from .records import RecordBuilder, SourceRecord

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


class LayoutError(ValueError):
    """SOURCE_DIR does not look like the named dataset; the message says what was expected."""


@dataclass(frozen=True)
class Protocol:
    """A published evaluation setting: which query rows are used, against which gallery, how."""

    name: str
    mode: str  # a mode of occluded_ccreid.evaluation.evaluate
    query_camids: tuple[int, ...] | None = None  # None: every query row
    gallery_camids: tuple[int, ...] | None = None  # None: every gallery row
    description: str = ""
    # Gallery images of the query's identity with the query's value in this column are ignored
    # (junk): "camid" is the field's same-camera rule, "tracklet_id" DeepChange's same-tracklet
    # rule; None ignores none, so every other image of the identity is a match (LaST).
    junk_column: str | None = "camid"

    def label_columns(self) -> tuple[str, ...]:
        """The labels besides `pid` whose values this protocol uses, so that each must be known
        (not -1 everywhere) in the rows it scores: `camid` when it picks rows by camera, its junk
        column, and `clothes_id` in a clothes-aware mode."""
        columns = ["camid"] if self.query_camids is not None or self.gallery_camids is not None else []
        if self.junk_column and self.junk_column not in columns:
            columns.append(self.junk_column)
        if self.mode != "standard":
            columns.append("clothes_id")
        return tuple(columns)


@dataclass
class ScanResult:
    records: Sequence[SourceRecord]  # a RecordTable: sorted by (split, path), Arrow columns underneath
    ignored_files: list[str]  # non-image and hidden files, not data
    splits: tuple[str, ...]  # in build order; a manifest's come from the file
    root: Path  # what a record's source_path is relative to
    extra_columns: dict[str, str] = field(default_factory=dict)  # column -> datasets Value dtype


@dataclass
class SplitScan:
    """What scanning one split found."""

    records: list[SourceRecord] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    bad_names: list[str] = field(default_factory=list)  # images whose path does not fit the layout
    not_utf8: list[str] = field(default_factory=list)  # images whose name is not UTF-8, backslash-escaped

    def add_unlisted(self, rel: str) -> None:
        """A file that is not an image of the split: ignored, under a name that can be printed."""
        self.ignored.append(printable(rel))

    def add_image(self, rel: str, record: SourceRecord | None) -> None:
        """An image name of the split, and its record (None: the name does not fit the layout)."""
        if not is_utf8(rel):
            self.not_utf8.append(printable(rel))
        elif record is None:
            self.bad_names.append(rel)
        else:
            self.records.append(record)

    def merge(self, other: SplitScan) -> None:
        self.ignored += other.ignored
        self.bad_names += other.bad_names
        self.not_utf8 += other.not_utf8


def is_hidden(rel: str) -> bool:
    """Dot-files and anything in a dot-folder (`._x.jpg`, `.DS_Store`, `.cache/`) are never images."""
    return any(part.startswith(".") for part in rel.split("/"))


def is_image_name(rel: str) -> bool:
    return not is_hidden(rel) and os.path.splitext(rel)[1].lower() in IMAGE_EXTENSIONS


def is_utf8(name: str) -> bool:
    """False for a name whose bytes are not UTF-8 (archives extracted with another encoding leave
    them): Python keeps such bytes as lone surrogates, which no Parquet string can hold."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(name: str) -> str:
    """`name` as valid text: bytes that are not UTF-8 shown as backslash escapes (`A_\\xe9.jpg`)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def ascii_int(text: str) -> int | None:
    """The value of a label written as ASCII digits, else None: str.isdigit() also accepts "²"
    (which int() rejects) and "١" (which int() reads as 1), and a re-id label is never either."""
    return int(text) if text.isascii() and text.isdigit() else None


class SourceLayout:
    """Base class of a dataset layout. Subclasses set the class attributes and `required_dirs`,
    `split_files`, `parse_record` (or override `scan_split`, or `scan` itself)."""

    name: ClassVar[str]
    pretty_name: str  # set by each layout's class; a manifest's instance names itself after its file
    splits: ClassVar[tuple[str, ...]]  # () when the splits are read from the source (manifest)
    expected_layout: ClassVar[str]  # shown to the user when SOURCE_DIR does not match
    citation: ClassVar[str]
    homepage: ClassVar[str]  # the dataset's page: where its terms of use are
    protocols: ClassVar[tuple[Protocol, ...]]
    extra_columns: ClassVar[dict[str, str]] = {}  # source-specific columns: name -> dtype
    notes: ClassVar[str] = ""  # what the card says about this source's labels, when not the usual

    def scan(self, root: str | Path) -> ScanResult:
        """All records of every split, sorted by path, with global clothes ids assigned."""
        root = Path(root)
        if not root.is_dir():
            raise LayoutError(f"source directory {root} does not exist or is not a directory")
        self.check_layout(root)
        self._pid_spellings: dict[int, dict[str, str]] = {}
        found, records = SplitScan(), RecordBuilder(self.extra_columns)
        empty = []
        for split in self.splits:
            part = self.scan_split(root, split)
            for record in part.records:
                records.add(record)
            found.merge(part)
            if not part.records:
                empty.append(split)
        self._refuse_names(root, found)
        self._check_pid_spellings(root)
        if not records.split_names:
            raise LayoutError(f"no images found in {root}. Expected layout:\n{self.expected_layout}")
        if empty:  # `datasets` cannot load a split without rows, so the build would not open
            raise LayoutError(
                f"{root}: {'split' if len(empty) == 1 else 'splits'} {', '.join(empty)} of {self.pretty_name} "
                f"{'holds' if len(empty) == 1 else 'hold'} no images; every split needs at "
                "least one (an empty split cannot be loaded with load_dataset): put the images in place, or list "
                "the images you have in a manifest and build that (`builder build manifest FILE`). "
                f"Expected layout:\n{self.expected_layout}"
            )
        return ScanResult(
            records.table(self.splits), sorted(found.ignored), self.splits, root, dict(self.extra_columns)
        )

    def _refuse_names(self, root: Path, found: SplitScan) -> None:
        if found.not_utf8:
            raise LayoutError(
                f"{len(found.not_utf8)} image name(s) in {root} are not valid UTF-8, e.g. {found.not_utf8[0]} "
                "(archives extracted with another encoding leave such names); an image's path is stored as text, "
                f"so rename them to UTF-8, e.g. `convmv -r -f cp437 -t utf8 --notest {root}` with the archive's "
                "encoding, or extract it again with `unzip -O <encoding>`"
            )
        if found.bad_names:
            shown = "\n  ".join(found.bad_names[:10])
            more = f"\n  ... and {len(found.bad_names) - 10} more" if len(found.bad_names) > 10 else ""
            raise LayoutError(
                f"{len(found.bad_names)} image(s) in {root} are not named as the {self.pretty_name} "
                f"layout expects:\n  {shown}{more}\nExpected layout (pids, cameras and frame numbers in ASCII "
                f"digits 0-9):\n{self.expected_layout}"
            )

    def check_layout(self, root: Path) -> None:
        missing = [d for d in self.required_dirs() if not (root / d).is_dir()]
        if missing:
            raise LayoutError(
                f"{root} is not in the {self.pretty_name} layout: missing folder(s) "
                f"{', '.join(missing)}. Expected layout:\n{self.expected_layout}"
            )

    def scan_split(self, root: Path, split: str) -> SplitScan:
        """Records of one split from its entries; hidden and non-image files and empty folders are
        reported as ignored."""
        out = SplitScan()
        for entry in self.split_files(root, split):
            rel = entry.name(root)
            if is_image_name(rel):
                out.add_image(rel, self.parse_record(split, rel) if is_utf8(rel) else None)
            else:
                out.add_unlisted(rel)
        return out

    def read_pid(self, text: str, source_path: str) -> int | None:
        """A pid written in a file or folder name: ASCII digits (else None, a layout error naming
        the file). Spellings are remembered, so "0001" and "1" for one pid are refused, not merged."""
        value = ascii_int(text)
        if value is not None:
            self._pid_spellings.setdefault(value, {}).setdefault(text, source_path)
        return value

    def _check_pid_spellings(self, root: Path) -> None:
        clashes = {pid: s for pid, s in self._pid_spellings.items() if len(s) > 1}
        if clashes:
            lines = [
                f"pid {pid}: " + ", ".join(f"{text!r} ({path})" for text, path in sorted(s.items()))
                for pid, s in sorted(clashes.items())[:10]
            ]
            raise LayoutError(
                f"{len(clashes)} pid(s) in {root} are written in more than one way, so it is ambiguous "
                "whether they are one identity:\n  "
                + "\n  ".join(lines)
                + "\nRename the folders/files so that each identity has one name."
            )

    def list_files(self, records: Iterable[SourceRecord]) -> dict[str, str]:
        """The files besides the images that this layout's loaders read (e.g. a split's list of
        images), made from `records`: path relative to the root -> text. An export writes them
        beside the images so that the source's own loader reads it; most layouts have none."""
        return {}

    # -- what a subclass provides ------------------------------------------------------
    def required_dirs(self) -> Iterable[str]:
        raise NotImplementedError

    def split_files(self, root: Path, split: str) -> Iterable[Entry]:
        """Every entry (image or not, and empty folders) that belongs to `split`: `files_under`."""
        raise NotImplementedError

    def parse_record(self, split: str, source_path: str) -> SourceRecord | None:
        """Labels of one image from its relative path; None when the name does not fit."""
        raise NotImplementedError


class Entry(NamedTuple):
    """What a walk of a split's folder finds: a file (or a link, FIFO, ... whatever is not a
    folder), or an empty folder, which holds no image but is still listed as ignored."""

    path: Path
    folder: bool = False

    def name(self, root: Path) -> str:
        """The path relative to `root`, POSIX; an empty folder's ends in `/`, so no folder named
        `x.jpg/` passes for an image."""
        return self.path.relative_to(root).as_posix() + ("/" if self.folder else "")


def files_under(folder: Path) -> list[Entry]:
    """Every entry below `folder` that is not a folder, and every empty folder, recursively,
    sorted. Symlinked folders are followed (a link that leads back into its own ancestry is a
    LayoutError naming it); broken links and links that loop on themselves are listed as files,
    so that they are reported (as undecodable images), not lost."""
    return sorted(_walk(folder, ()))


def _walk(folder: Path, ancestors: tuple[tuple[int, int], ...]) -> Iterator[Entry]:
    stat = folder.stat()
    key = (stat.st_dev, stat.st_ino)
    if key in ancestors:
        raise LayoutError(
            f"symlink loop: {folder} leads back to {folder.resolve()}, a folder that contains it. "
            "Remove the link, or replace it with the folder it should point to."
        )
    empty = True
    with os.scandir(folder) as entries:
        for entry in entries:
            empty = False
            path = folder / entry.name
            if _is_folder(entry):
                yield from _walk(path, ancestors + (key,))
            else:
                yield Entry(path)
    if empty and ancestors:
        yield Entry(folder, folder=True)


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:  # e.g. ELOOP: a link to itself is no folder; it is listed and skipped as undecodable
        return False
