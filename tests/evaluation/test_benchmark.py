"""`python -m occluded_ccreid.benchmark` on synthetic PRCC builds and tiny random transformers models.

Every number is checked against features, distances and CMC/mAP computed here independently: the
model's own image processor (not the benchmark's batched transform), two forward passes (image,
flipped image) summed and L2-normalised, CAL's ``-q.g`` distance, and the plain per-query CAL loop
of tests/support/cal_reference.py for the per-part scores.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from cal_reference import cal_evaluate  # noqa: E402
from datasets import Dataset, load_dataset  # noqa: E402

import occluded_ccreid as oc  # noqa: E402
from occluded_ccreid.benchmark.cli import main  # noqa: E402
from occluded_ccreid.benchmark.preprocessing import ImageTransform  # noqa: E402
from occluded_ccreid.parts import PART_NAMES  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]


def _save_vit(path: Path) -> Path:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    ViTModel(config).save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def vit(tmp_path_factory) -> Path:
    return _save_vit(tmp_path_factory.mktemp("vit") / "tiny-vit")


@pytest.fixture(scope="module")
def prcc_clean_build(prcc_tree, tmp_path_factory) -> Path:
    """A PRCC build that keeps the original images (`--keep-clean`)."""
    from builder.pipeline import BuildConfig, build

    out = tmp_path_factory.mktemp("builds") / "occluded-prcc-clean"
    build(
        BuildConfig(
            "prcc",
            prcc_tree.root,
            out,
            parsing_dir=prcc_tree.parsing_dir,
            shard_size=8,
            progress=False,
            keep_clean=True,
        )
    )
    return out


@pytest.fixture(scope="module")
def cli_run(prcc_clean_build, vit, tmp_path_factory):
    """The command on the keep-clean build (in this process; the `python -m` entry is run by
    test_bad_input_is_refused_before_the_model_loads)."""
    out = tmp_path_factory.mktemp("bench-out")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = main(
            [
                "--dataset",
                str(prcc_clean_build),
                "--model",
                str(vit),
                "--batch-size",
                "5",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
    assert status == 0
    return out, stdout.getvalue()


# -- the independent reference ------------------------------------------------------------------------


def reference_features(model_dir: Path, images: list) -> np.ndarray:
    """CAL's test-time features, through the model's own processor: f(x) + f(flip(x)), L2-normalised."""
    from transformers import AutoImageProcessor, AutoModel

    processor = AutoImageProcessor.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        pixels = processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
        features = model(pixel_values=pixels).pooler_output + model(pixel_values=torch.flip(pixels, [3])).pooler_output
    return torch.nn.functional.normalize(features, p=2, dim=1).numpy()


def reference_distances(
    build: Path,
    model_dir: Path,
    query_column: str = "image",
    gallery_column: str = "image",
    query_split: str = "query",
    gallery_split: str = "gallery",
):
    ds = load_dataset(str(build))
    qf = reference_features(model_dir, ds[query_split][query_column])
    gf = reference_features(model_dir, ds[gallery_split][gallery_column])
    return -(qf @ gf.T), ds  # CAL's distance: negative cosine similarity


def _assert_scores(ours: dict, theirs: dict, keys=("mAP", "rank1", "rank5", "rank10")) -> None:
    for key in keys:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-9), key


# -- end to end ---------------------------------------------------------------------------------------


def test_command_scores_equal_an_independent_evaluation(cli_run, prcc_clean_build, vit):
    out, stdout = cli_run
    results = json.loads((out / "results.json").read_text())
    assert {"same_clothes", "cloth_changing"} == set(results["protocols"]) and results["dataset"]["name"] == "prcc"
    assert results["dataset"]["clean_images"] is True
    assert "same_clothes" in stdout and "cloth_changing" in stdout and "drop" in stdout
    for setting, (q_col, g_col) in {
        "occluded": ("image", "image"),
        "clean": ("clean_image", "clean_image"),
        "clean_gallery": ("image", "clean_image"),
        "clean_query": ("clean_image", "image"),
    }.items():
        distmat, ds = reference_distances(prcc_clean_build, vit, q_col, g_col)
        for name, protocol in oc.protocols("prcc").items():
            expected = oc.evaluate_protocol(distmat, ds["query"], ds["gallery"], protocol)
            ours = results["protocols"][name][setting]
            _assert_scores(ours, expected)
            assert ours["queries"] == expected["num_valid_queries"]
            for value in (ours["mAP"], ours["rank1"], ours["rank5"], ours["rank10"]):
                assert 0.0 <= value <= 1.0
    for scores in results["protocols"].values():
        assert scores["drop"]["mAP"] == pytest.approx(scores["clean"]["mAP"] - scores["occluded"]["mAP"])
    assert (out / "report.md").read_text().startswith("# Occlusion benchmark: prcc")
    from PIL import Image

    with Image.open(out / "by_part.png") as plot:
        assert plot.format == "PNG" and plot.width > 600 and plot.height > 300


def test_decoding_in_processes_gives_the_same_results(cli_run, prcc_clean_build, vit, tmp_path):
    """--processes: worker processes decode, resize and crop; every number of results.json is unchanged."""
    out, _ = cli_run
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            main(
                [
                    "--dataset",
                    str(prcc_clean_build),
                    "--model",
                    str(vit),
                    "--batch-size",
                    "5",
                    "--processes",
                    "2",
                    "--out",
                    str(tmp_path),
                    "--no-progress",
                ]
            )
            == 0
        )
    ours, theirs = (json.loads((folder / "results.json").read_text()) for folder in (tmp_path, out))
    assert ours["protocols"] and ours["by_part"] and ours == theirs


def test_per_part_and_ratio_scores_equal_each_groups_queries_alone(cli_run, prcc_clean_build, vit):
    out, _ = cli_run
    results = json.loads((out / "results.json").read_text())
    distances = {
        setting: reference_distances(prcc_clean_build, vit, q, g)
        for setting, (q, g) in {
            "occluded": ("image", "image"),
            "clean": ("clean_image", "clean_image"),
            "clean_gallery": ("image", "clean_image"),
        }.items()
    }
    ds = distances["occluded"][1]
    query, gallery = ds["query"], ds["gallery"]
    q_camid, parts = np.asarray(query["camid"]), np.asarray(query["occluded_part"])
    ratios = np.asarray(query["occluded_ratio"], dtype=np.float32)
    g = {k: np.asarray(gallery[k]) for k in ("pid", "camid", "clothes_id")}
    checked = 0
    for name, protocol in oc.protocols("prcc").items():
        in_protocol = np.isin(q_camid, protocol.query_camids)
        g_cols = np.flatnonzero(np.isin(g["camid"], protocol.gallery_camids))
        groups = {PART_NAMES[p]: in_protocol & (parts == p) for p in range(len(PART_NAMES))}
        assert set(results["by_part"][name]) == {part for part, rows in groups.items() if rows.any()}
        bins = {
            "0%": ratios <= 0,
            "0%-10%": (ratios > 0) & (ratios <= np.float32(0.1)),
            "10%-20%": (ratios > np.float32(0.1)) & (ratios <= np.float32(0.2)),
            "20%-30%": (ratios > np.float32(0.2)) & (ratios <= np.float32(0.3)),
        }
        for key, group_rows in (("by_part", groups), ("by_ratio", bins)):
            for group, mask in group_rows.items():
                rows = np.flatnonzero(in_protocol & mask)
                if not len(rows):
                    assert group not in results[key][name]
                    continue
                # The group's queries alone, as their own query set, by CAL's plain loop.
                sub = query.select(rows)
                for setting, (distmat, _) in distances.items():
                    ours = results[key][name][group] if setting == "occluded" else results[key][name][group][setting]
                    mAP, cmc, valid = cal_evaluate(
                        distmat[np.ix_(rows, g_cols)],
                        np.asarray(sub["pid"]),
                        g["pid"][g_cols],
                        np.asarray(sub["camid"]),
                        g["camid"][g_cols],
                        np.asarray(sub["clothes_id"]),
                        g["clothes_id"][g_cols],
                        mode=protocol.mode,
                    )
                    assert ours["queries"] == valid
                    assert ours["mAP"] == pytest.approx(mAP, abs=1e-9)
                    assert ours["rank1"] == pytest.approx(cmc[0], abs=1e-9)
                    checked += 1
                assert results[key][name][group]["query_rows"] == len(rows)
    assert checked >= 12


def test_build_without_clean_images_and_a_callable(prcc_build, tmp_path, monkeypatch, capsys):
    """`--features module:function` from the working directory; no `clean` keys without clean images."""
    (tmp_path / "colour_feats.py").write_text(
        "import numpy as np\n"
        "def extract(images):\n"
        "    # 4x2 grid of mean colours: a feature that sees where things are, so flips matter\n"
        "    return np.stack([np.asarray(im.resize((2, 4))).astype(np.float32).ravel() for im in images])\n"
    )
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert (
        main(
            [
                "--dataset",
                str(prcc_build),
                "--features",
                "colour_feats:extract",
                "--batch-size",
                "4",
                "--protocols",
                "cloth_changing",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert list(results["protocols"]) == ["cloth_changing"] and results["dataset"]["clean_images"] is False
    assert set(results["protocols"]["cloth_changing"]) == {"occluded"}
    assert all(
        set(g) == {"mAP", "rank1", "queries", "query_rows"} for g in results["by_part"]["cloth_changing"].values()
    )

    def feats(images):
        from PIL import ImageOps

        grid = lambda im: np.asarray(im.convert("RGB").resize((2, 4))).astype(np.float32).ravel()  # noqa: E731
        f = np.stack([grid(im) + grid(ImageOps.mirror(im.convert("RGB"))) for im in images])
        return f / np.linalg.norm(f, axis=1, keepdims=True)

    ds = load_dataset(str(prcc_build))
    distmat = -(feats(ds["query"]["image"]) @ feats(ds["gallery"]["image"]).T)
    expected = oc.evaluate_protocol(distmat, ds["query"], ds["gallery"], oc.protocols("prcc")["cloth_changing"])
    _assert_scores(results["protocols"]["cloth_changing"]["occluded"], expected)
    # A copy without build_report.json: the dataset is named by its card.
    shutil.copytree(prcc_build, tmp_path / "copy")
    (tmp_path / "copy" / "build_report.json").unlink()
    assert (
        main(
            [
                "--dataset",
                str(tmp_path / "copy"),
                "--features",
                "colour_feats:extract",
                "--protocols",
                "cloth_changing",
                "--out",
                str(tmp_path / "out-copy"),
                "--no-progress",
            ]
        )
        == 0
    )
    copy = json.loads((tmp_path / "out-copy" / "results.json").read_text())
    assert copy["dataset"]["name"] == "prcc" and copy["protocols"] == results["protocols"]
    # The same folder again: refused unless --overwrite.
    assert (
        main(["--dataset", str(prcc_build), "--features", "colour_feats:extract", "--out", str(out), "--no-progress"])
        == 2
    )
    assert "--overwrite" in capsys.readouterr().err


def test_batched_transform_gives_the_processors_pixels(tmp_path):
    """Resize / center crop / rescale / normalise settings of two processor families, person-crop shapes."""
    from PIL import Image
    from transformers import BitImageProcessor, ViTImageProcessor

    rng = np.random.default_rng(1)
    images = [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((128, 64), (61, 30), (20, 41))
    ]
    for processor in (
        ViTImageProcessor(size={"height": 48, "width": 24}),
        BitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}),
    ):
        transform = ImageTransform.from_processor(processor)
        assert transform is not None
        ours = transform.to_pixels(transform.batch(images), torch.device("cpu"))
        expected = processor(images=images, return_tensors="pt")["pixel_values"]
        assert ours.shape == expected.shape
        torch.testing.assert_close(ours, expected.float(), atol=1e-5, rtol=0)
    # ConvNeXt's resize-then-crop by crop_pct is not reproduced: its processor is used as is.
    assert ImageTransform.from_processor(transformers.ConvNextImageProcessor()) is None


# -- every source: its junk column, its splits, labels it does not have ------------------------------


@pytest.fixture(scope="module")
def source_builds(tmp_path_factory) -> dict[str, Path]:
    """Small DeepChange and LaST builds, and a manifest build without camid / clothes_id columns."""
    from synthetic import make_deepchange_tree, make_last_tree, make_manifest_tree, write_manifest

    from builder.pipeline import BuildConfig, build

    base = tmp_path_factory.mktemp("sources")
    sources = {
        name: (make(base / name), None)
        for name, make in (("deepchange", make_deepchange_tree), ("last", make_last_tree))
    }
    tree, rows = make_manifest_tree(base / "manifest")
    rows = [{k: v for k, v in row.items() if k not in ("camid", "clothes_id")} for row in rows]
    sources["manifest"] = (tree, write_manifest(rows, tree.root / "celeb.csv"))
    builds = {}
    for name, (tree, file) in sources.items():
        builds[name] = base / f"occluded-{name}"
        build(
            BuildConfig(
                name, file or tree.root, builds[name], parsing_dir=tree.parsing_dir, shard_size=16, progress=False
            )
        )
    return builds


def _published_loop(source: str, distmat: np.ndarray, query, gallery) -> tuple[float, np.ndarray, int]:
    """CAL's per-query loop with the label CAL's loader puts where the camera goes: DeepChange's
    tracklet id; for LaST, a camera of its own for every image (no junk)."""
    q = {k: np.asarray(query[k]) for k in ("pid", "clothes_id", "tracklet_id") if k in query.column_names}
    g = {k: np.asarray(gallery[k]) for k in ("pid", "clothes_id", "tracklet_id") if k in gallery.column_names}
    if source == "deepchange":
        q_junk, g_junk = q["tracklet_id"], g["tracklet_id"]
    else:
        q_junk, g_junk = np.arange(len(q["pid"])), len(q["pid"]) + np.arange(len(g["pid"]))
    return cal_evaluate(distmat, q["pid"], g["pid"], q_junk, g_junk, q["clothes_id"], g["clothes_id"])


@pytest.mark.parametrize(
    "source, splits",
    [
        ("deepchange", ("query", "gallery")),
        ("deepchange", ("validation_query", "validation_gallery")),
        ("last", ("query", "gallery")),
        ("last", ("validation_query", "validation_gallery")),
    ],
)
def test_deepchange_and_last_scores_equal_an_independent_evaluation(source_builds, vit, tmp_path, source, splits):
    build = source_builds[source]
    argv = ["--dataset", str(build), "--model", str(vit), "--batch-size", "4", "--out", str(tmp_path), "--no-progress"]
    if splits != ("query", "gallery"):
        argv += ["--query-split", splits[0], "--gallery-split", splits[1]]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    data = results["dataset"]
    assert (data["name"], data["query_split"], data["gallery_split"]) == (source, *splits)
    assert set(results["protocols"]) == set(oc.protocols(source)) and "skipped_protocols" not in results
    distmat, ds = reference_distances(build, vit, query_split=splits[0], gallery_split=splits[1])
    query, gallery = ds[splits[0]], ds[splits[1]]
    assert (data["query_rows"], data["gallery_rows"]) == (len(query), len(gallery))
    parts = np.asarray(query["occluded_part"])
    for name, protocol in oc.protocols(source).items():
        ours = results["protocols"][name]["occluded"]
        expected = oc.evaluate_protocol(distmat, query, gallery, protocol)
        _assert_scores(ours, expected)
        mAP, cmc, valid = _published_loop(source, distmat, query, gallery)
        assert ours["queries"] == valid == len(query)  # every query has a match under the published rule
        assert ours["mAP"] == pytest.approx(mAP, abs=1e-9) and ours["rank1"] == pytest.approx(cmc[0], abs=1e-9)
        for part, group in results["by_part"][name].items():
            rows = np.flatnonzero(parts == PART_NAMES.index(part))
            alone = oc.evaluate_protocol(distmat[rows], query.select(rows), gallery, protocol)
            _assert_scores(group, alone, keys=("mAP", "rank1"))
    if splits != ("query", "gallery"):
        assert f"splits {splits[0]} / {splits[1]}" in stdout.getvalue()


def test_a_protocol_whose_labels_the_build_lacks_is_skipped_or_refused(source_builds, vit, tmp_path, capsys):
    """A manifest without camid / clothes_id: only any_camera can be scored; the others are listed
    as skipped, and refused when asked for by name."""
    build = source_builds["manifest"]
    out = tmp_path / "out"
    assert main(["--dataset", str(build), "--model", str(vit), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert list(results["protocols"]) == ["any_camera"]
    skipped = results["skipped_protocols"]
    assert set(skipped) == {"general", "cloth_changing", "same_clothes"}
    assert skipped["general"] == "camid unknown (-1) in every row of split query"
    assert skipped["cloth_changing"] == "camid and clothes_id unknown (-1) in every row of split query"
    assert "protocol same_clothes not scored" in printed
    assert "protocol general not scored" in (out / "report.md").read_text()
    distmat, ds = reference_distances(build, vit)
    _assert_scores(
        results["protocols"]["any_camera"]["occluded"],
        oc.evaluate_protocol(distmat, ds["query"], ds["gallery"], oc.protocols("manifest")["any_camera"]),
    )
    data = ["--dataset", str(build), "--model", str(vit), "--no-progress"]
    err = _error(capsys, [*data, "--protocols", "any_camera,same_clothes"])
    assert "protocol same_clothes of manifest cannot be scored: camid and clothes_id unknown (-1)" in err
    assert "every row of split train" in _error(capsys, [*data, "--protocols", "general", "--query-split", "train"])
    copy = tmp_path / "copy"  # without its report, a manifest build is named only by its card (the file's name)
    shutil.copytree(build, copy)
    (copy / "build_report.json").unlink()
    err = _error(capsys, ["--dataset", str(copy), "--model", str(vit)])
    assert "unknown source dataset 'Occluded-celeb'" in err and "build_report.json back" in err


def test_split_choice_and_missing_junk_column_are_refused(source_builds, vit, tmp_path, capsys):
    import pyarrow.parquet as pq

    data = ["--dataset", str(source_builds["last"]), "--model", str(vit), "--no-progress"]
    err = _error(capsys, [*data, "--query-split", "validation"])
    assert "no validation" in err and "--query-split" in err
    assert "both 'gallery'" in _error(capsys, [*data, "--query-split", "gallery"])
    # A DeepChange build without tracklet_id (as from a builder before the column): refused before the model loads.
    copy = tmp_path / "copy"
    shutil.copytree(source_builds["deepchange"], copy)
    for shard in (copy / "data").glob("*.parquet"):
        pq.write_table(pq.read_table(shard).drop_columns(["tracklet_id"]), shard)
    card = (copy / "README.md").read_text()  # as the card of a build made before the column existed
    (copy / "README.md").write_text(re.sub(r"\n  - name: tracklet_id\n    dtype: int64", "", card))
    err = _error(capsys, ["--dataset", str(copy), "--model", "not-loaded", "--no-progress"])
    assert "protocol general of deepchange needs the tracklet_id column, which split query" in err


# -- errors: one line, exit 2, no traceback -----------------------------------------------------------


@pytest.fixture(scope="module")
def text_model(tmp_path_factory) -> Path:
    from transformers import BertConfig, BertModel

    path = tmp_path_factory.mktemp("bert") / "tiny-bert"
    BertModel(
        BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def train_only(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train-only")
    (folder / "data").mkdir()
    shard = folder / "data" / "train-00000-of-00001.parquet"
    Dataset.from_dict({"pid": [1, 2], "camid": [0, 1]}).to_parquet(str(shard))
    return folder


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_clear_errors(prcc_build, vit, text_model, train_only, tmp_path, monkeypatch, capsys):
    (tmp_path / "user_feats.py").write_text("CONSTANT = 3\n\ndef extract(images):\n    return [[1.0]] * len(images)\n")
    monkeypatch.chdir(tmp_path)
    data = ["--dataset", str(prcc_build), "--no-progress"]
    assert "no query / gallery" in _error(capsys, ["--dataset", str(train_only), "--model", str(vit)])
    assert "unknown protocol(s) general" in _error(capsys, [*data, "--model", str(vit), "--protocols", "general"])
    err = _error(capsys, [*data, "--model", str(text_model)])
    assert "is not an image model" in err and "'bert'" in err
    assert "module:function" in _error(capsys, [*data, "--features", "user_feats"])
    assert "cannot import 'no_such_module'" in _error(capsys, [*data, "--features", "no_such_module:extract"])
    assert "has no attribute 'missing'" in _error(capsys, [*data, "--features", "user_feats:missing"])
    assert "not a function" in _error(capsys, [*data, "--features", "user_feats:CONSTANT"])
    assert "not a directory" in _error(capsys, ["--dataset", str(tmp_path / "nowhere"), "--model", str(vit)])
    assert "--ratio-bins" in _error(capsys, [*data, "--model", str(vit), "--ratio-bins", "0.5,1.5"])
    assert "no such file or folder" in _error(capsys, [*data, "--model", str(tmp_path / "no-model")])
    assert "--processes must be >= 1" in _error(capsys, [*data, "--model", str(vit), "--processes", "0"])
    assert "drop --processes" in _error(capsys, [*data, "--features", "user_feats:extract", "--processes", "2"])
    import occluded_ccreid.benchmark.reading as reading  # a program read from standard input cannot spawn workers

    monkeypatch.setattr(reading, "spawn_problem", lambda: "worker processes re-import the main program")
    message = _error(capsys, [*data, "--model", str(vit), "--processes", "2"])
    assert "--processes 2: worker processes re-import" in message


def test_bad_input_is_refused_before_the_model_loads(train_only):
    """`python -m occluded_ccreid.benchmark` imports no torch before it needs to, and a bad dataset is
    refused before transformers loads (datasets itself imports torch when it opens a dataset)."""
    probe = (
        "import runpy, sys\nimport occluded_ccreid.benchmark.cli\n"
        "print([m for m in ('torch', 'transformers') if m in sys.modules])\n"
        f"sys.argv = ['benchmark', '--dataset', {str(train_only)!r}, '--model', 'x']\n"
        "try:\n    runpy.run_module('occluded_ccreid.benchmark', run_name='__main__')\n"
        "except SystemExit as stop:\n    print(stop.code, 'transformers' in sys.modules)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.split("\n")[:2] == ["[]", "2 False"], proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: ") and "no query / gallery" in proc.stderr
