"""plan_push on its own: a verified build and a branch listing in, the push's operations out; no network."""

from __future__ import annotations

import hashlib

import pytest
from test_publish import make_build_folder

from builder.publish_plan import LocalBuild, RemoteFile, plan_push
from builder.verify import verify_build_folder


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> LocalBuild:
    from builder.publish import _render_card

    folder = make_build_folder(tmp_path_factory.mktemp("plan") / "occluded-prcc")
    verified = verify_build_folder(folder)
    card = _render_card(folder, verified, "alice/occ", config="prcc", default=False, gated=True)
    return LocalBuild(folder, verified, card=card)


def _git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _as_remote(uploads) -> dict[str, RemoteFile]:
    """The listing of a branch that holds exactly `uploads` (large files by sha256, like the Hub)."""
    listing = {}
    for upload in uploads:
        content = upload.source if isinstance(upload.source, bytes) else upload.source.read_bytes()
        large = upload.path.endswith((".parquet", ".png"))
        listing[upload.path] = RemoteFile(
            len(content),
            "0" * 40 if large else _git_blob_id(content),
            hashlib.sha256(content).hexdigest() if large else None,
        )
    return listing


def test_an_empty_branch_gets_every_file_then_nothing_is_left_to_do(local):
    first = plan_push(local, {}, None, config="prcc")
    paths = {u.path for u in first.uploads}
    assert paths == {
        "README.md",
        "LICENSE.md",
        *(f"prcc/{rel.split('/', 1)[-1]}" for rel in local.verified.files if rel != "README.md"),
    }
    assert first.deletions == [] and first.unchanged == []
    card = next(u.source for u in first.uploads if u.path == "README.md")
    licence = next(u.source for u in first.uploads if u.path == "LICENSE.md")
    again = plan_push(local, _as_remote(first.uploads), card.decode(), config="prcc", remote_license=licence.decode())
    assert again.up_to_date and sorted(again.unchanged) == sorted(paths)  # the merged card is stable


def test_stale_files_only_inside_the_config_folder(local):
    remote = {
        "prcc/train-00009-of-00010.parquet": RemoteFile(1, "0" * 40, "1" * 64),
        "ltcc/train-00000-of-00001.parquet": RemoteFile(1, "0" * 40, "2" * 64),
        "data/train-00000-of-00001.parquet": RemoteFile(1, "0" * 40, "3" * 64),
    }
    assert plan_push(local, remote, None, config="prcc").deletions == ["prcc/train-00009-of-00010.parquet"]
    single = LocalBuild(local.folder, local.verified)  # the folder's own card
    assert plan_push(single, remote, None, config=None).deletions == ["data/train-00000-of-00001.parquet"]


def test_a_licence_file_someone_else_wrote_is_kept(local):
    plan = plan_push(local, {}, None, config="prcc", remote_license="# Our lab's licence\n")
    assert "LICENSE.md" not in {u.path for u in plan.uploads}
    assert any("LICENSE.md of the repo was not written by occluded-ccreid" in note for note in plan.notes)
    ours = next(u.source for u in plan_push(local, {}, None, config="prcc").uploads if u.path == "LICENSE.md")
    rewritten = plan_push(local, {}, None, config="prcc", remote_license=ours.decode() + "old line\n")
    assert "LICENSE.md" in {u.path for u in rewritten.uploads}
