"""``katib serve``: the best trial's model over KServe's Open Inference Protocol (v2 REST),
served by KServe's own Python server (``kserve.Model`` in ``kserve.ModelServer``).

The endpoints are KServe's: ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}``,
``/v2/models/{name}/ready`` and ``/v2/models/{name}/infer``, so Triton's and KServe's
clients talk to it as they would to an InferenceService. Inputs are read and outputs
written by KServe's helpers (``get_predict_input``/``get_predict_response``, as its sklearn
server does). Input the model cannot take (a wrong shape, a wrong type, a body that is not
an inference request, binary tensors their header does not describe) is answered
``400 {"error": …}``, the protocol's error body, never 500.

The model is the server's one and only: KServe's model repository API (``/v2/repository/…``,
load and unload) is not served. Requests are decoded and answered in the model's worker
thread, one at a time, so the event loop (``/v2/health/*``) stays free; a body is at most
``max_body`` bytes (``--max-body``, 16 MiB by default), and a request's head and body must
come in time (``katib._httpguard``'s deadlines, as ``katib server``'s). Web pages are refused
(``_Guard``).

>>> serve(Path("~/.katib/runs/default/exp/exp-abc/artifacts"), "exp", port=8080)  # doctest: +SKIP
"""

from __future__ import annotations

import ipaddress
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import _httpguard
from ._model import find_model
from .errors import KatibError, NoResultError, NotFoundError

__all__ = ["DEFAULT_MAX_BODY", "locate", "serve"]

# The largest request body katib serve takes unless --max-body says otherwise: a batch of 16
# 224x224 RGB images as FP32 binary tensors (9.6 MB), or about 2 million numbers as JSON.
DEFAULT_MAX_BODY = 16 << 20


def locate(store: Any, runs_root: Path, namespace: str, experiment: str, trial: str | None = None) -> tuple[str, Path]:
    """The trial to serve (the best one unless named) and its artifacts folder."""
    from .names import RunLayout

    rec = store.get_experiment(namespace, experiment)
    if trial is None:
        trial = rec.status.best.best_trial_name if rec.status.best else None
        if not trial:
            ended = rec.status.completion_time is not None
            raise NoResultError(f"experiment {namespace}/{experiment} {'ended without a best trial' if ended else 'has no best trial yet'}"
                                ": --trial NAME serves another")
    else:
        owner, t = store.get_trial(namespace, trial)
        if owner.name != experiment:
            raise NotFoundError(f"trial {namespace}/{trial} belongs to experiment {owner.name}, not {experiment}")
        if t.state not in ("Succeeded", "EarlyStopped"):  # served as asked, but not silently
            import warnings

            from .errors import KatibWarning

            said = (f"is {t.state}, not ended: its model is what it has saved so far" if t.state in ("Created", "Running")
                    else f"ended {t.state}, not Succeeded: its model is what it saved before that")
            warnings.warn(f"trial {trial} {said}", KatibWarning, stacklevel=2)
    folder = RunLayout(runs_root).artifacts(namespace, experiment, trial)
    try:
        find_model(folder)
    except KatibError as exc:
        raise KatibError(f"trial {trial} saved no model to serve: {exc}") from None
    return trial, folder


def _kserve() -> Any:
    """``import kserve``, which parses ``sys.argv`` as its own server's options when it loads."""
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        import kserve
        import kserve.model_server
    except ImportError as exc:
        raise KatibError(f"katib serve needs KServe's server: pip install 'katib[serve]' ({exc.name} is missing)") from None
    finally:
        sys.argv = argv
    return kserve


def model(name: str, path: Path, allow_pickle: bool = True) -> Any:
    """A ``kserve.Model`` serving the model saved in ``path``, loaded (``load_model``); its
    ``predict`` is a coroutine, answered in the model's worker thread."""
    _kserve()
    from ._served_model import TrialModel

    served = TrialModel(name, path, allow_pickle)
    served.load()
    return served


