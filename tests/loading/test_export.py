"""`to_folder` / `python -m occluded_ccreid.export`: files, formats, safety, resume, errors."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from occluded_ccreid.export import JPEG_MEAN_ERROR_BOUND, ExportError, to_folder, to_tuples
from occluded_ccreid.export import images as export_images
from occluded_ccreid.export.staging import MARKER_NAME, staging_path
from occluded_ccreid.loading import load

REPO = Path(__file__).resolve().parents[2]


def _tree(folder: Path) -> dict[str, str]:
    """Every file below `folder` (hidden ones included) -> sha256."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def exported(prcc_build, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "prcc"
    to_folder(prcc_build, out, masks=True, progress=False)
    return out


def test_every_row_at_its_source_path_in_its_format(prcc_build, exported):
    rows = [row for split in load(prcc_build).values() for row in split]
    files = _tree(exported)
    marker = json.loads((exported / MARKER_NAME).read_text())
    assert marker["complete"] is True and marker["fingerprint"]["jpeg"] == {"quality": 100, "subsampling": 0}
    assert set(marker["files"]) == set(files) - {MARKER_NAME}
    assert all(marker["files"][path] == digest for path, digest in files.items() if path != MARKER_NAME)
    images = {path for path in files if not path.startswith(("occlusion_mask/", "parsing/", "."))}
    assert images == {row["source_path"] for row in rows}
    for row in rows:
        with Image.open(exported / row["source_path"]) as written:
            assert written.format == "JPEG" and written.size == row["image"].size  # PRCC names are .jpg
            error = np.abs(np.asarray(written, np.int16) - np.asarray(row["image"], np.int16))
            assert error.mean() <= JPEG_MEAN_ERROR_BOUND
        for column in ("occlusion_mask", "parsing"):
            with Image.open(exported / column / (row["source_path"] + ".png")) as mask:
                assert np.array_equal(np.asarray(mask), np.asarray(row[column]))
    assert not staging_path(exported).exists()


def test_png_names_get_the_stored_bytes_and_other_formats_are_lossless():
    pixels = np.random.default_rng(0).integers(0, 256, (40, 24, 3), dtype=np.uint8)  # noise: JPEG's worst case
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    stored = {"bytes": buffer.getvalue(), "path": None}
    assert export_images.image_bytes(stored, ".png", "row") == stored["bytes"]
    for suffix in (".bmp", ".tif", ".webp", ".PNG"):
        with Image.open(io.BytesIO(export_images.image_bytes(stored, suffix, "row"))) as decoded:
            assert np.array_equal(np.asarray(decoded.convert("RGB")), pixels), suffix
    with Image.open(io.BytesIO(export_images.image_bytes(stored, ".jpg", "row"))) as decoded:
        assert decoded.format == "JPEG"
        assert np.abs(np.asarray(decoded, np.int16) - pixels).mean() <= JPEG_MEAN_ERROR_BOUND
    with pytest.raises(ExportError, match="cannot write a .gif file"):
        export_images.image_bytes(stored, ".gif", "row x")


def test_running_again_on_a_finished_export_changes_nothing(prcc_build, exported):
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in exported.rglob("*")}
    result = to_folder(prcc_build, exported, masks=True, progress=False)
    assert result.already_complete
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in exported.rglob("*")} == before


def test_other_settings_into_a_finished_export_are_refused(prcc_build, exported):
    before = _tree(exported)
    with pytest.raises(ExportError, match="holds another export.*masks changed"):
        to_folder(prcc_build, exported, progress=False)
    assert _tree(exported) == before


