"""Publish a finished build folder as a dataset repository on the Hugging Face Hub.

`push(folder, repo_id, ...)` verifies the folder (builder/verify.py), then publishes it with
`huggingface_hub`. Every failure a user can meet is raised as `PushError`, whose text is one
line: the cause, then the fix.

Two layouts:

* without `config`: the folder as built (`README.md`, `build_report.json`, `preview.png`,
  `data/<split>-*.parquet`): the repo holds one dataset, config `default`;
* with `config="prcc"`: the build becomes one config of a repo that may hold others, the layout
  `Dataset.push_to_hub(config_name=...)` produces: shards, report and preview under `prcc/`; the
  repo card (`README.md`) is the branch's card with this config's YAML entries (`configs`,
  `dataset_info`) and body section replaced or added, other configs' entries kept byte for byte
  (builder.card_merge), and `LICENSE.md` at the root lists the terms of every config's source
  (the card's `license_link`). Stale files are deleted only inside `prcc/`. `default` makes it the
  config `load_dataset(repo)` opens without a name.

`gated` adds the Hub's gated-access fields to the card (users must accept the source dataset's
terms before downloading) and switches the repo to gated access (automatic approval). In a
multi-config repo the prompt names every config's source and its terms, whichever push set it.

What is compared and what is committed is decided by `builder.publish_plan.plan_push`, a pure
function of the local build and the branch's listing; this module gathers those from the Hub and
applies the plan. The build report is published without local paths (builder.report).

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

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from builder.hub_errors import PushError, explain
from builder.publish_plan import LocalBuild, PushPlan, RemoteFile, plan_push
from builder.report import public_report_bytes
from builder.verify import BuildFolderError, VerifiedBuild, verify_build_folder
from occluded_ccreid.layout import CARD_NAME, CONFIG_RE, DATA_DIR, LICENSE_NAME, PREVIEW_NAME, REPORT_NAME

# The Hub's rule for a repo name part: letters, digits, "-", "_", "."; no "--" or ".."; at most 96 chars.
_REPO_PART_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")


@dataclass
class PushResult:
    """What `push` did."""

    repo_id: str
    revision: str
    config: str | None  # the config pushed, None for the single-build layout
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


def check_config(config: str | None, default: bool) -> None:
    """Raise `PushError` for a config name that cannot be a repo folder and config name."""
    if config is None:
        if default:
            raise PushError("--default needs --config NAME: it makes that config the one load_dataset opens by default")
        return
    if not CONFIG_RE.match(config) or config == DATA_DIR:
        raise PushError(
            f"--config {config!r} cannot name a config: use letters, digits, '-', '_' or '.' (e.g. prcc, "
            f"ltcc-rectangle), not '{DATA_DIR}', which holds a single-build push"
        )


def push(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    config: str | None = None,
    default: bool = False,
    gated: bool = False,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    message: str | None = None,
) -> PushResult:
    """Verify `folder` and publish it to the dataset repo `repo_id` on branch `revision` (main),
    as config `config` (see the module docstring) or, without it, as the repo's only dataset.

    Creates the repo (private if `private`) when it does not exist. Uploads only what the branch
    does not already hold, in one commit; see the module docstring for why. Raises `PushError`
    (one line: cause and fix) for every failure a user can meet; nothing is uploaded when the
    folder does not verify.
    """
    namespace, name = check_repo_id(repo_id)
    check_config(config, default)
    if not Path(folder).is_dir():
        raise PushError(f"build folder {folder} does not exist or is not a directory: check the OUT_DIR argument")
    try:
        verified = verify_build_folder(folder)
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
        return _push(
            api,
            Path(folder),
            verified,
            context,
            config=config,
            default=default,
            gated=gated,
            private=private,
            message=message,
        )
    except PushError:
        raise
    except Exception as exc:
        explained = explain(exc, context)
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


def _push(
    api,
    folder: Path,
    verified: VerifiedBuild,
    ctx: _Context,
    *,
    config: str | None,
    default: bool,
    gated: bool,
    private: bool,
    message: str | None,
) -> PushResult:
    repo_id = ctx.repo_id
    _check_write_token(api, ctx)
    ctx.stage = f"creating dataset repo {repo_id}"
    info, created = _repo_info(api, repo_id, private)
    ctx.stage = f"reading the branches of {repo_id}"
    branch = ctx.revision or "main"
    head = _branch_head(api, repo_id, branch)

    ctx.stage = f"listing the files on {repo_id}@{branch}"
    remote = _remote_files(api, repo_id, head)
    ctx.stage = f"merging the dataset card of {repo_id}@{branch}"
    remote_card, remote_license = (
        _remote_text(api, repo_id, head, name) if config and name in remote else None
        for name in (CARD_NAME, LICENSE_NAME)
    )
    local = _local_build(folder, verified, repo_id, config=config, default=default, gated=gated)
    plan = _plan(local, remote, remote_card, remote_license, repo_id, config=config, default=default, gated=gated)

    url = f"{ctx.endpoint}/datasets/{repo_id}" + ("" if branch == "main" else f"/tree/{branch}")
    result = PushResult(
        repo_id=repo_id,
        revision=branch,
        config=config,
        url=url,
        created_repo=created,
        private=getattr(info, "private", None),
        commit_oid=None,
        commit_url=None,
        changed_files=[u.path for u in plan.uploads],
        unchanged_files=plan.unchanged,
        deleted_files=plan.deletions,
        notes=list(plan.notes),
    )
    if private and not created and result.private is False:
        result.notes.append(
            f"{repo_id} already existed and is public: --private only applies when the repo is created; "
            "change its visibility in the repo settings"
        )
    if gated and getattr(info, "gated", None) in (None, False):
        ctx.stage = f"turning on gated access for {repo_id}"
        api.update_repo_settings(repo_id, repo_type="dataset", gated="auto")
        result.notes.append(f"{repo_id} is now gated: users accept the source datasets' terms before downloading")
    if plan.up_to_date:
        return result

    ctx.stage = f"uploading to {repo_id}@{branch}"
    commit = _apply(api, plan, verified, repo_id, branch, head, config, message)
    result.commit_oid = commit.oid
    result.commit_url = commit.commit_url
    return result


def _check_write_token(api, ctx: _Context) -> None:
    ctx.stage = "checking your token"
    me = api.whoami()
    ctx.user = me.get("name")
    access = (me.get("auth") or {}).get("accessToken") or {}
    if access.get("role") == "read":
        raise PushError(
            f"the token from {ctx.token_source} (user {ctx.user!r}) is read-only: create a token with write "
            f"access at {ctx.endpoint}/settings/tokens and pass it with --token, set HF_TOKEN, or run `hf auth login`"
        )


def _repo_info(api, repo_id: str, private: bool):
    """(repo info, whether this push created the repo)."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        return api.dataset_info(repo_id), False
    except RepositoryNotFoundError:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        return api.dataset_info(repo_id), True


