"""Publish a finished build folder as a dataset repository on the Hugging Face Hub.

Two entry points:

* `verify_build_folder(path)` checks that a folder is one complete, untouched build (report,
  card, every shard present, readable, with the rows and the bytes the report recorded) and
  raises `BuildFolderError` naming the file and what is wrong otherwise.
* `push(folder, repo_id, ...)` verifies the folder, then publishes it with `huggingface_hub`.
  Every failure a user can meet is raised as `PushError`, whose text is one line: the cause,
  then the fix.

How the upload is done, and why
-------------------------------
The folder is published as **one commit made with `HfApi.create_commit`** (pre-upload of the
large files, then a single commit of every changed file), after comparing the folder with the
files already on the target branch:

* A dataset must never be visible half-updated: the card's `configs` point at `data/<split>-*`,
  so a commit holding some new shards next to old ones would silently mix two builds. One commit
  per push keeps the branch at either the old build or the new one. huggingface_hub 2.4 has no
  `upload_large_folder` any more; its `upload_folder` commits large folders in several parts
  and resumes only through the Xet protocol. The former `upload_large_folder` also kept its
  progress in a `.cache/huggingface/` folder written *inside* the uploaded folder, an unwanted
  side effect on a build folder (`verify_build_folder` ignores such hidden folders anyway).
* Nothing is uploaded twice. Before committing, `push` lists the branch and drops every file
  whose remote content is already identical (sha256 for large files, git blob id for small
  ones), so pushing the same folder again sends no data and makes no commit. Shards left on the
  branch by an earlier build that this build does not have are deleted in the same commit.
* An interrupted push resumes. Large files go to the Hub's content-addressed storage before the
  commit is made; objects that arrived before a killed process or a dropped connection stay
  there. On the next run the Hub answers the pre-upload with "already present" for them (LFS
  batch API without an upload action, or already-stored chunks for Xet), so only the rest is
  sent, then the commit is made.
* The commit names the branch head it was computed against (`parent_commit`): if someone else
  pushes in between, the commit is refused instead of overwriting their work, and running the
  command again recomputes the difference.

The endpoint is huggingface_hub's standard setting (`HF_ENDPOINT`, read when the library is
imported); the token comes from `token=` or, like every Hugging Face tool, from `HF_TOKEN` or
the saved login (`hf auth login`). The transfer protocol (Xet when `hf_xet` is installed, plain
LFS otherwise or with `HF_HUB_DISABLE_XET=1`) is left to the library.

A branch given with `revision` must already exist: a mistyped branch name would otherwise
publish the dataset where nobody looks. The error says how to create it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.report import REPORT_NAME  # "build_report.json"

CARD_NAME = "README.md"
PREVIEW_NAME = "preview.png"
DATA_DIR = "data"

_SHARD_RE = re.compile(r"^data/(?P<split>[A-Za-z0-9_.]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")
# The Hub's rule for a repo name part: letters, digits, "-", "_", "."; no "--" or ".."; at most 96 chars.
_REPO_PART_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_HASH_CHUNK = 1 << 20


class BuildFolderError(ValueError):
    """The folder is not one complete, untouched build; the message names the file and the problem."""


class PushError(Exception):
    """A push failed for a reason the user can act on. `str()` is one line: cause, then fix."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


@dataclass
class PushResult:
    """What `push` did."""

    repo_id: str
    revision: str
    url: str  # web page of the dataset (of the branch when it is not main)
    created_repo: bool  # the repo did not exist and was created by this push
    private: bool | None  # visibility of the repo after the push, as the Hub reports it
    commit_oid: str | None  # None when the branch already held this exact build
    commit_url: str | None
    changed_files: list[str] = field(default_factory=list)  # committed: new or different on the branch
    unchanged_files: list[str] = field(default_factory=list)  # already identical on the branch
    deleted_files: list[str] = field(default_factory=list)  # stale files of an earlier build, removed
    notes: list[str] = field(default_factory=list)  # things the user may not expect

    @property
    def up_to_date(self) -> bool:
        return self.commit_oid is None

    def summary(self) -> str:
        """A short human report for the command line (one line per note after the first)."""
        if self.up_to_date:
            unchanged = len(self.unchanged_files)
            text = f"{self.url} already holds this build ({unchanged} files unchanged); nothing uploaded."
        else:
            created = "created and " if self.created_repo else ""
            parts = [f"{len(self.changed_files)} file(s) committed"]
            if self.unchanged_files:
                parts.append(f"{len(self.unchanged_files)} unchanged")
            if self.deleted_files:
                parts.append(f"{len(self.deleted_files)} stale file(s) deleted")
            text = f"{created}pushed to {self.url} ({', '.join(parts)}); commit {self.commit_url}"
        return "\n".join([text, *(f"note: {note}" for note in self.notes)])


