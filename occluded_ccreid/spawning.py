"""Worker processes started by "spawn": the builder's `--processes` and the benchmark's decoding
processes. Spawned (not forked) workers are safe after CUDA and threads have started, but each one
re-imports the main program from its file."""

from __future__ import annotations

import os
import signal
import sys


def spawn_problem() -> str | None:
    """Why spawned worker processes cannot start from this program, if they cannot: code read from
    standard input has no file to re-import."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file and not os.path.exists(main_file):
        return (
            f"worker processes re-import the main program, and {main_file} is not a file; run it from a "
            "script file, `python -c`, an installed command or a notebook"
        )
    return None


def ignore_interrupts() -> None:
    """In a worker: leave Ctrl-C, which reaches the whole process group, to the parent, which stops
    its workers itself (no traceback from every worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


__all__ = ["ignore_interrupts", "spawn_problem"]
