"""Every name a benchmark script or example imports from this project still exists.

Benchmarks run by hand, so nothing else notices when a refactor renames what they import (a
rename of `builder.writer.SplitWriter` left `benchmarks/streaming.py` failing at import). Reading
the imports statically keeps this test fast: no script is run."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted([*REPO.glob("benchmarks/*.py"), *REPO.glob("examples/*.py"), *REPO.glob("docs/*.py")])
OURS = ("builder", "occluded_ccreid", "synthetic", "cal_reference", "snapshots", "hub_server")


def _project_imports(path: Path) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module.split(".")[0] in OURS:
                found.extend((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names if alias.name.split(".")[0] in OURS)
    return found


def test_scripts_are_found():
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_imported_names_exist(script: Path):
    for module_name, name in _project_imports(script):
        module = importlib.import_module(module_name)
        if name is not None and name != "*" and not hasattr(module, name):
            # `from package import submodule` names a module, not an attribute set yet
            importlib.import_module(f"{module_name}.{name}")