# ---------------------------------------------------------------------------------------------
# Verification of a build folder
# ---------------------------------------------------------------------------------------------


def verify_build_folder(path: str | os.PathLike) -> dict[str, Any]:
    """Check that `path` is one complete, untouched build folder; raise `BuildFolderError` if not.

    Checked: `build_report.json` present and well formed; `README.md` present (and, when its YAML
    header has `configs`, every data file pattern matches shards of the build); every shard of the
    report present, named `data/<split>-<i:05d>-of-<n:05d>.parquet` consistently with the report,
    readable as Parquet (footer and schema, with the same `datasets` features metadata in every
    shard), holding the number of rows the report says and the exact bytes (sha256) it recorded; split totals equal to the sum of their shards; no
    Parquet file that the report does not list. Hidden folders (`.cache/`, `.git/`) are ignored:
    nothing in them is published.

    Returns a summary: `dataset`, `splits` (split -> rows), `num_rows`, `files` (path in repo ->
    {"size", "sha256"} for every file to publish, shards included) and the parsed `report`.
    """
    import pyarrow.parquet as pq

    root = Path(path)
    if not root.is_dir():
        raise BuildFolderError(f"{root} is not a directory")

    report_path = root / REPORT_NAME
    if not report_path.is_file():
        raise BuildFolderError(f"missing build report {REPORT_NAME} in {root}: the build did not finish")
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BuildFolderError(f"{REPORT_NAME} is not valid JSON ({exc})") from exc
    splits, shards = _check_report_shape(report)

    card_path = root / CARD_NAME
    if not card_path.is_file():
        raise BuildFolderError(f"missing dataset card {CARD_NAME} in {root}")

    # Extra Parquet files first: they say the folder mixes builds, whatever else is wrong.
    listed = set(shards)
    for found in sorted(_parquet_files(root)):
        if found not in listed:
            raise BuildFolderError(
                f"unexpected parquet file {found}: not listed in {REPORT_NAME} (left over from another build?)"
            )

    files: dict[str, dict[str, Any]] = {}
    features_meta: tuple[str, bytes | None] | None = None
    for rel in sorted(shards):
        entry = shards[rel]
        shard_path = root / rel
        if not shard_path.is_file():
            raise BuildFolderError(f"missing shard {rel} (listed in {REPORT_NAME})")
        try:
            parquet = pq.ParquetFile(shard_path)
            num_rows = parquet.metadata.num_rows
            schema_meta = parquet.schema_arrow.metadata or {}
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise BuildFolderError(f"unreadable shard {rel}: {type(exc).__name__}: {exc}") from exc
        hf_meta = schema_meta.get(b"huggingface")
        if hf_meta is None:
            raise BuildFolderError(f"shard {rel} has no datasets features metadata: not written by the builder")
        if features_meta is None:
            features_meta = (rel, hf_meta)
        elif hf_meta != features_meta[1]:
            raise BuildFolderError(
                f"shard {rel} has other features than {features_meta[0]}: shards of different builds"
            )
        if num_rows != entry["num_rows"]:
            raise BuildFolderError(
                f"row count mismatch in {rel}: the file has {num_rows} rows, {REPORT_NAME} says {entry['num_rows']}"
            )
        digest = _sha256_file(shard_path)
        if digest != entry["sha256"].lower():
            raise BuildFolderError(
                f"sha256 mismatch in {rel}: the file is not the one the build wrote "
                f"(sha256 {digest[:12]}..., {REPORT_NAME} says {entry['sha256'][:12]}...)"
            )
        files[rel] = {"size": shard_path.stat().st_size, "sha256": digest}

    for split, info in splits.items():
        split_shards = [rel for rel in shards if _SHARD_RE.match(rel).group("split") == split]
        total = sum(shards[rel]["num_rows"] for rel in split_shards)
        if total != info["num_rows"]:
            raise BuildFolderError(
                f"{REPORT_NAME}: split {split!r} says {info['num_rows']} rows but its shards hold {total}"
            )

    _check_card(card_path, splits, shards)

    for name in (CARD_NAME, REPORT_NAME, PREVIEW_NAME):
        file = root / name
        if file.is_file():
            files[name] = {"size": file.stat().st_size, "sha256": _sha256_file(file)}

    return {
        "dataset": report.get("dataset"),
        "splits": {split: info["num_rows"] for split, info in splits.items()},
        "num_rows": sum(info["num_rows"] for info in splits.values()),
        "files": dict(sorted(files.items())),
        "report": report,
    }


