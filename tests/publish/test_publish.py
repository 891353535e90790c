"""Publishing a build folder: verification, `builder push`, and loading the dataset back.

Nothing here talks to the real Hub. `tests/support/hub_server.py` runs a local stand-in of the Hub's HTTP
protocol in a thread of the test process, and the real `huggingface_hub` and `datasets` clients are
pointed at it with `HF_ENDPOINT`, the library's standard setting; no client function is patched.

Environment isolation. Every user-facing step (`builder push ...`, `load_dataset(...)`) runs in a
fresh Python subprocess, exactly as a user runs it, with an environment built by `user_env`:

* `HF_ENDPOINT` = the stand-in server; `HF_HOME` / `HF_DATASETS_CACHE` = a per-test tmp dir, so no
  saved login, cache or token of the machine leaks in (a saved login is written there when a test
  needs one, the way `hf auth login` stores it);
* `HF_HUB_OFFLINE=0` / `HF_DATASETS_OFFLINE=0`: the suite runs with `HF_HUB_OFFLINE=1`, which these
  tests must lift for their own subprocesses only;
* `HF_HUB_DISABLE_XET=1`: with `hf_xet` installed, huggingface_hub 2.x uploads through the Xet
  storage service without asking the server first; the stand-in speaks the Hub's LFS protocol, so the
  client's own documented switch selects it (see hub_server's docstring);
* every other `HF_*` / `HUGGING_FACE_*` variable is dropped; progress bars and telemetry are off.

Why subprocesses rather than monkeypatching: `huggingface_hub.constants` and `datasets.config` read
these variables once, at import, and the test process has already imported both in offline mode;
patching their module attributes would depend on which copies each function reads. A new interpreter
reads them like a user's does, and costs about half a second.

The CLI is driven as `builder push OUT_DIR --repo-id ...` through `builder.cli.main(argv)` as soon
as that has a `push` subcommand (`cli_mode` asks it once per session); until then `RUN_CLI` runs a
shim with the same arguments and behaviour (PushError on stderr, exit status 2), which is also the
wiring the CLI is expected to have. `test_builder_push_is_wired_into_the_cli` is skipped, visibly,
while the shim is in use.

The build folder is a real build (`builder.pipeline.build`) of the synthetic PRCC tree of
tests/support/synthetic.py, made once per module by `make_build_folder`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import READ_ONLY_TOKEN, VALID_TOKEN, FakeHub

from builder.publish import PushError, check_repo_id
from builder.verify import BuildFolderError, verify_build_folder

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBPROCESS_TIMEOUT = 120
SHARD_SIZE = 8  # rows per shard: several shards per split, one LFS object each


# ---------------------------------------------------------------------------------------------
# The build folder
# ---------------------------------------------------------------------------------------------


def make_build_folder(out: Path, shard_size: int = SHARD_SIZE) -> Path:
    """A real build (`builder build prcc`) of the synthetic PRCC tree of tests/support/synthetic.py, with
    the true part maps as `--parsing-dir`: the folder format `push` publishes, as the builder writes it."""
    from synthetic import make_prcc_tree

    from builder.pipeline import BuildConfig, build

    tree = make_prcc_tree(out.parent / f"{out.name}-source")
    build(BuildConfig("prcc", tree.root, out, parsing_dir=tree.parsing_dir, shard_size=shard_size, progress=False))
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return make_build_folder(tmp_path_factory.mktemp("build") / "occluded-prcc")


@pytest.fixture
def build(built, tmp_path) -> Path:
    """A private copy of the build folder, free to tamper with."""
    return Path(shutil.copytree(built, tmp_path / "out"))


@pytest.fixture
def hub():
    with FakeHub() as server:
        yield server


# ---------------------------------------------------------------------------------------------
# Driving the CLI and datasets as a user would
# ---------------------------------------------------------------------------------------------

RUN_CLI = r"""
import sys


