"""Where an export is written before it becomes OUT, so that a partial export is never taken for a
finished one and the same command resumes it.

Beside OUT (same filesystem, so the final rename is atomic):
  .<out>.export-partial/tree/          what becomes OUT
  .<out>.export-partial/journal.jsonl  first line: the export's fingerprint (build, splits,
                                       options, encoder); then one line per file written into
                                       tree/ (path, sha256, bytes), appended after its rename
OUT gets MARKER_NAME, written last into tree/ before the rename: the fingerprint and every file
with its sha256. An OUT holding a marker with the same fingerprint is a finished export (nothing to
do); any other existing OUT that is not an empty folder is refused, so nothing the export did not
write is ever replaced. On resume a journalled file is kept when its bytes still hash to the
journal's sha256 (a power loss can lose the tail of the journal or a file's data, never keep a
wrong file); everything else in tree/ is the export's own unfinished work and is redone.

(The builder's `builder/staging.py` does the same for builds; `occluded_ccreid` cannot import
`builder`, and an export journals files, not shards.)
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..folder_lock import FolderBusyError, lock_folder
from ..layout import sha256_file
from .images import ExportError, Written

MARKER_NAME = ".occluded-ccreid-export.json"
JOURNAL_NAME = "journal.jsonl"
FORMAT = 1


def staging_path(out: Path) -> Path:
    return out.parent / f".{out.name}.export-partial"


def read_marker(out: Path) -> dict | None:
    try:
        marker = json.loads((out / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("format") == FORMAT else None


def first_difference(old: dict, new: dict, prefix: str = "") -> str | None:
    """The first setting that differs between two fingerprints, as a phrase; None if equal."""
    for key in list(new) + [k for k in old if k not in new]:
        before, after = old.get(key, "(none)"), new.get(key, "(none)")
        name = f"{prefix}{key}"
        if isinstance(before, dict) and isinstance(after, dict):
            found = first_difference(before, after, f"{name}.")
            if found:
                return found
        elif before != after:
            shown = f" ({before!r} -> {after!r})" if len(repr(before)) + len(repr(after)) <= 80 else ""
            return f"{name} changed{shown}"
    return None


class Staging:
    """The `.<out>.export-partial` folder: which files are done, and how to add and finish."""

    def __init__(self, out: Path, fingerprint: dict, log: Callable[[str], None]):
        self.out, self.fingerprint, self.log = out, fingerprint, log
        self.path = staging_path(out)
        self.tree = self.path / "tree"
        self.done: dict[str, Written] = {}
        self._journal: Any = None
        self._lock_fd: int | None = None

    def open(self) -> int:
        """Create the folder, or take over the one an interrupted export left (same fingerprint:
        keep its verified files; other settings: start afresh, saying why). Returns the number of
        files kept."""
        if self.path.exists() and not (self.path / JOURNAL_NAME).is_file():
            raise ExportError(
                f"{self.path} exists but is not an export in progress of this tool; move it away or choose another OUT"
            )
        self.tree.mkdir(parents=True, exist_ok=True)
        self._lock()
        header, entries = self._read_journal()
        if header is not None and header.get("fingerprint") != self.fingerprint:
            why = first_difference(header.get("fingerprint") or {}, self.fingerprint)
            self.log(f"starting afresh, not resuming the interrupted export in {self.path.name}: {why}")
            entries = []
        for entry in entries:
            file = self.tree / entry.path
            if file.is_file() and file.stat().st_size == entry.num_bytes and sha256_file(file) == entry.sha256:
                self.done[entry.path] = entry
        self._clear_unjournalled()
        # Open for the whole export (closed by close()); rewritten: the header and the kept files.
        self._journal = open(self.path / JOURNAL_NAME, "w", encoding="utf-8")  # noqa: SIM115
        self._journal.write(json.dumps({"format": FORMAT, "fingerprint": self.fingerprint}) + "\n")
        for entry in self.done.values():
            self._append(entry)
        self._journal.flush()
        if self.done:
            self.log(f"resuming the interrupted export in {self.path.name}: {len(self.done)} file(s) kept")
        return len(self.done)

    def _read_journal(self) -> tuple[dict | None, list[Written]]:
        try:
            lines = (self.path / JOURNAL_NAME).read_text(encoding="utf-8").splitlines()
        except OSError:
            return None, []
        entries, header = [], None
        for number, line in enumerate(lines):
            try:
                value = json.loads(line)
            except ValueError:
                break  # a line cut by a kill: what follows is not trusted either
            if number == 0:
                header = value if isinstance(value, dict) and value.get("format") == FORMAT else None
                if header is None:
                    return None, []
            elif isinstance(value, dict) and {"path", "sha256", "num_bytes"} <= set(value):
                entries.append(Written(value["path"], value["sha256"], value["num_bytes"]))
        return header, entries

    def _clear_unjournalled(self) -> None:
        """Files in tree/ that the journal does not vouch for: unfinished work of this export."""
        for folder, _, files in os.walk(self.tree):
            for name in files:
                file = Path(folder) / name
                if file.relative_to(self.tree).as_posix() not in self.done:
                    file.unlink()

    def _lock(self) -> None:
        """One export per OUT at a time: a second would write the same files."""
        try:
            self._lock_fd = lock_folder(self.path)
        except FolderBusyError:
            raise ExportError(
                f"another export is writing {self.out} (it holds {self.path}); wait for it to finish or stop it"
            ) from None

    def _append(self, entry: Written) -> None:
        line = {"path": entry.path, "sha256": entry.sha256, "num_bytes": entry.num_bytes}
        self._journal.write(json.dumps(line) + "\n")

    def record(self, entry: Written) -> None:
        """A file is in place in tree/: journal it (flushed, so a kill keeps it)."""
        self.done[entry.path] = entry
        self._append(entry)
        self._journal.flush()

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def finish(self, summary: dict) -> None:
        """Write the marker, make tree/ OUT (an empty OUT folder is replaced), drop the rest."""
        self._journal.flush()
        os.fsync(self._journal.fileno())
        files = {path: entry.sha256 for path, entry in sorted(self.done.items())}
        marker = {"format": FORMAT, "complete": True, "fingerprint": self.fingerprint, **summary, "files": files}
        (self.tree / MARKER_NAME).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
        _fsync_tree(self.tree)
        if self.out.is_dir() and not any(self.out.iterdir()):
            self.out.rmdir()
        self.tree.rename(self.out)
        _fsync_dir(self.out.parent)
        self.close()
        shutil.rmtree(self.path)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Make every file's data durable before the rename that says the export is finished."""
    for folder, _, files in os.walk(root):
        for name in files:
            with open(Path(folder) / name, "rb") as file:
                os.fsync(file.fileno())
        _fsync_dir(Path(folder))
