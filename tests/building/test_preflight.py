"""A build never destroys data and fails fast: `--out`, `--device` and the options are checked before
any image is read or the model loads (builder/preflight.py); images above builder.images.MAX_PIXELS
are skipped from their header; SIGTERM ends a build like Ctrl-C; a full disk is one line."""

import errno
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

import builder.images
import builder.processing
from builder.cli import main
from builder.images import ImageTooLargeError, load_rgb

REPO_ROOT = Path(__file__).resolve().parents[2]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its sha256: equal before and after means nothing was touched."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def tree(prcc_tree, tmp_path):
    """A private copy of the synthetic PRCC source and its part maps, which a wrong check could delete."""
    root, parsing = tmp_path / "data" / "PRCC", tmp_path / "data" / "PRCC-parsing"
    shutil.copytree(prcc_tree.root, root)
    shutil.copytree(prcc_tree.parsing_dir, parsing)
    return root, parsing


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the build reads an image or loads a model."""
    from transformers import AutoModelForSemanticSegmentation

    def boom(*args, **kwargs):
        raise AssertionError("the build did work before its checks failed")

    monkeypatch.setattr(builder.processing, "_decode", boom)
    monkeypatch.setattr(AutoModelForSemanticSegmentation, "from_pretrained", boom)


def run_build(root: Path, parsing: Path | None, out: Path | str, *extra: str) -> int:
    source = ["--parsing-dir", str(parsing)] if parsing is not None else []
    return main(["build", "prcc", str(root), "--out", str(out), *source, "--no-progress", "--shard-size", "8", *extra])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: ") and err.count("\n") == 1, err
    return err


# -- --out: what --overwrite may replace ------------------------------------------------------


@pytest.mark.parametrize(
    "where, expected",
    [
        ("user", "holds 3 file(s) or folder(s) that this tool did not write (a.txt, empty/, b/c.txt)"),
        ("source", "is the source folder itself"),
        ("inside source", "lies inside the source folder"),
        ("parent of source", "contains the source folder"),
        ("inside parsing", "lies inside the --parsing-dir"),
        ("parsing", "is the --parsing-dir itself"),
    ],
)
def test_overwrite_refuses_what_is_not_a_build_and_touches_nothing(tree, tmp_path, capsys, no_work, where, expected):
    root, parsing = tree
    user = tmp_path / "user"
    (user / "b").mkdir(parents=True)
    (user / "empty").mkdir()
    (user / "a.txt").write_text("mine")
    (user / "b" / "c.txt").write_text("mine too")
    out = {
        "user": user,
        "source": root,
        "inside source": root / "rgb" / "train",
        "parent of source": root.parent,
        "inside parsing": parsing / "rgb",
        "parsing": parsing,
    }[where]
    before = snapshot(tmp_path)
    assert run_build(root, parsing, out, "--overwrite") == 2
    assert expected in one_error_line(capsys)
    assert snapshot(tmp_path) == before


def test_out_inside_the_source_is_refused_even_when_new(tree, capsys, no_work):
    root, parsing = tree
    assert run_build(root, parsing, root / "occluded") == 2
    assert "lies inside the source folder" in one_error_line(capsys)
    assert not (root / "occluded").exists()


def test_source_reached_through_a_symlink_is_still_the_source(tree, tmp_path, capsys, no_work):
    root, parsing = tree
    (tmp_path / "alias").symlink_to(root.parent)
    assert run_build(root, parsing, tmp_path / "alias" / "PRCC" / "rgb", "--overwrite") == 2
    assert "lies inside the source folder" in one_error_line(capsys)


def test_local_model_folder_is_protected(tree, tiny_model, capsys, no_work):
    root, _ = tree
    assert run_build(root, None, tiny_model.parent, "--model", str(tiny_model), "--overwrite") == 2
    assert "contains the --model folder" in one_error_line(capsys)


def test_a_previous_build_with_foreign_files_is_refused(prcc_build, tree, tmp_path, capsys, no_work):
    root, parsing = tree
    out = tmp_path / "out"
    shutil.copytree(prcc_build, out)
    (out / "notes.md").write_text("my notes")
    (out / "data" / "extra.csv").write_text("1,2")
    before = snapshot(out)
    assert run_build(root, parsing, out, "--overwrite") == 2
    assert (
        "is a previous build but also holds 2 file(s) or folder(s) that this tool did not write "
        "(notes.md, data/extra.csv)" in one_error_line(capsys)
    )
    assert snapshot(out) == before


def test_a_folder_with_a_fake_report_is_not_a_build(tree, tmp_path, capsys, no_work):
    root, parsing = tree
    out = tmp_path / "out"
    out.mkdir()
    (out / "build_report.json").write_text(json.dumps({"dataset": "prcc"}))
    assert run_build(root, parsing, out, "--overwrite") == 2
    assert "holds 1 file(s) or folder(s) that this tool did not write (build_report.json)" in one_error_line(capsys)


def test_overwrite_replaces_a_previous_build(prcc_build, tree, tmp_path, capsys):
    root, parsing = tree
    out = tmp_path / "out"
    shutil.copytree(prcc_build, out)
    (out / "data" / next(iter(snapshot(out / "data")))).write_bytes(b"stale shard")
    assert run_build(root, parsing, out) == 2
    assert "already exists; pass --overwrite" in one_error_line(capsys)
    assert run_build(root, parsing, out, "--overwrite") == 0
    assert snapshot(out / "data") == snapshot(prcc_build / "data")
    report, expected = (json.loads((folder / "build_report.json").read_text()) for folder in (out, prcc_build))
    parser = {**expected["parser"], "parsing_dir": str(parsing)}
    assert report == {**expected, "source_dir": root.name, "parser": parser}


@pytest.mark.parametrize(
    "out, expected",
    [
        (".", "is the current directory"),
        ("..", "is above the current directory"),
    ],
)
def test_cwd_and_its_ancestors_are_refused(tree, tmp_path, monkeypatch, capsys, no_work, out, expected):
    root, parsing = tree
    here = tmp_path / "a" / "work"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    assert run_build(root, parsing, out, "--overwrite") == 2
    assert expected in one_error_line(capsys)


def test_mount_point_symlink_and_file_are_refused(tree, tmp_path, monkeypatch, capsys, no_work):
    root, parsing = tree
    mount = tmp_path / "mnt"
    mount.mkdir()
    real_ismount = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) == mount or real_ismount(p))
    assert run_build(root, parsing, mount, "--overwrite") == 2
    assert "is a mount point" in (err := one_error_line(capsys)) and str(mount / "occluded-build") in err
    (tmp_path / "link").symlink_to(mount)
    assert run_build(root, parsing, tmp_path / "link", "--overwrite") == 2
    assert "is a symbolic link" in one_error_line(capsys)
    (tmp_path / "file").write_text("x")
    assert run_build(root, parsing, tmp_path / "file", "--overwrite") == 2
    assert "is a file, not a folder" in one_error_line(capsys)
    assert run_build(root, parsing, tmp_path / "file" / "out") == 2
    assert "file, not a folder" in one_error_line(capsys)
    assert (tmp_path / "file").read_text() == "x"


# -- --device and the options --------------------------------------------------------------------


@pytest.mark.parametrize("device", ["tpu", "mps", "meta", "garbage", "cuda:99"])
@pytest.mark.parametrize("parser", ["model", "precomputed"])
def test_bad_device_names_the_valid_choices(tree, tiny_model, tmp_path, capsys, no_work, device, parser):
    import torch

    root, parsing = tree
    source = ["--model", str(tiny_model)] if parser == "model" else []
    assert (
        run_build(root, parsing if parser == "precomputed" else None, tmp_path / "out", "--device", device, *source)
        == 2
    )
    err = one_error_line(capsys)
    if device.startswith("cuda") and not torch.cuda.is_available():
        assert "torch sees no CUDA device" in err
    else:
        assert f"--device {device!r} is not one the builder can use; choose from auto, cpu" in err
    assert not (tmp_path / "out").exists()


def test_device_choices_follow_the_cuda_devices_torch_sees(monkeypatch):
    import torch

    from builder.devices import resolve_device
    from builder.errors import BuildError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda") and resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(
        BuildError, match=r"this machine has 2 CUDA device\(s\); choose from auto, cpu, cuda, cuda:0, cuda:1$"
    ):
        resolve_device("cuda:2")
    with pytest.raises(
        BuildError,
        match=r"--device 'tpu' is not one the builder can use; choose from auto, cpu, cuda, "
        r"cuda:0, cuda:1$",
    ):
        resolve_device("tpu")


@pytest.mark.parametrize(
    "option, expected",
    [
        (["--batch-size", "0"], "--batch-size must be >= 1 (got 0)"),
        (["--shard-size=-5"], "--shard-size must be >= 1 (got -5)"),
        (["--workers=-1"], "--workers must be >= 0 (got -1)"),
        (["--min-coverage", "0.9", "--max-coverage", "0.5"], "coverage band"),
        (["--occlude-splits", "nope"], "--occlude-splits nope not in PRCC's splits"),
        (["--parse-size", "0x32"], "--parse-size must be two positive sides HxW, got 0x32"),
        (["--parse-size=-32x64"], "--parse-size must be two positive sides HxW, got -32x64"),
        (["--parse-size", "33x17"], "--parse-size 33x17: each side must be a multiple of 32"),
    ],
)
def test_bad_options_fail_before_any_work(tree, tiny_model, tmp_path, capsys, no_work, option, expected):
    root, _ = tree
    assert run_build(root, None, tmp_path / "out", "--model", str(tiny_model), "--device", "cpu", *option) == 2
    assert expected in one_error_line(capsys)


def test_a_stretched_parse_size_runs_and_is_recorded_as_given(tiny_model):
    import numpy as np

    from builder.parsing.segmenter import SegformerParser

    parser = SegformerParser(str(tiny_model), "cpu", (33, 17), keep_aspect=False)
    assert tuple(parser.prepare(np.zeros((96, 48, 3), np.uint8)).shape) == (3, 33, 17)
    assert parser.describe()["parse_size"] == [33, 17]
    parser = SegformerParser(str(tiny_model), "cpu", (64, 32))
    assert tuple(parser.prepare(np.zeros((96, 48, 3), np.uint8)).shape[1:]) == (64, 32)


# -- memory: images above MAX_PIXELS -------------------------------------------------------------


def png_header(path: Path, width: int, height: int) -> None:
    """A PNG that declares width x height RGB but holds no pixel data: only its header can be read."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def test_a_13000_pixel_square_png_is_refused_from_its_header(tmp_path):
    png_header(tmp_path / "huge.png", 13000, 13000)  # 169 Mpx: below PIL's own bomb limit, far above ours
    with pytest.raises(ImageTooLargeError, match=r"13000x13000 \(WxH\) is 169.0 Mpx, above the builder's limit"):
        load_rgb(tmp_path / "huge.png")


