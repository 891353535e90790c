"""Where a build is written before it becomes OUT, so that any kill leaves resumable work and never
a missing OUT.

Beside OUT (same filesystem, so renames are atomic):
  .<out>.partial/   the build in progress: build/ (what becomes OUT; finished shards under
                    build/data/) and journal.json, which holds the fingerprint of the inputs and
                    options and, per finished shard, its file's sha256 and the report statistics
                    it contributed. A shard is written under a temporary name, fsynced, renamed,
                    and only then entered in the journal (itself replaced atomically), so the
                    journal never names a shard that a power loss could lose. Re-running the same
                    command keeps those shards; build/ is renamed to OUT once complete.
  .<out>.old/       the previous build during an --overwrite swap (OUT -> .old, .partial -> OUT,
                    .old -> .trash); if a kill lands between the first two renames, the next run
                    renames it back to OUT.
  .<out>.trash/     the previous build being deleted once the swap is done.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from builder.errors import BuildError
from occluded_ccreid.folder_lock import FolderBusyError, lock_folder
from occluded_ccreid.layout import REPORT_NAME, sha256_file

JOURNAL_NAME = "journal.json"
JOURNAL_FORMAT = 1


def say(message: str) -> None:
    """One line on stderr about the state of the build folder (resumed, restored, removed...)."""
    print(message, file=sys.stderr, flush=True)


def staging_path(out_dir: Path) -> Path:
    return out_dir.parent / f".{out_dir.name}.partial"


def aside_path(out_dir: Path) -> Path:
    return out_dir.parent / f".{out_dir.name}.old"


def trash_path(out_dir: Path) -> Path:
    return out_dir.parent / f".{out_dir.name}.trash"


def fsync_dir(folder: Path) -> None:
    """Make renames and new entries in `folder` durable (power loss)."""
    if os.name != "posix":  # directories cannot be opened there; NTFS journals its metadata
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` by `data` so that a reader sees the old or the new content, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def recover(out_dir: Path, log: Callable[[str], None] = say) -> None:
    """Undo or finish what an interrupted run left beside OUT (see the module docstring)."""
    if not out_dir.parent.is_dir():
        return
    aside, trash, staging = aside_path(out_dir), trash_path(out_dir), staging_path(out_dir)
    if trash.is_dir():
        _remove(trash, out_dir, log, "the build replaced by an earlier --overwrite")
    if aside.is_dir() and not _set_aside_by_this_tool(aside):
        log(f"note: {aside} is named like a build set aside by --overwrite but holds other files; left alone")
    elif aside.is_dir():
        if not out_dir.exists():
            aside.rename(out_dir)
            log(
                f"restored {out_dir} from {aside.name}: an earlier --overwrite was interrupted before the new "
                "build was in place"
            )
        else:
            _remove(aside, out_dir, log, "the build replaced by an earlier --overwrite")
    if (staging / JOURNAL_NAME).is_file() and not (staging / "build").exists():
        _remove(staging, out_dir, log, "the journal of a build that was already moved into place")


def _set_aside_by_this_tool(folder: Path) -> bool:
    """--overwrite only ever sets aside a previous build (it has a build report) or an empty folder."""
    return (folder / REPORT_NAME).is_file() or not any(folder.iterdir())


def _remove(folder: Path, out_dir: Path, log: Callable[[str], None], why: str) -> None:
    """Delete a folder this tool made. It is renamed to the trash name first, so a kill during
    the deletion never leaves a half-deleted folder under a name that could be restored."""
    trash = trash_path(out_dir)
    if folder != trash:
        if trash.exists():
            shutil.rmtree(trash)
        folder.rename(trash)
    shutil.rmtree(trash)
    log(f"removed {folder.name} ({why})")


def fingerprint_change(old: dict, new: dict) -> str | None:
    """The first setting that differs between two fingerprints, as a phrase; None if equal."""
    flat_old, flat_new = _flatten(old), _flatten(new)
    for key in list(flat_new) + [k for k in flat_old if k not in flat_new]:
        before, after = flat_old.get(key, "(none)"), flat_new.get(key, "(none)")
        if before != after:
            if len(repr(before)) + len(repr(after)) > 80:
                return f"{key} changed"
            return f"{key} changed ({before!r} -> {after!r})"
    return None


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict) and value:
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


class Staging:
    """The `.<out>.partial` folder of a build: what is done, and how to add to it."""

    def __init__(self, out_dir: Path, fingerprint: dict, log: Callable[[str], None] = say):
        self.out_dir, self.fingerprint, self.log = out_dir, fingerprint, log
        self.path = staging_path(out_dir)
        self.build = self.path / "build"  # becomes OUT
        self.data = self.build / "data"
        self.done: dict[str, dict] = {}  # shard file name -> journal entry
        self._lock_fd: int | None = None

    # -- opening -------------------------------------------------------------------------
    def open(self) -> None:
        """Create the folder, or take over the one an interrupted run left: keep its shards when
        the fingerprint matches, start afresh (saying why) when it does not."""
        fresh = not self.path.exists()
        if not fresh and not (self.path.is_dir() and ((self.path / JOURNAL_NAME).is_file() or self.build.is_dir())):
            raise BuildError(
                f"{self.path} exists but is not a build folder in progress of this tool; "
                "move it away or choose another --out"
            )
        self.data.mkdir(parents=True, exist_ok=True)
        self._lock()
        if fresh:
            self._write_journal()
            return
        journal = self._read_journal()
        why = (
            "its journal is missing or unreadable"
            if journal is None
            else fingerprint_change(journal.get("fingerprint", {}), self.fingerprint)
        )
        if why is not None:
            if journal is not None or any(self.data.iterdir()):  # else: killed before its first shard began
                self.log(f"starting afresh, not resuming the interrupted build in {self.path.name}: {why}")
            self._clear()
            self._write_journal()
            return
        assert journal is not None  # why is None only for a journal that was read
        self._keep_verified(journal.get("shards", {}))

    def _lock(self) -> None:
        """One build per OUT at a time: a second run would write into the same shards."""
        try:
            self._lock_fd = lock_folder(self.path)
        except FolderBusyError:
            raise BuildError(
                f"another build is writing {self.out_dir} (it holds {self.path}); wait for it to finish or stop it"
            ) from None

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _read_journal(self) -> dict | None:
        try:
            journal = json.loads((self.path / JOURNAL_NAME).read_text())
        except (OSError, ValueError):
            return None
        return journal if isinstance(journal, dict) and journal.get("format") == JOURNAL_FORMAT else None

    def _keep_verified(self, entries: dict) -> None:
        """Keep the journal's shards whose files are intact; drop anything else in build/."""
        for name, entry in entries.items():
            file = self.data / name
            if (
                file.is_file()
                and file.stat().st_size == entry.get("num_bytes")
                and sha256_file(file) == entry.get("sha256")
            ):
                self.done[name] = entry
        for file in self.data.iterdir():
            if file.name not in self.done:
                _unlink(file)
        for file in self.build.iterdir():  # report, card, preview of a run killed while finishing
            if file.name != "data":
                _unlink(file)
        if len(self.done) != len(entries):
            self._write_journal()
        rows = sum(e["num_rows"] for e in self.done.values())
        self.log(
            f"resuming the interrupted build in {self.path.name}: {len(self.done)} finished shard(s) kept ({rows} rows)"
        )

    def _clear(self) -> None:
        for file in self.path.iterdir():
            if file != self.build:
                _unlink(file)
        for file in self.build.iterdir():
            if file != self.data:
                _unlink(file)
        for file in self.data.iterdir():
            _unlink(file)
        self.done.clear()

    def _write_journal(self) -> None:
        journal = {"format": JOURNAL_FORMAT, "fingerprint": self.fingerprint, "shards": self.done}
        write_atomic(self.path / JOURNAL_NAME, (json.dumps(journal, indent=1) + "\n").encode())

    # -- building ------------------------------------------------------------------------
    def shard_tmp(self, name: str) -> Path:
        return self.data / f"{name}.tmp"  # not *.parquet: never read as a shard

    def commit(self, name: str, entry: dict) -> None:
        """The shard written to shard_tmp(name) is complete: make it durable, then journal it."""
        tmp, final = self.shard_tmp(name), self.data / name
        with open(tmp, "rb") as file:
            os.fsync(file.fileno())
        os.replace(tmp, final)
        fsync_dir(self.data)
        self.done[name] = {**entry, "num_bytes": final.stat().st_size, "sha256": sha256_file(final)}
        self._write_journal()

    def discard(self) -> None:
        """Bad input: nothing of this build may stay behind (the inputs must change anyway)."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def move_into_place(self) -> None:
        """Make build/ OUT, then drop the rest. An existing OUT (--overwrite) is set aside first
        and deleted last, each step an atomic rename that `recover` can finish after a kill."""
        out, aside, trash = self.out_dir, aside_path(self.out_dir), trash_path(self.out_dir)
        fsync_dir(self.build)
        if out.exists():
            out.rename(aside)
            fsync_dir(out.parent)
            self.build.rename(out)
            fsync_dir(out.parent)
            aside.rename(trash)
            shutil.rmtree(trash)
        else:
            self.build.rename(out)
            fsync_dir(out.parent)
        self.close()
        shutil.rmtree(self.path)


def _unlink(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def check_free_space(folder: Path, expected: int, bound: int, log: Callable[[str], None] = say) -> None:
    """Before any image is read: refuse when `folder`'s disk cannot hold the `expected` bytes of
    the build still to write (builder.shards.REALISTIC_BYTES_PER_PIXEL), warn when it may not hold
    the upper `bound`. A build that runs out of space anyway stops with one line and resumes."""
    free = shutil.disk_usage(folder).free
    if expected > free:
        raise BuildError(
            f"not enough free disk space for this build in {folder}: it needs about {_gb(expected)} "
            f"(estimated from the images' pixel counts; at most {_gb(bound)}), {_gb(free)} are free; "
            "free some space or choose --out on another disk"
        )
    if bound > free:
        log(
            f"warning: {_gb(free)} free in {folder}; this build needs about {_gb(expected)} and at most "
            f"{_gb(bound)}. If the disk fills up, free some space and run the same command again to resume"
        )


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


FINGERPRINT_KEYS = ("dataset", "source_dir", "seed", "parser", "occlusion", "shard_plan", "versions")


def fingerprint(
    report: dict, root: Path, source_paths: Iterable[str], parser_files: dict[str, str] | None = None
) -> dict:
    """What a build's files depend on: the report's settings (source, seed, parser, occlusion
    options, shard plan, library versions), the source files' names, sizes and times, and the
    digests of the parser's own input files (`parser_inputs`)."""
    found = {key: report[key] for key in FINGERPRINT_KEYS}
    found["source_files"] = digest_files(root, itertools.chain(source_paths, report["ignored_files"]))
    found.update(parser_files or {})
    return found


