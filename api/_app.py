"""The FastAPI application: our REST API, the Kubernetes-style endpoints, health."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from katib import views
from katib._dbmanager import serve_grpc
from katib._pushtoken import PushTokens
from katib.controller import ExperimentManager
from katib.errors import (
    ConflictError,
    ForbiddenError,
    KatibError,
    NotAllowedError,
    NotFoundError,
    TemporaryError,
    UnauthorizedError,
    ValidationError,
)
from katib.names import name_rule
from katib.spec import Experiment
from katib.store import Store, UserStore

from ._auth import authorize
from ._guard import (
    DEFAULT_MAX_BODY,
    BodyTooLarge,
    BodyTooSlow,
    RequestGuard,
    check_path_names,
    error_body,
    name_kind,
)
from ._head import HeadAsGet
from ._selectors import refuse_unapplied
from ._state import ServerLimits, ServerState
from ._static import CompressedStaticFiles
from ._tables import TableAnswers
from .routes import (
    configmaps,
    discovery,
    experiments,
    kube,
    namespaces,
    pods,
    system,
    trainer,
    viewer,
)

_CODES = {ValidationError: 422, NotFoundError: 404, ConflictError: 409, TemporaryError: 503,
          UnauthorizedError: 401, ForbiddenError: 403, NotAllowedError: 405}


def _error(request: Request, code: int, message: str, fields: list[dict[str, str]] | None = None) -> JSONResponse:
    return JSONResponse(error_body(request.url.path, code, message, fields), status_code=code)


def _name_patterns(schema: dict[str, Any]) -> None:
    """Path and query names carry the name rule (katib.names) in the schema too: the
    kinds ``check_path_names`` checks, with the same regex and length."""
    for path, operations in schema.get("paths", {}).items():
        for op in operations.values():
            for param in op.get("parameters", []):
                where = param.get("in")
                kind = name_kind(param.get("name", ""), path, where) if where in ("path", "query") else None
                if kind is None:
                    continue
                regex, longest = name_rule(kind)
                param.setdefault("schema", {})
                if "anyOf" in param["schema"]:  # an optional query parameter
                    param["schema"] = {"type": "string"}
                param["schema"].update(pattern=regex.pattern, maxLength=longest)


def create_app(store: Store, runs_root: Path, workdir: Path, tick: float = 1.0, resume: bool = True,
               auth: bool = False, executor_factory: Any = None, executor: str = "local", read_only: bool = False,
               allowed_hosts: Iterable[str] = (), max_body: int = DEFAULT_MAX_BODY,
               limits: ServerLimits | None = None, push_tokens: PushTokens | None = None,
               grpc_address: tuple[str, int] | None = None, lease_seconds: float | None = None) -> FastAPI:
    """The app; its lifespan starts the unfinished experiments and stops all at shutdown.
    With ``auth``, requests need a bearer token and a role in the namespace; without it,
    only programs on this machine and the server's own pages may use it (``RequestGuard``).
    ``read_only`` (``katib ui``) serves reads and runs nothing. ``push_tokens`` checks the
    tokens pods push their trial's metrics with (the executor gives them out).
    ``grpc_address`` (host, port; port 0 picks one) serves Katib's gRPC API beside it
    (Suggestion, EarlyStopping, DBManager: ``katib._dbmanager``); ``app.state.grpc_port``
    says where. ``lease_seconds`` makes this server one of several on its database: it
    shares the experiments out with the others by lease, and adopts those of one whose
    lease lapsed (``katib.controller.ExperimentManager.enable_replicas``)."""
    manager = (ExperimentManager(store, runs_root, tick=tick, executor_factory=executor_factory)
               if executor_factory is not None else ExperimentManager(store, runs_root, tick=tick))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        grpc_server = None
        if grpc_address is not None:
            grpc_server = serve_grpc(store, runs_root, manager, *grpc_address)
            app.state.grpc_port = grpc_server.bound_port
            # Local trials' Custom collectors report here (on loopback when it listens on all).
            host = grpc_address[0] if grpc_address[0] not in ("", "0.0.0.0", "::", "[::]") else "127.0.0.1"
            manager.db_manager_address = f"{host}:{grpc_server.bound_port}"
        if lease_seconds is not None and not read_only:
            manager.enable_replicas(lease_seconds)
            assert manager.replica is not None
            views.use_owner_check(manager.replica.alive)  # what the served conditions say of others' experiments
        else:
            views.use_owner_check(None)
        if resume:
            manager.resume_all()
        yield
        if grpc_server is not None:
            grpc_server.stop(grace=1)
        manager.shutdown()

    # No /docs or /redoc: FastAPI's pages load Swagger UI and ReDoc from a CDN, and a
    # script from there, on this origin, could read the viewer's API token (localStorage).
    # The schema itself is /openapi.json.
    app = FastAPI(title="katib", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Kubeflow Katib's experiments as a service: REST, Kubernetes-style endpoints for "
                              "the kubeflow-katib SDK, server-sent events.")
    app.state.katib = ServerState(store=store, manager=manager, workdir=workdir,
                                  users=UserStore(store) if auth else None, push_tokens=push_tokens, executor=executor,
                                  limits=limits or ServerLimits.from_env(), read_only=read_only)

    @app.exception_handler(KatibError)
    async def katib_error(request: Request, exc: KatibError) -> JSONResponse:
        code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), 400)
        if isinstance(exc, UnauthorizedError):
            response = _error(request, 401, str(exc))
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        if isinstance(exc, ValidationError):
            return _error(request, 422, f"invalid {exc.what}: " + "; ".join(str(e) for e in exc.errors),
                          [e.to_dict() for e in exc.errors])
        return _error(request, code, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own (an unknown path, a method a path does not take): a Kubernetes Status
        # on its paths, as every other error there, not {"detail": …}
        response = _error(request, exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return _error(request, 413, str(exc))

    @app.exception_handler(BodyTooSlow)
    async def too_slow(request: Request, exc: BodyTooSlow) -> JSONResponse:
        return _error(request, 408, str(exc))

    @app.exception_handler(RequestValidationError)
    async def request_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [{"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]} for e in exc.errors()]
        return _error(request, 422, "invalid request: " + "; ".join(f"{f['field']}: {f['message']}" for f in fields), fields)

    def openapi() -> dict[str, Any]:
        """The schema, with the Experiment model (and its parts) as components, so request
        bodies are typed by the model itself."""
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            model = Experiment.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
            components.update(model.pop("$defs", {}))
            components["Experiment"] = model
            _name_patterns(schema)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]

    # Trial lists compress about tenfold; small answers are sent as they are.
    # Level 5, not Starlette's 9: a 13 MB summary compresses in 0.35 s instead of 5 s, 4 % larger.
    # Innermost: a Table (kubectl get) is made of the JSON answer before it is compressed.
    app.add_middleware(TableAnswers)
    app.add_middleware(GZipMiddleware, minimum_size=4096, compresslevel=5)
    app.add_middleware(HeadAsGet)  # HEAD is the GET without its body (GET routes alone refuse HEAD)
    # Outermost: nothing reaches a route (or is decompressed) before the guard has passed it.
    app.add_middleware(RequestGuard, auth=auth, read_only=read_only, allowed_hosts=allowed_hosts, max_body=max_body)
    guarded = [Depends(check_path_names), Depends(authorize), Depends(refuse_unapplied)]
    app.include_router(system.router)
    app.include_router(experiments.router, dependencies=guarded)
    app.include_router(kube.router, dependencies=guarded)
    app.include_router(pods.router, dependencies=guarded)
    app.include_router(configmaps.router, dependencies=guarded)
    app.include_router(namespaces.router, dependencies=guarded)
    app.include_router(trainer.router, dependencies=guarded)
    app.include_router(viewer.router, dependencies=guarded)
    # Last: its catch-all for lists across namespaces must not shadow a route above.
    app.include_router(discovery.router, dependencies=guarded)
    app.include_router(viewer.page)
    app.mount("/ui", CompressedStaticFiles(directory=viewer.STATIC), name="ui")
    return app
