"""A small stand-in of the Hugging Face Hub's HTTP protocol, for tests that must not reach the Hub.

`FakeHub` runs a `http.server.ThreadingHTTPServer` on 127.0.0.1 (a free port) and answers the part
of the Hub's HTTP API that `huggingface_hub` (2.x) and `datasets` use to publish a dataset repo and
to load it back. Point the real clients at it with `HF_ENDPOINT=hub.endpoint`; nothing in them is
patched. Storage is in memory; the server is not a git server (there are no packfiles) but it keeps
real commits, branches and content-addressed large-file storage, so the clients see the same
behaviour as on the Hub: an object already stored is not asked for again, a commit can only refer to
stored objects, a branch head moves only on commit.

Endpoints (`ROUTES`; all for dataset repos, `{repo}` = `namespace/name`, `{rev}` = URL-quoted revision):

* `GET  /api/whoami-v2`: user, orgs, token role
* `POST /api/repos/create`: 200 `{url}`, 409 if it exists, 403 for a namespace the user does not own
* `POST /api/validate-yaml`: checks a card's YAML header (the client asks before committing a card)
* `GET  /api/datasets/{repo}[/revision/{rev}]`: repo info (`sha`, `siblings`, `private`)
* `GET  /api/datasets/{repo}/refs`: branches
* `PUT  /api/datasets/{repo}/settings`: gated access (`gated`: "auto", "manual" or false) and visibility
* `GET  /api/datasets/{repo}/tree/{rev}[/{path}]`: listing (`recursive` parameter); 404 `EntryNotFound`
  for a path that does not exist, as the Hub answers
* `POST /api/datasets/{repo}/preupload/{rev}`: upload mode ("lfs"/"regular") and remote oid per file
* `POST /datasets/{repo}.git/info/lfs/objects/batch`: LFS batch API, basic transfer: an object already
  stored gets no `actions`, others an upload URL (`PUT /_lfs/{repo}/{oid}`, whose body must hash to
  `oid`) and a verify URL (`POST /datasets/{repo}.git/info/lfs/objects/verify`)
* `POST /api/datasets/{repo}/commit/{rev}`: ndjson commit (header, file, lfsFile, deletedFile,
  deletedFolder); honours `parentCommit`, refuses an lfsFile whose object was never uploaded
* `GET|HEAD /datasets/{repo}/resolve/{rev}/{path}`: file content with `ETag`, `X-Repo-Commit`,
  `X-Linked-Etag`/`X-Linked-Size` for large files, and `Range` requests (206)

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
`HF_HUB_DISABLE_XET=1` selects the plain LFS basic transfer, which is what the tests set. On the
read side the client only uses Xet for files whose tree entry or `resolve` response advertises a Xet
hash (`xetHash`, `X-Xet-Hash`), which this server never does. Any route it does not know (such as
the Xet token routes) answers 404 and is recorded in `FakeHub.unhandled`.

For tests it records every request (`requests`), counts what arrives (`uploaded_objects`,
`uploaded_bytes`, `commit_count`) and can inject faults: `hang_uploads_after(n)` (the next uploads
beyond `n` hang until the client is killed, then their connection is dropped) and
`drop_next_commit()` (the connection is closed before the commit is applied).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

VALID_TOKEN = "hf_alice_write_token"  # user "alice", write access, member of org "alice-lab"
READ_ONLY_TOKEN = "hf_alice_read_token"  # user "alice", read-only token


@dataclass(frozen=True)
class User:
    name: str
    orgs: tuple[str, ...] = ()
    role: str = "write"  # "write" or "read", as the Hub reports a token's role

    def owns(self, namespace: str) -> bool:
        return namespace == self.name or namespace in self.orgs


TOKENS = {
    VALID_TOKEN: User("alice", ("alice-lab",)),
    READ_ONLY_TOKEN: User("alice", ("alice-lab",), role="read"),
}

# Extensions the Hub's default .gitattributes sends to LFS (a subset); bigger or binary files go too.
LFS_SUFFIXES = (".parquet", ".arrow", ".png", ".jpg", ".jpeg", ".webp", ".bin", ".npy", ".npz", ".zip", ".gz", ".tar")
LFS_MIN_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class Blob:
    """A file of a commit. A large (LFS) file's git blob is a pointer to the sha256 of its content."""

    content: bytes
    lfs: bool = False

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @cached_property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n".encode()

    @cached_property
    def blob_id(self) -> str:
        return git_blob_id(self.pointer if self.lfs else self.content)

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass
class Commit:
    oid: str
    parent: str | None
    files: dict[str, Blob]
    title: str


