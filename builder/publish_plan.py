"""What a push must do, decided without any I/O: local build + remote listing -> operations.

`plan_push` compares the files of a verified build (`LocalBuild`) with the files on the target
branch (`RemoteFile`, from the Hub's tree listing) and returns a `PushPlan`: what to upload (new or
different content), what is already there, and which stale files of an earlier build of the same
layout to delete. For `--config` the repo card is the branch's card with this config merged in
(builder.card_merge), its license link and gated-access prompt naming every source of the merged
card, and `LICENSE.md` listing their terms (builder.card.repo_terms). `builder.publish` gathers the
inputs from the Hub and applies the plan in one commit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from builder.card import LICENSE_HEADING, repo_terms
from builder.card_merge import merge_card, replace_keys
from builder.verify import VerifiedBuild
from occluded_ccreid.layout import CARD_NAME, DATA_DIR, LICENSE_NAME, PREVIEW_NAME, REPORT_NAME, card_header, repo_path


@dataclass(frozen=True)
class RemoteFile:
    """A file on the target branch, as the Hub's tree listing gives it."""

    size: int
    blob_id: str  # git blob id (of the LFS pointer for a large file)
    lfs_sha256: str | None = None  # sha256 of a large file's content


@dataclass(frozen=True)
class Upload:
    """A file to commit: a local file or bytes made for the push (the card, a public report, LICENSE.md)."""

    path: str  # in the repo
    source: Path | bytes
    size: int
    sha256: str

    @classmethod
    def of_bytes(cls, path: str, content: bytes) -> Upload:
        return cls(path, content, len(content), hashlib.sha256(content).hexdigest())


@dataclass
class LocalBuild:
    """A verified build folder and what the push publishes of it besides its files as they are."""

    folder: Path
    verified: VerifiedBuild
    card: str | None = None  # the card rendered for the repo (a config, or --gated); None: the folder's own
    report: bytes | None = None  # the report to publish when it differs from the file (local paths taken out)
    redacted_paths: list[str] = field(default_factory=list)


@dataclass
class PushPlan:
    uploads: list[Upload]  # new or different on the branch
    unchanged: list[str]  # already identical on the branch
    deletions: list[str]  # stale files of an earlier build of the same layout
    notes: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return not self.uploads and not self.deletions


def plan_push(
    local: LocalBuild,
    remote: dict[str, RemoteFile],
    remote_card: str | None,
    *,
    config: str | None,
    default: bool = False,
    gated: bool = False,
    remote_license: str | None = None,
) -> PushPlan:
    """The operations that make the branch (files `remote`, texts of its card and `LICENSE.md`) hold
    `local`, as config `config` or, with None, as the repo's only build. A `LICENSE.md` this tool
    did not write is left as it is (the card links it all the same)."""
    planned = _planned_files(local, config)
    notes = []
    if config is not None:
        card = merge_card(remote_card, local.card or "", config, default=default)
        keys, license_text = repo_terms(card_header(card), gated)
        planned[CARD_NAME] = Upload.of_bytes(CARD_NAME, replace_keys(card, keys).encode("utf-8"))
        if remote_license is None or remote_license.startswith(LICENSE_HEADING):
            planned[LICENSE_NAME] = Upload.of_bytes(LICENSE_NAME, license_text.encode("utf-8"))
        else:
            notes.append(
                f"{LICENSE_NAME} of the repo was not written by occluded-ccreid and is left as it is: "
                "check that it names the terms of every config's source dataset"
            )
    elif local.card is not None:
        planned[CARD_NAME] = Upload.of_bytes(CARD_NAME, local.card.encode("utf-8"))

    uploads, unchanged = [], []
    for path, upload in planned.items():
        entry = remote.get(path)
        if entry is not None and _same_content(entry, upload):
            unchanged.append(path)
        else:
            uploads.append(upload)
    # Stale: what an earlier build of the same layout left, and nothing else (other configs' folders stay).
    stale = sorted(path for path in remote if path not in planned and _owned(path, config))
    if local.redacted_paths:
        notes.append(
            f"{REPORT_NAME} records local path(s) ({', '.join(local.redacted_paths)}): published with each "
            "reduced to its last component; the local file is unchanged"
        )
    return PushPlan(uploads, unchanged, stale, notes)


def _planned_files(local: LocalBuild, config: str | None) -> dict[str, Upload]:
    """Repo path -> upload of every verified file of the build (a config's card is the merged one)."""
    planned = {}
    for rel, info in local.verified.files.items():
        if config is not None and rel == CARD_NAME:
            continue
        path = repo_path(rel, config)
        if rel == REPORT_NAME and local.report is not None:
            planned[path] = Upload.of_bytes(path, local.report)
        else:
            planned[path] = Upload(path, local.folder / rel, info.size, info.sha256)
    return planned


def _owned(path: str, config: str | None) -> bool:
    """Whether a remote file belongs to the layout this push replaces."""
    if config is not None:
        return path.startswith(config + "/")
    return path.startswith(DATA_DIR + "/") or path == PREVIEW_NAME


def _same_content(entry: RemoteFile, upload: Upload) -> bool:
    """Whether the branch's file already holds the upload's bytes."""
    if entry.lfs_sha256 is not None:  # large file: compare the sha256 the Hub stores it under
        return entry.lfs_sha256 == upload.sha256 and entry.size == upload.size
    from huggingface_hub.utils.sha import git_hash

    content = upload.source if isinstance(upload.source, bytes) else upload.source.read_bytes()
    return entry.size == upload.size and entry.blob_id == git_hash(content)
