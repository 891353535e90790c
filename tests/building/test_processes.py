"""`builder build --processes N`: shards made in worker processes give the same files, errors reach
the user, and a killed or stopped build leaves no worker behind and resumes byte-identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import make_prcc_tree
from test_resume import build_args, folder_bytes, journal

from builder.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def one_process(prcc_tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one-process") / "occluded-prcc"
    assert main(build_args(prcc_tree, out)) == 0
    return out


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_worker_processes_give_the_same_files(prcc_tree, one_process, tmp_path, processes):
    out = tmp_path / "occluded-prcc"
    assert main(build_args(prcc_tree, out, "--distributor", "processes", "--processes", str(processes))) == 0
    assert folder_bytes(out) == folder_bytes(one_process)  # shards, report, card, preview


def test_processes_below_one_are_refused(prcc_tree, tmp_path, capsys):
    assert main(build_args(prcc_tree, tmp_path / "out", "--processes", "0")) == 2
    assert "--processes must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_error_in_a_worker_reaches_the_user_and_leaves_nothing(prcc_tree, tmp_path, capsys):
    # A part map of the wrong size is found only when its shard is made, inside a worker.
    maps = tmp_path / "maps"
    for source in prcc_tree.parsing_dir.rglob("*.png"):
        target = maps / source.relative_to(prcc_tree.parsing_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    broken = sorted(maps.rglob("*.png"))[-1]
    Image.fromarray(np.zeros((7, 5), np.uint8)).save(broken)
    args = build_args(prcc_tree, tmp_path / "out", "--processes", "2")
    args[args.index("--parsing-dir") + 1] = str(maps)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and broken.stem in err, err
    assert not (tmp_path / "out").exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def children(pid: int) -> set[int]:
    """The live processes whose parent is `pid` (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_or_stopped_builds_leave_no_worker_and_resume_byte_identical(tmp_path, capsys):
    tree = make_prcc_tree(tmp_path / "src", n_train=5, n_test=5, per_camera=4)  # ~200 images, 27 shards
    ref = tmp_path / "ref"
    assert main(build_args(tree, ref)) == 0
    out = tmp_path / "out" / "occluded-prcc"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        "-c",
        "import sys; from builder.cli import main; sys.exit(main(sys.argv[1:]))",
        *build_args(tree, out, "--processes", "2"),
    ]
    for sig in (signal.SIGKILL, signal.SIGTERM):
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline, workers = time.monotonic() + 120, set()
        # Stop it once its workers run and a shard of this run is journalled (or soon after start).
        before = len(journal(out)["shards"]) if (out.parent / f".{out.name}.partial").exists() else 0
        while proc.poll() is None and time.monotonic() < deadline:
            workers |= {
                p for p in children(proc.pid) if "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text()
            }
            try:
                if len(workers) >= 2 and len(journal(out)["shards"]) > before:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.01)
        assert proc.poll() is None, "the build ended before it was stopped"
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + signal.SIGTERM)
        deadline = time.monotonic() + 30
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert workers and not any(alive(p) for p in workers), f"workers left running after {sig.name}"
    assert main(build_args(tree, out, "--processes", "2")) == 0
    assert "resuming the interrupted build" in capsys.readouterr().err
    assert folder_bytes(out) == folder_bytes(ref)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_that_dies_stops_the_build_with_a_message_and_it_resumes(tmp_path):
    tree = make_prcc_tree(tmp_path / "src", n_train=5, n_test=5, per_camera=4)
    ref = tmp_path / "ref"
    assert main(build_args(tree, ref)) == 0
    out = tmp_path / "out" / "occluded-prcc"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        "-c",
        "import sys; from builder.cli import main; sys.exit(main(sys.argv[1:]))",
        *build_args(tree, out, "--processes", "2"),
    ]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, victim = time.monotonic() + 120, None
    while proc.poll() is None and time.monotonic() < deadline and victim is None:
        workers = [p for p in children(proc.pid) if "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text()]
        try:
            started = len(journal(out)["shards"]) > 0
        except (OSError, ValueError, KeyError):
            started = False
        if workers and started:
            victim = workers[0]
        time.sleep(0.01)
    assert victim is not None and proc.poll() is None, "the build ended before a worker could be killed"
    os.kill(victim, signal.SIGKILL)  # as the out-of-memory killer would
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2, stderr
    assert stderr.startswith("error: a worker process stopped unexpectedly") and "-9" in stderr, stderr
    assert "Traceback" not in stderr and "resume" in stderr
    assert journal(out)["shards"], "the finished shards were not kept"
    resumed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and "resuming the interrupted build" in resumed.stderr, resumed.stderr
    assert folder_bytes(out) == folder_bytes(ref)


def test_processes_from_a_program_read_on_stdin_are_refused_up_front(prcc_tree, tmp_path):
    out = tmp_path / "out"
    args = build_args(prcc_tree, out, "--processes", "2")
    script = f"import sys\nfrom builder.cli import main\nsys.exit(main({args!r}))\n"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    got = subprocess.run(
        [sys.executable, "-"], input=script, cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert got.returncode == 2, got.stderr
    assert "--processes 2: worker processes re-import the main program" in got.stderr and "Traceback" not in got.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--distributor", "local", "--processes", "2"], "--distributor local makes every shard in this process"),
        (["--distributor", "local", "--devices", "cpu,cpu"], "--distributor local makes every shard in this process"),
        (["--ray-address", "auto"], "--ray-address is for --distributor ray"),
        (["--distributor", "ray", "--devices", "all"], "--devices is for --distributor processes"),
        (["--devices", "tpu:0"], "--device 'tpu:0' is not one the builder can use"),
        (["--devices", " , "], "names no device"),
    ],
)
def test_distribution_options_that_cannot_work_are_refused_up_front(prcc_tree, tmp_path, capsys, extra, message):
    assert main(build_args(prcc_tree, tmp_path / "out", *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out").exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_devices_give_one_worker_each_and_the_same_files(prcc_tree, one_process, tmp_path):
    out = tmp_path / "occluded-prcc"  # two workers named by device (on a GPU machine: cuda:0,cuda:1)
    assert main(build_args(prcc_tree, out, "--devices", "cpu,cpu")) == 0
    assert folder_bytes(out) == folder_bytes(one_process)
