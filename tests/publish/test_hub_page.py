"""The Hub page as a visitor reads it, and a repo shared with `Dataset.push_to_hub`.

Every push and load runs as a user runs it, in a fresh subprocess against the local Hub stand-in
(tests/hub_server.py; see tests/test_publish.py for the environment). Each `builder push` is
checked the same way: exit status, the first line of its output, no traceback, and the user's
build folders byte for byte unchanged (checksummed before and after).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from hub_server import FakeHub
from test_publish import (
    REPO_ROOT,
    SUBPROCESS_TIMEOUT,
    large_objects,
    local_files,
    report,
    run_builder,
    user_env,
)
from test_publish_configs import _build

PUSH_TO_HUB = r"""
import sys
from datasets import load_dataset

folder, repo_id, config = sys.argv[1:4]
load_dataset(folder).push_to_hub(repo_id, config_name=config)
"""

LOAD = r"""
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
    result[config] = {
        "local": {s: canonical(d) for s, d in load_dataset(folder).items()},
        "hub": {s: canonical(d) for s, d in load_dataset(repo_id, config).items()},
        "stream": {s: canonical(d) for s, d in load_dataset(repo_id, config, streaming=True).items()},
    }
with open(out, "w") as f:
    json.dump(result, f)
"""


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("page")
    return {"prcc": _build(root / "prcc", "prcc", shard_size=8), "ltcc": _build(root / "ltcc", "ltcc", shard_size=8)}


def checksums(*folders: Path) -> dict[str, str]:
    """sha256 of every file under the folders: what the user has before and after a command."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in sorted(f.rglob("*")) if p.is_file()
    }


def builder_push(env, folder: Path, repo_id: str, *options: str) -> subprocess.CompletedProcess:
    """`builder push`, checked: exit 0, first stdout line says where it pushed, no traceback, the
    build folder unchanged."""
    before = checksums(folder)
    proc = run_builder(env, "push", str(folder), "--repo-id", repo_id, *options)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.splitlines()[0].startswith(("created and pushed to ", "pushed to ")), proc.stdout
    assert checksums(folder) == before
    return proc


