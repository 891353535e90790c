"""Inputs a careless or hostile user gives `builder build` (issue 23): each ends in one
clear first line and exit status 2, or in a documented skip counted in the build report, never in
a traceback or a hang; and the user's files are the same, byte for byte, afterwards."""

import argparse
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import load_dataset
from PIL import Image
from snapshots import snapshot
from synthetic import draw_person, make_prcc_tree, write_manifest

import occluded_ccreid as oc
from builder.cli import main
from occluded_ccreid.parts import PART_PALETTE

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def prcc(tmp_path):
    """A small private PRCC tree and its part maps."""
    return make_prcc_tree(tmp_path / "data", n_train=2, n_test=2, per_camera=1, quirks=False)


def build(tree, out: Path, *extra: str) -> int:
    return main(
        [
            "build",
            "prcc",
            str(tree.root),
            "--out",
            str(out),
            "--parsing-dir",
            str(tree.parsing_dir),
            "--no-progress",
            *extra,
        ]
    )


def first_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: "), err
    return err.splitlines()[0]


def report_of(out: Path) -> dict:
    return json.loads((out / "build_report.json").read_text())


# -- splits ------------------------------------------------------------------------------------------


def test_an_empty_split_folder_is_refused_before_any_work(prcc, tmp_path, capsys):
    for path in sorted((prcc.root / "rgb" / "val").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    before = snapshot(tmp_path / "data")
    out = tmp_path / "out"
    assert build(prcc, out) == 2
    assert first_error_line(capsys) == (
        f"error: {prcc.root}: split validation of PRCC holds no images; every split "
        "needs at least one (an empty split cannot be loaded with load_dataset): put "
        "the images in place, or list the images you have in a manifest and build "
        "that (`builder build manifest FILE`). Expected layout:"
    )
    assert not out.exists() and snapshot(tmp_path / "data") == before


def test_a_split_whose_every_image_is_skipped_is_refused(prcc, tmp_path, capsys):
    for path in (prcc.root / "rgb" / "val").rglob("*.jpg"):
        path.write_bytes(b"not an image")
    before = snapshot(tmp_path / "data")
    out = tmp_path / "out"
    assert build(prcc, out) == 2
    line = first_error_line(capsys)
    assert line.startswith("error: every image of split validation was skipped (6 image(s), e.g. rgb/val/")
    assert line.endswith("a split without rows cannot be loaded with load_dataset: fix or replace those images")
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # nothing left behind
    assert snapshot(tmp_path / "data") == before


def test_every_split_of_a_build_loads(prcc, tmp_path, capsys):
    # what the two refusals above protect: a build folder loads with load_dataset and oc.load
    out = tmp_path / "out"
    assert build(prcc, out) == 0
    cache = str(tmp_path / "cache")
    assert {s: len(d) for s, d in load_dataset(str(out), cache_dir=cache).items()} == {
        s: v["num_rows"] for s, v in report_of(out)["splits"].items()
    }
    assert set(oc.load(out, cache_dir=cache)) == {"train", "validation", "query", "gallery"}


# -- odd entries in the source tree -------------------------------------------------------------------


def test_names_that_are_not_utf8_are_refused_with_escapes(prcc, tmp_path, capsys):
    folder = os.fsencode(prcc.root / "rgb" / "train" / "001")
    with open(os.path.join(folder, b"A_cropped_rgb\xe9.jpg"), "wb") as file:
        file.write((prcc.root / "rgb" / "train" / "001" / "A_cropped_rgb001.jpg").read_bytes())
    before = snapshot(tmp_path / "data")
    assert build(prcc, tmp_path / "out") == 2
    assert first_error_line(capsys) == (
        f"error: 1 image name(s) in {prcc.root} are not valid UTF-8, e.g. rgb/train/001/A_cropped_rgb\\xe9.jpg "
        "(archives extracted with another encoding leave such names); an image's path is stored as text, so rename "
        f"them to UTF-8, e.g. `convmv -r -f cp437 -t utf8 --notest {prcc.root}` with the archive's encoding, or "
        "extract it again with `unzip -O <encoding>`"
    )
    assert snapshot(tmp_path / "data") == before


def test_odd_entries_are_skipped_or_ignored_and_listed(prcc, tmp_path, capsys, monkeypatch):
    train = prcc.root / "rgb" / "train" / "001"
    (train / "A_cropped_rgb900.jpg").symlink_to("A_cropped_rgb900.jpg")  # a link to itself: ELOOP
    (train / "A_cropped_rgb902.jpg").symlink_to("/dev/zero")  # a device
    server = socket.socket(socket.AF_UNIX)
    monkeypatch.chdir(train)  # a relative name: a socket's path may not be longer than ~107 bytes
    server.bind("A_cropped_rgb903.jpg")  # a socket
    monkeypatch.chdir(tmp_path)
    (train / "A_cropped_rgb901.jpg").mkdir()  # a folder with an image's name
    (prcc.root / "rgb" / "train" / "009").mkdir()  # an empty pid folder
    with open(os.path.join(os.fsencode(train), b"notes\xe9.txt"), "wb") as file:  # not UTF-8, not an image
        file.write(b"x")
    before = snapshot(tmp_path / "data")
    out = tmp_path / "out"
    try:
        assert build(prcc, out) == 0
    finally:
        server.close()
    assert capsys.readouterr().out.splitlines()[0].endswith("; 3 skipped, 3 non-image files ignored")
    report = report_of(out)
    assert report["ignored_files"] == [
        "rgb/train/001/A_cropped_rgb901.jpg/",
        "rgb/train/001/notes\\xe9.txt",
        "rgb/train/009/",
    ]
    reasons = {skip["source_path"].rsplit("/", 1)[1]: skip["reason"] for skip in report["skipped"]}
    assert reasons["A_cropped_rgb900.jpg"].startswith(
        "cannot decode image: OSError: [Errno 40] Too many levels of symbolic links"
    )
    assert reasons["A_cropped_rgb902.jpg"] == "cannot decode image: a character device, not a regular file: never read"
    assert reasons["A_cropped_rgb903.jpg"] == "cannot decode image: a socket, not a regular file: never read"
    assert snapshot(tmp_path / "data") == before


def test_a_fifo_named_like_an_image_is_skipped_without_being_opened(prcc, tmp_path):
    os.mkfifo(prcc.root / "rgb" / "train" / "001" / "A_cropped_rgb900.jpg")
    before = snapshot(tmp_path / "data")
    out = tmp_path / "out"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    # a separate process, so that a build blocked on the FIFO fails the test instead of hanging it
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "builder.cli",
            "build",
            "prcc",
            str(prcc.root),
            "--out",
            str(out),
            "--parsing-dir",
            str(prcc.parsing_dir),
            "--no-progress",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.splitlines()[1] == (
        "  skipped rgb/train/001/A_cropped_rgb900.jpg: cannot decode image: "
        "a FIFO (named pipe), not a regular file: never read"
    )
    assert report_of(out)["num_skipped"] == 1 and snapshot(tmp_path / "data") == before


# -- part maps -----------------------------------------------------------------------------------------


def _same_stem_pair(prcc) -> tuple[str, str]:
    """Add A_cropped_rgb050.jpg and .png (two different people) to one train folder; no maps yet."""
    names = ("rgb/train/001/A_cropped_rgb050.jpg", "rgb/train/001/A_cropped_rgb050.png")
    for i, rel in enumerate(names):
        image, _ = draw_person(96 + 32 * i, 48, ("pair", i), ("outfit", i))
        Image.fromarray(image).save(prcc.root / rel)
    return names


def test_two_images_sharing_a_stem_need_full_name_maps(prcc, tmp_path, capsys):
    jpg, png = _same_stem_pair(prcc)
    stem_map = prcc.parsing_dir / "rgb/train/001/A_cropped_rgb050.png"
    Image.fromarray(np.zeros((96, 48), np.uint8)).save(stem_map)  # one map for two images: ambiguous
    before = snapshot(tmp_path / "data")
    assert build(prcc, tmp_path / "out") == 2
    assert first_error_line(capsys) == (
        f"error: --parsing-dir {prcc.parsing_dir}: 2 image(s) share a name but for the extension with another image, "
        f"e.g. {jpg}, so the map {stem_map} cannot tell them apart; name each such image's map after its full file "
        f"name, e.g. {prcc.parsing_dir / jpg}.png"
    )
    assert snapshot(tmp_path / "data") == before

    # with DIR/<source path>.png for both, each image gets its own map
    truth = {}
    for i, rel in enumerate((jpg, png)):
        truth[rel] = draw_person(96 + 32 * i, 48, ("pair", i), ("outfit", i))[1]
        Image.fromarray(truth[rel]).save(prcc.parsing_dir / (rel + ".png"))
    out = tmp_path / "out"
    assert build(prcc, out) == 0
    rows = load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    got = {row["source_path"]: np.asarray(row["parsing"]) for row in rows if row["source_path"] in truth}
    assert set(got) == set(truth) and all(np.array_equal(got[rel], truth[rel]) for rel in truth)


def test_parsing_is_a_palette_png_of_the_part_values(prcc, tmp_path):
    out = tmp_path / "out"
    assert build(prcc, out) == 0
    rows = load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    for row in rows:
        parsing = row["parsing"]
        assert parsing.mode == "P"
        assert parsing.getpalette()[:21] == [c for colour in PART_PALETTE for c in colour]
        # the values are the true part ids, as drawn into the source's own map files
        truth = np.asarray(Image.open(prcc.parsing_dir / Path(row["source_path"]).with_suffix(".png")))
        assert np.array_equal(np.asarray(parsing), truth)


# -- EXIF orientation: ignored, as CAL's loaders ignore it ----------------------------------------------


def test_exif_orientation_is_not_applied(prcc, tmp_path):
    rel = "rgb/train/001/A_cropped_rgb001.jpg"
    stored = Image.open(prcc.root / rel).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored.save(prcc.root / rel, quality=95, exif=exif)
    out = tmp_path / "out"
    assert build(prcc, out, "--keep-clean") == 0
    expected = np.asarray(Image.open(prcc.root / rel).convert("RGB"))  # the pixels as stored, not rotated
    [row] = [
        r for r in load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache")) if r["source_path"] == rel
    ]
    assert expected.shape[0] > expected.shape[1] and np.array_equal(np.asarray(row["clean_image"]), expected)


# -- manifests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, expected",
    [
        (
            b"path,pid,split\nrgb/train/001/A_cropped_rgb001.jpg,-1,train\n",
            "line 2, column pid: -1 is negative; a pid is an identity, and evaluation would match every two "
            "rows of pid -1 as one person: drop junk rows, and give distractor images a pid no query has",
        ),
        (
            b"path,pid,split\nrgb/train/001/A_cropped_rgb\xe9.jpg,1,train\n",
            "is not UTF-8 text (byte 0xe9 cannot be decoded); save it as UTF-8",
        ),
    ],
)
def test_manifest_refusals(prcc, tmp_path, capsys, content, expected):
    manifest = prcc.root / "m.csv"
    manifest.write_bytes(content)
    before = snapshot(tmp_path / "data")
    assert (
        main(
            [
                "build",
                "manifest",
                str(manifest),
                "--out",
                str(tmp_path / "out"),
                "--parsing-dir",
                str(prcc.parsing_dir),
                "--no-progress",
            ]
        )
        == 2
    )
    line = first_error_line(capsys)
    assert line.startswith(f"error: manifest {manifest} ") and line.endswith(expected)
    assert snapshot(tmp_path / "data") == before