@dataclass
class Repo:
    repo_id: str
    private: bool
    gated: str | bool = False  # "auto" / "manual" once gated, as the Hub reports it
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)
    lfs: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content (uploaded, committed or not)

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    def commit(self, branch: str, files: dict[str, Blob], title: str) -> Commit:
        """A new commit on `branch` (created if missing), which moves the branch head."""
        parent = self.branches.get(branch)
        payload = json.dumps([parent, title, sorted((p, b.blob_id) for p, b in files.items()), time.time_ns()])
        commit = Commit(hashlib.sha1(payload.encode()).hexdigest(), parent, files, title)
        self.commits[commit.oid] = commit
        self.branches[branch] = commit.oid
        return commit

    def resolve(self, revision: str) -> Commit:
        """The commit of a branch name or of a (7+ character) commit oid prefix."""
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        matches = [oid for oid in self.commits if len(revision) >= 7 and oid.startswith(revision.lower())]
        if len(matches) != 1:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commits[matches[0]]


class HubError(Exception):
    """An error answer: status, `X-Error-Message` and, if given, `X-Error-Code`."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class DropConnection(Exception):
    """Close the socket without answering, like a connection lost mid-request."""


class FakeHub:
    """The server and its state. Use as a context manager, or `start()` / `stop()`."""

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.lock = threading.RLock()
        self.uploaded_objects: list[str] = []  # sha256 of each LFS object stored, in arrival order
        self.uploaded_bytes = 0
        self.commit_count = 0
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status); status 0: dropped
        self.unhandled: list[tuple[str, str]] = []
        self.upload_blocked = threading.Event()  # set when an upload hangs (see hang_uploads_after)
        self._hang_after: int | None = None  # uploads admitted so far beyond which uploads hang
        self._admitted = 0  # LFS uploads let through (counted on arrival, so that the limit is exact)
        self._release = threading.Event()
        self._drop_commit = False
        self._drop_uploads_after: int | None = None  # uploads admitted beyond which every upload is dropped
        self._server: ThreadingHTTPServer | None = None
        self.endpoint = ""

    def start(self) -> FakeHub:
        self._server = _Server(("127.0.0.1", 0), type("Handler", (_Handler,), {"hub": self}))
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    __enter__ = start

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- test helpers ---------------------------------------------------------------------------

    def create_repo(self, repo_id: str, *, private: bool = False) -> Repo:
        """Create a repo directly (as its owner would have), with the Hub's initial commit."""
        with self.lock:
            repo = self.repos[repo_id] = Repo(repo_id, private)
            repo.commit("main", {".gitattributes": Blob(GITATTRIBUTES)}, "initial commit")
            return repo

    def create_branch(self, repo_id: str, branch: str, from_revision: str = "main") -> None:
        with self.lock:
            repo = self.repos[repo_id]
            repo.branches[branch] = repo.branches[from_revision]

    def files(self, repo_id: str, revision: str = "main") -> dict[str, Blob]:
        with self.lock:
            return dict(self.repos[repo_id].resolve(revision).files)

    def file_bytes(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        return self.files(repo_id, revision)[path].content

    def last_commit(self, repo_id: str, path: str, revision: str = "main") -> str:
        """Oid of the commit that last changed `path` (its last-commit on the Hub's file view)."""
        with self.lock:
            repo = self.repos[repo_id]
            commit = repo.resolve(revision)
            blob = commit.files[path].blob_id
            while commit.parent is not None:
                parent = repo.commits[commit.parent]
                if path not in parent.files or parent.files[path].blob_id != blob:
                    break
                commit = parent
            return commit.oid

    def replace_file(self, repo_id: str, path: str, content: bytes, revision: str = "main") -> None:
        """Commit other bytes at `path`, as a tampered or damaged upload would leave them."""
        with self.lock:
            repo = self.repos[repo_id]
            files = dict(repo.resolve(revision).files)
            files[path] = Blob(content, lfs=files[path].lfs)
            repo.lfs[files[path].sha256] = content
            repo.commit(revision, files, f"replace {path}")

    def hang_uploads_after(self, n: int) -> None:
        """Store the next `n` LFS uploads; hang every later one until `stop()`/`release_uploads()`,
        then drop its connection without storing it."""
        with self.lock:
            self._hang_after = self._admitted + n
            self._release.clear()
            self.upload_blocked.clear()

    def drop_uploads_after(self, n: int) -> None:
        """Store the next `n` LFS uploads; drop the connection of every later one (retries included)
        at once, as a network that went down mid-push."""
        with self.lock:
            self._drop_uploads_after = self._admitted + n

    def release_uploads(self) -> None:
        with self.lock:
            self._hang_after = None
        self._release.set()

    def drop_next_commit(self) -> None:
        """Close the connection of the next commit request without applying it."""
        self._drop_commit = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # else the client went away (killed)
            super().handle_error(request, client_address)


_REPO, _REV = r"(?P<repo_id>[^/]+/[^/]+)", r"(?P<rev>[^/]+)"
# (methods, pattern of the URL-quoted path, handler method): the groups, unquoted, are its arguments.
ROUTES = [
    ("GET", r"/api/whoami-v2", "whoami"),
    ("POST", r"/api/repos/create", "create_repo"),
    ("POST", r"/api/validate-yaml", "validate_yaml"),
    ("GET", rf"/api/datasets/{_REPO}(?:/revision/{_REV})?", "repo_info"),
    ("GET", rf"/api/datasets/{_REPO}/refs", "refs"),
    ("PUT", rf"/api/datasets/{_REPO}/settings", "settings"),
    ("GET", rf"/api/datasets/{_REPO}/tree/{_REV}(?:/(?P<path>.*))?", "tree"),
    ("POST", rf"/api/datasets/{_REPO}/preupload/{_REV}", "preupload"),
    ("POST", rf"/api/datasets/{_REPO}/commit/{_REV}", "commit"),
    ("POST", rf"/datasets/{_REPO}\.git/info/lfs/objects/batch", "lfs_batch"),
    ("POST", rf"/datasets/{_REPO}\.git/info/lfs/objects/verify", "lfs_verify"),
    ("PUT", rf"/_lfs/{_REPO}/(?P<oid>[0-9a-f]{{64}})", "lfs_upload"),
    ("GET HEAD", rf"/datasets/{_REPO}/resolve/{_REV}/(?P<path>.+)", "resolve"),
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub

    def log_message(self, format, *args):  # keep test output clean; requests are recorded instead
        pass

    def dispatch(self) -> None:
        url = urlsplit(self.path)
        self.url_path, self.query, self._body = url.path, parse_qs(url.query), None
        try:
            for methods, pattern, name in ROUTES:
                match = re.fullmatch(pattern, url.path)
                if match and self.command in methods.split():
                    return getattr(self, name)(**{k: unquote(v) for k, v in match.groupdict().items() if v})
            self.hub.unhandled.append((self.command, self.path))
            raise HubError(404, f"no route for {self.command} {url.path}")
        except DropConnection:
            self.hub.requests.append((self.command, url.path, 0))
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        except HubError as err:
            headers = {"X-Error-Message": err.message, **({"X-Error-Code": err.code} if err.code else {})}
            self.send_json({"error": err.message}, err.status, headers)

    do_GET = do_HEAD = do_POST = do_PUT = dispatch

    def body(self) -> bytes:
        if self._body is None:
            self._body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return self._body

    def send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.body()  # always consume the request, so that the connection stays usable
        # Recorded before answering: once the client has its answer, the request is in the log.
        self.hub.requests.append((self.command, self.url_path, status))
        self.send_response(status)
        for key, value in {"Content-Length": str(len(payload)), **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def send_json(self, obj, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def user(self, required: bool = True) -> User | None:
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if token and token not in TOKENS:
            raise HubError(401, "Invalid credentials in Authorization header")
        if not token and required:
            raise HubError(401, "Authentication is required: pass a token in the Authorization header")
        return TOKENS.get(token)

    def repo(self, repo_id: str, write: bool = False) -> Repo:
        """The repo if the request's token may read it (404 otherwise) and, with `write`, write to it (403)."""
        user = self.user(required=write)
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and not (user and user.owns(repo.namespace))):
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        if write and (not user.owns(repo.namespace) or user.role != "write"):
            raise HubError(403, f"You don't have the rights to write to {repo_id}")
        return repo

    # -- endpoints, in the order of ROUTES ------------------------------------------------------

    def whoami(self):
        user = self.user()
        orgs = [{"type": "org", "name": org, "roleInOrg": "write"} for org in user.orgs]
        access = {"type": "access_token", "accessToken": {"displayName": "test", "role": user.role}}
        self.send_json({"type": "user", "name": user.name, "orgs": orgs, "auth": access})

    def create_repo(self):
        user, payload = self.user(), json.loads(self.body())
        namespace = payload.get("organization") or user.name
        repo_id = f"{namespace}/{payload['name']}"
        if not user.owns(namespace) or user.role != "write":
            raise HubError(403, f'You don\'t have the rights to create a dataset under the namespace "{namespace}"')
        with self.hub.lock:
            if repo_id in self.hub.repos:
                raise HubError(409, "You already created this dataset repo")
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            self.hub.create_repo(repo_id, private=private)
        self.send_json({"url": f"{self.hub.endpoint}/datasets/{repo_id}", "name": repo_id})

    def validate_yaml(self):
        import yaml

        text = json.loads(self.body()).get("content") or ""
        end = text.find("\n---", 3)
        try:
            if text.startswith("---") and end < 0:
                raise yaml.YAMLError("the YAML header is not closed by '---'")
            if text.startswith("---") and not isinstance(yaml.safe_load(text[3:end]), (dict, type(None))):
                raise yaml.YAMLError("the YAML header is not a mapping")
        except yaml.YAMLError as exc:
            message = f"Invalid YAML in README.md: {' '.join(str(exc).split())}"
            return self.send_json({"errors": [{"message": message}]}, 400, {"X-Error-Message": message})
        self.send_json({"errors": [], "warnings": []})

    def repo_info(self, repo_id: str, rev: str = "main"):
        repo = self.repo(repo_id)
        with self.hub.lock:
            commit = repo.resolve(rev)
            siblings = [{"rfilename": path, "size": blob.size} for path, blob in sorted(commit.files.items())]
        info = {"id": repo_id, "sha": commit.oid, "private": repo.private, "gated": repo.gated, "siblings": siblings}
        self.send_json(info)

    def refs(self, repo_id: str):
        heads = self.repo(repo_id).branches.items()
        branches = [{"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid} for name, oid in heads]
        self.send_json({"branches": branches, "converts": [], "tags": [], "pullRequests": []})

    def settings(self, repo_id: str):
        repo, payload = self.repo(repo_id, write=True), json.loads(self.body())
        if "gated" in payload:
            if payload["gated"] not in ("auto", "manual", False):
                raise HubError(400, f"invalid gated value {payload['gated']!r}")
            repo.gated = payload["gated"]
        if "private" in payload:
            repo.private = bool(payload["private"])
        self.send_json({})

    def tree(self, repo_id: str, rev: str, path: str = ""):
        repo, path = self.repo(repo_id), path.strip("/")
        recursive = (self.query.get("recursive") or ["false"])[-1].lower() in ("1", "true")
        prefix = path + "/" if path else ""
        with self.hub.lock:
            commit = repo.resolve(rev)
            if path and _entry(commit, path) is None:  # as the Hub: a path that does not exist is a 404
                raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
            children: set[str] = set()
            for file_path in commit.files:
                if file_path.startswith(prefix):  # the file's folders below `path` (all if recursive), and itself
                    parts = file_path[len(prefix) :].split("/")
                    children.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts) if recursive else 1))
            listing = [_entry(commit, child) for child in sorted(children)]
        self.send_json(listing)

    def preupload(self, repo_id: str, rev: str):
        repo, answer = self.repo(repo_id, write=True), []
        with self.hub.lock:
            commit = repo.resolve(rev)
            for item in json.loads(self.body())["files"]:
                path, remote = item["path"], commit.files.get(item["path"])
                lfs = (
                    path.lower().endswith(LFS_SUFFIXES)
                    or int(item.get("size") or 0) >= LFS_MIN_SIZE
                    or b"\0" in base64.b64decode(item.get("sample") or "")
                )
                oid = remote and (remote.sha256 if remote.lfs else remote.blob_id)
                mode = "lfs" if lfs else "regular"
                answer.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self.send_json({"files": answer, "commitOid": commit.oid})

    def lfs_batch(self, repo_id: str):
        repo, objects = self.repo(repo_id, write=True), json.loads(self.body())["objects"]
        verify = {"href": f"{self.hub.endpoint}/datasets/{repo_id}.git/info/lfs/objects/verify", "header": {}}
        for obj in objects:  # an object already stored gets no actions: it is not sent again
            if obj["oid"] not in repo.lfs:
                upload = {"href": f"{self.hub.endpoint}/_lfs/{repo_id}/{obj['oid']}", "header": {}}
                obj["actions"] = {"upload": upload, "verify": verify}
        self.send_json({"transfer": "basic", "objects": objects}, 200, {"Content-Type": "application/vnd.git-lfs+json"})

    def lfs_upload(self, repo_id: str, oid: str):
        data, hub = self.body(), self.hub
        with hub.lock:  # admission and storage in one step: once an upload hangs, all before it are stored
            if hub._drop_uploads_after is not None and hub._admitted >= hub._drop_uploads_after:
                raise DropConnection()
            hang = hub._hang_after is not None and hub._admitted >= hub._hang_after
            if not hang:
                hub._admitted += 1
                if hashlib.sha256(data).hexdigest() != oid:
                    raise HubError(400, f"uploaded content does not match oid {oid}")
                if oid not in hub.repos[repo_id].lfs:
                    hub.repos[repo_id].lfs[oid] = data
                    hub.uploaded_objects.append(oid)
                    hub.uploaded_bytes += len(data)
        if hang:  # an interrupted transfer: nothing is stored, the client never gets an answer
            hub.upload_blocked.set()
            hub._release.wait(timeout=60)
            raise DropConnection()
        self.send(200, b"")

    def lfs_verify(self, repo_id: str):
        stored, obj = self.repo(repo_id, write=True).lfs, json.loads(self.body())
        if obj["oid"] not in stored or len(stored[obj["oid"]]) != obj["size"]:
            raise HubError(404, f"object {obj['oid']} is not stored")
        self.send_json({})

    def commit(self, repo_id: str, rev: str):
        repo = self.repo(repo_id, write=True)
        lines = [json.loads(line) for line in self.body().splitlines() if line.strip()]
        if self.hub._drop_commit:
            self.hub._drop_commit = False
            raise DropConnection()
        header = lines[0]["value"]  # the first line is the header
        with self.hub.lock:
            if rev not in repo.branches:
                raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            head, parent = repo.resolve(rev), header.get("parentCommit")
            if parent and not head.oid.startswith(parent.lower()):
                raise HubError(412, f"parent commit {parent} is not the head of {rev} ({head.oid})")
            files = dict(head.files)
            for key, value in ((line["key"], line["value"]) for line in lines[1:]):
                path = value["path"].strip("/")
                if key == "file":
                    files[path] = Blob(base64.b64decode(value["content"]))
                elif key == "lfsFile" and value["oid"] in repo.lfs:
                    files[path] = Blob(repo.lfs[value["oid"]], lfs=True)
                elif key == "lfsFile":
                    raise HubError(422, f"LFS object {value['oid']} for {path} was never uploaded")
                elif key == "deletedFile" and path in files:
                    del files[path]
                elif key == "deletedFile":
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    files = {p: blob for p, blob in files.items() if not p.startswith(path + "/")}
                else:
                    raise HubError(400, f"unknown commit operation {key!r}")
            commit = repo.commit(rev, files, header.get("summary") or "")
            self.hub.commit_count += 1
        url = f"{self.hub.endpoint}/datasets/{repo_id}/commit/{commit.oid}"
        self.send_json({"success": True, "commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None})

    def resolve(self, repo_id: str, rev: str, path: str):
        repo = self.repo(repo_id)
        with self.hub.lock:
            commit = repo.resolve(rev)
            if path not in commit.files:
                raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
            blob = commit.files[path]
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", "X-Repo-Commit": commit.oid}
        headers["ETag"] = f'"{blob.sha256 if blob.lfs else blob.blob_id}"'
        if blob.lfs:
            headers.update({"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(blob.size)})
        if "Range" not in self.headers:
            return self.send(200, blob.content, headers)
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers["Range"].strip())
        start, end = (int(match[1]), min(int(match[2] or blob.size - 1), blob.size - 1)) if match else (0, -1)
        if not start <= end:  # malformed, a suffix range (not supported) or past the end
            return self.send(416, b"", {**headers, "Content-Range": f"bytes */{blob.size}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
        self.send(206, blob.content[start : end + 1], headers)


def _entry(commit: Commit, path: str) -> dict | None:
    """The tree entry of the file or folder `path` of `commit`, None if there is none."""
    blob = commit.files.get(path)
    if blob is not None:
        item = {"type": "file", "oid": blob.blob_id, "size": blob.size, "path": path}
        if blob.lfs:
            item["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": len(blob.pointer)}
        return item
    if path == "" or any(p.startswith(path + "/") for p in commit.files):
        return {"type": "directory", "oid": git_blob_id(f"{commit.oid}:{path}".encode()), "size": 0, "path": path}
    return None
