"""What every request passes before it reaches a route: the drive-by web page's guard and
the size of a body.

Without ``--auth`` the server trusts whoever can reach it, so it must be sure that
"whoever" is a program on this machine and not a web page the user happens to have open:

- the ``Host`` header must name the server (a loopback name, or one the operator listed):
  a DNS-rebinding page reaches the server under its own name, and is refused, for reads
  too;
- a request that changes state and carries an ``Origin`` (every browser sends one on a
  cross-origin POST, a form's included) must come from the server's own origin;
  ``Sec-Fetch-Site: cross-site``/``same-site`` is refused too (another port on localhost
  is same-site but not same-origin);
- a read another site's page makes (``Sec-Fetch-Site: cross-site``/``same-site``: an
  image, a script, a fetch, an EventSource) is refused: the page cannot read the answer,
  but it could make the server build long lists or hold its few event streams. A person
  following a link to the viewer (a top-level navigation) is let through.

Every answer says no other site may frame it (``X-Frame-Options``, CSP
``frame-ancestors``): a framed viewer's buttons (stop, delete, submit) could be clicked
under a decoy, with or without ``--auth``.

With ``--auth`` the bearer token is the guard: a browser never attaches it on its own.
Whatever the mode, a body must declare ``application/json`` (or ``…+json``) or
``application/yaml``: the "simple" types a page may send without a CORS preflight
(``text/plain``, forms) are refused, and a body may not exceed ``max_body`` bytes.
A read-only server (``katib ui``) refuses every method but GET, HEAD and OPTIONS.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Shared with katib serve's guard, which must not load this package (the server's app).
from katib._httpguard import BODY_SECONDS, LOOPBACK_NAMES, foreign_origin, is_loopback, split_host

READS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_TYPES = ("application/json", "application/yaml", "application/x-yaml")
DEFAULT_MAX_BODY = 1 << 20  # 1 MiB: an experiment's YAML is a few KiB


def _navigation(headers: dict[str, str]) -> bool:
    """A person following a link to the server (a top-level page load), not a page's request."""
    return headers.get("sec-fetch-mode") == "navigate" and headers.get("sec-fetch-dest", "document") == "document"