def test_a_manifest_without_negative_pids_builds(prcc, tmp_path):
    rows = [{"path": rel, "pid": pid, "split": split} for rel, (split, pid, *_) in prcc.expected.items()]
    manifest = write_manifest(rows, prcc.root / "m.csv")
    assert (
        main(
            [
                "build",
                "manifest",
                str(manifest),
                "--out",
                str(tmp_path / "out"),
                "--parsing-dir",
                str(prcc.parsing_dir),
                "--no-progress",
            ]
        )
        == 0
    )


# -- --model files that are not checkpoints ---------------------------------------------------------------


def _checkpoints(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    files = {
        "text": folder / "passwd",
        "random": folder / "random.pth",
        "objects": folder / "training.pth",
        "fifo": folder / "pipe.pth",
    }
    files["text"].write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    files["random"].write_bytes(np.random.default_rng(0).bytes(4096))
    torch.save({"state_dict": {"w": torch.zeros(2)}, "args": argparse.Namespace(lr=0.1)}, files["objects"])
    os.mkfifo(files["fifo"])
    return files


@pytest.mark.parametrize(
    "kind, expected",
    [
        (
            "text",
            "{path} is not a PyTorch checkpoint (IndexError: list index out of range); expected a state dict "
            "(a mapping of names to tensors) saved with torch.save, or a .safetensors file",
        ),
        (
            "random",
            "{path} is not a PyTorch checkpoint (UnpicklingError: not a pickle of tensors); expected a state dict "
            "(a mapping of names to tensors) saved with torch.save, or a .safetensors file",
        ),
        (
            "objects",
            "checkpoint {path} holds a Python object (argparse.Namespace) besides tensors; only tensors are read "
            "from a checkpoint, so no code in it can run: expected a state dict (a mapping of names to tensors) "
            "saved with torch.save, or a .safetensors file, holding nothing else",
        ),
        ("fifo", "checkpoint {path} is not a regular file or folder; pass the weights file itself"),
    ],
)
def test_model_files_that_are_not_checkpoints(prcc, tmp_path, capsys, kind, expected):
    path = _checkpoints(tmp_path / "models")[kind]
    before = snapshot(tmp_path)
    assert (
        main(["build", "prcc", str(prcc.root), "--out", str(tmp_path / "out"), "--model", str(path), "--no-progress"])
        == 2
    )
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "error: " + expected.format(path=path) and "Traceback" not in err
    assert "weights_only" not in err  # never torch's advice to unpickle an unvetted file
    assert snapshot(tmp_path) == before


def test_preview_shows_the_parts_of_a_palette_map(tmp_path):
    from builder.preview import PANEL, tile
    from builder.rows import encode_parts

    def png(array):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    width, height = PANEL
    parts = np.repeat(np.arange(7, dtype=np.uint8), -(-height // 7))[:height, None].repeat(width, axis=1)
    row = {
        "image": png(np.zeros((height, width, 3), np.uint8)),
        "occlusion_mask": png(np.zeros((height, width), np.uint8)),
        "parsing": encode_parts(parts),
        "occluded_part": 1,
        "occluded_ratio": 0.0,
        "occluder": "none",
    }
    coloured = np.asarray(tile("train", row))[:height, 2 * width : 3 * width]
    assert np.array_equal(coloured, np.array(PART_PALETTE, np.uint8)[parts])
