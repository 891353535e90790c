"""A small stand-in of the Hugging Face Hub's HTTP protocol, for tests that must not reach the Hub.

`FakeHub` runs a `http.server.ThreadingHTTPServer` on 127.0.0.1 (a free port) and answers the part
of the Hub's HTTP API that `huggingface_hub` (2.x) and `datasets` use to publish a dataset repo and
to load it back. Point the real clients at it with `HF_ENDPOINT=hub.endpoint`; nothing in them is
patched. Storage is in memory; the server is not a git server (there are no packfiles) but it keeps
real commits, branches and content-addressed large-file storage, so the clients see the same
behaviour as on the Hub: an object already stored is not asked for again, a commit can only refer to
stored objects, a branch head moves only on commit.

Endpoints (all for dataset repos, `{repo}` = `namespace/name`, `{rev}` = URL-quoted revision):

* `GET  /api/whoami-v2`                                   -> user, orgs, token role
* `POST /api/repos/create`                                -> 200 `{url}`, 409 if it exists, 403 for a
                                                             namespace the token's user does not own
* `POST /api/validate-yaml`                               -> checks a card's YAML header (before a commit)
* `GET  /api/datasets/{repo}[/revision/{rev}]`            -> repo info (`sha`, `siblings`, `private`...)
* `GET  /api/datasets/{repo}/refs`                        -> branches
* `GET  /api/datasets/{repo}/tree/{rev}[/{path}]`         -> listing (`recursive`, `expand` parameters)
* `POST /api/datasets/{repo}/paths-info/{rev}`            -> entries of the given paths
* `POST /api/datasets/{repo}/preupload/{rev}`             -> upload mode ("lfs"/"regular") and remote oid
* `POST /datasets/{repo}.git/info/lfs/objects/batch`      -> LFS batch API, basic transfer only: an object
                                                             already stored gets no `actions`, others an
                                                             upload URL (`PUT /_lfs/upload/{ticket}`) and a
                                                             verify URL
* `POST /datasets/{repo}.git/info/lfs/objects/verify`     -> 200 if the object is stored
* `POST /api/datasets/{repo}/commit/{rev}`                -> ndjson commit (header, file, lfsFile,
                                                             deletedFile, deletedFolder), honours `parentCommit`
* `GET|HEAD /datasets/{repo}/resolve/{rev}/{path}`        -> file content with `ETag`, `X-Repo-Commit`,
                                                             `Content-Length`, `X-Linked-Etag`/`X-Linked-Size`
                                                             for large files, and `Range` requests (206)

Errors carry the Hub's `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`) and
`X-Error-Message` headers, which `huggingface_hub` turns into its typed exceptions.

Tokens (`Authorization: Bearer ...`): `TOKENS` maps each valid token to a user. An unknown token
gets 401 on any request, a write without a token too; a write to a namespace that is neither the
user's name nor one of their organizations, or with a read-only token, gets 403. Reads of public
repos need no token; private repos are only visible to their owner (404 otherwise, as on the Hub).

Xet: with `hf_xet` installed, huggingface_hub 2.4 uploads through the Xet storage protocol (a
separate content-addressed service driven by the Rust `hf_xet` package) by its own decision
(`_commit_api._upload_files` checks only `is_xet_available()`; the LFS batch endpoint is not even
asked), so no answer of this server can steer it to LFS. The client's own documented switch
`HF_HUB_DISABLE_XET=1` selects the plain LFS basic transfer, which is what the tests set. On the read side the client only uses
Xet for files whose tree entry or `resolve` response advertises a Xet hash (`xetHash`,
`X-Xet-Hash`), which this server never does. Any route it does not know (such as the Xet token
routes) answers 404 and is recorded in `FakeHub.unhandled`.

For tests it counts what arrives (`uploaded_objects`, `uploaded_bytes`, `commit_count`) and can
inject faults: `hang_uploads_after(n)` (the next uploads beyond `n` hang until the client is killed,
then their connection is dropped) and `drop_next_commit()` (the connection is closed before the
commit is applied).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

VALID_TOKEN = "hf_alice_write_token"  # user "alice", write access, member of org "alice-lab"
READ_ONLY_TOKEN = "hf_alice_read_token"  # user "alice", read-only token
OTHER_USER_TOKEN = "hf_bob_write_token"  # user "bob", write access


@dataclass(frozen=True)
class User:
    name: str
    orgs: tuple[str, ...] = ()
    role: str = "write"  # "write" or "read", as the Hub reports a token's role


TOKENS: dict[str, User] = {
    VALID_TOKEN: User("alice", ("alice-lab",)),
    READ_ONLY_TOKEN: User("alice", ("alice-lab",), role="read"),
    OTHER_USER_TOKEN: User("bob"),
}

# Extensions the Hub's default .gitattributes sends to LFS (a subset); bigger or binary files go too.
LFS_SUFFIXES = (".parquet", ".arrow", ".png", ".jpg", ".jpeg", ".webp", ".bin", ".npy", ".npz", ".zip", ".gz", ".tar")
LFS_MIN_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


@dataclass(frozen=True)
class Blob:
    size: int
    blob_id: str  # git oid: of the content for a regular file, of the pointer for an LFS file
    content: bytes | None = None  # regular files only
    lfs_oid: str | None = None  # sha256 of the content, LFS files only

    @classmethod
    def regular(cls, content: bytes) -> Blob:
        return cls(size=len(content), blob_id=git_blob_id(content), content=content)

    @classmethod
    def lfs(cls, oid: str, size: int) -> Blob:
        return cls(size=size, blob_id=git_blob_id(lfs_pointer(oid, size)), lfs_oid=oid)


@dataclass
class Commit:
    oid: str
    parent: str | None
    files: dict[str, Blob]
    title: str
    date: str


@dataclass
class Repo:
    repo_id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)
    lfs: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content (uploaded, committed or not)

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class _DropConnection(Exception):
    """Close the socket without answering, like a connection lost mid-request."""


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeHub:
    """The server and its state. Use as a context manager, or `start()` / `stop()`."""

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.lock = threading.RLock()
        self.uploaded_objects: list[str] = []  # sha256 of each LFS object stored, in arrival order
        self.uploaded_bytes = 0
        self.commit_count = 0
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.unhandled: list[tuple[str, str]] = []
        self.upload_blocked = threading.Event()  # set when an upload hangs (see hang_uploads_after)
        self._hang_after: int | None = None  # uploads admitted so far beyond which uploads hang
        self._admitted = 0  # LFS uploads let through (counted on arrival, so that the limit is exact)
        self._release = threading.Event()
        self._drop_commit = False
        self.tickets: dict[str, tuple[str, str, int]] = {}  # upload URL ticket -> (repo, oid, size)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.endpoint = ""

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = _Server(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- test helpers ---------------------------------------------------------------------------

    def create_repo(self, repo_id: str, *, private: bool = False) -> Repo:
        """Create a repo directly (as its owner would have), with the Hub's initial commit."""
        with self.lock:
            repo = Repo(repo_id=repo_id, private=private, created_at=_now())
            first = self._new_commit(repo, None, {".gitattributes": Blob.regular(GITATTRIBUTES)}, "initial commit")
            repo.branches["main"] = first.oid
            self.repos[repo_id] = repo
            return repo

    def create_branch(self, repo_id: str, branch: str, from_revision: str = "main") -> None:
        with self.lock:
            repo = self.repos[repo_id]
            repo.branches[branch] = repo.branches[from_revision]

    def files(self, repo_id: str, revision: str = "main") -> dict[str, Blob]:
        with self.lock:
            repo = self.repos[repo_id]
            return dict(repo.commits[repo.branches[revision]].files)

    def file_bytes(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        with self.lock:
            repo = self.repos[repo_id]
            return self._content(repo, repo.commits[repo.branches[revision]].files[path])

    def hang_uploads_after(self, n: int) -> None:
        """Store the next `n` LFS uploads; hang every later one until `stop()`/`release_uploads()`,
        then drop its connection without storing it."""
        with self.lock:
            self._hang_after = self._admitted + n
            self._release.clear()
            self.upload_blocked.clear()

    def release_uploads(self) -> None:
        with self.lock:
            self._hang_after = None
        self._release.set()

    def drop_next_commit(self) -> None:
        """Close the connection of the next commit request without applying it."""
        self._drop_commit = True

    # -- internals ------------------------------------------------------------------------------

    def _new_commit(self, repo: Repo, parent: str | None, files: dict[str, Blob], title: str) -> Commit:
        payload = json.dumps([parent, title, sorted((p, b.blob_id) for p, b in files.items()), time.time_ns()])
        commit = Commit(hashlib.sha1(payload.encode()).hexdigest(), parent, files, title, _now())
        repo.commits[commit.oid] = commit
        return commit

    @staticmethod
    def _content(repo: Repo, blob: Blob) -> bytes:
        return blob.content if blob.lfs_oid is None else repo.lfs[blob.lfs_oid]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError):  # the client went away (killed, timed out)
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub

    # -- plumbing -------------------------------------------------------------------------------

    def log_message(self, format, *args):  # keep test output clean; requests are recorded instead
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        segments = [unquote(s) for s in url.path.split("/")[1:]]
        self._body: bytes | None = None
        try:
            handler, args = self._route(method, segments)
            if handler is None:
                self.hub.unhandled.append((method, self.path))
                raise HubError(404, f"no route for {method} {url.path}")
            handler(*args)
        except _DropConnection:
            self.hub.requests.append((method, url.path, 0))
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except HubError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._json({"error": err.message}, status=err.status, headers=headers)

    def _route(self, method: str, s: list[str]):
        if method == "GET" and s == ["api", "whoami-v2"]:
            return self.whoami, ()
        if method == "POST" and s == ["api", "repos", "create"]:
            return self.create_repo, ()
        if method == "POST" and s == ["api", "validate-yaml"]:
            return self.validate_yaml, ()
        if len(s) >= 4 and s[:2] == ["api", "datasets"]:
            repo_id, rest = f"{s[2]}/{s[3]}", s[4:]
            if method == "GET" and not rest:
                return self.repo_info, (repo_id, "main")
            if method == "GET" and len(rest) == 2 and rest[0] == "revision":
                return self.repo_info, (repo_id, rest[1])
            if method == "GET" and rest == ["refs"]:
                return self.refs, (repo_id,)
            if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                return self.tree, (repo_id, rest[1], "/".join(rest[2:]))
            if method == "POST" and len(rest) == 2 and rest[0] == "paths-info":
                return self.paths_info, (repo_id, rest[1])
            if method == "POST" and len(rest) == 2 and rest[0] == "preupload":
                return self.preupload, (repo_id, rest[1])
            if method == "POST" and len(rest) == 2 and rest[0] == "commit":
                return self.commit, (repo_id, rest[1])
        if len(s) == 7 and s[0] == "datasets" and s[2].endswith(".git") and s[3:6] == ["info", "lfs", "objects"]:
            repo_id = f"{s[1]}/{s[2][: -len('.git')]}"
            if method == "POST" and s[6] == "batch":
                return self.lfs_batch, (repo_id,)
            if method == "POST" and s[6] == "verify":
                return self.lfs_verify, (repo_id,)
        if method == "PUT" and len(s) == 3 and s[:2] == ["_lfs", "upload"]:
            return self.lfs_upload, (s[2],)
        if method in ("GET", "HEAD") and len(s) >= 6 and s[0] == "datasets" and s[3] == "resolve":
            return self.resolve, (f"{s[1]}/{s[2]}", s[4], "/".join(s[5:]), method == "HEAD")
        return None, ()

    def body(self) -> bytes:
        if self._body is None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self._body = b"".join(chunks)
            else:
                self._body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return self._body

    def json_body(self):
        try:
            return json.loads(self.body() or b"{}")
        except ValueError:
            raise HubError(400, "request body is not valid JSON")

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None, head: bool = False):
        self.body()  # always consume the request, so that the connection stays usable
        # Recorded before answering: once the client has its answer, the request is in the log.
        self.hub.requests.append((self.command, urlsplit(self.path).path, status))
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if not any(k.lower() == "content-length" for k in (headers or {})):
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if not head and payload:
            self.wfile.write(payload)

    def _json(self, obj, status: int = 200, headers: dict[str, str] | None = None, content_type="application/json"):
        headers = {"Content-Type": content_type, **(headers or {})}
        self._send(status, json.dumps(obj).encode(), headers, head=self.command == "HEAD")

    def _flag(self, name: str) -> bool:
        return (self.query.get(name) or ["false"])[-1].lower() in ("1", "true")

    # -- auth and lookups -----------------------------------------------------------------------

    def user(self, required: bool) -> User | None:
        auth = self.headers.get("Authorization") or ""
        if not auth:
            if required:
                raise HubError(401, "Authentication is required: pass a token in the Authorization header")
            return None
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else auth
        user = TOKENS.get(token.strip())
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def repo_for_read(self, repo_id: str) -> Repo:
        user = self.user(required=False)
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and not _owns(user, repo.namespace)):
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def repo_for_write(self, repo_id: str) -> tuple[Repo, User]:
        user = self.user(required=True)
        repo = self.repo_for_read(repo_id)
        if not _owns(user, repo.namespace) or user.role != "write":
            raise HubError(403, f"You don't have the rights to write to {repo_id}")
        return repo, user

    @staticmethod
    def resolve_revision(repo: Repo, revision: str) -> Commit:
        if revision in repo.branches:
            return repo.commits[repo.branches[revision]]
        matches = [oid for oid in repo.commits if len(revision) >= 7 and oid.startswith(revision.lower())]
        if len(matches) == 1:
            return repo.commits[matches[0]]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def entry(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict | None:
        blob = commit.files.get(path)
        last = {"id": commit.oid, "title": commit.title, "date": commit.date}
        if blob is not None:
            item = {"type": "file", "oid": blob.blob_id, "size": blob.size, "path": path}
            if blob.lfs_oid is not None:
                pointer = lfs_pointer(blob.lfs_oid, blob.size)
                item["lfs"] = {"oid": blob.lfs_oid, "size": blob.size, "pointerSize": len(pointer)}
        elif any(p.startswith(path + "/") for p in commit.files) or path == "":
            item = {"type": "directory", "oid": hashlib.sha1(f"{commit.oid}:{path}".encode()).hexdigest(), "size": 0}
            item["path"] = path
        else:
            return None
        if expand:
            item["lastCommit"] = last  # the head commit: good enough for a stand-in
        return item

    # -- endpoints ------------------------------------------------------------------------------

    def whoami(self):
        user = self.user(required=True)
        self._json(
            {
                "type": "user",
                "id": hashlib.sha1(user.name.encode()).hexdigest()[:24],
                "name": user.name,
                "fullname": user.name.title(),
                "orgs": [{"type": "org", "name": org, "roleInOrg": "write"} for org in user.orgs],
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": user.role}},
            }
        )

    def create_repo(self):
        user = self.user(required=True)
        payload = self.json_body()
        if payload.get("type", "model") != "dataset":
            raise HubError(400, "this stand-in only hosts dataset repos")
        namespace = payload.get("organization") or user.name
        repo_id = f"{namespace}/{payload.get('name')}"
        if not _owns(user, namespace) or user.role != "write":
            raise HubError(403, f'You don\'t have the rights to create a dataset under the namespace "{namespace}"')
        with self.hub.lock:
            if repo_id in self.hub.repos:
                raise HubError(409, "You already created this dataset repo")
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            self.hub.create_repo(repo_id, private=private)
        self._json({"url": f"{self.hub.endpoint}/datasets/{repo_id}", "name": repo_id})

    def validate_yaml(self):
        content = str(self.json_body().get("content") or "")
        if not content.startswith("---"):
            self._json({"errors": [], "warnings": [{"message": "Empty or missing yaml metadata in repo card"}]})
            return
        try:
            _card_data(content.encode(), strict=True)
        except ValueError as exc:
            self._json({"errors": [{"message": str(exc)}]}, status=400, headers={"X-Error-Message": str(exc)})
            return
        self._json({"errors": [], "warnings": []})

    def repo_info(self, repo_id: str, revision: str):
        repo = self.repo_for_read(repo_id)
        with self.hub.lock:
            commit = self.resolve_revision(repo, revision)
            siblings = [{"rfilename": path, "size": blob.size} for path, blob in sorted(commit.files.items())]
            card = commit.files.get("README.md")
            card_data = _card_data(self.hub._content(repo, card)) if card else None
        self._json(
            {
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "author": repo.namespace,
                "sha": commit.oid,
                "lastModified": commit.date,
                "createdAt": repo.created_at,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "cardData": card_data,
                "siblings": siblings,
            }
        )

    def refs(self, repo_id: str):
        repo = self.repo_for_read(repo_id)
        branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": oid} for n, oid in repo.branches.items()]
        self._json({"branches": branches, "converts": [], "tags": [], "pullRequests": []})

    def tree(self, repo_id: str, revision: str, path: str):
        repo = self.repo_for_read(repo_id)
        recursive, expand = self._flag("recursive"), self._flag("expand")
        path = path.strip("/")
        with self.hub.lock:
            commit = self.resolve_revision(repo, revision)
            if path and self.entry(repo, commit, path, False) is None:
                raise HubError(404, f"Path {path} not found", "EntryNotFound")
            prefix = path + "/" if path else ""
            children: set[str] = set()
            for file_path in commit.files:
                if not file_path.startswith(prefix):
                    continue
                parts = file_path[len(prefix) :].split("/")
                depth = len(parts) if recursive else 1
                for i in range(1, depth + 1):
                    children.add(prefix + "/".join(parts[:i]))
            listing = [self.entry(repo, commit, child, expand) for child in sorted(children)]
        self._json(listing)

    def paths_info(self, repo_id: str, revision: str):
        repo = self.repo_for_read(repo_id)
        form = parse_qs(self.body().decode())
        expand = (form.get("expand") or ["false"])[-1].lower() in ("1", "true")
        with self.hub.lock:
            commit = self.resolve_revision(repo, revision)
            found = [self.entry(repo, commit, p.strip("/"), expand) for p in form.get("paths", [])]
        self._json([item for item in found if item is not None])

    def preupload(self, repo_id: str, revision: str):
        repo, _ = self.repo_for_write(repo_id)
        files = self.json_body().get("files") or []
        with self.hub.lock:
            commit = self.resolve_revision(repo, revision)
            answer = []
            for item in files:
                sample = base64.b64decode(item.get("sample") or "")
                lfs = (
                    item["path"].lower().endswith(LFS_SUFFIXES)
                    or int(item.get("size") or 0) >= LFS_MIN_SIZE
                    or b"\0" in sample
                )
                remote = commit.files.get(item["path"])
                oid = None if remote is None else (remote.lfs_oid or remote.blob_id)
                answer.append(
                    {"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
                )
        self._json({"files": answer, "commitOid": commit.oid})

    def lfs_batch(self, repo_id: str):
        repo, _ = self.repo_for_write(repo_id)
        payload = self.json_body()
        if payload.get("operation") != "upload":
            raise HubError(400, "this stand-in only implements LFS uploads")
        if "basic" not in (payload.get("transfers") or ["basic"]):
            raise HubError(422, "this stand-in only implements the basic transfer")
        objects = []
        with self.hub.lock:
            for obj in payload.get("objects") or []:
                oid, size = obj["oid"], int(obj["size"])
                if oid in repo.lfs:  # already stored: the client must not send it again
                    objects.append({"oid": oid, "size": size})
                    continue
                ticket = secrets.token_urlsafe(16)
                self.hub.tickets[ticket] = (repo_id, oid, size)
                objects.append(
                    {
                        "oid": oid,
                        "size": size,
                        "authenticated": True,
                        "actions": {
                            "upload": {"href": f"{self.hub.endpoint}/_lfs/upload/{ticket}", "header": {}},
                            "verify": {
                                "href": f"{self.hub.endpoint}/datasets/{repo_id}.git/info/lfs/objects/verify",
                                "header": {},
                            },
                        },
                    }
                )
        self._json({"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")

    def lfs_upload(self, ticket: str):
        if ticket not in self.hub.tickets:
            raise HubError(403, "unknown or expired upload URL")
        repo_id, oid, size = self.hub.tickets[ticket]
        data = self.body()
        hub = self.hub
        with hub.lock:  # admission and storage in one step: once an upload hangs, all before it are stored
            hang = hub._hang_after is not None and hub._admitted >= hub._hang_after
            if not hang:
                hub._admitted += 1
                if len(data) != size or hashlib.sha256(data).hexdigest() != oid:
                    raise HubError(400, f"uploaded content does not match oid {oid} / size {size}")
                repo = hub.repos[repo_id]
                if oid not in repo.lfs:
                    repo.lfs[oid] = data
                    hub.uploaded_objects.append(oid)
                    hub.uploaded_bytes += len(data)
        if hang:  # an interrupted transfer: nothing is stored, the client never gets an answer
            hub.upload_blocked.set()
            hub._release.wait(timeout=60)
            raise _DropConnection()
        self._send(200, b"")

    def lfs_verify(self, repo_id: str):
        repo, _ = self.repo_for_write(repo_id)
        obj = self.json_body()
        if obj.get("oid") not in repo.lfs or len(repo.lfs[obj["oid"]]) != obj.get("size"):
            raise HubError(404, f"object {obj.get('oid')} is not stored")
        self._json({})

    def commit(self, repo_id: str, revision: str):
        repo, _ = self.repo_for_write(repo_id)
        lines = [json.loads(line) for line in self.body().splitlines() if line.strip()]
        if self.hub._drop_commit:
            self.hub._drop_commit = False
            raise _DropConnection()
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "a commit starts with a header line")
        header = lines[0]["value"]
        with self.hub.lock:
            if revision not in repo.branches:
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            head = repo.commits[repo.branches[revision]]
            parent = header.get("parentCommit")
            if parent and not head.oid.startswith(parent.lower()):
                raise HubError(412, f"parent commit {parent} is not the head of {revision} ({head.oid})")
            files = dict(head.files)
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value") or {}
                path = str(value.get("path", "")).strip("/")
                if key == "file":
                    files[path] = Blob.regular(base64.b64decode(value["content"]))
                elif key == "lfsFile":
                    oid = value["oid"]
                    if oid not in repo.lfs:
                        raise HubError(422, f"LFS object {oid} for {path} was never uploaded")
                    files[path] = Blob.lfs(oid, len(repo.lfs[oid]))
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    for p in [p for p in files if p.startswith(path + "/")]:
                        del files[p]
                else:
                    raise HubError(400, f"unknown commit operation {key!r}")
            commit = self.hub._new_commit(repo, head.oid, files, header.get("summary") or "")
            repo.branches[revision] = commit.oid
            self.hub.commit_count += 1
        self._json(
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{self.hub.endpoint}/datasets/{repo_id}/commit/{commit.oid}",
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )

    def resolve(self, repo_id: str, revision: str, path: str, head: bool):
        repo = self.repo_for_read(repo_id)
        with self.hub.lock:
            commit = self.resolve_revision(repo, revision)
            blob = commit.files.get(path)
            if blob is None:
                raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
            content = self.hub._content(repo, blob)
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{blob.lfs_oid or blob.blob_id}"',
        }
        if blob.lfs_oid is not None:
            headers["X-Linked-Etag"] = f'"{blob.lfs_oid}"'
            headers["X-Linked-Size"] = str(blob.size)
        status, payload = 200, content
        ranged = _parse_range(self.headers.get("Range"), len(content))
        if ranged == "invalid":
            headers["Content-Range"] = f"bytes */{len(content)}"
            self._send(416, b"", headers)
            return
        if ranged is not None:
            start, end = ranged
            status, payload = 206, content[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        headers["Content-Length"] = str(len(payload))
        self._send(status, payload, headers, head=head)


def _owns(user: User | None, namespace: str) -> bool:
    return user is not None and (namespace == user.name or namespace in user.orgs)


def _parse_range(header: str | None, size: int):
    if not header:
        return None
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return "invalid"
    if match.group(1):
        start = int(match.group(1))
        end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    else:
        start, end = max(size - int(match.group(2)), 0), size - 1
    if start >= size or start > end:
        return "invalid"
    return start, end


def _card_data(content: bytes, strict: bool = False) -> dict | None:
    """The YAML header of a card; with `strict`, a header that does not parse raises ValueError."""
    import yaml

    text = content.decode("utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    try:
        if end < 0:
            raise yaml.YAMLError("the YAML header is not closed by '---'")
        data = yaml.safe_load(text[3:end])
        if data is not None and not isinstance(data, dict):
            raise yaml.YAMLError("the YAML header is not a mapping")
        return data
    except yaml.YAMLError as exc:
        if strict:
            raise ValueError(f"Invalid YAML in README.md: {' '.join(str(exc).split())}") from exc
        return None
