"""``katib serve``: the best trial's model over KServe's Open Inference Protocol (v2 REST),
served by KServe's own Python server (``kserve.Model`` in ``kserve.ModelServer``).

The endpoints are KServe's: ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}``,
``/v2/models/{name}/ready`` and ``/v2/models/{name}/infer``, so Triton's and KServe's
clients talk to it as they would to an InferenceService. Inputs are read and outputs
written by KServe's helpers (``get_predict_input``/``get_predict_response``, as its sklearn
server does). Input the model cannot take (a wrong shape, a wrong type, a body that is not
an inference request) is answered ``400 {"error": …}``, the protocol's error body, never 500.

>>> serve(Path("~/.katib/runs/default/exp/exp-abc/artifacts"), "exp", port=8080)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ._model import find_model, load_model, predictor
from .errors import KatibError, NoResultError, NotFoundError

__all__ = ["locate", "serve"]


def locate(store: Any, runs_root: Path, namespace: str, experiment: str, trial: str | None = None) -> tuple[str, Path]:
    """The trial to serve (the best one unless named) and its artifacts folder."""
    from .names import RunLayout

    rec = store.get_experiment(namespace, experiment)
    if trial is None:
        trial = rec.status.best.best_trial_name if rec.status.best else None
        if not trial:
            raise NoResultError(f"experiment {namespace}/{experiment} has no best trial yet: --trial NAME serves another")
    else:
        owner, _ = store.get_trial(namespace, trial)
        if owner.name != experiment:
            raise NotFoundError(f"trial {namespace}/{trial} belongs to experiment {owner.name}, not {experiment}")
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
    """A ``kserve.Model`` serving the model saved in ``path``, loaded (``load_model``)."""
    kserve = _kserve()
    from kserve.errors import InvalidInput
    from kserve.utils.numpy_codec import from_np_dtype
    from kserve.utils.utils import get_predict_input, get_predict_response

    class TrialModel(kserve.Model):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(name)
            self.ready = False

        def load(self) -> bool:
            saved = find_model(path)
            self.format = saved.format
            self._model = load_model(path, allow_pickle)
            self._predict = predictor(saved, self._model)
            self.ready = True
            return self.ready

        def get_input_types(self) -> list[dict[str, Any]]:  # /v2/models/{name}: what a scikit-learn model takes
            features = getattr(self._model, "n_features_in_", None)
            return [{"name": "input-0", "datatype": "FP32", "shape": [-1, int(features)]}] if features else []

        def get_output_types(self) -> list[dict[str, Any]]:
            classes = getattr(self._model, "classes_", None)
            return [{"name": "output-0", "datatype": from_np_dtype(classes.dtype), "shape": [-1]}] \
                if classes is not None else []

        def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
            try:
                instances = get_predict_input(payload)
                result = self._predict(instances)
            except InvalidInput:
                raise
            except Exception as exc:  # the request's data does not fit the model: a client error
                raise InvalidInput(f"the {self.format} model cannot take this input: {type(exc).__name__}: {exc}") from None
            return get_predict_response(payload, result, self.name)

    served = TrialModel()
    served.load()
    return served


def serve(path: Path, name: str, host: str = "127.0.0.1", port: int = 8080, allow_pickle: bool = True) -> None:
    """Serve the model saved in ``path`` as ``name`` until interrupted."""
    served = model(name, path, allow_pickle)
    kserve = _kserve()
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from kserve.model_server import app

    async def not_a_request(_: Any, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5])
        return JSONResponse(status_code=400, content={"error": f"not an inference request: {where}"})

    import warnings

    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")  # KServe's choice, not the user's
    app.add_exception_handler(RequestValidationError, not_a_request)  # FastAPI's 422 is not the protocol's body
    app.add_middleware(_JsonByDefault)
    app.add_middleware(_LocalCallersOnly, host=host)

    class Server(kserve.ModelServer):  # type: ignore[misc, name-defined]
        def setup_event_loop(self) -> None:
            if self._rest_server is not None:
                self._rest_server.config.host = host  # KServe listens on 0.0.0.0; a laptop's server on loopback
            super().setup_event_loop()

    Server(http_port=port, enable_grpc=False, enable_docs_url=False).start([served])


class _LocalCallersOnly:
    """A model served on loopback answers programs on this machine, not web pages: a
    ``Host`` that is not a loopback name (a DNS-rebinding page, which could read the
    predictions and unload the model) and a request another site's page makes
    (``Sec-Fetch-Site``) are refused with 403. Served on another address, only the second."""

    def __init__(self, app: Any, host: str) -> None:
        from api._guard import is_loopback, split_host

        self.app = app
        self.is_loopback, self.split_host = is_loopback, split_host
        self.loopback = is_loopback(host)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.lower(): v.decode("latin-1") for k, v in scope["headers"]}
            why = None
            if self.loopback and not self.is_loopback(self.split_host(headers.get(b"host", ""))):
                why = "this model is served on loopback: it answers to loopback host names only"
            elif headers.get(b"sec-fetch-site") in ("cross-site", "same-site"):
                why = "another site's page may not use this model server"
            if why is not None:
                body = json.dumps({"error": why}).encode()
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class _JsonByDefault:
    """An inference request without a Content-Type is JSON, unless it says it carries binary
    tensors (Inference-Header-Content-Length): Triton's client sends its JSON requests so, and
    KServe's endpoint would take them for binary ones without the header and refuse them."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            names = {k.lower() for k, _ in scope["headers"]}
            if b"content-type" not in names and b"inference-header-content-length" not in names:
                scope = {**scope, "headers": [*scope["headers"], (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)