def shim(argv):  # the wiring `builder push` is expected to have, used until builder.cli has it
    import argparse
    from builder.publish import PushError, push

    parser = argparse.ArgumentParser(prog="builder")
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("push", help="publish a build folder as a dataset repo on the Hub")
    cmd.add_argument("out_dir")
    cmd.add_argument("--repo-id", required=True)
    cmd.add_argument("--private", action="store_true")
    cmd.add_argument("--revision")
    cmd.add_argument("--token")
    cmd.add_argument("--message")
    args = parser.parse_args(argv)
    try:
        result = push(args.out_dir, args.repo_id, private=args.private, revision=args.revision,
                      token=args.token, message=args.message)
    except PushError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


if __name__ == "__main__":
    mode, argv = sys.argv[1], sys.argv[2:]
    if mode == "cli":
        from builder.cli import main
    else:
        main = shim
    sys.exit(main(argv))
"""

LOAD_BACK = r"""
import hashlib, json, sys
from datasets import Image, load_dataset

def canonical(dataset):
    for name, feature in dataset.features.items():
        if isinstance(feature, Image):
            dataset = dataset.cast_column(name, Image(decode=False))
    rows = []
    for row in dataset:
        rows.append({k: hashlib.sha256(v["bytes"]).hexdigest() if isinstance(v, dict) else v for k, v in row.items()})
    return rows

local_folder, repo_id, out = sys.argv[1:4]
result = {}
for label, source, streaming in [
    ("local", local_folder, False), ("hub", repo_id, False), ("hub_streaming", repo_id, True)
]:
    loaded = load_dataset(source, streaming=streaming)
    result[label] = {name: {"features": ds.features.to_dict(), "rows": canonical(ds)} for name, ds in loaded.items()}
with open(out, "w") as f:
    json.dump(result, f)
"""


def user_env(hub_or_endpoint, home: Path, token: str | None = VALID_TOKEN, **extra: str) -> dict[str, str]:
    """The environment of a user whose HF_ENDPOINT is the stand-in Hub (see the module docstring)."""
    endpoint = hub_or_endpoint if isinstance(hub_or_endpoint, str) else hub_or_endpoint.endpoint
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_"))}
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(home),
        HF_DATASETS_CACHE=str(home / "datasets"),
        HF_HUB_OFFLINE="0",
        HF_DATASETS_OFFLINE="0",
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_DATASETS_DISABLE_PROGRESS_BARS="1",
        NO_PROXY="127.0.0.1,localhost",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    if token is not None:
        env["HF_TOKEN"] = token
    env.update(extra)
    return env


@functools.cache
def cli_mode() -> str:
    """ "cli" when `builder.cli.main` has the `push` subcommand, else "shim" (see RUN_CLI)."""
    try:
        from builder.cli import main
    except ModuleNotFoundError as exc:
        if exc.name != "builder.cli":
            raise
        return "shim"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(["push", "--help"])
        except SystemExit as stop:
            return "cli" if stop.code == 0 else "shim"
    return "shim"


def builder_cmd(*argv: str) -> list[str]:
    """The command line of `builder ARGV...`: the real CLI once it has `push`, the shim until then."""
    return [sys.executable, "-c", RUN_CLI, cli_mode(), *argv]


def run_builder(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        builder_cmd(*argv), env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT
    )


def push_as_user(env: dict[str, str], folder: Path, repo_id: str, *options: str) -> subprocess.CompletedProcess:
    """`builder push FOLDER --repo-id REPO_ID [options]`."""
    return run_builder(env, "push", str(folder), "--repo-id", repo_id, *options)


def assert_refused(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2 and one stderr line holding every fragment; returns that line."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if all(f in line for f in fragments)]
    assert lines, f"no stderr line holds all of {fragments}:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def report(folder: Path) -> dict:
    return json.loads((folder / "build_report.json").read_text())


def large_objects(folder: Path) -> dict[str, int]:
    """sha256 -> size of the files a push sends as LFS objects: the shards and the preview picture."""
    paths = [folder / rel for rel in report(folder)["shards"]]
    paths += [folder / "preview.png"] if (folder / "preview.png").is_file() else []
    return {_sha256(path): path.stat().st_size for path in paths}


def local_files(folder: Path) -> dict[str, bytes]:
    """The files a push publishes: card, report, shards and the optional preview picture; the
    report as it is published (`published_report`)."""
    names = ["README.md", *report(folder)["shards"]]
    names += ["preview.png"] if (folder / "preview.png").is_file() else []
    return {**{name: (folder / name).read_bytes() for name in names}, "build_report.json": published_report(folder)}


def published_report(folder: Path) -> bytes:
    """The report a push publishes, computed here on its own: these builds read precomputed part maps,
    whose folder the parser records by its absolute path; only its name is published."""
    data = report(folder)
    parser = data["parser"]
    assert Path(parser["parsing_dir"]).is_absolute() and not Path(data["source_dir"]).is_absolute()
    parser["parsing_dir"] = Path(parser["parsing_dir"]).name
    return (json.dumps(data, indent=2) + "\n").encode()


def hub_files(hub: FakeHub, repo_id: str, revision: str = "main") -> dict[str, bytes]:
    paths = [path for path in hub.files(repo_id, revision) if path != ".gitattributes"]
    return {path: hub.file_bytes(repo_id, path, revision) for path in paths}


def upload_requests(hub: FakeHub, since: int = 0) -> list[tuple[str, str, int]]:
    """Requests that upload or pre-upload content (preupload, LFS batch, LFS PUT, commit)."""
    return [
        r
        for r in hub.requests[since:]
        if r[0] in ("PUT", "POST") and any(k in r[1] for k in ("/preupload/", "/lfs/", "/_lfs/", "/commit/"))
    ]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edit_report(folder: Path, edit) -> None:
    path = folder / "build_report.json"
    report = json.loads(path.read_text())
    edit(report)
    path.write_text(json.dumps(report, indent=2))


def _rewrite_shard(path: Path, transform) -> None:
    """Rewrite a Parquet shard through pyarrow, keeping its schema metadata (a 'valid' tampering)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    pq.write_table(transform(table), path)