def parser_inputs(parser: object, description: dict, source_paths: Iterable[str]) -> dict[str, str]:
    """Digests (as digest_files) of the files the part maps come from besides the images, which
    the parser's description names but does not capture: changed in place, they would otherwise
    let a resumed build mix shards of two parsings.
    - precomputed maps (a parser with `map_path`): the map file of each source image;
    - a model given as a local file or folder (`description["model"]`): every file under it.
    A Hub id is not digested (that needs the network); a resolved revision in the description,
    where the parser records one, stands for its files."""
    found = {}
    map_path = getattr(parser, "map_path", None)
    if callable(map_path):
        found["part_map_files"] = digest_files(Path(), (str(map_path(p)) for p in source_paths))
    model = description.get("model")
    if isinstance(model, str) and model and Path(model).exists():
        folder = Path(model)
        if folder.is_dir():
            files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        else:
            folder, files = folder.parent, [folder.name]
        found["model_files"] = digest_files(folder, files)
    return found


def digest_files(root: Path, relative_paths: Iterable[str]) -> str:
    """sha256 over each file's path, size and modification time: a changed source image (or a
    different tree at the same path) gives another fingerprint without reading any pixels."""
    digest = hashlib.sha256()
    for rel in relative_paths:
        try:
            stat = (root / rel).stat()
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{rel}\0missing\n".encode())
    return digest.hexdigest()


def staged_bytes(out_dir: Path) -> int:
    """Bytes already in the staging folder of OUT (shards a resumed build keeps)."""
    data = staging_path(out_dir) / "build" / "data"
    return sum(f.stat().st_size for f in data.iterdir() if f.is_file()) if data.is_dir() else 0
