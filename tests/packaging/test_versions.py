"""The version floors in pyproject.toml cover the APIs the code uses, and the installed versions meet them.

`API_SINCE` lists, per package, each API the code relies on with the first release that has it
(checked against that release's wheel); the declared floor must be at least each of them, the
installed version at least the floor, and each API must be present in the installed version.
"""

from __future__ import annotations

import inspect
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def _has_reshard() -> bool:
    from datasets import IterableDataset

    return callable(getattr(IterableDataset, "reshard", None))


def _has_cdc() -> bool:
    import pyarrow.parquet as pq

    params = inspect.signature(pq.ParquetWriter.__init__).parameters
    return "use_content_defined_chunking" in params and "write_page_index" in params


def _has_gated_settings() -> bool:
    from huggingface_hub import HfApi

    return "gated" in inspect.signature(HfApi.update_repo_settings).parameters


def _has_branch_cli() -> bool:
    import importlib
    import importlib.util

    for module in ("huggingface_hub.cli.repos", "huggingface_hub.cli.repo"):  # `hf repos` now, `hf repo` in 1.0
        if importlib.util.find_spec(module) is not None:
            return "branch" in inspect.getsource(importlib.import_module(module))
    return False


# package -> [(what, first version that has it, check on the installed version)]
API_SINCE = {
    "datasets": [("IterableDataset.reshard (occluded_ccreid.torch_data)", "4.6", _has_reshard)],
    "pyarrow": [("ParquetWriter(use_content_defined_chunking=, write_page_index=) (builder.writer)", "21.0", _has_cdc)],
    "huggingface_hub": [
        ("HfApi.update_repo_settings(gated=) (builder push --gated)", "0.25", _has_gated_settings),
        ("the `hf` CLI with repo branch commands (named in push's error messages)", "1.0", _has_branch_cli),
    ],
}


def _floors() -> dict[str, Version]:
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    floors = {}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        lower = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=")]
        if lower:
            floors[requirement.name.replace("-", "_").lower()] = max(lower)
    return floors


@pytest.mark.parametrize("package", sorted(API_SINCE))
def test_floor_covers_the_apis_used_and_installed_version_meets_it(package):
    floor = _floors()[package]
    for what, since, present in API_SINCE[package]:
        assert floor >= Version(since), f"{package}>={floor} in pyproject.toml, but {what} needs {since}"
        assert present(), f"{what} is missing from the installed {package}"
    installed = Version(metadata.version(package))
    assert installed >= floor, f"installed {package} {installed} is below the floor {floor} of pyproject.toml"


def test_every_runtime_dependency_has_a_floor_met_by_the_installed_version():
    for package, floor in _floors().items():
        assert Version(metadata.version(package)) >= floor, package
