"""One writer per output folder: the build and the export each hold an exclusive lock on their
staging folder while they write, so a second run of the same command fails at once instead of
writing into the same files."""

from __future__ import annotations

import errno
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on POSIX: no lock, two runs on one folder at once are not detected
    fcntl = None  # type: ignore[assignment]


class FolderBusyError(Exception):
    """Another process holds the folder's lock."""


def lock_folder(path: Path) -> int | None:
    """Take an exclusive, non-blocking lock on the folder `path` and return the descriptor that holds
    it (close it to release; None where flock does not exist). Raises FolderBusyError when another
    process holds it."""
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise FolderBusyError(str(path)) from None
        raise
    return fd
