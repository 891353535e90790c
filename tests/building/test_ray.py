"""`builder build --distributor ray`: on a local Ray cluster of 2 CPUs (one for the whole module),
the folder equals a local build with 1 and 2 tasks at once, a worker killed mid-task is retried and
the build still completes identical, and a driver killed with SIGKILL resumes identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from synthetic import make_prcc_tree
from test_resume import build_args, folder_bytes, journal

from builder.cli import main

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]
TASK_TITLE = "ray::occluded-shards"  # a Ray worker's process title while it runs a shard task


@pytest.fixture(scope="module")
def cluster():
    """A local cluster of 2 CPUs; builds in this process use it, others join it by address."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_prcc_tree(tmp_path_factory.mktemp("src"), n_train=5, n_test=5, per_camera=4)  # ~200 images, 27 shards


@pytest.fixture(scope="module")
def local(tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "occluded-prcc"
    assert main(build_args(tree, out)) == 0
    return out


@pytest.mark.parametrize("tasks", [1, 2])
def test_a_ray_build_equals_a_local_build(cluster, tree, local, tmp_path, tasks):
    out = tmp_path / "occluded-prcc"
    assert main(build_args(tree, out, "--distributor", "ray", "--processes", str(tasks))) == 0
    assert folder_bytes(out) == folder_bytes(local)  # shards, report, card, preview


def task_processes() -> set[int]:
    """Ray workers running a shard task now (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(TASK_TITLE.encode()):
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_ray_worker_killed_mid_task_is_retried_and_the_build_is_identical(cluster, tree, local, tmp_path):
    out = tmp_path / "occluded-prcc"
    killed: list[int] = []
    stop = threading.Event()

    def kill_the_first_task() -> None:
        while not stop.is_set() and not killed:
            for pid in task_processes():
                os.kill(pid, signal.SIGKILL)  # as the out-of-memory killer would
                killed.append(pid)
                break
            time.sleep(0.005)

    killer = threading.Thread(target=kill_the_first_task)
    killer.start()
    try:
        assert main(build_args(tree, out, "--distributor", "ray", "--processes", "2")) == 0
    finally:
        stop.set()
        killer.join()
    assert killed, "no shard task was seen running"
    assert folder_bytes(out) == folder_bytes(local)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_ray_driver_killed_with_sigkill_resumes_identical(cluster, tree, local, tmp_path, capsys):
    out = tmp_path / "out" / "occluded-prcc"
    args = build_args(tree, out, "--distributor", "ray", "--processes", "2", "--ray-address", cluster)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", "import sys; from builder.cli import main; sys.exit(main(sys.argv[1:]))", *args]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if journal(out)["shards"]:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    assert proc.poll() is None, f"the build ended before it was killed: {proc.communicate()}"
    proc.kill()
    proc.communicate(timeout=60)
    assert journal(out)["shards"] and not out.exists()
    assert main(args) == 0  # the same command (it joins the same cluster)
    assert "resuming the interrupted build" in capsys.readouterr().err
    assert folder_bytes(out) == folder_bytes(local)


def test_an_input_error_in_a_ray_task_is_one_line_and_leaves_nothing(cluster, prcc_tree, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    maps = tmp_path / "maps"  # a part map of the wrong size is found only inside the task that reads it
    for source in prcc_tree.parsing_dir.rglob("*.png"):
        target = maps / source.relative_to(prcc_tree.parsing_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    broken = sorted(maps.rglob("*.png"))[-1]
    Image.fromarray(np.zeros((7, 5), np.uint8)).save(broken)
    args = build_args(prcc_tree, tmp_path / "out", "--distributor", "ray")
    args[args.index("--parsing-dir") + 1] = str(maps)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and broken.stem in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())