def test_images_above_the_limit_are_skipped_without_being_decoded(tree, tmp_path, monkeypatch, capsys):
    root, parsing = tree
    limit = 64 * 64  # the synthetic crops are 40x80 .. 64x128 (WxH)
    monkeypatch.setattr(builder.images, "MAX_PIXELS", limit)
    decoded = []  # (file, pixels) of every image decoded from a file
    real_load = Image.Image.load

    def spy(self):
        # builder.images opens files itself (to refuse FIFOs), so PIL sees a file object: its name
        name = getattr(self, "filename", "") or getattr(getattr(self, "fp", None), "name", "")
        if isinstance(name, str) and name:
            decoded.append((Path(name), self.width * self.height))
        return real_load(self)

    monkeypatch.setattr(Image.Image, "load", spy)
    out = tmp_path / "out"
    assert run_build(root, parsing, out) == 0
    sizes = {}
    for path in root.rglob("*.jpg"):
        try:
            with Image.open(path) as img:
                sizes[path.relative_to(root).as_posix()] = img.width * img.height
        except OSError:
            pass  # the corrupt one
    large = {path for path, pixels in sizes.items() if pixels > limit}
    report = json.loads((out / "build_report.json").read_text())
    too_large = {s["source_path"]: s["reason"] for s in report["skipped"] if s["reason"].startswith("image too large")}
    assert set(too_large) == large and 5 < len(large) < len(sizes)
    assert all("above the builder's limit of 0.0 Mpx (builder.images.MAX_PIXELS)" in r for r in too_large.values())
    assert report["num_rows"] == len(sizes) - len(large)
    assert decoded and max(pixels for _, pixels in decoded) <= limit  # a large image's pixels were never read
    assert not {root / path for path in large} & {file for file, _ in decoded}