def _check_report_shape(report: Any) -> tuple[dict[str, dict], dict[str, dict]]:
    if not isinstance(report, dict):
        raise BuildFolderError(f"{REPORT_NAME} is not a JSON object")
    splits, shards = report.get("splits"), report.get("shards")
    if not isinstance(splits, dict) or not splits:
        raise BuildFolderError(f"{REPORT_NAME} has no 'splits' object")
    if not isinstance(shards, dict) or not shards:
        raise BuildFolderError(f"{REPORT_NAME} has no 'shards' object")
    for split, info in splits.items():
        if not (isinstance(info, dict) and _is_count(info.get("num_rows")) and _is_count(info.get("num_shards"))):
            raise BuildFolderError(f"{REPORT_NAME}: split {split!r} needs integer 'num_rows' and 'num_shards'")
    per_split: dict[str, list[tuple[int, int]]] = {split: [] for split in splits}
    for rel, entry in shards.items():
        match = _SHARD_RE.match(rel)
        if match is None:
            raise BuildFolderError(
                f"{REPORT_NAME}: shard name {rel!r} is not data/<split>-<index:05d>-of-<count:05d>.parquet"
            )
        if match.group("split") not in per_split:
            raise BuildFolderError(
                f"{REPORT_NAME}: shard {rel} belongs to split {match.group('split')!r}, which 'splits' lacks"
            )
        if not (
            isinstance(entry, dict)
            and _is_count(entry.get("num_rows"))
            and isinstance(entry.get("sha256"), str)
            and re.fullmatch(r"[0-9a-fA-F]{64}", entry["sha256"])
        ):
            raise BuildFolderError(f"{REPORT_NAME}: shard {rel} needs an integer 'num_rows' and a hex 'sha256'")
        per_split[match.group("split")].append((int(match.group("index")), int(match.group("count"))))
    for split, found in per_split.items():
        expected = splits[split]["num_shards"]
        if sorted(found) != [(i, expected) for i in range(expected)]:
            raise BuildFolderError(
                f"{REPORT_NAME}: split {split!r} says {expected} shard(s) but lists "
                + (", ".join(f"{i:05d}-of-{n:05d}" for i, n in sorted(found)) or "none")
            )
    return splits, shards


def _check_card(card_path: Path, splits: dict, shards: dict) -> None:
    """When the card's YAML header declares `configs`, each data file pattern must match shards."""
    import yaml

    text = card_path.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return
    end = text.find("\n---", 3)
    if end < 0:
        raise BuildFolderError(f"{CARD_NAME}: the YAML header opened by '---' is never closed")
    try:
        header = yaml.safe_load(text[3:end]) or {}
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise BuildFolderError(f"{CARD_NAME}: the YAML header does not parse ({problem})") from exc
    configs = header.get("configs") if isinstance(header, dict) else None
    if not configs:
        return
    for config in configs if isinstance(configs, list) else []:
        data_files = config.get("data_files") if isinstance(config, dict) else None
        if not isinstance(data_files, list):
            continue
        name = config.get("config_name", "default")
        for item in data_files:
            if not isinstance(item, dict):
                continue
            patterns = item.get("path")
            patterns = [patterns] if isinstance(patterns, str) else patterns or []
            for pattern in patterns:
                if not any(fnmatch.fnmatchcase(rel, pattern) for rel in shards):
                    raise BuildFolderError(
                        f"{CARD_NAME}: config {name!r} split {item.get('split')!r} points at {pattern!r}, "
                        "which matches no shard of the build"
                    )
        if name == "default":
            declared = {item.get("split") for item in data_files if isinstance(item, dict)}
            missing = sorted(set(splits) - declared)
            if missing:
                raise BuildFolderError(
                    f"{CARD_NAME}: config 'default' does not list split(s) {', '.join(missing)}"
                )


