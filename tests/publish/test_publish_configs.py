"""One repo, many configs: `builder push --config`, `builder verify`, loading configs back.

Round trip through the local Hub stand-in (tests/support/hub_server.py), every user step in a fresh
subprocess as in tests/publish/test_publish.py: push `prcc` (default config), then `ltcc`, then `prcc`
again built with other options; `load_dataset(repo, "prcc")` / `(repo, "ltcc")`, downloaded and
streamed, must give the rows of the local build folders; the untouched config's files keep their
bytes and their last commit, its card entries their text. `builder verify` on folders and repos
catches a damaged shard.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from hub_server import FakeHub
from test_publish import REPO_ROOT, SUBPROCESS_TIMEOUT, published_report, report, run_builder, user_env

REPO = "alice/occluded-ccreid"

LOAD_CONFIGS = r"""
import hashlib, json, sys
from datasets import Image, load_dataset

def canonical(dataset):
    for name, feature in dataset.features.items():
        if isinstance(feature, Image):
            dataset = dataset.cast_column(name, Image(decode=False))
    return [{k: hashlib.sha256(v["bytes"]).hexdigest() if isinstance(v, dict) else v for k, v in row.items()}
            for row in dataset]

out, repo_id, *pairs = sys.argv[1:]
result = {}
for config, folder in zip(pairs[::2], pairs[1::2]):
    local = load_dataset(folder)
    result[config] = {
        "local": {s: canonical(d) for s, d in local.items()},
        "hub": {s: canonical(d) for s, d in load_dataset(repo_id, config).items()},
        "stream": {s: canonical(d) for s, d in load_dataset(repo_id, config, streaming=True).items()},
        "num_bytes": {s: d.info.splits[s].num_bytes for s, d in local.items()},  # what datasets computed
    }
result["no_name"] = {s: canonical(d) for s, d in load_dataset(repo_id).items()}
with open(out, "w") as f:
    json.dump(result, f)
"""


def _build(out: Path, dataset: str, **options) -> Path:
    from synthetic import make_ltcc_tree, make_prcc_tree

    from builder.pipeline import BuildConfig, build
    from occluded_ccreid.occlusion import OcclusionConfig

    tree = (make_prcc_tree if dataset == "prcc" else make_ltcc_tree)(out.parent / f"{out.name}-source")
    occlusion = OcclusionConfig(**options.pop("occlusion", {}))
    build(
        BuildConfig(
            dataset, tree.root, out, parsing_dir=tree.parsing_dir, progress=False, occlusion=occlusion, **options
        )
    )
    return out


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("configs")
    return {
        "prcc": _build(root / "prcc", "prcc", shard_size=8),
        "ltcc": _build(root / "ltcc", "ltcc", shard_size=8),
        "prcc2": _build(root / "prcc2", "prcc", shard_size=6, seed=1, occlusion={"occluder": "rectangle"}),
    }


def _card(hub: FakeHub, repo_id: str = REPO) -> tuple[str, dict]:
    text = hub.file_bytes(repo_id, "README.md").decode()
    return text, yaml.safe_load(text[3 : text.index("\n---", 3)])


def _entry_text(card: str, key: str, name: str) -> str:
    """The exact text of config `name`'s entry in the YAML list `key`."""
    header = card[3 : card.index("\n---", 3)]
    block = header.split(f"\n{key}:\n", 1)[1]
    entries, current = [], None
    for line in block.splitlines(keepends=True):
        if not line.startswith((" ", "-")):
            break
        if line.startswith("- "):
            current = [line]
            entries.append(current)
        else:
            current.append(line)
    texts = ["".join(e) for e in entries]
    matches = [t for t in texts if f"config_name: {name}\n" in t]
    assert len(matches) == 1, (key, name, texts)
    return matches[0]


def _section(card: str, name: str) -> str:
    start = card.index(f"<!-- occluded-ccreid:config {name} -->")
    end = card.index(f"<!-- occluded-ccreid:config-end {name} -->")
    return card[start:end]


def _push(env, folder: Path, config: str, *options: str) -> None:
    proc = run_builder(env, "push", str(folder), "--repo-id", REPO, "--config", config, *options)
    assert proc.returncode == 0, proc.stderr


def _published(folder: Path, config: str) -> dict[str, bytes]:
    """What a push of `folder` as `config` puts in `config/`: shards, report, preview."""
    files = {f"{config}/{rel.split('/', 1)[1]}": (folder / rel).read_bytes() for rel in report(folder)["shards"]}
    files[f"{config}/preview.png"] = (folder / "preview.png").read_bytes()
    files[f"{config}/build_report.json"] = published_report(folder)
    return files


