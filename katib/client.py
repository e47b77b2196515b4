"""``KatibClient``: the method names and meanings of ``kubeflow-katib``'s client, working
against a ``katib server`` URL or embedded (the store and the controllers in this process).

>>> from katib import KatibClient, search
>>> client = KatibClient()                          # embedded: ~/.katib/katib.db
>>> def objective(x):
...     return (x - 2) ** 2                         # the objective metric; or print("loss=…")
>>> result = client.tune("quadratic", objective, {"x": search.double(-5, 5)}, objective_metric_name="loss",
...                      objective_type="minimize", max_trial_count=12)  # doctest: +SKIP
>>> result.best_params, result.best_value           # doctest: +SKIP
>>> client.get_optimal_hyperparameters("quadratic")   # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import KatibError, NoResultError, NotFoundError

if TYPE_CHECKING:
    from ._results import ExperimentResult

CONDITIONS = ("Created", "Running", "Restarting", "Succeeded", "Failed")


class _Embedded:
    def __init__(self, db: str | None, workdir: Path, tick: float) -> None:
        from katib.controller import ExperimentManager
        from katib.store import Store

        self.store = Store(db)
        from katib.names import runs_root

        self.manager = ExperimentManager(self.store, runs_root(self.store.url), tick=tick)
        self.workdir = workdir
        from katib.controller import AskTell

        self.ask_tell = AskTell(self.store)

    def create(self, doc: dict[str, Any], namespace: str) -> dict[str, Any]:
        from katib import views
        from katib.controller import admit

        doc.setdefault("metadata", {})["namespace"] = namespace
        exp = admit(doc)
        try:
            self.store.get_experiment(exp.namespace, exp.name)
            raise KatibError(f"experiment {exp.namespace}/{exp.name} already exists")
        except NotFoundError:
            pass
        rec, _ = self.manager.submit(exp, self.workdir)
        return views.experiment_object(rec)

    def get(self, name: str, namespace: str) -> dict[str, Any]:
        from katib import views

        return views.experiment_object(self.store.get_experiment(namespace, name))  # a read starts nothing

    def idle(self, name: str, namespace: str) -> bool:
        """Unfinished, and nothing runs it: no controller here, no live one elsewhere, no
        outside loop (ask and tell)."""
        from katib.controller import is_completed

        running = self.manager.is_running(namespace, name)  # before the read: a run that ends in between is done
        rec = self.store.get_experiment(namespace, name)
        external = (rec.spec.get("spec") or {}).get("executor") == "external"
        return not (running or external or is_completed(rec.status) or (rec.owner and _owner_alive(rec.owner)))

    def resume(self, name: str, namespace: str) -> dict[str, Any]:
        error = self.manager.resume(namespace, name)
        running = self.manager.is_running(namespace, name)
        return {"running": running, **({"message": error} if error and not running else {})}

    def close(self) -> None:
        self.manager.shutdown()  # the controllers this client started; their trials stop, resume carries on
        self.store.close()

    def experiments(self, namespace: str) -> list[dict[str, Any]]:
        from katib import views

        return [views.experiment_object(r) for r in self.store.list_experiments(namespace)]

    def trials(self, name: str, namespace: str) -> list[dict[str, Any]]:
        from katib import views

        rec = self.store.get_experiment(namespace, name)
        return [views.trial_object(rec, t) for t in self.store.list_trials(rec.id)]

    def observations(self, trial: str, namespace: str, metric: str | None) -> list[dict[str, Any]]:
        from katib.controller import rfc3339

        _, t = self.store.get_trial(namespace, trial)
        return [{"timeStamp": rfc3339(o.time), "metric": {"name": o.metric_name, "value": o.value}}
                for o in self.store.observations(t.id, metric)]

    def budget(self, name: str, namespace: str, budget: dict[str, Any]) -> dict[str, Any]:
        from katib import views
        from katib.controller import admit

        rec = self.store.get_experiment(namespace, name)
        obj = views.experiment_object(rec)
        obj.pop("status")
        obj["spec"].update(budget)
        for key in ("uid", "creationTimestamp"):
            obj["metadata"].pop(key, None)
        rec, _ = self.manager.submit(admit(obj), Path(rec.workdir))
        return views.experiment_object(rec)

    def delete(self, name: str, namespace: str) -> None:
        self.manager.delete(namespace, name)

    def all_experiments(self) -> list[dict[str, Any]]:
        from katib import views

        return [views.experiment_object(r) for r in self.store.list_experiments(None)]

    def stop(self, name: str, namespace: str) -> dict[str, Any]:
        self.store.get_experiment(namespace, name)
        self.manager.stop(namespace, name)
        return {"running": self.manager.is_running(namespace, name)}

    def trial(self, name: str, namespace: str) -> dict[str, Any]:
        from katib import views

        return views.trial_object(*self.store.get_trial(namespace, name))

    def log(self, name: str, namespace: str, tail: int | None) -> str:
        from katib.controller import trial_log

        rec, t = self.store.get_trial(namespace, name)
        return trial_log(self.manager.runs_root, rec, t, tail)

    def log_since(self, name: str, namespace: str, offset: int) -> tuple[bytes, int]:
        from katib.controller import trial_log_since

        rec, t = self.store.get_trial(namespace, name)
        return trial_log_since(self.manager.runs_root, rec, t, offset) or (b"", offset)

    def ask(self, name: str, namespace: str, count: int) -> list[dict[str, Any]]:
        return self.ask_tell.ask(namespace, name, count)

    def tell(self, name: str, namespace: str, trial: str, metrics: Any, outcome: str) -> dict[str, Any]:
        return self.ask_tell.tell(namespace, name, trial, metrics, outcome)


class _Remote:
    def __init__(self, url: str, timeout: float, token: str | None = None) -> None:
        import httpx

        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)
        self.token = token

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        r = self._request(method, path, **kw)
        return r.json() if r.content else {}

    def _request(self, method: str, path: str, **kw: Any) -> Any:
        """The server's answer, or an error that says in one sentence what went wrong: the
        server cannot be reached, wants a (valid) token, forbids this, lacks the object."""
        import httpx

        from katib.errors import (
            ConflictError,
            FieldError,
            ForbiddenError,
            UnauthorizedError,
            ValidationError,
        )

        try:
            r = self.http.request(method, "/api/v1" + path, **kw)
        except httpx.HTTPError as exc:
            raise KatibError(f"cannot reach the katib server at {self.url}: {exc or type(exc).__name__}") from None
        if r.status_code < 300:
            return r
        try:
            body: dict[str, Any] = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        except ValueError:
            body = {}
        message = str(body.get("message") or body.get("detail") or r.text[:300] or r.reason_phrase)
        if r.status_code == 422 and body.get("errors"):
            raise ValidationError([FieldError(e["field"], e["message"]) for e in body["errors"]])
        if r.status_code == 401:
            raise UnauthorizedError(
                f"the katib server at {self.url} did not accept the API token ({message})" if self.token else
                f"the katib server at {self.url} needs an API token (--token or $KATIB_TOKEN; `katib user token NAME` "
                "on its machine makes one)")
        if r.status_code == 403:
            raise ForbiddenError(f"the katib server at {self.url} forbids this: {message}")
        if r.status_code == 404:
            raise NotFoundError(message)
        if r.status_code == 409:
            raise ConflictError(message)
        raise KatibError(f"the katib server at {self.url} answered {method} {path} with {r.status_code}: {message}")

    def create(self, doc: dict[str, Any], namespace: str) -> dict[str, Any]:
        return self._call("POST", f"/namespaces/{namespace}/experiments", json=doc)  # type: ignore[no-any-return]

    def get(self, name: str, namespace: str) -> dict[str, Any]:
        return self._call("GET", f"/namespaces/{namespace}/experiments/{name}")  # type: ignore[no-any-return]

    def idle(self, name: str, namespace: str) -> bool:
        return False  # the server runs what it holds; a stopped one waits for resume, as it would there

    def resume(self, name: str, namespace: str) -> dict[str, Any]:
        return self._call("POST", f"/namespaces/{namespace}/experiments/{name}/resume")  # type: ignore[no-any-return]

    def close(self) -> None:
        self.http.close()

    def experiments(self, namespace: str) -> list[dict[str, Any]]:
        return self._call("GET", "/experiments", params={"namespace": namespace})["items"]  # type: ignore[no-any-return]

    def trials(self, name: str, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {}
        while True:  # the server answers a page at a time, each naming the next by its token
            page = self._call("GET", f"/namespaces/{namespace}/experiments/{name}/trials", params=params)
            items += page["items"]
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            params = {"continue": token}

    def observations(self, trial: str, namespace: str, metric: str | None) -> list[dict[str, Any]]:
        params = {"metric": metric} if metric else {}
        return self._call("GET", f"/namespaces/{namespace}/trials/{trial}/observations", params=params)["metricLogs"]  # type: ignore[no-any-return]

    def budget(self, name: str, namespace: str, budget: dict[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", f"/namespaces/{namespace}/experiments/{name}/budget", json=budget)  # type: ignore[no-any-return]

    def delete(self, name: str, namespace: str) -> None:
        self._call("DELETE", f"/namespaces/{namespace}/experiments/{name}")

    def all_experiments(self) -> list[dict[str, Any]]:
        return self._call("GET", "/experiments")["items"]  # type: ignore[no-any-return]

    def stop(self, name: str, namespace: str) -> dict[str, Any]:
        return self._call("POST", f"/namespaces/{namespace}/experiments/{name}/stop")  # type: ignore[no-any-return]

    def trial(self, name: str, namespace: str) -> dict[str, Any]:
        return self._call("GET", f"/namespaces/{namespace}/trials/{name}")  # type: ignore[no-any-return]

    def log(self, name: str, namespace: str, tail: int | None) -> str:
        params = {"tail": tail} if tail is not None else {}
        return self._request("GET", f"/namespaces/{namespace}/trials/{name}/log", params=params).text  # type: ignore[no-any-return]

    def log_since(self, name: str, namespace: str, offset: int) -> tuple[bytes, int]:
        r = self._request("GET", f"/namespaces/{namespace}/trials/{name}/log", params={"since": offset})
        return r.content, int(r.headers.get("x-log-offset", offset + len(r.content)))

    def ask(self, name: str, namespace: str, count: int) -> list[dict[str, Any]]:
        return self._call("POST", f"/namespaces/{namespace}/experiments/{name}/ask", params={"count": count})["trials"]  # type: ignore[no-any-return]

    def tell(self, name: str, namespace: str, trial: str, metrics: Any, outcome: str) -> dict[str, Any]:
        return self._call("POST", f"/namespaces/{namespace}/experiments/{name}/tell",  # type: ignore[no-any-return]
                          json={"trial": trial, "metrics": metrics, "outcome": outcome})


def _owner_alive(owner: str) -> bool:
    from trials import owner_alive

    return owner_alive(owner)


def _true(obj: dict[str, Any], condition: str) -> bool:
    return any(c["type"] == condition and c.get("status") == "True" for c in (obj.get("status") or {}).get("conditions", []))


def _no_result(obj: dict[str, Any]) -> NoResultError | None:
    """The error for an experiment that ended without a best trial; ``None`` if it has one
    or has not ended. The ended condition's message says why (the status carries it)."""
    status = obj.get("status") or {}
    if (status.get("currentOptimalTrial") or {}).get("bestTrialName"):
        return None
    ended = next((c for c in status.get("conditions", [])
                  if c["type"] in ("Succeeded", "Failed") and c.get("status") == "True"), None)
    if ended is None:
        return None
    meta = obj.get("metadata") or {}
    return NoResultError(f"experiment {meta.get('namespace')}/{meta.get('name')} ended ({ended.get('reason')}) "
                         f"without a result: {ended.get('message')}")