def _parquet_files(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # .cache/, .git/: never published
        for name in filenames:
            if name.endswith(".parquet"):
                yield (Path(dirpath) / name).relative_to(root).as_posix()


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Push
# ---------------------------------------------------------------------------------------------


def check_repo_id(repo_id: str) -> tuple[str, str]:
    """Split `namespace/name`, or raise `PushError` saying what a valid id looks like."""
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if len(parts) != 2 or not all(_REPO_PART_RE.match(p) and "--" not in p and ".." not in p for p in parts):
        hint = ""
        if len(parts) == 1 and parts[0] and _REPO_PART_RE.match(parts[0]):
            hint = f" (e.g. YOUR_USER/{parts[0]})"
        raise PushError(
            f"--repo-id {repo_id!r} is not of the form NAMESPACE/NAME: give your user or organization name, "
            f"a slash and the dataset name{hint}, using letters, digits, '-', '_' or '.'"
        )
    if parts[1].endswith(".git"):
        raise PushError(f"--repo-id {repo_id!r}: a repo name cannot end with '.git'; drop the suffix")
    return parts[0], parts[1]


def push(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    message: str | None = None,
) -> PushResult:
    """Verify `folder` and publish it to the dataset repo `repo_id` on branch `revision` (main).

    Creates the repo (private if `private`) when it does not exist. Uploads only what the branch
    does not already hold, in one commit; see the module docstring for why. Raises `PushError`
    (one line: cause and fix) for every failure a user can meet; nothing is uploaded when the
    folder does not verify.
    """
    namespace, name = check_repo_id(repo_id)
    if not Path(folder).is_dir():
        raise PushError(f"build folder {folder} does not exist or is not a directory: check the OUT_DIR argument")
    try:
        summary = verify_build_folder(folder)
    except BuildFolderError as exc:
        raise PushError(
            f"refusing to push {folder}: {exc}; nothing was uploaded — rebuild into an empty folder and push again"
        ) from exc

    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        raise PushError(
            "HF_HUB_OFFLINE is set, so huggingface_hub will not contact the Hub: unset HF_HUB_OFFLINE to push"
        )
    token, token_source = _resolve_token(token)
    api = HfApi(token=token)  # endpoint: HF_ENDPOINT, as huggingface_hub reads it
    context = _Context(api.endpoint, repo_id, namespace, name, revision, token_source)
    try:
        return _push(api, Path(folder), summary, context, private=private, message=message)
    except PushError:
        raise
    except Exception as exc:
        explained = _explain(exc, context)
        if explained is None:
            raise
        raise explained from exc


@dataclass
class _Context:
    endpoint: str
    repo_id: str
    namespace: str
    name: str
    revision: str | None
    token_source: str
    user: str | None = None
    stage: str = "checking your token"


def _resolve_token(token: str | None) -> tuple[str, str]:
    if token:
        return token, "the --token value"
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise PushError(
            "no Hugging Face token found: run `hf auth login`, set HF_TOKEN, or pass --token "
            "(a token with write access)"
        )
    env = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    return found, ("the HF_TOKEN environment variable" if env and env.strip() == found else "the saved login")


def _push(api, folder: Path, summary: dict, ctx: _Context, *, private: bool, message: str | None) -> PushResult:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.errors import RepositoryNotFoundError
    from huggingface_hub.utils.sha import git_hash

    repo_id = ctx.repo_id
    ctx.stage = "checking your token"
    me = api.whoami()
    ctx.user = me.get("name")
    access = (me.get("auth") or {}).get("accessToken") or {}
    if access.get("role") == "read":
        raise PushError(
            f"the token from {ctx.token_source} (user {ctx.user!r}) is read-only: create a token with write "
            f"access at {ctx.endpoint}/settings/tokens and pass it with --token, set HF_TOKEN, or run `hf auth login`"
        )

    ctx.stage = f"creating dataset repo {repo_id}"
    created = False
    try:
        info = api.dataset_info(repo_id)
    except RepositoryNotFoundError:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        created = True
        info = api.dataset_info(repo_id)

    ctx.stage = f"reading the branches of {repo_id}"
    branch = ctx.revision or "main"
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    heads = {ref.name: ref.target_commit for ref in refs.branches}
    if branch not in heads:
        create = f"hf repos branch create {repo_id} {branch} --repo-type dataset"
        existing = ", ".join(sorted(heads)) or "none"
        raise PushError(
            f"branch {branch!r} does not exist in dataset repo {repo_id} (branches: {existing}): "
            f"create it with `{create}` or omit --revision to push to main"
        )
    head = heads[branch]

    ctx.stage = f"listing the files on {repo_id}@{branch}"
    remote = {
        entry.path: entry
        for entry in api.list_repo_tree(repo_id, repo_type="dataset", revision=head, recursive=True)
        if hasattr(entry, "blob_id")  # files only
    }

    additions, changed, unchanged = [], [], []
    for rel, local in summary["files"].items():
        path = folder / rel
        entry = remote.get(rel)
        if entry is not None and _same_content(entry, path, local, git_hash):
            unchanged.append(rel)
            continue
        op = CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(path))
        op.upload_info.sha256 = bytes.fromhex(local["sha256"])  # verified above: no second read to hash
        additions.append(op)
        changed.append(rel)
    stale = sorted(
        rel
        for rel in remote
        if rel not in summary["files"] and (rel.startswith(DATA_DIR + "/") or rel == PREVIEW_NAME)
    )
    deletions = [CommitOperationDelete(path_in_repo=rel) for rel in stale]

    url = f"{ctx.endpoint}/datasets/{repo_id}" + ("" if branch == "main" else f"/tree/{branch}")
    result = PushResult(
        repo_id=repo_id,
        revision=branch,
        url=url,
        created_repo=created,
        private=getattr(info, "private", None),
        commit_oid=None,
        commit_url=None,
        changed_files=changed,
        unchanged_files=unchanged,
        deleted_files=stale,
    )
    if private and not created and result.private is False:
        result.notes.append(
            f"{repo_id} already existed and is public: --private only applies when the repo is created; "
            "change its visibility in the repo settings"
        )
    if not additions and not deletions:
        return result

    ctx.stage = f"uploading to {repo_id}@{branch}"
    splits = ", ".join(f"{split}: {rows} rows" for split, rows in summary["splits"].items())
    commit = api.create_commit(
        repo_id,
        repo_type="dataset",
        operations=[*deletions, *additions],
        commit_message=message or f"Upload {summary['dataset'] or 'dataset'} build ({summary['num_rows']} rows)",
        commit_description=f"Splits: {splits}.",
        revision=branch,
        parent_commit=head,
    )
    result.commit_oid = commit.oid
    result.commit_url = commit.commit_url
    return result