def _config_files(hub: FakeHub, config: str) -> dict[str, bytes]:
    return {p: b.content for p, b in hub.files(REPO).items() if p.startswith(config + "/")}


@pytest.fixture(scope="module")
def round_trip(builds, tmp_path_factory):
    """prcc (default), ltcc, then prcc rebuilt with the rectangle occluder, pushed to one repo."""
    home = tmp_path_factory.mktemp("home")
    with FakeHub() as hub:
        env = user_env(hub, home)
        _push(env, builds["prcc"], "prcc", "--default", "--gated")
        after_prcc = _card(hub)[0]
        _push(env, builds["ltcc"], "ltcc")
        ltcc_commit = hub.repos[REPO].branches["main"]
        ltcc_files = {
            p: (b.blob_id, hub.last_commit(REPO, p)) for p, b in hub.files(REPO).items() if p.startswith("ltcc/")
        }
        card_before = _card(hub)[0]
        _push(env, builds["prcc2"], "prcc")
        out = home / "loaded.json"
        load = subprocess.run(
            [
                sys.executable,
                "-c",
                LOAD_CONFIGS,
                str(out),
                REPO,
                "prcc",
                str(builds["prcc2"]),
                "ltcc",
                str(builds["ltcc"]),
            ],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
        )
        assert load.returncode == 0, load.stderr
        yield {
            "hub": hub,
            "env": env,
            "after_prcc": after_prcc,
            "ltcc_commit": ltcc_commit,
            "ltcc_files": ltcc_files,
            "card_before": card_before,
            "loaded": json.loads(out.read_text()),
        }


def test_each_config_in_its_folder_stale_files_only_in_its_own(round_trip, builds):
    hub = round_trip["hub"]
    assert _config_files(hub, "prcc") == _published(builds["prcc2"], "prcc")  # the first prcc build is gone
    assert _config_files(hub, "ltcc") == _published(builds["ltcc"], "ltcc")
    assert not any(p.startswith("data/") for p in hub.files(REPO))
    assert hub.commit_count == 3  # one commit per push


def test_untouched_config_keeps_its_files_commits_and_card_entries(round_trip):
    hub = round_trip["hub"]
    now = {p: (b.blob_id, hub.last_commit(REPO, p)) for p, b in hub.files(REPO).items() if p.startswith("ltcc/")}
    assert now == round_trip["ltcc_files"]
    assert {commit for _, commit in now.values()} == {round_trip["ltcc_commit"]}
    before, after = round_trip["card_before"], _card(hub)[0]
    for key in ("configs", "dataset_info"):
        assert _entry_text(after, key, "ltcc") == _entry_text(before, key, "ltcc")
    assert _section(after, "ltcc") == _section(before, "ltcc")
    assert _section(after, "prcc") != _section(before, "prcc")  # the rebuilt config's section was replaced


def test_load_each_config_downloaded_and_streamed(round_trip, builds):
    loaded = round_trip["loaded"]
    for config, folder in (("prcc", builds["prcc2"]), ("ltcc", builds["ltcc"])):
        splits = report(folder)["splits"]
        assert {s: len(rows) for s, rows in loaded[config]["local"].items()} == {
            s: info["num_rows"] for s, info in splits.items()
        }
        assert loaded[config]["hub"] == loaded[config]["local"]
        assert loaded[config]["stream"] == loaded[config]["local"]
    assert loaded["prcc"]["hub"]["train"][0]["occluder"].startswith("rectangle")  # the second prcc build
    assert loaded["no_name"] == loaded["prcc"]["local"]  # --default
    assert round_trip["hub"].unhandled == []