# ---------------------------------------------------------------------------------------------
# verify_build_folder
# ---------------------------------------------------------------------------------------------


def test_verify_accepts_a_complete_build_and_ignores_hidden_folders(build):
    # What other tools may leave in a folder is not published and must not make it fail.
    (build / ".cache" / "huggingface").mkdir(parents=True)
    (build / ".cache" / "huggingface" / "stale.parquet").write_bytes(b"not parquet")
    (build / "notes.txt").write_text("build log")

    summary = verify_build_folder(build)

    splits = report(build)["splits"]
    assert summary.dataset == "prcc"
    assert summary.splits == {split: info["num_rows"] for split, info in splits.items()}
    assert summary.num_rows == sum(info["num_rows"] for info in splits.values()) > 0
    assert set(summary.files) == set(local_files(build))
    for rel, info in summary.files.items():
        assert (info.size, info.sha256) == ((build / rel).stat().st_size, _sha256(build / rel))


def _missing_report(folder):
    (folder / "build_report.json").unlink()


def _missing_card(folder):
    (folder / "README.md").unlink()


def _missing_shard(folder):
    (folder / "data/query-00001-of-00002.parquet").unlink()


def _extra_parquet(folder):
    shutil.copy(folder / "data/train-00000-of-00003.parquet", folder / "data/train-00003-of-00004.parquet")


def _unreadable_shard(folder):
    # Bytes that are not Parquet, recorded as such in the report: only readability can catch it.
    shard = folder / "data/gallery-00000-of-00001.parquet"
    shard.write_bytes(b"PAR1 this is not a parquet file")
    _edit_report(folder, lambda r: r["shards"]["data/gallery-00000-of-00001.parquet"].update(sha256=_sha256(shard)))


def _row_count_mismatch(folder):
    # A valid shard with rows dropped, whose sha256 was updated: the report's row count catches it.
    shard = folder / "data/query-00000-of-00002.parquet"
    _rewrite_shard(shard, lambda table: table.slice(0, 2))
    _edit_report(folder, lambda r: r["shards"]["data/query-00000-of-00002.parquet"].update(sha256=_sha256(shard)))


def _sha256_mismatch(folder):
    # Same rows, other values: the only trace is the content hash.
    import pyarrow as pa

    def change_pids(table):
        index = table.schema.get_field_index("pid")
        return table.set_column(index, table.schema.field(index), pa.array([99] * table.num_rows, pa.int32()))

    _rewrite_shard(folder / "data/train-00001-of-00003.parquet", change_pids)