# -- signals and full disk -----------------------------------------------------------------------

SLOW_BUILD = r"""
import sys, time
import builder.processing as processing
decode = processing._decode
processing._decode = lambda record, root: (time.sleep(0.1), decode(record, root))[1]  # time to be stopped
from builder.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("progress", [False, True])
def test_sigterm_ends_a_build_like_ctrl_c(tree, tmp_path, progress):
    signum, status = signal.SIGTERM, 143  # 128 + 15, as a shell reports it; Ctrl-C (SIGINT) gives 130
    root, parsing = tree
    out = tmp_path / "builds" / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SLOW_BUILD,
            "build",
            "prcc",
            str(root),
            "--out",
            str(out),
            "--parsing-dir",
            str(parsing),
            "--workers",
            "1",
            "--batch-size",
            "2",
            *([] if progress else ["--no-progress"]),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any((tmp_path / "builds").glob(".out.partial")):  # the build has started writing
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    child.send_signal(signum)
    _, err = child.communicate(timeout=60)
    assert child.returncode == status
    message = (
        f"interrupted by {signal.Signals(signum).name}; the output folder was not changed. Run the same "
        "command again to resume: finished shards are kept."
    )
    lines = err.strip().splitlines()  # tqdm redraws its bar after "\r": each drawing is a line here
    if progress:  # the bar (if drawn before the signal came) is closed before the message: nothing follows it
        assert lines[-1] == message and message not in lines[:-1], err
        assert all("Occluded-PRCC" in line for line in lines[:-1]), err
    else:
        assert lines == [message]
    assert not out.exists()


@pytest.mark.parametrize("where", ["report", "shard"])
def test_a_full_disk_is_one_line(tree, tmp_path, monkeypatch, capsys, where):
    root, parsing = tree
    out = tmp_path / "out"
    if where == "report":  # a Python write names its file

        def full(self, folder):
            raise OSError(errno.ENOSPC, "No space left on device", str(folder / "build_report.json"))

        monkeypatch.setattr("builder.report.BuildReport.write", full)
    else:  # pyarrow's errors carry the errno but no file name

        def full(self, row):
            raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")

        monkeypatch.setattr("builder.writer.ShardWriter.add", full)
    assert run_build(root, parsing, out) == 2
    err = one_error_line(capsys)
    assert err.startswith("error: no space left on the disk while writing ")
    assert ("build_report.json" in err) if where == "report" else (f"the build of {out}" in err)
    assert f"free on the disk of {tmp_path}" in err and "run the same command again to resume" in err
    assert not out.exists()


def test_out_inside_a_manifests_folder_is_refused(tmp_path, capsys, no_work):
    """A manifest's images are read relative to its folder: that folder is the source to protect."""
    from synthetic import make_manifest_tree, write_manifest

    tree, rows = make_manifest_tree(tmp_path)
    manifest = write_manifest(rows, tree.root / "list.csv")
    before = snapshot(tree.root)
    for out in (tree.root / "occluded", manifest):
        assert (
            main(
                [
                    "build",
                    "manifest",
                    str(manifest),
                    "--out",
                    str(out),
                    "--parsing-dir",
                    str(tree.parsing_dir),
                    "--no-progress",
                ]
            )
            == 2
        )
        assert "source" in one_error_line(capsys)
    assert snapshot(tree.root) == before