def test_card_yaml_sizes_provenance_and_gating(round_trip, builds):
    hub = round_trip["hub"]
    _, header = _card(hub)
    configs = {c["config_name"]: c for c in header["configs"]}
    assert set(configs) == {"prcc", "ltcc"}
    assert configs["prcc"].get("default") is True and "default" not in configs["ltcc"]
    splits = report(builds["ltcc"])["splits"]
    assert configs["ltcc"]["data_files"] == [{"split": s, "path": f"ltcc/{s}-*"} for s in splits]
    infos = {i["config_name"]: i for i in header["dataset_info"]}
    for config, folder in (("prcc", builds["prcc2"]), ("ltcc", builds["ltcc"])):
        info, shards = infos[config], report(folder)["shards"]
        splits = {s["name"]: s for s in info["splits"]}
        for split, entry in report(folder)["splits"].items():
            assert splits[split]["num_examples"] == entry["num_rows"]
            # num_bytes as datasets means it: what load_dataset computes when it prepares the local folder
            assert splits[split]["num_bytes"] == round_trip["loaded"][config]["num_bytes"][split]
        assert info["download_size"] == sum((folder / rel).stat().st_size for rel in shards)
        assert info["dataset_size"] == sum(s["num_bytes"] for s in info["splits"])
    assert set(header["source_datasets"]) == {"extended|prcc", "extended|ltcc"}
    assert header["annotations_creators"] == ["expert-generated", "machine-generated"]
    # --gated on the first push: fields written, repo gated, kept by later pushes without --gated
    assert "extra_gated_prompt" in header and any("accept" in k for k in header["extra_gated_fields"])
    assert hub.repos[REPO].gated == "auto"
    text = _card(hub)[0]
    assert "github.com/1024AILab/Occluded-Cloth-Changing-Person-Re-Identification" in text
    assert (
        "![Sample rows of ltcc: occluded image; occluder tinted red by its alpha, outlined where the alpha "
        "crosses 1/2; part map](ltcc/preview.png)"
    ) in text


def test_verify_repo_and_config_then_a_damaged_shard_is_caught(round_trip, builds, tmp_path):
    hub, env = round_trip["hub"], dict(round_trip["env"], HF_HOME=str(tmp_path / "verify-home"))
    ok = run_builder(env, "verify", REPO)
    assert ok.returncode == 0, ok.stderr
    assert "config prcc" in ok.stdout and "config ltcc" in ok.stdout
    shard = sorted(p for p in hub.files(REPO) if p.startswith("prcc/train-"))[0]
    table = pq.read_table(builds["prcc2"] / "data" / shard.split("/", 1)[1])
    import io

    buffer = io.BytesIO()
    pq.write_table(table.slice(1), buffer)  # a readable shard with other rows
    hub.replace_file(REPO, shard, buffer.getvalue())
    bad = run_builder(env, "verify", REPO, "--config", "prcc")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert f"row count mismatch in {shard}" in bad.stderr or f"sha256 mismatch in {shard}" in bad.stderr


def test_verify_a_local_folder_catches_a_damaged_shard(builds, tmp_path):
    import shutil

    from builder.verify import BuildFolderError, verify

    folder = Path(shutil.copytree(builds["ltcc"], tmp_path / "ltcc"))
    assert [summary.dataset for summary in verify(str(folder))] == ["ltcc"]
    shard = folder / sorted(report(folder)["shards"])[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the image data
    shard.write_bytes(bytes(data))
    with pytest.raises(BuildFolderError, match=f"sha256 mismatch in {shard.relative_to(folder).as_posix()}"):
        verify(str(folder))


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"config": "data"}, "--config 'data' cannot name a config"),
        ({"config": "prc c"}, "--config 'prc c' cannot name a config"),
        ({"default": True}, "--default needs --config NAME"),
    ],
)
def test_push_config_refusals(builds, options, fragment):
    from builder.publish import PushError, push

    with pytest.raises(PushError, match=re.escape(fragment)):  # refused before any file is read or request sent
        push(builds["ltcc"], REPO, **options)


def test_single_build_push_with_gated_then_verify_the_repo(builds, tmp_path):
    with FakeHub() as hub:
        env = user_env(hub, tmp_path / "home")
        repo = "alice/occluded-ltcc"
        proc = run_builder(env, "push", str(builds["ltcc"]), "--repo-id", repo, "--gated")
        assert proc.returncode == 0, proc.stderr
        assert hub.repos[repo].gated == "auto" and "is now gated" in proc.stdout
        _, header = _card(hub, repo)
        assert "extra_gated_prompt" in header and "LTCC" in header["extra_gated_prompt"]
        assert header["configs"][0]["data_files"][0]["path"] == "data/train-*"
        files = {p for p in hub.files(repo) if p != ".gitattributes"}
        assert files == {"README.md", "build_report.json", "preview.png", *report(builds["ltcc"])["shards"]}
        verified = run_builder(env, "verify", repo)
        assert verified.returncode == 0, verified.stderr
        assert f"ok: {repo} build (ltcc)" in verified.stdout