class KatibClient:
    """Katib's SDK calls, embedded (``url=None``) or against ``katib server`` at ``url``.

    Reads never start anything. Embedded, the client runs the experiments it creates (or
    resumes, ``resume_experiment``) in threads of this process until they end or the client
    is closed; ``close()``, or leaving a ``with KatibClient() as client:`` block, stops them
    and their running trials (``resume_experiment`` carries on later)."""

    def __init__(self, url: str | None = None, db: str | None = None, namespace: str = "default",
                 workdir: str | Path | None = None, tick: float = 0.5, timeout: float = 60.0,
                 token: str | None = None) -> None:
        self.namespace = namespace
        self._closed = False
        if token and not url:
            raise ValueError("token is for a katib server: give its url too")
        self._backend: _Embedded | _Remote = (
            _Remote(url, timeout, token) if url else _Embedded(db, Path(workdir or Path.cwd()), tick)
        )

    def _ns(self, namespace: str | None) -> str:
        return namespace or self.namespace

    def close(self) -> None:
        """Stop the controllers this client started (embedded) or close the connection."""
        if not self._closed:
            self._closed = True
            self._backend.close()

    def __enter__(self) -> KatibClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- experiments -------------------------------------------------------------------

    def create_experiment(self, experiment: dict[str, Any] | str | Any, namespace: str | None = None) -> dict[str, Any]:
        """Create from a dict, a YAML string or a ``katib.spec.Experiment``; returns the object."""
        if isinstance(experiment, str):
            experiment = yaml.safe_load(experiment)
        elif hasattr(experiment, "to_dict"):
            experiment = experiment.to_dict()
        return self._backend.create(dict(experiment), self._ns(namespace))

    def tune(
        self,
        name: str,
        objective: Callable[..., Any],
        parameters: dict[str, dict[str, Any]],
        objective_metric_name: str,
        objective_type: str = "maximize",
        objective_goal: float | None = None,
        additional_metric_names: list[str] | None = None,
        algorithm_name: str = "auto",
        algorithm_settings: dict[str, Any] | None = None,
        max_trial_count: int | None = None,
        parallel_trial_count: int | None = None,
        max_failed_trial_count: int | None = None,
        resources_per_trial: dict[str, Any] | None = None,
        env_per_trial: dict[str, str] | None = None,
        metrics_collector: str = "StdOut",
        namespace: str | None = None,
        base_image: str | None = None,
        *,
        wait: bool = True,
        if_exists: str = "error",
        progress: bool = True,
        timeout: float | None = None,
    ) -> ExperimentResult:
        """Tune a Python function; each trial calls it in its own process.

        The function takes the parameters as a dict (``objective(parameters)``, Katib's SDK)
        or as keyword arguments named after them (``objective(x, y)``), typed as the search
        space says (int, float, str). It returns a number (the objective metric), a dict of
        numbers (metrics) or ``None`` (it printed ``name=value`` or called
        ``katib.report_metrics`` itself). It travels with cloudpickle, closures, notebook
        globals and helpers included, to trials in this environment (this machine, Ray);
        a trial in a Kubernetes pod of another image gets its source, so there it must use
        nothing from outside its body, and creating the experiment says so otherwise.

        ``wait`` (default): block until the experiment ends, showing its progress (a live
        line in a terminal, an updating output in Jupyter; ``progress=False`` for none), and
        return its ``ExperimentResult``; ``NoResultError`` if no trial reported the
        objective metric. ``wait=False`` returns at once, as Katib's SDK does
        (``get_experiment_result`` reads it later). ``if_exists``: ``error`` (default),
        ``reuse`` (keep the experiment of that name and its results; carry on if it is
        unfinished) or ``replace`` (delete it and start again), so a notebook cell can be
        run again. ``algorithm_name`` defaults to ``auto``, which picks the algorithm per
        search space and budget (docs/algorithms.md); Katib's SDK defaults to ``random``."""
        from . import _tune

        ns = self._ns(namespace)
        manager = getattr(self._backend, "manager", None)
        payload_dir = None
        if manager is not None:
            from .names import RunLayout

            payload_dir = RunLayout(manager.runs_root).experiment(ns, name)
        doc, shipment = _tune.experiment_doc(
            name, objective, parameters, objective_metric_name, metrics_collector, payload_dir,
            objective_type=objective_type, objective_goal=objective_goal, additional_metric_names=additional_metric_names,
            algorithm_name=algorithm_name, algorithm_settings=algorithm_settings, max_trial_count=max_trial_count,
            parallel_trial_count=parallel_trial_count, max_failed_trial_count=max_failed_trial_count,
            resources_per_trial=resources_per_trial, env_per_trial=env_per_trial, base_image=base_image)
        _tune.create(self, doc, shipment, ns, if_exists)
        if not wait:
            return self.get_experiment_result(name, ns)
        return _tune.watch(self, name, ns, progress, timeout)

    def get_experiment_result(self, name: str, namespace: str | None = None) -> ExperimentResult:
        """The experiment and its trials as Python values, as they stand now: ``best_params``,
        ``best_value``, ``trials``, ``trials_dataframe()``, ``to_optuna_study()``."""
        from ._results import ExperimentResult

        return ExperimentResult(self.get_experiment(name, namespace), self.list_trials(name, namespace))

    def load_model(self, name: str, trial: str | None = None, namespace: str | None = None) -> Any:
        """The model the experiment's best trial (or ``trial``) saved with ``katib.save_model``,
        loaded as ``katib serve`` serves it (embedded: the trials' folders are on this machine)."""
        from ._model import load_model
        from .serve import locate

        if not isinstance(self._backend, _Embedded):
            raise KatibError("load_model() reads the trials' folders, which a katib server keeps on its machine: "
                             "run katib serve there, or use an embedded KatibClient()")
        _, folder = locate(self._backend.store, self._backend.manager.runs_root, self._ns(namespace), name, trial)
        return load_model(folder)

    def get_experiment(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        return self._backend.get(name, self._ns(namespace))

    def resume_experiment(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """Run an unfinished experiment that nothing runs (its controller stopped or died):
        ``{"running": bool}``, with the controller's error as ``message`` if it failed at once."""
        return self._backend.resume(name, self._ns(namespace))

    def list_experiments(self, namespace: str | None = None, all_namespaces: bool = False) -> list[dict[str, Any]]:
        """The experiments of ``namespace`` (the client's by default), or of every namespace
        the caller may read. Against a server each also carries ``active`` (a controller
        runs it now), ``stoppable`` and ``resumable``."""
        if all_namespaces:
            return self._backend.all_experiments()
        return self._backend.experiments(self._ns(namespace))

    def stop_experiment(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """Stop the experiment's controller and its running trials (``resume_experiment``
        carries on): ``{"running": bool}``."""
        return self._backend.stop(name, self._ns(namespace))

    def get_trial(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """One trial, as Katib's ``Trial`` object."""
        return self._backend.trial(name, self._ns(namespace))

    def get_trial_log(self, name: str, namespace: str | None = None, tail: int | None = None) -> str:
        """The trial's output (its last ``tail`` lines); a server returns at most its
        ``KATIB_MAX_LOG_BYTES`` of it, the end."""
        return self._backend.log(name, self._ns(namespace), tail)

    def get_trial_log_since(self, name: str, offset: int = 0, namespace: str | None = None) -> tuple[bytes, int]:
        """The bytes of the trial's output from ``offset`` on and the offset to read on from:
        call again with it to follow a running trial."""
        return self._backend.log_since(name, self._ns(namespace), offset)

    def get_experiment_conditions(self, name: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return (self.get_experiment(name, namespace).get("status") or {}).get("conditions", [])  # type: ignore[no-any-return]

    def is_experiment_created(self, name: str, namespace: str | None = None) -> bool:
        return _true(self.get_experiment(name, namespace), "Created")

    def is_experiment_running(self, name: str, namespace: str | None = None) -> bool:
        return _true(self.get_experiment(name, namespace), "Running")

    def is_experiment_restarting(self, name: str, namespace: str | None = None) -> bool:
        return _true(self.get_experiment(name, namespace), "Restarting")

    def is_experiment_succeeded(self, name: str, namespace: str | None = None) -> bool:
        return _true(self.get_experiment(name, namespace), "Succeeded")

    def is_experiment_failed(self, name: str, namespace: str | None = None) -> bool:
        return _true(self.get_experiment(name, namespace), "Failed")

    def wait_for_experiment_condition(self, name: str, namespace: str | None = None,
                                      expected_condition: str = "Succeeded", timeout: float = 600,
                                      polling_interval: float = 0.5) -> dict[str, Any]:
        """Block until the condition holds; ``RuntimeError`` if the experiment fails first.
        Waiting for ``Succeeded`` raises ``NoResultError`` when the experiment succeeded (in
        Katib's terms: its budget is spent) but no trial reported the objective metric."""
        if expected_condition not in CONDITIONS:
            raise ValueError(f"expected_condition must be one of {', '.join(CONDITIONS)} (got {expected_condition!r})")
        deadline = time.monotonic() + timeout
        while True:
            idle = self._backend.idle(name, self._ns(namespace))
            obj = self.get_experiment(name, namespace)
            if _true(obj, expected_condition):
                no_result = _no_result(obj) if expected_condition == "Succeeded" else None
                if no_result is not None:
                    raise no_result
                return obj
            if expected_condition != "Failed" and _true(obj, "Failed"):
                raise RuntimeError(f"experiment {self._ns(namespace)}/{name} failed")
            if idle and not _true(obj, "Succeeded") and not _true(obj, "Failed"):
                raise KatibError(f"experiment {self._ns(namespace)}/{name} is unfinished but nothing runs it: "
                                 "resume_experiment() carries on")
            if time.monotonic() > deadline:
                raise TimeoutError(f"experiment {self._ns(namespace)}/{name} is not {expected_condition} after {timeout}s")
            time.sleep(polling_interval)

    def get_optimal_hyperparameters(self, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The best trial so far (``None`` while none has a result); ``NoResultError`` once
        the experiment has ended without one."""
        obj = self.get_experiment(name, namespace)
        no_result = _no_result(obj)
        if no_result is not None:
            raise no_result
        optimal = (obj.get("status") or {}).get("currentOptimalTrial") or {}
        return optimal if optimal.get("bestTrialName") else None

    def edit_experiment_budget(self, name: str, namespace: str | None = None, max_trial_count: int | None = None,
                               parallel_trial_count: int | None = None, max_failed_trial_count: int | None = None) -> dict[str, Any]:
        budget = {k: v for k, v in (("maxTrialCount", max_trial_count), ("parallelTrialCount", parallel_trial_count),
                                    ("maxFailedTrialCount", max_failed_trial_count)) if v is not None}
        if not budget:
            raise ValueError("set max_trial_count, parallel_trial_count or max_failed_trial_count")
        return self._backend.budget(name, self._ns(namespace), budget)

    def delete_experiment(self, name: str, namespace: str | None = None) -> None:
        self._backend.delete(name, self._ns(namespace))

    # -- ask and tell (spec.executor: external) -------------------------------------------

    def ask(self, name: str, count: int = 1, namespace: str | None = None) -> list[dict[str, Any]]:
        """New trials for your own loop: ``[{"name": …, "parameters": {…}}]``."""
        return self._backend.ask(name, self._ns(namespace), count)

    def tell(self, name: str, trial: str, metrics: dict[str, float] | list[dict[str, Any]],
             outcome: str = "Succeeded", namespace: str | None = None) -> dict[str, Any]:
        """Report a trial's metrics (and ``Failed`` if it failed)."""
        return self._backend.tell(name, self._ns(namespace), trial, metrics, outcome)

    # -- trials ------------------------------------------------------------------------

    def list_trials(self, experiment_name: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self._backend.trials(experiment_name, self._ns(namespace))

    def get_success_trial_details(self, experiment_name: str, namespace: str | None = None) -> list[dict[str, Any]]:
        out = []
        for t in self.list_trials(experiment_name, namespace):
            if any(c["type"] == "Succeeded" and c.get("status") == "True" for c in t["status"].get("conditions", [])):
                out.append({"name": t["metadata"]["name"], "parameter_assignments": t["spec"]["parameterAssignments"],
                            "metrics": (t["status"].get("observation") or {}).get("metrics", [])})
        return out

    def get_trial_metrics(self, name: str, namespace: str | None = None, metric_name: str | None = None) -> list[dict[str, Any]]:
        """The trial's observation log: every value with its time."""
        return self._backend.observations(name, self._ns(namespace), metric_name)