def _same_content(entry, path: Path, local: dict, git_hash) -> bool:
    """Whether the branch's file `entry` already holds the bytes of the local file."""
    if entry.lfs is not None:  # large file: compare the sha256 the Hub stores it under
        return entry.lfs.sha256 == local["sha256"] and entry.lfs.size == local["size"]
    return entry.size == local["size"] and entry.blob_id == git_hash(path.read_bytes())


# ---------------------------------------------------------------------------------------------
# Errors: from library exceptions to one line with the cause and the fix
# ---------------------------------------------------------------------------------------------


def _explain(exc: BaseException, ctx: _Context) -> PushError | None:
    """Translate a known failure (HTTP status, network, offline mode) into a `PushError`, else None."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RevisionNotFoundError

    transport, connect = _transport_errors()
    root = _find_cause(exc, (HfHubHTTPError, OfflineModeIsEnabled, *transport))
    if root is None:
        return None
    if isinstance(root, OfflineModeIsEnabled):
        return PushError(
            "HF_HUB_OFFLINE is set, so huggingface_hub will not contact the Hub: unset HF_HUB_OFFLINE to push"
        )
    if isinstance(root, transport) and not isinstance(root, HfHubHTTPError):
        detail = _first_line(str(root)) or "no details"
        unreachable = isinstance(root, connect)
        what = "cannot reach the Hub" if unreachable else "lost the connection to the Hub"
        return PushError(
            f"{what} at {ctx.endpoint} while {ctx.stage} ({type(root).__name__}: {detail}): "
            "check your network connection (and HF_ENDPOINT if you set it), then run the same command again; "
            "files that already arrived are not uploaded again"
        )

    response = getattr(root, "response", None)
    status = getattr(response, "status_code", None)
    server_says = _first_line(getattr(root, "server_message", None) or "")
    if isinstance(root, RevisionNotFoundError):
        branch = ctx.revision or "main"
        return PushError(
            f"branch {branch!r} does not exist in dataset repo {ctx.repo_id}: create it with "
            f"`hf repos branch create {ctx.repo_id} {branch} --repo-type dataset` or omit --revision to push to main"
        )
    if status == 401:
        return PushError(
            f"the Hub at {ctx.endpoint} rejected the token from {ctx.token_source} (401 Unauthorized): it is invalid, "
            f"expired or revoked; create a token with write access at {ctx.endpoint}/settings/tokens and pass it "
            "with --token, set HF_TOKEN, or run `hf auth login`"
        )
    if status == 403:
        who = f"user {ctx.user!r}" if ctx.user else "your token"
        own = f" (e.g. --repo-id {ctx.user}/{ctx.name})" if ctx.user and ctx.user != ctx.namespace else ""
        return PushError(
            f"{who} may not write to dataset repo {ctx.repo_id} (403 Forbidden while {ctx.stage}): the namespace "
            f"{ctx.namespace!r} belongs to someone else or your token has no write access to it; push to a namespace "
            f"you own{own} or ask the owner of {ctx.namespace!r} for write access"
        )
    if status == 404:
        return PushError(
            f"dataset repo {ctx.repo_id} was not found on {ctx.endpoint} while {ctx.stage} (404"
            + (f": {server_says}" if server_says else "")
            + "): check --repo-id and that your token can see the repo"
        )
    if status == 412:
        return PushError(
            f"branch {ctx.revision or 'main'} of {ctx.repo_id} changed while pushing (412 Precondition Failed): "
            "someone else pushed; run the same command again"
        )
    if status == 429:
        return PushError(
            f"the Hub at {ctx.endpoint} is rate-limiting you (429 Too Many Requests): wait a few minutes and run "
            "the same command again"
        )
    if status is not None and status >= 500:
        return PushError(
            f"the Hub at {ctx.endpoint} failed while {ctx.stage} (HTTP {status}"
            + (f": {server_says}" if server_says else "")
            + "): try again later; the push resumes where it stopped"
        )
    return PushError(
        f"the Hub at {ctx.endpoint} refused the push while {ctx.stage} (HTTP {status}"
        + (f": {server_says}" if server_says else "")
        + ")"
    )


def _transport_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """Network error types of the HTTP library huggingface_hub uses (httpx2 in 2.x, httpx or requests
    before): (any transport failure, could not connect at all)."""
    import importlib

    transport: list[type] = []
    connect: list[type] = []
    for module_name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        transport.append(module.TransportError)
        connect.extend([module.ConnectError, module.ConnectTimeout])
    try:
        import requests

        transport.extend([requests.ConnectionError, requests.Timeout])
        connect.extend([requests.ConnectionError])
    except ImportError:
        pass
    return tuple(transport), tuple(connect)


def _find_cause(exc: BaseException, types: tuple[type, ...]) -> BaseException | None:
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, types):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _first_line(text: str) -> str:
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return ""