def serve(path: Path, name: str, host: str = "127.0.0.1", port: int = 8080, allow_pickle: bool = True,
          max_body: int = DEFAULT_MAX_BODY, allowed_hosts: Sequence[str] = ()) -> None:
    """Serve the model saved in ``path`` as ``name`` until interrupted; a request body may not
    exceed ``max_body`` bytes. Served on an address other than loopback, ``allowed_hosts`` are
    the names (besides loopback names and IP addresses) its ``Host`` header may carry."""
    served = model(name, path, allow_pickle)
    kserve = _kserve()
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from kserve.model_server import app

    from ._served_model import OneModelDataPlane

    async def not_a_request(_: Any, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5])
        return JSONResponse(status_code=400, content={"error": f"not an inference request: {where}"})

    async def http_error(_: Any, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own 4xx (a body that is not JSON, an unknown path, a method not allowed),
        # in the protocol's {"error": …} as every other answer, not {"detail": …}
        detail = exc.detail if exc.detail != "There was an error parsing the body" else "the body is not JSON"
        return JSONResponse(status_code=exc.status_code, content={"error": str(detail)}, headers=exc.headers)

    import warnings

    from starlette.exceptions import HTTPException as StarletteHTTPException

    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")  # KServe's choice, not the user's
    app.add_exception_handler(RequestValidationError, not_a_request)  # FastAPI's 422 is not the protocol's body
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(_JsonByDefault)
    app.add_middleware(_Guard, host=host, max_body=max_body, allowed_hosts=allowed_hosts)

    class Server(kserve.ModelServer):  # type: ignore[misc, name-defined]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.dataplane = OneModelDataPlane(model_registry=self.registered_models)

        def setup_event_loop(self) -> None:
            if self._rest_server is not None:  # its uvicorn.Config, loaded once the server starts
                config = self._rest_server.config
                config.host = host  # KServe listens on 0.0.0.0; a laptop's server on loopback
                config.http = _httpguard.timely_h11(_httpguard.HEADER_SECONDS)  # uvicorn waits for a head forever
            super().setup_event_loop()

    Server(http_port=port, enable_grpc=False, enable_docs_url=False).start([served])


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


_READS = frozenset({"GET", "HEAD", "OPTIONS"})  # the methods api._guard lets through with any Origin


class _Guard:
    """What a request passes before KServe's routes, refused with the protocol's error body.

    - Served on loopback, the model answers programs on this machine, not web pages: a
      ``Host`` that is not a loopback name (a DNS-rebinding page, which could read the
      predictions) is refused with 403. Served on another address (which, as 0.0.0.0 does,
      may take loopback's connections too), a ``Host`` must be a loopback name, an IP
      address (no page can rebind one) or a name given with ``--allowed-host``. Served on
      any address, a request another site's
      page makes (``Sec-Fetch-Site``) or one other than a read whose ``Origin`` is not the
      server's own (``_httpguard.foreign_origin``: a form or a fetch of another site, or of
      another port of localhost) is refused with 403.
    - ``/v2/repository/…`` (KServe's model load and unload) is 404: the server serves one
      model, which an unload took down while ``/v2/health/ready`` still said ready.
    - A body over ``max_body`` bytes is refused with 413: one that says so (``Content-Length``)
      before it is read, a chunked one as it passes the limit. A body is read whole here
      (KServe reads every body whole anyway), and one that has not all come
      ``_httpguard.BODY_SECONDS`` (120 s) after the request began is refused with 408: a
      client that sent a byte now and then held its connection, and the request, forever."""

    def __init__(self, app: Any, host: str, max_body: int, allowed_hosts: Sequence[str] = ()) -> None:
        self.app, self.max_body = app, max_body
        self.loopback = _httpguard.is_loopback(host)
        self.allowed = {_httpguard.split_host(h) for h in allowed_hosts if h}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        length = headers.get("content-length", "")
        if refusal is None and ("chunked" in headers.get("transfer-encoding", "").lower()
                                or (length.isdigit() and int(length) > 0)):
            receive, refusal = await self._whole(receive)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Any, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        name = _httpguard.split_host(host)
        if self.loopback and not _httpguard.is_loopback(name):
            return 403, "this model is served on loopback: it answers to loopback host names only"
        if not self.loopback and not (_httpguard.is_loopback(name) or _is_ip(name) or name in self.allowed):
            return 403, (f"Host {host[:100]!r} is not an address of this server: it answers to loopback names, IP "
                         "addresses and the names given with --allowed-host (a page of another name may be a "
                         "DNS-rebinding one)")
        if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return 403, "another site's page may not use this model server"
        if scope["method"].upper() not in _READS and _httpguard.foreign_origin(headers.get("origin"), host):
            return 403, (f"cross-origin request refused: Origin {headers['origin']!r} is not this server's origin; "
                         "only programs (which send no Origin) and the server's own pages may use it")
        path = scope["path"]
        if path == "/v2/repository" or path.startswith("/v2/repository/"):
            return 404, "katib serve serves one model, loaded when it starts: the model repository API is not served"
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            return 413, self._too_large(f"the body has {int(length)} bytes, more than")
        return None

    async def _whole(self, receive: Any) -> tuple[Any, tuple[int, str] | None]:
        """The body, read up to the limit and by its deadline, handed on as one piece."""
        import asyncio  # here: the CLI imports this module for its default --max-body

        chunks, seen = [], 0
        seconds = _httpguard.BODY_SECONDS
        due = asyncio.get_running_loop().time() + seconds
        while True:
            try:
                async with asyncio.timeout_at(due):
                    message = await receive()
            except TimeoutError:
                return receive, (408, f"the request's body did not all arrive within {seconds:g} seconds of its start")
            if message["type"] != "http.request":  # the client left: hand that on
                return _replay(message, receive), None
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_body:
                return receive, (413, self._too_large("the (chunked) body passed"))
            if not message.get("more_body", False):
                return _replay({"type": "http.request", "body": b"".join(chunks), "more_body": False}, receive), None

    def _too_large(self, what: str) -> str:
        return f"{what} the limit of {self.max_body} bytes of katib serve (raise it with --max-body BYTES)"


def _replay(first: dict[str, Any], receive: Any) -> Any:
    """``receive`` that answers ``first``, then what the connection sends (a disconnect)."""
    pending = [first]

    async def replayed() -> dict[str, Any]:
        return pending.pop() if pending else await receive()

    return replayed


async def _answer(send: Any, code: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _JsonByDefault:
    """An inference request without a Content-Type is JSON, unless it says it carries binary
    tensors (Inference-Header-Content-Length): Triton's client sends its JSON requests so, and
    KServe's endpoint would take them for binary ones without the header and refuse them. An
    answer without one is JSON too, unless it carries binary tensors: the model encodes its
    answers itself (``_served_model.Encoded``), and KServe hands them on unlabelled."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        names = {k.lower() for k, _ in scope["headers"]}
        if b"content-type" not in names and b"inference-header-content-length" not in names:
            scope = {**scope, "headers": [*scope["headers"], (b"content-type", b"application/json")]}

        async def labelled(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                if b"content-type" not in names:
                    binary = b"inference-header-content-length" in names
                    label = b"application/octet-stream" if binary else b"application/json"
                    message = {**message, "headers": [*message.get("headers", []), (b"content-type", label)]}
            await send(message)

        await self.app(scope, receive, labelled)
