"""builder/malloc.py: the options take effect in a fresh process, and the user's own choice wins."""

import os
import platform
import subprocess
import sys

import pytest

PROBE = "from builder.malloc import keep_freed_memory_mapped; print(keep_freed_memory_mapped())"


def probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "LD_PRELOAD"}
    return subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt options are glibc's")
def test_applied_on_glibc_unless_the_user_set_their_own():
    assert probe() == "True"
    assert probe(MALLOC_ARENA_MAX="4") == "False"
    assert probe(LD_PRELOAD="libjemalloc.so.2") == "False"
