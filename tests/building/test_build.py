"""`builder build` end to end on synthetic PRCC / LTCC trees, loaded back with `load_dataset`."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import ClassLabel, load_dataset
from datasets import Image as ImageFeature
from PIL import Image

from builder.cli import main
from builder.pipeline import BuildConfig, build
from occluded_ccreid.features import dataset_features
from occluded_ccreid.sources import get_source

PRCC_SPLITS = ["train", "validation", "query", "gallery"]


def rows_by_path(folder):
    ds = load_dataset(str(folder))
    return {split: {r["source_path"]: r for r in ds[split]} for split in ds}


def test_every_image_once_in_the_right_split_with_its_labels(prcc_build, prcc_tree):
    rows = rows_by_path(prcc_build)
    assert list(rows) == PRCC_SPLITS
    seen = [p for split in rows.values() for p in split]
    assert sorted(seen) == sorted(prcc_tree.expected)  # each once; the corrupt one skipped
    clothes = {r.source_path: r.clothes_id for r in get_source("prcc").scan(prcc_tree.root).records}
    for split, by_path in rows.items():
        for path, row in by_path.items():
            assert (split, row["pid"], row["camid"]) == prcc_tree.expected[path][:3]
            assert row["clothes_id"] == clothes[path]


def test_report_counts_skips_and_ignored_files(prcc_build, prcc_tree):
    report = json.loads((prcc_build / "build_report.json").read_text())
    assert report["num_rows"] == len(prcc_tree.expected)
    assert [s["source_path"] for s in report["skipped"]] == prcc_tree.corrupt
    assert "decode" in report["skipped"][0]["reason"]
    assert report["ignored_files"] == sorted(prcc_tree.ignored)
    assert report["seed"] == 0 and report["parser"]["kind"] == "precomputed"
    assert set(report["versions"]) >= {"torch", "datasets", "pillow", "numpy"}
    for split, stats in report["splits"].items():
        assert sum(stats["part_counts"].values()) == stats["num_rows"]
        shard_rows = sum(v["num_rows"] for k, v in report["shards"].items() if k.startswith(f"data/{split}-"))
        assert shard_rows == stats["num_rows"]


def test_occluder_covers_the_true_part_and_ratio_matches(prcc_build):
    for split in rows_by_path(prcc_build).values():
        for row in split.values():
            parts = np.asarray(row["parsing"])
            # 8-bit alpha; tests/occlusion/test_occluder_record.py checks its pixels
            mask = np.asarray(row["occlusion_mask"])
            image = np.asarray(row["image"])
            assert parts.shape == mask.shape == image.shape[:2]
            assert row["occluded_part"] in range(1, 7)  # every synthetic person has all parts
            assert (mask[parts == row["occluded_part"]] == 255).all()
            alpha_weighted = (mask[parts > 0] / 255).sum() / (parts > 0).sum()
            assert row["occluded_ratio"] == pytest.approx(alpha_weighted, rel=1e-6)


def test_quirky_images_are_converted(prcc_build, ltcc_tree, tmp_path):
    rows = rows_by_path(prcc_build)
    tiny = rows["query"]["rgb/test/B/100/cropped_rgb900.jpg"]["image"]
    assert tiny.size == (10, 24) and tiny.mode == "RGB"
    assert rows["train"]["rgb/train/002/A_cropped_rgb500.jpg"]["image"].mode == "RGB"  # was grayscale
    out = tmp_path / "occluded-ltcc"
    assert (
        main(
            [
                "build",
                "ltcc",
                str(ltcc_tree.root),
                "--out",
                str(out),
                "--parsing-dir",
                str(ltcc_tree.parsing_dir),
                "--no-progress",
            ]
        )
        == 0
    )
    rows = rows_by_path(out)
    assert sorted(p for s in rows.values() for p in s) == sorted(ltcc_tree.expected)
    for i in range(4):  # L, RGBA, P, I;16 sources
        (path,) = [p for p in rows["gallery"] if p.endswith(f"_{900000 + i}.png")]
        assert rows["gallery"][path]["image"].mode == "RGB"
    assert list(rows) == ["train", "query", "gallery"]


def test_features_and_streaming(prcc_build):
    ds = load_dataset(str(prcc_build), split="gallery")
    assert ds.features == dataset_features()
    assert isinstance(ds.features["occluded_part"], ClassLabel) and isinstance(ds.features["image"], ImageFeature)
    streamed = load_dataset(str(prcc_build), split="train", streaming=True)
    assert streamed.features == dataset_features()
    local = load_dataset(str(prcc_build), split="train")
    assert [r["source_path"] for r in streamed] == local["source_path"]


def test_load_by_folder_name_from_parent(prcc_build, monkeypatch, tmp_path):
    monkeypatch.chdir(prcc_build.parent)
    # its own cache: `datasets` caches a folder loaded by bare name under that name, where a later
    # load of "occluded-prcc" from another directory would find it (see tests/loading/test_load_names.py)
    ds = load_dataset("occluded-prcc", split="query", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == len(load_dataset(str(prcc_build), split="query", cache_dir=str(tmp_path / "cache")))


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "data").glob("*.parquet"))}


def test_batch_size_and_workers_do_not_change_a_byte(prcc_build, prcc_tree, tmp_path):
    other = tmp_path / "other"
    build(
        BuildConfig(
            "prcc",
            prcc_tree.root,
            other,
            parsing_dir=prcc_tree.parsing_dir,
            shard_size=8,
            batch_size=3,
            workers=0,
            progress=False,
        )
    )
    assert shard_bytes(other) == shard_bytes(prcc_build)
    assert (other / "build_report.json").read_bytes() == (prcc_build / "build_report.json").read_bytes()


@pytest.mark.parametrize("extra", [[], ["--no-keep-aspect"], ["--precision", "bf16"]])
def test_model_parser_builds_identically_for_any_batch_size(prcc_tree, tiny_model, tmp_path, extra, capsys):
    outs = []
    for batch_size, workers in ((1, 1), (5, 3)):
        out = tmp_path / f"b{batch_size}"
        assert (
            main(
                [
                    "build",
                    "prcc",
                    str(prcc_tree.root),
                    "--out",
                    str(out),
                    "--model",
                    str(tiny_model),
                    "--batch-size",
                    str(batch_size),
                    "--workers",
                    str(workers),
                    "--parse-size",
                    "64x32",
                    "--device",
                    "cpu",
                    "--no-progress",
                    *extra,
                ]
            )
            == 0
        )
        outs.append(out)
    assert shard_bytes(outs[0]) == shard_bytes(outs[1])
    assert "Loading weights" not in capsys.readouterr().err  # --no-progress silences transformers' bar too
    report = json.loads((outs[0] / "build_report.json").read_text())
    assert report["parser"]["model"] == str(tiny_model) and report["parser"]["parse_size"] == [64, 32]
    card = (outs[0] / "README.md").read_text()
    resize = (
        "every crop resized to 64x32" if "--no-keep-aspect" in extra else "fitted into 64x32 with its aspect ratio kept"
    )
    assert resize in card and ("bf16 autocast" in card) == ("bf16" in extra)


def test_existing_output_is_refused_unless_overwrite(prcc_build, prcc_tree, capsys, tmp_path):
    out = tmp_path / "occluded-prcc"
    out.mkdir()
    args = [
        "build",
        "prcc",
        str(prcc_tree.root),
        "--out",
        str(out),
        "--parsing-dir",
        str(prcc_tree.parsing_dir),
        "--no-progress",
        "--shard-size",
        "8",
    ]
    assert main(args) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    assert shard_bytes(out) == shard_bytes(prcc_build)


def test_wrong_layout_fails_before_any_work(tmp_path, capsys):
    (tmp_path / "src" / "train").mkdir(parents=True)
    assert (
        main(["build", "ltcc", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--parsing-dir", str(tmp_path)])
        == 2
    )
    err = capsys.readouterr().err
    assert "missing folder(s) query, test" in err and "Expected layout" in err
    assert not (tmp_path / "out").exists()


def test_bad_part_map_names_the_file_and_leaves_nothing_behind(prcc_tree, tmp_path, capsys):
    import shutil

    parsing = tmp_path / "parsing"
    shutil.copytree(prcc_tree.parsing_dir, parsing)
    bad = parsing / "rgb/test/A/100/cropped_rgb003.png"
    Image.new("L", (7, 7)).save(bad)
    out = tmp_path / "builds" / "out"
    assert (
        main(["build", "prcc", str(prcc_tree.root), "--out", str(out), "--parsing-dir", str(parsing), "--no-progress"])
        == 2
    )
    err = capsys.readouterr().err
    assert str(bad) in err and "7x7" in err
    assert list((tmp_path / "builds").iterdir()) == []  # no partial folder left
    bad.unlink()
    assert (
        main(["build", "prcc", str(prcc_tree.root), "--out", str(out), "--parsing-dir", str(parsing), "--no-progress"])
        == 2
    )
    assert f"part map {bad} is missing" in capsys.readouterr().err


def test_shards_carry_the_datasets_schema(prcc_build):
    shard = next((prcc_build / "data").glob("train-*.parquet"))
    assert b"huggingface" in pq.read_schema(shard).metadata


def test_pipelined_and_batch_by_batch_paths_give_the_same_rows(prcc_tree, tiny_model):
    from builder.parsing.segmenter import SegformerParser
    from builder.processing import Stage, _batched, _pipelined
    from occluded_ccreid.occlusion import OcclusionConfig

    records = get_source("prcc").scan(prcc_tree.root).records
    parser = SegformerParser(str(tiny_model), "cpu", (64, 32), keep_aspect=True)
    stage = Stage(
        prcc_tree.root,
        parser,
        0,
        OcclusionConfig(),
        frozenset({"train", "validation", "query", "gallery"}),
        False,
        records,
        parser.device,
    )
    pipelined = list(_pipelined(records, stage, batch_size=4, workers=2))
    batched = list(_batched(records, stage, batch_size=7, workers=1))
    assert [r[0] for r in pipelined] == [r[0] for r in batched] == records
    for (_, row_a, _, skip_a), (_, row_b, _, skip_b) in zip(pipelined, batched, strict=True):
        assert row_a == row_b and skip_a == skip_b


def test_the_device_policy_follows_the_device(monkeypatch):
    from builder import devices

    monkeypatch.setattr(devices, "usable_cores", lambda: 16)
    cpu = devices.device_policy("cpu", network=True)  # the model streams need the CPU's cores
    assert (cpu.workers, cpu.model_threads, cpu.lanes, cpu.keep_memory_mapped) == (2, 1, 1, True)
    assert devices.device_policy("cpu", network=True, sharing=4).workers == 2
    cuda = devices.device_policy("cuda:1", network=True)  # the cores are free for the workers, but one
    assert (cuda.workers, cuda.model_threads, cuda.lanes, cuda.keep_memory_mapped) == (15, None, 8, False)
    assert devices.device_policy("cuda:1", network=True, sharing=4).workers == 3  # (16 - 4) // 4
    assert devices.device_policy("cuda:1", network=True, workers=5).workers == 5
    maps = devices.device_policy("cpu", network=False)  # --parsing-dir: no model
    assert (maps.workers, maps.model_threads, maps.keep_memory_mapped) == (2, None, False)
    monkeypatch.setattr(devices, "usable_cores", lambda: 1)
    assert devices.device_policy("cuda", network=True).workers == 2