def test_never_writes_into_a_folder_it_did_not_make(prcc_build, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an empty folder or an export of this tool"):
        to_folder(prcc_build, out, progress=False)
    assert _tree(out) == {"notes.txt": hashlib.sha256(b"keep me").hexdigest()}
    assert not staging_path(out).exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert to_folder(prcc_build, empty, progress=False).files > 0  # an empty folder is taken
    with pytest.raises(ExportError, match="lie inside one another"):
        to_folder(prcc_build, prcc_build / "export", progress=False)
    foreign = tmp_path / "other"
    staging_path(foreign).mkdir()
    with pytest.raises(ExportError, match="not an export in progress"):
        to_folder(prcc_build, foreign, progress=False)


def test_an_interrupted_export_resumes_to_the_same_files(prcc_build, exported, tmp_path, monkeypatch):
    out = tmp_path / "prcc"
    real_write, written = export_images.write_new, []

    def write_then_stop(root, rel, data):
        if len(written) == 20:
            raise KeyboardInterrupt  # as Ctrl-C in the middle of an export
        written.append(rel)
        return real_write(root, rel, data)

    import occluded_ccreid.export.folder as folder

    monkeypatch.setattr(folder, "write_new", write_then_stop)
    with pytest.raises(KeyboardInterrupt):
        to_folder(prcc_build, out, masks=True, progress=False, workers=1)
    assert not out.exists()  # a partial export is never at OUT
    assert (staging_path(out) / "journal.jsonl").is_file()
    # a file the journal does not vouch for (a write cut short) is redone, not kept
    (staging_path(out) / "tree" / "rgb" / "stray.jpg").write_bytes(b"half a file")
    monkeypatch.setattr(folder, "write_new", real_write)
    messages: list[str] = []
    result = to_folder(prcc_build, out, masks=True, progress=False, log=messages.append)
    assert result.kept == 20 and any("resuming" in m for m in messages)
    assert _tree(out) == _tree(exported)  # byte-identical to an export never interrupted
    assert not staging_path(out).exists()


def test_a_stopped_export_with_other_settings_starts_afresh(prcc_build, tmp_path, monkeypatch):
    out = tmp_path / "prcc"
    import occluded_ccreid.export.folder as folder

    def stop(root, rel, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(folder, "write_new", stop)
    with pytest.raises(KeyboardInterrupt):
        to_folder(prcc_build, out, progress=False)
    monkeypatch.undo()
    messages: list[str] = []
    result = to_folder(prcc_build, out, masks=True, progress=False, log=messages.append)
    assert result.kept == 0 and any("starting afresh" in m and "masks changed" in m for m in messages)


def test_bad_requests_are_one_line_errors(prcc_build, tmp_path):
    with pytest.raises(ExportError, match="no clean_image column"):
        to_folder(prcc_build, tmp_path / "a", clean=True, progress=False)
    with pytest.raises(ExportError, match=r"no split\(s\) nope; it has train, validation, query, gallery"):
        to_folder(prcc_build, tmp_path / "b", splits=["train", "nope"], progress=False)
    with pytest.raises(ExportError, match="cannot open"):
        to_folder(tmp_path / "missing", tmp_path / "c", progress=False)
    assert not (tmp_path / "a").exists() and not staging_path(tmp_path / "a").exists()


def test_two_rows_for_one_file_are_refused(tmp_path):
    from datasets import Dataset

    from occluded_ccreid.features import dataset_features

    rows = {name: [] for name in dataset_features()}
    for n, path in enumerate(["train/001_1_c1_1.png", "train/001_1_c1_1.png"]):
        rows["image"].append(Image.new("RGB", (4, 6), (n, 0, 0)))
        rows["occlusion_mask"].append(Image.new("L", (4, 6)))
        rows["parsing"].append(Image.new("L", (4, 6)))
        for column, value in (
            ("pid", 1),
            ("camid", 0),
            ("clothes_id", 0),
            ("occluded_part", 0),
            ("pool_scale", 0),
            ("occluded_ratio", 0.0),
            ("occluder", "none"),
            ("fill", "none"),
            ("coverage_in_band", True),
            ("source_path", path),
            ("part_visibility", [None] * 6),
            ("occluders", []),
            ("person_donors", []),
        ):
            rows[column].append(value)
    build = tmp_path / "build"
    (build / "data").mkdir(parents=True)
    Dataset.from_dict(rows, features=dataset_features()).to_parquet(build / "data" / "train-00000-of-00001.parquet")
    with pytest.raises(ExportError, match="would both be written to train/001_1_c1_1.png"):
        to_folder(build, tmp_path / "out", progress=False)


def test_to_tuples_refuses_to_replace_another_file(prcc_build, tmp_path):
    gallery = load(prcc_build, split="gallery")
    first = to_tuples(gallery, image_dir=tmp_path)
    assert first[0][0].endswith(".jpg") and Image.open(first[0][0]).format == "JPEG"
    assert to_tuples(gallery, image_dir=tmp_path) == first  # same bytes: left as they are
    Path(first[0][0]).write_bytes(b"someone else's")
    with pytest.raises(ExportError, match="exists with other content"):
        to_tuples(gallery, image_dir=tmp_path)
    assert Path(first[0][0]).read_bytes() == b"someone else's"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "occluded_ccreid.export", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_command_line(prcc_build, exported, tmp_path):
    done = _cli(str(prcc_build), "out", "--masks", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {tmp_path / 'out'}: ") and "train " in done.stdout
    assert _tree(tmp_path / "out") == _tree(exported)
    again = _cli(str(prcc_build), "out", "--masks", "--no-progress", cwd=tmp_path)
    assert again.returncode == 0 and "already holds this export" in again.stderr
    for args, message in (
        ((str(prcc_build), "out", "--no-progress"), "holds another export"),
        ((str(prcc_build), "x", "--clean"), "no clean_image column"),
        ((str(prcc_build), "x", "--splits", "train,val"), "no split(s) val"),
        ((str(prcc_build), "x", "--workers", "0"), "--workers must be >= 1"),
    ):
        failed = _cli(*args, cwd=tmp_path)
        assert failed.returncode == 2, (args, failed.stderr)
        assert failed.stderr.startswith("error: ") and message in failed.stderr, failed.stderr
        assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr
