"""What a source layout is: how one CC-ReID dataset lies on disk and how its labels are read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Iterable

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


class LayoutError(ValueError):
    """SOURCE_DIR does not look like the named dataset; the message says what was expected."""


@dataclass(frozen=True)
class SourceRecord:
    """One image of the source dataset and its labels, before any pixels are read."""

    split: str
    source_path: str  # POSIX path relative to the source root; the image's identity everywhere
    pid: int
    camid: int
    clothes_key: str  # outfit label within the dataset; mapped to a global integer `clothes_id`
    clothes_id: int = -1


@dataclass(frozen=True)
class Protocol:
    """A published evaluation setting: which query rows are used, against which gallery, how."""

    name: str
    mode: str  # a mode of occluded_ccreid.evaluation.evaluate
    query_camids: tuple[int, ...] | None = None  # None: every query row
    gallery_camids: tuple[int, ...] | None = None  # None: every gallery row
    description: str = ""


@dataclass
class ScanResult:
    records: list[SourceRecord]
    ignored_files: list[str] = field(default_factory=list)  # non-image files, not data


class SourceLayout:
    """Base class of a dataset layout. Subclasses set the class attributes and `scan_split`."""

    name: ClassVar[str]
    pretty_name: ClassVar[str]
    splits: ClassVar[tuple[str, ...]]
    expected_layout: ClassVar[str]  # shown to the user when SOURCE_DIR does not match
    citation: ClassVar[str]
    homepage: ClassVar[str]
    protocols: ClassVar[tuple[Protocol, ...]]

    def scan(self, root: str | Path) -> ScanResult:
        """All records of every split, sorted by path, with global clothes ids assigned."""
        root = Path(root)
        if not root.is_dir():
            raise LayoutError(f"source directory {root} does not exist or is not a directory")
        self.check_layout(root)
        records: list[SourceRecord] = []
        ignored: list[str] = []
        bad_names: list[str] = []
        for split in self.splits:
            for path in self.split_files(root, split):
                rel = path.relative_to(root).as_posix()
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    ignored.append(rel)
                    continue
                record = self.parse_record(split, rel)
                if record is None:
                    bad_names.append(rel)
                else:
                    records.append(record)
        if bad_names:
            shown = "\n  ".join(bad_names[:10])
            more = f"\n  ... and {len(bad_names) - 10} more" if len(bad_names) > 10 else ""
            raise LayoutError(
                f"{len(bad_names)} image(s) in {root} are not named as the {self.pretty_name} "
                f"layout expects:\n  {shown}{more}\nExpected layout:\n{self.expected_layout}"
            )
        if not records:
            raise LayoutError(f"no images found in {root}. Expected layout:\n{self.expected_layout}")
        records.sort(key=lambda r: (self.splits.index(r.split), r.source_path))
        return ScanResult(assign_clothes_ids(records), sorted(ignored))

    def check_layout(self, root: Path) -> None:
        missing = [d for d in self.required_dirs() if not (root / d).is_dir()]
        if missing:
            raise LayoutError(
                f"{root} is not in the {self.pretty_name} layout: missing folder(s) "
                f"{', '.join(missing)}. Expected layout:\n{self.expected_layout}"
            )

    # -- what a subclass provides ------------------------------------------------------
    def required_dirs(self) -> Iterable[str]:
        raise NotImplementedError

    def split_files(self, root: Path, split: str) -> Iterable[Path]:
        """Every file (image or not) that belongs to `split`."""
        raise NotImplementedError

    def parse_record(self, split: str, source_path: str) -> SourceRecord | None:
        """Labels of one image from its relative path; None when the name does not fit."""
        raise NotImplementedError


def files_under(folder: Path) -> list[Path]:
    """Regular files below `folder`, recursively, sorted; hidden files count as non-images."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def assign_clothes_ids(records: list[SourceRecord]) -> list[SourceRecord]:
    """Number outfits 0..K-1 in (pid, clothes_key) order over the whole dataset."""
    keys = sorted({(r.pid, r.clothes_key) for r in records})
    index = {key: i for i, key in enumerate(keys)}
    return [
        SourceRecord(r.split, r.source_path, r.pid, r.camid, r.clothes_key, index[(r.pid, r.clothes_key)])
        for r in records
    ]