@pytest.mark.parametrize(
    "tamper, expected",
    [
        (_missing_report, ["missing build report build_report.json"]),
        (_missing_card, ["missing dataset card README.md"]),
        (_missing_shard, ["missing shard data/query-00001-of-00002.parquet", "listed in build_report.json"]),
        (
            _extra_parquet,
            ["unexpected parquet file data/train-00003-of-00004.parquet", "not listed in build_report.json"],
        ),
        (_unreadable_shard, ["unreadable shard data/gallery-00000-of-00001.parquet"]),
        (
            _row_count_mismatch,
            [
                "row count mismatch in data/query-00000-of-00002.parquet",
                "has 2 rows",
                f"build_report.json says {SHARD_SIZE}",
            ],
        ),
        (_sha256_mismatch, ["sha256 mismatch in data/train-00001-of-00003.parquet"]),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_verify_refuses_incomplete_or_tampered_folder(build, tamper, expected):
    tamper(build)
    with pytest.raises(BuildFolderError) as info:
        verify_build_folder(build)
    for fragment in expected:
        assert fragment in str(info.value)


def test_verify_refuses_a_card_pointing_at_no_shard(build):
    card = build / "README.md"
    text = card.read_text()
    assert "path: data/query-*" in text
    card.write_text(text.replace("path: data/query-*", "path: data/queries-*"))
    with pytest.raises(BuildFolderError) as info:
        verify_build_folder(build)
    assert "README.md: config 'default' split 'query' points at 'data/queries-*'" in str(info.value)


def test_push_refuses_a_tampered_folder_before_any_request(build, hub, tmp_path):
    _sha256_mismatch(build)
    proc = push_as_user(user_env(hub, tmp_path / "home"), build, "alice/prcc")
    assert_refused(
        proc, "refusing to push", "sha256 mismatch in data/train-00001-of-00003.parquet", "nothing was uploaded"
    )
    assert hub.requests == []


# ---------------------------------------------------------------------------------------------
# The round trip
# ---------------------------------------------------------------------------------------------


def test_push_then_push_again_then_load_back(build, hub, tmp_path):
    env = user_env(hub, tmp_path / "home")  # token from HF_TOKEN

    first = push_as_user(env, build, "alice/occluded-prcc", "--private", "--message", "v1")
    assert first.returncode == 0, first.stderr
    repo = hub.repos["alice/occluded-prcc"]
    assert repo.private
    assert hub_files(hub, "alice/occluded-prcc") == local_files(build)
    assert sorted(hub.uploaded_objects) == sorted(large_objects(build)) and hub.commit_count == 1
    assert repo.commits[repo.branches["main"]].title == "v1"
    uploaded_bytes = hub.uploaded_bytes

    # The same folder again: nothing is uploaded, no commit is made.
    mark = len(hub.requests)
    second = push_as_user(env, build, "alice/occluded-prcc")
    assert second.returncode == 0, second.stderr
    assert upload_requests(hub, mark) == []
    assert len(hub.uploaded_objects) == len(large_objects(build))
    assert (hub.uploaded_bytes, hub.commit_count) == (uploaded_bytes, 1)

    # Loading back, downloaded and streamed, gives the rows and features of the local folder.
    out = tmp_path / "loaded.json"
    load = subprocess.run(
        [sys.executable, "-c", LOAD_BACK, str(build), "alice/occluded-prcc", str(out)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert load.returncode == 0, load.stderr
    loaded = json.loads(out.read_text())
    splits = report(build)["splits"]
    assert {split: len(data["rows"]) for split, data in loaded["local"].items()} == {
        split: info["num_rows"] for split, info in splits.items()
    }
    assert loaded["hub"] == loaded["local"]
    assert loaded["hub_streaming"] == loaded["local"]
    assert hub.unhandled == []


def test_push_resumes_after_the_process_is_killed_mid_upload(build, hub, tmp_path):
    env = user_env(hub, tmp_path / "home", token=None)
    args = ["push", str(build), "--repo-id", "alice/prcc", "--token", VALID_TOKEN]

    hub.hang_uploads_after(2)  # two shards arrive, the next uploads hang: the user kills the push
    proc = subprocess.Popen(builder_cmd(*args), env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while not hub.upload_blocked.wait(timeout=0.1):
            assert proc.poll() is None, f"the push ended before the upload hung: {proc.communicate()}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    hub.release_uploads()
    first = list(hub.uploaded_objects)
    assert len(first) == 2
    assert set(hub.files("alice/prcc")) == {".gitattributes"}  # nothing committed

    mark, bytes_before = len(hub.requests), hub.uploaded_bytes
    resumed = run_builder(env, *args)
    assert resumed.returncode == 0, resumed.stderr
    assert hub_files(hub, "alice/prcc") == local_files(build)
    objects = large_objects(build)
    rest = hub.uploaded_objects[2:]
    assert sorted(rest) == sorted(set(objects) - set(first))  # exactly what had not arrived
    assert hub.uploaded_bytes - bytes_before == sum(objects[oid] for oid in rest)
    assert len([r for r in hub.requests[mark:] if r[0] == "PUT" and r[2] == 200]) == len(objects) - 2
    assert hub.commit_count == 1


def test_push_resumes_after_the_connection_drops_at_commit(build, hub, tmp_path):
    env = user_env(hub, tmp_path / "home")
    args = ["push", str(build), "--repo-id", "alice/prcc"]

    hub.drop_next_commit()
    dropped = run_builder(env, *args)
    assert_refused(
        dropped,
        f"lost the connection to the Hub at {hub.endpoint} while uploading to alice/prcc@main",
        "check your network connection",
        "run the same command again",
    )
    assert sorted(hub.uploaded_objects) == sorted(large_objects(build)) and hub.commit_count == 0

    mark = len(hub.requests)
    resumed = run_builder(env, *args)
    assert resumed.returncode == 0, resumed.stderr
    assert len(hub.uploaded_objects) == len(large_objects(build))  # all had arrived: none is sent again
    assert [r for r in hub.requests[mark:] if r[0] == "PUT"] == []
    assert hub.commit_count == 1
    assert hub_files(hub, "alice/prcc") == local_files(build)


def test_a_new_build_replaces_the_old_one_in_one_commit(built, hub, tmp_path):
    env = user_env(hub, tmp_path / "home")
    assert push_as_user(env, built, "alice-lab/prcc").returncode == 0
    before = set(hub.uploaded_objects)

    # Rebuilt with other shard sizes: most shards change, their number too; a split that fits in
    # one shard either way (gallery) gives the same file, which must not be sent again.
    rebuilt = make_build_folder(tmp_path / "rebuilt", shard_size=6)
    assert set(report(rebuilt)["shards"]) != set(report(built)["shards"])
    proc = push_as_user(env, rebuilt, "alice-lab/prcc")
    assert proc.returncode == 0, proc.stderr
    assert hub_files(hub, "alice-lab/prcc") == local_files(rebuilt)  # no shard of the old build is left
    new = hub.uploaded_objects[len(before) :]
    reused = set(large_objects(rebuilt)) & before
    assert reused and sorted(new) == sorted(set(large_objects(rebuilt)) - before)
    assert hub.commit_count == 2


def test_push_to_an_existing_branch(build, hub, tmp_path):
    hub.create_repo("alice/prcc")
    hub.create_branch("alice/prcc", "dev")
    proc = push_as_user(user_env(hub, tmp_path / "home"), build, "alice/prcc", "--revision", "dev")
    assert proc.returncode == 0, proc.stderr
    assert hub_files(hub, "alice/prcc", "dev") == local_files(build)
    assert hub_files(hub, "alice/prcc", "main") == {}


# ---------------------------------------------------------------------------------------------
# Errors a user meets: one line, cause and fix
# ---------------------------------------------------------------------------------------------


def test_no_token(build, hub, tmp_path):
    proc = push_as_user(user_env(hub, tmp_path / "home", token=None), build, "alice/prcc")
    assert_refused(proc, "no Hugging Face token found", "run `hf auth login`", "set HF_TOKEN", "pass --token")
    assert hub.requests == []


@pytest.mark.parametrize("source", ["--token", "HF_TOKEN", "saved login"])
def test_invalid_token(build, hub, tmp_path, source):
    home = tmp_path / "home"
    env = user_env(hub, home, token="hf_not_a_valid_token" if source == "HF_TOKEN" else None)
    options = ["--token", "hf_not_a_valid_token"] if source == "--token" else []
    if source == "saved login":
        (home / "token").write_text("hf_not_a_valid_token")  # where `hf auth login` keeps it
    proc = push_as_user(env, build, "alice/prcc", *options)
    where = {"--token": "the --token value", "HF_TOKEN": "the HF_TOKEN environment variable"}.get(source)
    assert_refused(
        proc,
        f"rejected the token from {where or 'the saved login'} (401 Unauthorized)",
        f"create a token with write access at {hub.endpoint}/settings/tokens",
        "hf auth login",
    )
    assert hub.repos == {}


def test_read_only_token(build, hub, tmp_path):
    proc = push_as_user(user_env(hub, tmp_path / "home", token=READ_ONLY_TOKEN), build, "alice/prcc")
    assert_refused(proc, "(user 'alice') is read-only", "create a token with write access")
    assert hub.repos == {}


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
def test_repo_owned_by_someone_else(build, hub, tmp_path, private):
    hub.create_repo("bob/prcc", private=private)
    before = hub.files("bob/prcc")
    proc = push_as_user(user_env(hub, tmp_path / "home"), build, "bob/prcc")
    assert_refused(
        proc,
        "user 'alice' may not write to dataset repo bob/prcc (403 Forbidden",
        "the namespace 'bob' belongs to someone else",
        "push to a namespace you own (e.g. --repo-id alice/prcc)",
    )
    assert hub.files("bob/prcc") == before and hub.uploaded_objects == []


def test_network_unreachable(build, tmp_path):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    proc = push_as_user(user_env(endpoint, tmp_path / "home"), build, "alice/prcc")
    assert_refused(proc, f"cannot reach the Hub at {endpoint}", "ConnectError", "check your network connection")


def test_revision_that_does_not_exist(build, hub, tmp_path):
    hub.create_repo("alice/prcc")
    proc = push_as_user(user_env(hub, tmp_path / "home"), build, "alice/prcc", "--revision", "v2")
    assert_refused(
        proc,
        "branch 'v2' does not exist in dataset repo alice/prcc (branches: main)",
        "create it with `hf repos branch create alice/prcc v2 --repo-type dataset`",
        "or omit --revision",
    )
    assert hub.uploaded_objects == [] and hub.commit_count == 0


def test_repo_id_that_is_not_namespace_slash_name(build, hub, tmp_path):
    proc = push_as_user(user_env(hub, tmp_path / "home"), build, "occluded-prcc")
    assert_refused(proc, "--repo-id 'occluded-prcc' is not of the form NAMESPACE/NAME", "YOUR_USER/occluded-prcc")
    assert hub.requests == []


@pytest.mark.parametrize(
    "repo_id", ["prcc", "alice/prcc/v2", "alice/", "/prcc", "alice/pr cc", "alice/-prcc", "a--b/prcc"]
)
def test_check_repo_id_rejects(repo_id):
    with pytest.raises(PushError, match="is not of the form NAMESPACE/NAME"):
        check_repo_id(repo_id)


@pytest.mark.parametrize("repo_id", ["alice/prcc", "alice-lab/Occluded_PRCC.v1", "a/b"])
def test_check_repo_id_accepts(repo_id):
    assert check_repo_id(repo_id) == tuple(repo_id.split("/"))


def test_offline_mode(build, hub, tmp_path):
    proc = push_as_user(user_env(hub, tmp_path / "home", HF_HUB_OFFLINE="1"), build, "alice/prcc")
    assert_refused(proc, "HF_HUB_OFFLINE is set", "unset HF_HUB_OFFLINE to push")
    assert hub.requests == []


def test_push_error_is_one_line():
    assert str(PushError("cause:\n  details\n\tfix")) == "cause: details fix"


def test_builder_push_is_wired_into_the_cli():
    if cli_mode() != "cli":
        pytest.skip("builder.cli has no `push` yet: the push tests run builder.publish.push through RUN_CLI's shim")
    usage = subprocess.run(
        [sys.executable, "-c", "from builder.cli import main; main(['push', '--help'])"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    for option in ("--repo-id", "--private", "--revision", "--token", "--message"):
        assert option in usage.stdout
