"""Interrupted builds resume; kills never lose OUT; the shard plan is fixed before any image is read."""

from __future__ import annotations

import errno
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from synthetic import make_prcc_tree

from builder import processing
from builder import staging as staging_module
from builder.cli import main
from builder.shards import MAX_SHARD_BYTES, READERS, REALISTIC_BYTES_PER_PIXEL, plan_shards, row_bytes_bound
from builder.staging import JOURNAL_NAME, aside_path, staging_path
from occluded_ccreid.occlusion import DEFAULT_MIN_COVERAGE
from occluded_ccreid.sources import SourceRecord

REPO = Path(__file__).resolve().parents[2]
SHARD_SIZE = 8


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of a folder, by relative path: equal dicts mean byte-identical folders."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def build_args(tree, out: Path, *extra: str) -> list[str]:
    return [
        "build",
        "prcc",
        str(tree.root),
        "--out",
        str(out),
        "--parsing-dir",
        str(tree.parsing_dir),
        "--shard-size",
        str(SHARD_SIZE),
        "--no-progress",
        *extra,
    ]


@pytest.fixture(scope="module")
def reference(prcc_tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "occluded-prcc"
    assert main(build_args(prcc_tree, out)) == 0
    return out


def journal(out: Path) -> dict:
    return json.loads((staging_path(out) / JOURNAL_NAME).read_text())


class Interrupt(BaseException):
    """Stands for a kill at a chosen moment (as KeyboardInterrupt, not caught as an Exception)."""


def interrupt_after_commits(monkeypatch, n: int) -> None:
    commit = staging_module.Staging.commit
    calls = []

    def counted(self, name, entry):
        commit(self, name, entry)
        calls.append(name)
        if len(calls) % n == 0:  # every n-th shard: each run is stopped after n more
            raise Interrupt()

    monkeypatch.setattr(staging_module.Staging, "commit", counted)


# -- killing a real `builder build` process -----------------------------------------------------

COUNTING_RUNNER = textwrap.dedent("""
    # `builder build`, logging each record the pipeline yields (line-buffered: kept after kill -9)
    import sys
    import builder.processing as processing
    log = open(sys.argv[1], "a", buffering=1)
    process = processing.process
    def counted(records, *args, **kwargs):
        for item in process(records, *args, **kwargs):
            log.write(item[0].source_path + "\\n")
            yield item
    processing.process = counted
    from builder.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def records_done(out: Path) -> int:
    """Records of the shards a killed build had finished, by its journal."""
    if not (staging_path(out) / JOURNAL_NAME).is_file():
        return 0
    plan = journal(out)["fingerprint"]["shard_plan"]["shards"]
    return sum(
        b - a
        for name, (a, b) in ((n, s["records"]) for n, s in plan.items())
        if name.removeprefix("data/") in journal(out)["shards"]
    )


def test_killed_builds_resume_byte_identical_redoing_at_most_one_shard(tmp_path, monkeypatch, capsys):
    # A bigger tree than the shared fixture (~200 images, 27 shards), so there is room for kills.
    tree = make_prcc_tree(tmp_path / "src", n_train=5, n_test=5, per_camera=4)
    total = sum(1 for _ in tree.root.rglob("*.jpg"))
    ref = tmp_path / "ref"
    assert main(build_args(tree, ref)) == 0
    runner = tmp_path / "runner.py"
    runner.write_text(COUNTING_RUNNER)
    out = tmp_path / "out" / "occluded-prcc"
    rng = random.Random(13)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done_before, lost = 0, []
    for run, sig in enumerate([signal.SIGKILL, signal.SIGTERM, signal.SIGKILL]):
        # Each kill lands at a random moment of the build: after a random number of the
        # remaining records went through the pipeline, plus a random few milliseconds.
        target = rng.randint(1, total - done_before - SHARD_SIZE)
        log = tmp_path / f"run{run}.log"
        log.touch()
        proc = subprocess.Popen(
            [sys.executable, str(runner), str(log), *build_args(tree, out)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while len(log.read_text().splitlines()) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode != 0, "the build ended before it was killed"
        assert ("resuming the interrupted build" in stderr) == (done_before > 0), stderr
        done_after = records_done(out)
        processed = len(log.read_text().splitlines())
        lost.append(processed - (done_after - done_before))  # went through the pipeline, not kept
        done_before = done_after
    assert all(0 <= n <= SHARD_SIZE for n in lost), lost
    # The same command once more, in this process, counting what it processes.
    process, processed = processing.process, []

    def counted(records, *args, **kwargs):
        processed.extend(r.source_path for r in records)
        return process(records, *args, **kwargs)

    monkeypatch.setattr(processing, "process", counted)
    assert main(build_args(tree, out)) == 0
    captured = capsys.readouterr()
    assert "resuming the interrupted build" in captured.err, (captured, lost, done_before)
    assert len(processed) == total - done_before  # exactly the records of the unfinished shards
    assert folder_bytes(out) == folder_bytes(ref)
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no staging folder or journal left


def test_ctrl_c_keeps_finished_shards_and_a_rerun_completes_them(prcc_tree, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "occluded-prcc"
    interrupt_after_commits(monkeypatch, 3)
    with pytest.raises(Interrupt):
        main(build_args(prcc_tree, out))
    assert not out.exists() and len(journal(out)["shards"]) == 3
    monkeypatch.undo()
    assert main(build_args(prcc_tree, out)) == 0
    err = capsys.readouterr().err
    assert "resuming the interrupted build in .occluded-prcc.partial: 3 finished shard(s) kept" in err
    assert folder_bytes(out) == folder_bytes(reference)


def test_a_damaged_finished_shard_is_redone_alone(prcc_tree, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "occluded-prcc"
    interrupt_after_commits(monkeypatch, 3)
    with pytest.raises(Interrupt):
        main(build_args(prcc_tree, out))
    monkeypatch.undo()
    done = records_done(out)
    damaged = staging_path(out) / "build" / "data" / sorted(journal(out)["shards"])[1]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # as a disk or a power loss might
    damaged.write_bytes(bytes(data))
    process, processed = processing.process, []

    def counted(records, *args, **kwargs):
        processed.append(len(records))
        return process(records, *args, **kwargs)

    monkeypatch.setattr(processing, "process", counted)
    assert main(build_args(prcc_tree, out)) == 0
    assert "2 finished shard(s) kept" in capsys.readouterr().err
    assert processed == [SHARD_SIZE, len(prcc_tree.expected) + len(prcc_tree.corrupt) - done]  # two runs
    assert folder_bytes(out) == folder_bytes(reference)


def test_changed_options_start_afresh_and_say_which(prcc_tree, tmp_path, monkeypatch, capsys):
    out = tmp_path / "occluded-prcc"
    interrupt_after_commits(monkeypatch, 2)
    with pytest.raises(Interrupt):
        main(build_args(prcc_tree, out))
    with pytest.raises(Interrupt):
        main(build_args(prcc_tree, out, "--seed", "1"))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "starting afresh" in err and "seed changed (0 -> 1)" in err
    with pytest.raises(Interrupt):
        main(build_args(prcc_tree, out, "--seed", "1", "--min-coverage", "0.4"))
    assert f"occlusion.min_coverage changed ({DEFAULT_MIN_COVERAGE} -> 0.4)" in capsys.readouterr().err
    # An input file that changed (same name, other content) is a change too.
    image = prcc_tree.root / "rgb/train/001/A_cropped_rgb001.jpg"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    try:
        with pytest.raises(Interrupt):
            main(build_args(prcc_tree, out, "--seed", "1", "--min-coverage", "0.4"))
        assert "source_files changed" in capsys.readouterr().err
    finally:
        os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize("changed", ["part map", "model weights"])
def test_changed_part_maps_or_model_weights_start_afresh(prcc_tree, tiny_model, tmp_path, monkeypatch, capsys, changed):
    """The parser's own inputs, changed in place between two runs, are not resumed across."""
    import shutil

    out = tmp_path / "occluded-prcc"
    if changed == "part map":
        parsing = shutil.copytree(prcc_tree.parsing_dir, tmp_path / "parsing")
        args = [
            "build",
            "prcc",
            str(prcc_tree.root),
            "--out",
            str(out),
            "--parsing-dir",
            str(parsing),
            "--shard-size",
            str(SHARD_SIZE),
            "--no-progress",
        ]
        file, key = parsing / "rgb/test/B/102/cropped_rgb003.png", "part_map_files"  # in a shard not yet written
    else:
        model = shutil.copytree(tiny_model, tmp_path / "model")
        args = [
            "build",
            "prcc",
            str(prcc_tree.root),
            "--out",
            str(out),
            "--model",
            str(model),
            "--device",
            "cpu",
            "--parse-size",
            "64x32",
            "--shard-size",
            str(SHARD_SIZE),
            "--no-progress",
        ]
        file, key = next(model.glob("*.safetensors")), "model_files"
    assert file.is_file()
    interrupt_after_commits(monkeypatch, 1)
    with pytest.raises(Interrupt):
        main(args)
    with pytest.raises(Interrupt):  # unchanged: resumed
        main(args)
    assert "resuming the interrupted build" in capsys.readouterr().err
    stat = file.stat()
    file.write_bytes(file.read_bytes())  # same name and size, a new modification time: as an edit in place
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(Interrupt):
        main(args)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "starting afresh" in err and f"{key} changed" in err, err


def test_full_disk_mid_build_stays_resumable(prcc_tree, reference, tmp_path, monkeypatch, capsys):
    from builder import writer

    out = tmp_path / "occluded-prcc"
    add, rows = writer.ShardWriter.add, []

    def add_until_full(self, row):
        rows.append(1)
        if len(rows) == 3 * SHARD_SIZE + 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        add(self, row)

    monkeypatch.setattr(writer.ShardWriter, "add", add_until_full)
    assert main(build_args(prcc_tree, out)) == 2  # one line, not a traceback (tests/building/test_preflight.py)
    assert "error: no space left on the disk while writing" in capsys.readouterr().err
    data = staging_path(out) / "build" / "data"
    assert not list(data.glob("*.tmp"))  # the unfinished shard is dropped at once, freeing its space
    kept = len(journal(out)["shards"])
    assert kept >= 3 and sorted(p.name for p in data.iterdir()) == sorted(journal(out)["shards"])
    monkeypatch.undo()
    assert main(build_args(prcc_tree, out)) == 0
    assert f"{kept} finished shard(s) kept" in capsys.readouterr().err
    assert folder_bytes(out) == folder_bytes(reference)


def test_shard_size_below_one_is_refused(prcc_tree, tmp_path, capsys):
    assert main(build_args(prcc_tree, tmp_path / "out", "--shard-size", "0")) == 2
    assert "--shard-size must be >= 1" in capsys.readouterr().err and not list(tmp_path.iterdir())


def source_pixels(tree) -> int:
    """Pixels of the tree's decodable images, from the files themselves."""
    from PIL import Image

    total = 0
    for rel in tree.expected:
        with Image.open(tree.root / rel) as image:
            total += image.width * image.height
    return total


@pytest.mark.parametrize("free", ["below the estimate", "between the estimate and the bound", "above the bound"])
def test_disk_check_refuses_below_a_realistic_estimate_and_warns_below_the_bound(
    prcc_tree, reference, tmp_path, monkeypatch, capsys, free
):
    import shutil

    pixels = source_pixels(prcc_tree)
    expected = int(pixels * REALISTIC_BYTES_PER_PIXEL)
    bound = json.loads((reference / "build_report.json").read_text())["shard_plan"]["estimated_bytes"]
    real = sum(f.stat().st_size for f in (reference / "data").iterdir())
    assert expected < real < bound  # the estimate is not an upper bound; the bound is one
    available = {
        "below the estimate": expected - 1,
        "between the estimate and the bound": (expected + bound) // 2,
        "above the bound": bound,
    }[free]
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(staging_module.shutil, "disk_usage", lambda path: usage._replace(free=available))
    out = tmp_path / "builds" / "occluded-prcc"
    status = main(build_args(prcc_tree, out))
    err = capsys.readouterr().err
    if free == "below the estimate":
        assert status == 2 and err.count("\n") == 1 and err.startswith("error: not enough free disk space"), err
        assert f"it needs about {expected / 1e6:.1f} MB" in err and f"at most {bound / 1e6:.1f} MB" in err
        assert f"{available / 1e6:.1f} MB are free" in err
        assert list(out.parent.iterdir()) == []  # refused before any work
    elif free == "between the estimate and the bound":
        assert status == 0 and err.count("\n") == 1 and err.startswith("warning: "), err
        assert "run the same command again to resume" in err and f"at most {bound / 1e6:.1f} MB" in err
        assert folder_bytes(out) == folder_bytes(reference)
    else:
        assert status == 0 and err == ""


def test_kill_during_the_overwrite_swap_never_loses_out(prcc_tree, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "occluded-prcc"
    assert main(build_args(prcc_tree, out, "--seed", "7")) == 0
    previous = folder_bytes(out)
    rename, renames = Path.rename, []

    def killed_after_first_rename(self, target):
        if renames:
            raise Interrupt()  # as a kill between `OUT -> .old` and `new build -> OUT`
        renames.append(target)
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", killed_after_first_rename)
    with pytest.raises(Interrupt):
        main(build_args(prcc_tree, out, "--overwrite"))
    monkeypatch.undo()
    assert renames == [aside_path(out)] and not out.exists()
    # The next run of any kind puts the old build back first; this one fails on its options.
    assert main(build_args(prcc_tree, out, "--batch-size", "0")) == 2
    assert "restored" in capsys.readouterr().err and folder_bytes(out) == previous
    assert main(build_args(prcc_tree, out, "--overwrite")) == 0  # resumes: every shard was done
    assert "finished shard(s) kept" in capsys.readouterr().err
    assert folder_bytes(out) == folder_bytes(reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_a_second_build_of_the_same_out_is_refused_while_one_runs(prcc_tree, tmp_path, monkeypatch, capsys):
    out = tmp_path / "occluded-prcc"
    commit = staging_module.Staging.commit

    def build_again_midway(self, name, entry):
        commit(self, name, entry)
        monkeypatch.setattr(staging_module.Staging, "commit", commit)
        assert main(build_args(prcc_tree, out)) == 2
        raise Interrupt()

    monkeypatch.setattr(staging_module.Staging, "commit", build_again_midway)
    with pytest.raises(Interrupt):
        main(build_args(prcc_tree, out))
    assert "another build is writing" in capsys.readouterr().err
    assert len(journal(out)["shards"]) == 1  # the refused run touched nothing


# -- the shard plan -----------------------------------------------------------------------------


def records(split: str, n: int) -> list[SourceRecord]:
    return [SourceRecord(split, f"{split}/{i:06d}.jpg", i % 50, 0, "a") for i in range(n)]


@pytest.mark.parametrize("n, row_bytes", [(3200, 1000), (17896, 300_000), (40_000, 1_000_000), (5000, 90_000_000)])
def test_big_splits_get_a_multiple_of_32_shards_of_equal_rows_under_the_byte_bound(n, row_bytes):
    rng = random.Random(n)
    sizes = [rng.randint(row_bytes // 2, row_bytes) for _ in range(n)]
    plan = plan_shards(records("train", n), ["train"], sizes)
    shards = plan.shards
    assert len(shards) % READERS == 0 and len(shards) >= READERS
    assert [s.start for s in shards[1:]] == [s.stop for s in shards[:-1]]  # contiguous, covering every record
    assert (shards[0].start, shards[-1].stop) == (0, n)
    assert max(s.num_records for s in shards) - min(s.num_records for s in shards) <= 1
    assert all(s.estimated_bytes == sum(sizes[s.start : s.stop]) <= MAX_SHARD_BYTES for s in shards)
    fewer = len(shards) - READERS  # and it is the fewest such shards
    if fewer:
        bounds = [i * n // fewer for i in range(fewer + 1)]
        assert max(sum(sizes[a:b]) for a, b in itertools.pairwise(bounds)) > MAX_SHARD_BYTES
    assert plan_shards(records("train", n), ["train"], sizes) == plan  # a pure function of its inputs


def test_small_splits_get_the_fewest_shards_under_the_byte_bound():
    recs = records("train", 3000) + records("query", 500) + records("gallery", 0)
    sizes = [400_000] * 3000 + [2_100_000] * 500
    plan = plan_shards(recs, ["train", "query", "gallery"], sizes)
    counts = {split: sum(s.split == split for s in plan.shards) for split in ("train", "query", "gallery")}
    assert counts == {"train": 3, "query": 3, "gallery": 1}  # 1.2 GB, 1.05 GB, one empty shard
    assert all(s.estimated_bytes <= MAX_SHARD_BYTES for s in plan.shards)
    assert [s.name for s in plan.shards if s.split == "query"] == [f"query-0000{i}-of-00003.parquet" for i in range(3)]
    by_rows = plan_shards(recs, ["train", "query", "gallery"], sizes, shard_size=1000)
    assert [s.num_records for s in by_rows.shards] == [1000, 1000, 1000, 500, 0]


def test_a_shard_of_skipped_images_only_loads_as_no_rows(prcc_tree, tmp_path):
    from datasets import load_dataset

    out = tmp_path / "one-per-shard"
    assert main(build_args(prcc_tree, out, "--shard-size", "1")) == 0
    (corrupt,) = prcc_tree.corrupt
    report = json.loads((out / "build_report.json").read_text())
    empty = [name for name, shard in report["shards"].items() if shard["num_rows"] == 0]
    assert len(empty) == 1 and pq.ParquetFile(out / empty[0]).metadata.num_row_groups == 0
    train = sorted(p for p, (split, *_) in prcc_tree.expected.items() if split == "train")
    assert sorted(load_dataset(str(out), split="train")["source_path"]) == train
    streamed = load_dataset(str(out), split="train", streaming=True)
    assert sorted(r["source_path"] for r in streamed) == train and corrupt not in train


def test_row_bound_holds_for_real_rows_and_shards(prcc_tree, reference):
    """The estimate is an upper bound on what the writer really produces."""
    report = json.loads((reference / "build_report.json").read_text())
    plan = report["shard_plan"]
    assert plan["rule"] == "rows" and set(plan["shards"]) == set(report["shards"])
    for name, entry in plan["shards"].items():
        assert (reference / name).stat().st_size <= entry["estimated_bytes"]
    # Worst case for PNG: noise, which does not compress; the bound still holds row by row.
    import io

    import numpy as np
    from PIL import Image

    from builder.rows import encode_png

    for height, width in ((128, 64), (3000, 1), (1, 3000), (1, 1)):
        noise = np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        sizes = [len(encode_png(array)["bytes"]) for array in (noise, noise[..., 0], noise[..., 1], noise)]
        assert Image.open(io.BytesIO(encode_png(noise)["bytes"])).size == (width, height)
        assert sum(sizes[:3]) + 200 <= row_bytes_bound(height, width, keep_clean=False)  # 200: labels, path
        assert sum(sizes) + 200 <= row_bytes_bound(height, width, keep_clean=True)


def test_shards_are_the_planned_record_ranges_less_skipped_images(prcc_tree, reference):
    from occluded_ccreid.sources import get_source

    report = json.loads((reference / "build_report.json").read_text())
    scanned = get_source("prcc").scan(prcc_tree.root).records
    paths, splits = [r.source_path for r in scanned], [r.split for r in scanned]
    skipped = {s["source_path"] for s in report["skipped"]}
    assert skipped == set(prcc_tree.corrupt)
    for name, entry in report["shard_plan"]["shards"].items():
        start, stop = entry["records"]
        expected = [p for p in paths[start:stop] if p not in skipped]
        assert pq.read_table(reference / name, columns=["source_path"])["source_path"].to_pylist() == expected
        assert {splits[i] for i in range(start, stop)} == {name.split("/")[1].split("-")[0]}
        assert stop - start == SHARD_SIZE or stop == len(paths) or splits[stop] != splits[stop - 1]  # cut every 8


def test_a_foreign_folder_named_like_the_aside_is_left_alone(tmp_path, capsys):
    """Only a previous build or an empty folder is ever set aside by --overwrite: anything else
    under that name is the user's, and recovery neither deletes nor restores it."""
    from builder.staging import recover

    out = tmp_path / "occluded-prcc"
    aside = aside_path(out)
    (aside / "notes").mkdir(parents=True)
    (aside / "notes" / "mine.txt").write_text("mine")
    for out_exists in (False, True):
        if out_exists:
            out.mkdir()
        recover(out)
        assert (aside / "notes" / "mine.txt").read_text() == "mine"
        assert "left alone" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == []
    (aside / "notes" / "mine.txt").unlink()
    (aside / "notes").rmdir()
    recover(out)  # an empty aside folder is what --overwrite of an empty --out leaves: removed
    assert not aside.exists()
