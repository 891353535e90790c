"""The `builder` command line: only `build` loads torch and transformers.

`push` and `preview` have no use for them, and importing torch costs ~1.5 s per command. The check
runs in a fresh interpreter, since the test process has long imported torch for other tests.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.cli import main
from occluded_ccreid.occlusion import FILLS, OCCLUDERS

REPO_ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import contextlib, io, json, sys

import builder.cli

HEAVY = ("torch", "transformers")
seen = {"import builder.cli": [None, [m for m in HEAVY if m in sys.modules], ""]}
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            status = builder.cli.main(argv)
        except SystemExit as stop:
            status = stop.code
    seen[" ".join(argv)] = [status, [m for m in HEAVY if m in sys.modules], err.getvalue()]
print(json.dumps(seen))
"""


def test_push_and_preview_do_not_import_torch(prcc_build, tmp_path):
    commands = [
        ["push", "--help"],
        ["preview", "--help"],
        # The whole push path short of the network: the folder is verified, then offline mode refuses.
        ["push", str(prcc_build), "--repo-id", "alice/prcc"],
        ["preview", str(prcc_build), "--out", str(tmp_path / "sheet.png"), "--n", "4"],
    ]
    pythonpath = os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": pythonpath}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(commands)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert {step: loaded for step, (_, loaded, _) in seen.items()} == {step: [] for step in seen}
    assert [seen[" ".join(argv)][0] for argv in commands] == [0, 0, 2, 0]
    assert "HF_HUB_OFFLINE is set" in seen[" ".join(commands[2])][2]  # refused after verifying the folder
    assert (tmp_path / "sheet.png").is_file()


def test_build_options_still_come_from_the_occlusion_package(capsys):
    # The build options are added only when `build` is chosen; they are all there.
    with pytest.raises(SystemExit) as stop:
        main(["build", "--help"])
    assert stop.value.code == 0
    usage = " ".join(capsys.readouterr().out.split())
    assert "{" + ",".join(OCCLUDERS) + "}" in usage and "{" + ",".join(FILLS) + "}" in usage
    for option in (
        "--parsing-dir",
        "--min-coverage",
        "--rectangle-fraction",
        "--keep-clean",
        "--precision",
        "--occluders",
        "--objects-dir",
        "--occlusion-preset",
    ):
        assert option in usage