def body_type_allowed(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in BODY_TYPES or (media.startswith("application/") and media.endswith("+json"))


class RequestGuard:
    """ASGI middleware: Host, Origin and body type and size, refused with 4xx before any
    route runs. ``allowed_hosts`` are extra names the ``Host`` header may carry."""

    def __init__(self, app: ASGIApp, *, auth: bool, read_only: bool = False,
                 allowed_hosts: Iterable[str] = (), max_body: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.auth = auth
        self.read_only = read_only
        self.allowed_hosts = {split_host(h) for h in allowed_hosts if h}
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        problem = self._refusal(scope, headers)
        if problem is not None:
            await _refuse(scope, send, *problem)
            return
        await self.app(scope, self._bounded(scope, receive, send), _framed_by_none(send))

    def _host_ok(self, host: str) -> bool:
        name = split_host(host)
        return is_loopback(name) or name in self.allowed_hosts

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        method = scope["method"].upper()
        if self.read_only and method not in READS:
            return 405, "this server is read-only (katib ui): it serves the viewer and refuses every change; use katib server"
        if not self.auth:
            host = headers.get("host", "")
            if not self._host_ok(host):
                return 403, (f"Host {host!r} does not name this server: without --auth it answers only to loopback "
                             "names and those given with --allowed-host")
            site = headers.get("sec-fetch-site", "same-origin")
            if method in READS and site in ("cross-site", "same-site") and not _navigation(headers):
                # A page's image, script, fetch or EventSource: it cannot read the answer,
                # but each costs the server (a long list; one of the few event streams).
                return 403, ("cross-site request refused: without --auth another site's pages may open the "
                             "viewer, not read or stream from the API")
            if method not in READS:
                origin = headers.get("origin")
                if foreign_origin(origin, host):
                    return 403, (f"cross-origin request refused: Origin {origin!r} is not this server's origin; "
                                 "without --auth only the server's own pages may change anything")
                if headers.get("sec-fetch-site", "same-origin") in ("cross-site", "same-site"):
                    return 403, "cross-site request refused: without --auth only the server's own pages may change anything"
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return 400, f"Content-Length must be a number of bytes (got {length[:40]!r})"
            if int(length) > self.max_body:
                return 413, (f"the body has {int(length)} bytes, more than the limit of {self.max_body} "
                             "(raise it with katib server --max-body)")
        has_body = (length is not None and int(length) > 0) or "chunked" in headers.get("transfer-encoding", "")
        if method not in READS and has_body and not body_type_allowed(headers.get("content-type", "")):
            return 415, (f"Content-Type {headers.get('content-type', '')!r} is not accepted: send the body as "
                         "application/json or application/yaml")
        return None

    def _bounded(self, scope: Scope, receive: Receive, send: Send) -> Receive:
        """``receive`` that stops a chunked body at ``max_body`` bytes, and a body that has
        not all come ``BODY_SECONDS`` after the request began (a client that sends a byte
        now and then held its connection, and the request's task, forever). Once the body
        is whole, ``receive`` waits as long as it must (an event stream waits on it for
        the client to go)."""
        seen = 0
        limit = self.max_body
        due = asyncio.get_running_loop().time() + BODY_SECONDS
        whole = False

        async def bounded() -> Message:
            nonlocal seen, whole
            if whole:
                return await receive()
            try:
                async with asyncio.timeout_at(due):  # no task per receive, as wait_for makes
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow(BODY_SECONDS) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
                whole = not message.get("more_body", False)
            else:
                whole = True
            return message

        return bounded


class BodyTooSlow(Exception):
    """The body did not all arrive in time (answered 408)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request's body did not all arrive within {seconds:g} seconds of its start")


class BodyTooLarge(Exception):
    """A chunked body passed the limit while it was read, or what it would add to the
    server's files passes theirs (answered 413)."""

    def __init__(self, limit: int, message: str | None = None) -> None:
        super().__init__(message or f"the body is larger than the limit of {limit} bytes (raise it with katib server "
                                    "--max-body)")


_NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces/[^/]+/?$")
_CORE_LIST_PATH = re.compile(r"^/api/v1/namespaces/[^/]+/(configmaps|events)(/[^/]*)?$")  # kubectl's, as pods are


def kube_style(path: str) -> bool:
    """Whether the path belongs to the Kubernetes-style API (errors are ``Status`` objects)."""
    return (path.startswith("/apis/") or "/pods" in path or "/persistentvolumeclaims" in path
            or _NAMESPACE_PATH.match(path) is not None or _CORE_LIST_PATH.match(path) is not None
            or path in ("/api", "/api/v1", "/api/v1/namespaces", "/version", "/openapi/v2"))


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            409: "AlreadyExists", 413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 422: "Invalid",
            429: "TooManyRequests", 503: "ServiceUnavailable"}


def error_body(path: str, code: int, message: str, fields: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """An error as our API writes it (``{"message", "errors"}``), or as a Kubernetes
    ``Status`` on the Kubernetes-style paths."""
    if kube_style(path):
        return kube_status(code, message, fields)
    return {"message": message, **({"errors": fields} if fields else {})}


def kube_status(code: int, message: str, fields: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """An error as a Kubernetes ``Status``."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": _REASONS.get(code, "InternalError"), "code": code}
    if code == 409 and "already exists" not in message:
        body["reason"] = "Conflict"
    if fields:
        body["details"] = {"causes": [{"field": f["field"], "message": f["message"], "reason": "FieldValueInvalid"}
                                      for f in fields]}
    return body


# Every answer: no other site may frame the viewer (and have a person click its stop,
# delete or submit under a decoy), nor take a body for another type than it says.
_SAFETY_HEADERS = [(b"x-frame-options", b"SAMEORIGIN"), (b"content-security-policy", b"frame-ancestors 'self'"),
                   (b"x-content-type-options", b"nosniff")]


def _framed_by_none(send: Send) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            message = {**message, "headers": [*message.get("headers", []),
                                              *(h for h in _SAFETY_HEADERS if h[0] not in present)]}
        await send(message)

    return send_with_headers


async def _refuse(scope: Scope, send: Send, code: int, message: str) -> None:
    body = json.dumps(error_body(scope.get("path", ""), code, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if code == 405:
        headers.append((b"allow", b"GET, HEAD, OPTIONS"))
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_PATH_NAMES = {"namespace": "namespace", "name": "experiment", "trial": "trial"}
_QUERY_NAMES = {"namespace": "namespace", "experiment": "experiment"}


def name_kind(param: str, route: str, where: str = "path") -> str | None:
    """The kind of name (``katib.names``) a route's parameter holds, or None. On
    ``/pods/{name}`` and the Kubernetes-style ``/trials/{name}`` the name is a trial's."""
    if where == "query":
        return _QUERY_NAMES.get(param)
    if param == "name" and ("/pods/{name}" in route or "/trials/{name}" in route):
        return "trial"
    if param == "name" and "/persistentvolumeclaims/{name}" in route:
        return "volume"  # <experiment>-<algorithm>: katib.names' rule for a Kubernetes object name
    return _PATH_NAMES.get(param)


def check_path_names(request: Request) -> None:
    """Router dependency: the names in the path (and the ``namespace``/``experiment``
    query parameters) follow the name rule, before any route reads, writes or deletes."""
    from katib.names import check

    route = getattr(request.scope.get("route"), "path", "")
    for param, value in request.path_params.items():
        kind = name_kind(param, route)
        if kind is not None:
            check(kind, value, param)
    for param in _QUERY_NAMES:
        value = request.query_params.get(param)
        if value:
            check(name_kind(param, route, "query") or param, value, param)


__all__ = ["BODY_SECONDS", "BodyTooLarge", "check_path_names", "name_kind", "DEFAULT_MAX_BODY", "LOOPBACK_NAMES",
           "RequestGuard", "body_type_allowed", "error_body", "foreign_origin", "is_loopback", "kube_style", "split_host"]
