"""Failures of a push, from the Hub client's exceptions to one line a user can act on: cause, then fix."""

from __future__ import annotations


class PushError(Exception):
    """A push failed for a reason the user can act on. `str()` is one line: cause, then fix."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def explain(exc: BaseException, ctx) -> PushError | None:
    """Translate a known failure (HTTP status, network, offline mode) into a `PushError`, else None.

    `ctx` says what the push was doing: endpoint, repo_id, namespace, name, revision, token_source,
    user, stage (builder.publish._Context)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RevisionNotFoundError

    transport, connect = _transport_errors()
    root = _find_cause(exc, (HfHubHTTPError, OfflineModeIsEnabled, *transport))
    if root is None:
        return _upload_failure(exc, ctx)
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


def _upload_failure(exc: BaseException, ctx) -> PushError | None:
    """A failure of the transfer itself that carries no HTTP client error: the Xet client (`hf_xet`,
    which huggingface_hub uses when it is installed) reports a dropped connection as a bare
    RuntimeError or ConnectionError from Rust, and huggingface_hub's LFS uploader wraps whatever
    failed in a RuntimeError. Objects that arrived stay stored, so running the push again resumes."""
    if not ctx.stage.startswith("uploading") or not isinstance(exc, (RuntimeError, OSError)):
        return None
    detail = _first_line(str(exc.__cause__ or exc)) or "no details"
    kind = type(exc.__cause__ or exc).__name__
    return PushError(
        f"the upload to the Hub at {ctx.endpoint} failed while {ctx.stage} ({kind}: {detail}): if your connection "
        "dropped, check it, then run the same command again; files that already arrived are not uploaded again"
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