def _branch_head(api, repo_id: str, branch: str) -> str:
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    heads = {ref.name: ref.target_commit for ref in refs.branches}
    if branch not in heads:
        create = f"hf repos branch create {repo_id} {branch} --repo-type dataset"
        existing = ", ".join(sorted(heads)) or "none"
        raise PushError(
            f"branch {branch!r} does not exist in dataset repo {repo_id} (branches: {existing}): "
            f"create it with `{create}` or omit --revision to push to main"
        )
    return heads[branch]


def _remote_files(api, repo_id: str, head: str) -> dict[str, RemoteFile]:
    files = {}
    for entry in api.list_repo_tree(repo_id, repo_type="dataset", revision=head, recursive=True):
        if hasattr(entry, "blob_id"):  # files only
            files[entry.path] = RemoteFile(entry.size, entry.blob_id, entry.lfs.sha256 if entry.lfs else None)
    return files


def _remote_text(api, repo_id: str, revision: str, path: str) -> str:
    local = api.hf_hub_download(repo_id, path, repo_type="dataset", revision=revision)
    return Path(local).read_text(encoding="utf-8")


def _local_build(
    folder: Path, verified: VerifiedBuild, repo_id: str, *, config: str | None, default: bool, gated: bool
) -> LocalBuild:
    """The build with what the push makes for it: the card rendered for the repo (as config `config`,
    with the gated-access fields if `gated`) and the report without local paths."""
    report, redacted = public_report_bytes(folder / REPORT_NAME)
    card = (
        _render_card(folder, verified, repo_id, config=config, default=default, gated=gated)
        if config or gated
        else None
    )
    return LocalBuild(folder, verified, card, report if redacted else None, redacted)


def _render_card(
    folder: Path, verified: VerifiedBuild, repo_id: str, *, config: str | None, default: bool, gated: bool
) -> str:
    import pyarrow.parquet as pq
    from datasets import Features

    from builder.card import render_card
    from occluded_ccreid.sources import get_source

    report = verified.report
    features = Features.from_arrow_schema(pq.read_schema(folder / sorted(report.shards)[0]))
    preview = PREVIEW_NAME if (folder / PREVIEW_NAME).is_file() else None
    return render_card(
        report,
        get_source(report.dataset),
        features,
        folder,
        repo_id=repo_id,
        preview=preview,
        config_name=config,
        default=default,
        gated=gated,
    )


def _plan(
    local: LocalBuild,
    remote: dict[str, RemoteFile],
    remote_card: str | None,
    remote_license: str | None,
    repo_id: str,
    *,
    config: str | None,
    default: bool,
    gated: bool,
) -> PushPlan:
    from builder.card_merge import CardMergeError

    try:
        return plan_push(
            local, remote, remote_card, config=config, default=default, gated=gated, remote_license=remote_license
        )
    except CardMergeError as exc:
        raise PushError(
            f"the dataset card README.md of {repo_id} cannot take config {config!r}: {exc}; fix its YAML header "
            "on the Hub (or delete the card) and push again"
        ) from exc


def _apply(
    api,
    plan: PushPlan,
    verified: VerifiedBuild,
    repo_id: str,
    branch: str,
    head: str,
    config: str | None,
    message: str | None,
):
    """One commit of the plan's deletions and uploads, made against `head` (refused if the branch moved)."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    additions = []
    for upload in plan.uploads:
        source = upload.source if isinstance(upload.source, bytes) else str(upload.source)
        op = CommitOperationAdd(path_in_repo=upload.path, path_or_fileobj=source)
        op.upload_info.sha256 = bytes.fromhex(upload.sha256)  # verified or computed: no second read to hash
        additions.append(op)
    deletions = [CommitOperationDelete(path_in_repo=path) for path in plan.deletions]
    splits = ", ".join(f"{split}: {rows} rows" for split, rows in verified.splits.items())
    return api.create_commit(
        repo_id,
        repo_type="dataset",
        operations=[*deletions, *additions],
        commit_message=message
        or (
            f"Upload {verified.dataset or 'dataset'} build"
            + (f" as config {config}" if config else "")
            + f" ({verified.num_rows} rows)"
        ),
        commit_description=f"Splits: {splits}.",
        revision=branch,
        parent_commit=head,
    )
