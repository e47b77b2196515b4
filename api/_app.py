"""The FastAPI application: our REST API, the Kubernetes-style endpoints, health."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from katib.controller import ExperimentManager
from katib.errors import (
    ConflictError,
    ForbiddenError,
    KatibError,
    NotFoundError,
    TemporaryError,
    UnauthorizedError,
    ValidationError,
)
from katib.store import Store, UserStore

from ._auth import authorize
from ._head import HeadAsGet
from ._state import ServerState
from .routes import experiments, kube, system, viewer

_CODES = {ValidationError: 422, NotFoundError: 404, ConflictError: 409, TemporaryError: 503,
          UnauthorizedError: 401, ForbiddenError: 403}
_REASONS = {422: "Invalid", 404: "NotFound", 409: "AlreadyExists", 503: "ServiceUnavailable", 400: "BadRequest",
            401: "Unauthorized", 403: "Forbidden"}


def _kube_style(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/apis/") or "/pods" in path


def _error(request: Request, code: int, message: str, fields: list[dict[str, str]] | None = None) -> JSONResponse:
    if _kube_style(request):
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": message, "reason": _REASONS.get(code, "InternalError"), "code": code}
        if code == 409 and "already exists" not in message:
            body["reason"] = "Conflict"
        if fields:
            body["details"] = {"causes": [{"field": f["field"], "message": f["message"], "reason": "FieldValueInvalid"}
                                          for f in fields]}
        return JSONResponse(body, status_code=code)
    return JSONResponse({"message": message, **({"errors": fields} if fields else {})}, status_code=code)


def create_app(store: Store, runs_root: Path, workdir: Path, tick: float = 1.0, resume: bool = True,
               auth: bool = False, executor_factory: Any = None, executor: str = "local") -> FastAPI:
    """The app; its lifespan starts the unfinished experiments and stops all at shutdown.
    With ``auth``, requests need a bearer token and a role in the namespace."""
    manager = (ExperimentManager(store, runs_root, tick=tick, executor_factory=executor_factory)
               if executor_factory is not None else ExperimentManager(store, runs_root, tick=tick))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if resume:
            manager.resume_all()
        yield
        manager.shutdown()

    app = FastAPI(title="katib", version="0.1.0", lifespan=lifespan,
                  description="Kubeflow Katib's experiments as a service: REST, Kubernetes-style endpoints for "
                              "the kubeflow-katib SDK, server-sent events.")
    app.state.katib = ServerState(store=store, manager=manager, workdir=workdir,
                                  users=UserStore(store) if auth else None, executor=executor)

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

    @app.exception_handler(RequestValidationError)
    async def request_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [{"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]} for e in exc.errors()]
        return _error(request, 422, "invalid request: " + "; ".join(f"{f['field']}: {f['message']}" for f in fields), fields)

    # Trial lists compress about tenfold; small answers are sent as they are.
    app.add_middleware(GZipMiddleware, minimum_size=4096)
    app.add_middleware(HeadAsGet)  # HEAD is the GET without its body (GET routes alone refuse HEAD)
    guarded = [Depends(authorize)]
    app.include_router(system.router)
    app.include_router(experiments.router, dependencies=guarded)
    app.include_router(kube.router, dependencies=guarded)
    app.include_router(viewer.router, dependencies=guarded)
    app.include_router(viewer.page)
    app.mount("/ui", StaticFiles(directory=viewer.STATIC), name="ui")
    return app