def run_python(env, script: str, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def card(hub: FakeHub, repo_id: str) -> tuple[str, dict]:
    text = hub.file_bytes(repo_id, "README.md").decode()
    return text, yaml.safe_load(text[3 : text.index("\n---", 3)])


def entries(header: dict, config: str) -> tuple[dict, dict]:
    """The `configs` and `dataset_info` entries of one config of a card header."""
    infos = header["dataset_info"] if isinstance(header["dataset_info"], list) else [header["dataset_info"]]
    return (
        next(c for c in header["configs"] if c["config_name"] == config),
        next(i for i in infos if i["config_name"] == config),
    )


def strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


# ---------------------------------------------------------------------------------------------
# A two-config gated repo, read as a visitor
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gated_repo(builds, tmp_path_factory):
    """prcc pushed with --gated, then ltcc without: the repo a visitor finds."""
    with FakeHub() as hub:
        env = user_env(hub, tmp_path_factory.mktemp("home"))
        first = builder_push(env, builds["prcc"], "alice/occ", "--config", "prcc", "--gated")
        assert "is now gated" in first.stdout
        builder_push(env, builds["ltcc"], "alice/occ", "--config", "ltcc")
        yield hub


def test_gated_prompt_names_every_config_source_and_its_terms(gated_repo):
    from occluded_ccreid.sources import get_source

    _, header = card(gated_repo, "alice/occ")
    prompt, fields = header["extra_gated_prompt"], header["extra_gated_fields"]
    for name in ("prcc", "ltcc"):
        source = get_source(name)
        assert source.pretty_name in prompt and source.homepage in prompt
        assert any(source.pretty_name in field for field, kind in fields.items() if kind == "checkbox")
    assert gated_repo.repos["alice/occ"].gated == "auto"


def test_license_file_lists_each_source_terms_and_the_card_links_it(gated_repo):
    from occluded_ccreid.sources import get_source

    _, header = card(gated_repo, "alice/occ")
    assert (header["license"], header["license_link"]) == ("other", "LICENSE.md")
    licence = gated_repo.file_bytes("alice/occ", "LICENSE.md").decode()
    for name in ("prcc", "ltcc"):
        source = get_source(name)
        assert f"## {source.pretty_name}" in licence and source.homepage in licence


def test_card_sections_provenance_and_columns(gated_repo):
    text, header = card(gated_repo, "alice/occ")
    assert header["annotations_creators"] == ["expert-generated", "machine-generated"]
    for heading in ("## Bias, Risks, and Limitations", "## Personal and Sensitive Information"):
        assert heading in text
    assert "not how much of the real person is hidden" in text  # occluded_ratio is not real occlusion
    assert "identified" in text and "terms of use" in text
    parsing_row = next(line for line in text.splitlines() if line.startswith("| `parsing` |"))
    assert "0 is background, 1..6 the parts" in parsing_row
    assert "The paper states no year or venue" in text  # the paper text gives none: said, not invented


def test_card_passes_the_dataset_card_data_round_trip_with_every_key(gated_repo, builds):
    from huggingface_hub import DatasetCard, DatasetCardData

    for text in (card(gated_repo, "alice/occ")[0], (builds["prcc"] / "README.md").read_text()):
        header = yaml.safe_load(text[3 : text.index("\n---", 3)])
        data = DatasetCard(text).data
        assert data.to_dict() == header
        again = DatasetCardData(**yaml.safe_load(data.to_yaml()))
        assert again.to_dict() == header


def test_published_reports_hold_no_local_path(gated_repo, builds):
    for config, folder in (("prcc", builds["prcc"]), ("ltcc", builds["ltcc"])):
        published = json.loads(gated_repo.file_bytes("alice/occ", f"{config}/build_report.json"))
        assert published["source_dir"] == report(folder)["source_dir"] == Path(report(folder)["source_dir"]).name
        assert not [s for s in strings(published) if s.startswith("/")]


def test_an_old_report_with_an_absolute_source_folder_verifies_and_pushes_without_it(builds, tmp_path):
    folder = Path(shutil.copytree(builds["ltcc"], tmp_path / "old"))
    path = folder / "build_report.json"
    old = json.loads(path.read_text())
    old["source_dir"] = "/home/someone/datasets/LTCC_ReID"  # as builds before this version recorded it
    path.write_text(json.dumps(old, indent=2) + "\n")
    verified = run_builder(user_env("http://127.0.0.1:9", tmp_path / "v"), "verify", str(folder))
    assert verified.returncode == 0 and verified.stdout.startswith(f"ok: {folder} build (ltcc)"), verified.stderr
    with FakeHub() as hub:
        proc = builder_push(user_env(hub, tmp_path / "home"), folder, "alice/old")
        assert "note: build_report.json records local path(s) (/home/someone/datasets/LTCC_ReID" in proc.stdout
        published = json.loads(hub.file_bytes("alice/old", "build_report.json"))
        assert published["source_dir"] == "LTCC_ReID"
        assert not [s for s in strings(published) if s.startswith("/")]
        assert {k: v for k, v in published.items() if k not in ("source_dir", "parser")} == {
            k: v for k, v in old.items() if k not in ("source_dir", "parser")
        }


# ---------------------------------------------------------------------------------------------
# A connection that drops during the LFS upload
# ---------------------------------------------------------------------------------------------


def test_connection_lost_during_lfs_upload_is_one_line_and_a_rerun_resumes(builds, tmp_path):
    folder = builds["prcc"]
    before = checksums(folder)
    with FakeHub() as hub:
        env = user_env(hub, tmp_path / "home")
        objects = large_objects(folder)  # the shards and the preview, sent as LFS objects
        hub.drop_uploads_after(len(objects) - 1)  # all but one arrive; the last one's connection drops
        proc = run_builder(env, "push", str(folder), "--repo-id", "alice/drop")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and errors[0] == proc.stderr.splitlines()[-1], proc.stderr
        assert errors[0].startswith(
            f"error: lost the connection to the Hub at {hub.endpoint} while uploading to alice/drop@main"
        ), errors[0]
        assert "run the same command again" in errors[0]
        # what came before the error are the Hub client's own retry notices, nothing else
        assert all("Retry" in line or "thrown while requesting" in line for line in proc.stderr.splitlines()[:-1])
        assert hub.commit_count == 0 and checksums(folder) == before

        arrived = list(hub.uploaded_objects)
        assert len(arrived) == len(objects) - 1
        hub.drop_uploads_after(10**6)
        builder_push(env, folder, "alice/drop")
        assert hub.uploaded_objects[len(arrived) :] == sorted(set(objects) - set(arrived))  # only what was missing
        published = {p: b.content for p, b in hub.files("alice/drop").items() if p != ".gitattributes"}
        assert published == local_files(folder)


def test_a_transfer_failure_without_an_http_error_is_explained_during_the_upload_only():
    from builder.hub_errors import explain
    from builder.publish import _Context

    ctx = _Context("https://hub.example", "alice/x", "alice", "x", None, "HF_TOKEN", stage="uploading to alice/x@main")
    xet = RuntimeError("Data processing error: CAS service error : Reqwest error: connection closed before message")
    error = explain(xet, ctx)
    assert error is not None and str(error).startswith(
        "the upload to the Hub at https://hub.example failed while uploading to alice/x@main (RuntimeError: Data "
        "processing error"
    )
    assert "run the same command again" in str(error)
    ctx.stage = "merging the dataset card of alice/x@main"
    assert explain(RuntimeError("a bug"), ctx) is None  # not a transfer: stays a bug, with its traceback


# ---------------------------------------------------------------------------------------------
# Our configs beside configs pushed by `datasets`
# ---------------------------------------------------------------------------------------------


def test_the_stand_in_answers_a_missing_tree_path_with_404_as_the_hub():
    with FakeHub() as hub:
        hub.create_repo("alice/tree")
        url = f"{hub.endpoint}/api/datasets/alice/tree/tree/main/no-such-folder"
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(url, timeout=10)
        assert info.value.code == 404 and info.value.headers["X-Error-Code"] == "EntryNotFound"
        with urllib.request.urlopen(f"{hub.endpoint}/api/datasets/alice/tree/tree/main", timeout=10) as answer:
            assert [entry["path"] for entry in json.load(answer)] == [".gitattributes"]


@pytest.mark.parametrize("ours_first", [False, True], ids=["datasets-first", "builder-first"])
def test_a_config_pushed_by_datasets_and_one_by_builder_push_both_load(builds, tmp_path, ours_first):
    repo = "alice/mixed"
    with FakeHub() as hub:
        env = user_env(hub, tmp_path / "home")
        before = checksums(builds["prcc"], builds["ltcc"])
        if ours_first:
            builder_push(env, builds["prcc"], repo, "--config", "ours")
            run_python(env, PUSH_TO_HUB, str(builds["ltcc"]), repo, "theirs")
        else:
            run_python(env, PUSH_TO_HUB, str(builds["ltcc"]), repo, "theirs")
            theirs = entries(card(hub, repo)[1], "theirs")
            builder_push(env, builds["prcc"], repo, "--config", "ours")
            assert entries(card(hub, repo)[1], "theirs") == theirs  # datasets' config entries are kept
        assert checksums(builds["prcc"], builds["ltcc"]) == before
        _, header = card(hub, repo)
        assert {c["config_name"] for c in header["configs"]} == {"ours", "theirs"}

        out = tmp_path / "loaded.json"
        run_python(env, LOAD, str(out), repo, "ours", str(builds["prcc"]), "theirs", str(builds["ltcc"]))
        loaded = json.loads(out.read_text())
        for config, folder in (("ours", builds["prcc"]), ("theirs", builds["ltcc"])):
            assert {s: len(rows) for s, rows in loaded[config]["local"].items()} == {
                s: info["num_rows"] for s, info in report(folder)["splits"].items()
            }
            assert loaded[config]["hub"] == loaded[config]["local"]
            assert loaded[config]["stream"] == loaded[config]["local"]
        verified = run_builder(dict(env, HF_HOME=str(tmp_path / "verify")), "verify", repo, "--config", "ours")
        assert verified.returncode == 0, verified.stderr
        assert verified.stdout.startswith(f"ok: {repo} config ours (prcc)")
        assert hub.unhandled == []


def test_num_bytes_as_load_dataset_records_it_and_how_push_to_hub_estimates_it(builds, tmp_path):
    """Documented decision (docs/publishing.md): the card's `num_bytes` is the Arrow size `load_dataset`
    records when it prepares a split; `Dataset.push_to_hub` writes an estimate that leaves out the
    image structs' `path` strings (null here: ~4 bytes of offsets each), 3 image columns -> ~13 bytes a row,
    and likewise the null `source` strings of the `occluders` list (~4 bytes per drawn occluder)."""
    with FakeHub() as hub:
        env = user_env(hub, tmp_path / "home")
        builder_push(env, builds["ltcc"], "alice/sizes", "--config", "ours")
        run_python(env, PUSH_TO_HUB, str(builds["ltcc"]), "alice/sizes", "theirs")
        _, header = card(hub, "alice/sizes")
    infos = {i["config_name"]: {s["name"]: s for s in i["splits"]} for i in header["dataset_info"]}
    image_columns = 3  # image, occlusion_mask, parsing
    for split, ours in infos["ours"].items():
        theirs, rows = infos["theirs"][split], ours["num_examples"]
        assert theirs["num_examples"] == rows
        # plus, per drawn occluder (one per row at most here), the null `source` string of `occluders`
        assert 4 * image_columns * rows <= ours["num_bytes"] - theirs["num_bytes"] <= (4 * image_columns + 6) * rows
