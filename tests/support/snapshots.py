"""What a test compares before and after a command, to show the user's files were not touched."""

import hashlib
import os
import stat
from pathlib import Path


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under `folder`: a file's sha256, a link's target, a FIFO or folder as such.
    Nothing is opened that is not a regular file (reading a FIFO would wait for a writer)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        rel, mode = path.relative_to(folder).as_posix(), path.lstat().st_mode
        if stat.S_ISLNK(mode):
            found[rel] = "link -> " + os.readlink(path)
        elif stat.S_ISREG(mode):
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[rel] = "folder" if stat.S_ISDIR(mode) else f"special {stat.S_IFMT(mode):o}"
    return found
