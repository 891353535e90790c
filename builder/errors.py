"""Errors a user can act on. The CLI prints their message (no traceback) and exits with status 2."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})  # no space left; disk quota exceeded


class BuildError(Exception):
    """The build cannot go on; the message says what is wrong, where, and how to fix it."""


class BuildStopped(BuildError):
    """The build stopped for a reason outside its inputs (a worker process died): unlike other
    BuildErrors, its finished shards are kept, and the same command resumes it."""


def disk_full_message(exc: OSError, out_dir: str | os.PathLike) -> str:
    """One line for a write that failed for lack of space: which file, on which disk, what is free."""
    target = Path(exc.filename) if exc.filename else Path(out_dir)
    where = target if exc.filename else f"the build of {out_dir}"
    folder = Path(os.path.abspath(target))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = f"{_size(shutil.disk_usage(folder).free)} free"
    except OSError:
        free = "free space unknown"
    reason = "disk quota exceeded" if exc.errno == errno.EDQUOT else "no space left on the disk"
    return (
        f"{reason} while writing {where} ({free} on the disk of {folder}); free some space and run the "
        "same command again to resume (finished shards are kept), or choose an --out on a disk with more room"
    )


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
