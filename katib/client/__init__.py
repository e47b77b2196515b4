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

from ..errors import KatibError, NoResultError
from ._embedded import _Embedded
from ._remote import _Remote

if TYPE_CHECKING:
    from .._results import ExperimentResult

__all__ = ["KatibClient"]

CONDITIONS = ("Created", "Running", "Restarting", "Succeeded", "Failed")


def _finished(obj: dict[str, Any]) -> bool:
    return _true(obj, "Succeeded") or _true(obj, "Failed")


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

    def apply_experiment(self, experiment: dict[str, Any] | str | Any,
                         namespace: str | None = None) -> tuple[dict[str, Any], str]:
        """Create the experiment, or submit it again as ``katib run`` of the same file does:
        ``(object, action)`` with action ``created``, ``resumed`` (unfinished: it runs on,
        with an edited budget if the file raises one), ``restarted`` (finished, and the file
        raises ``maxTrialCount``) or ``unchanged`` (finished). A change other than the budget
        is refused, naming the fields (ValidationError)."""
        from katib.errors import ConflictError

        if isinstance(experiment, str):
            experiment = yaml.safe_load(experiment)
        elif hasattr(experiment, "to_dict"):
            experiment = experiment.to_dict()
        doc, ns = dict(experiment), self._ns(namespace)
        try:
            return self._backend.create(dict(doc), ns), "created"
        except ConflictError:
            pass  # it exists
        if not isinstance(self._backend, _Remote):
            return self._backend.submit_again(doc, ns)  # type: ignore[no-any-return]
        name = str((doc.get("metadata") or {}).get("name") or "")
        before = _finished(self._backend.get(name, ns))
        obj = self._backend.submit_again(doc, ns)
        after = _finished(self._backend.get(name, ns))
        if not before:
            return obj, "resumed"
        return obj, ("unchanged" if after else "restarted")

    def tune(
        self,
        name: str,
        objective: Callable[..., Any],
        parameters: dict[str, Any],
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
        metric_strategies: dict[str, str] | None = None,
        wait: bool = True,
        if_exists: str = "error",
        progress: bool = True,
        timeout: float | None = None,
    ) -> ExperimentResult:
        """Tune a Python function; each trial calls it in its own process.

        The function takes the parameters as a dict (``objective(parameters)``, Katib's SDK)
        or as keyword arguments named after them (``objective(x, y)``), typed as the search
        space says (int, float, str). A parameter given as a plain value rather than a
        ``katib.search`` range is a constant passed as it is, as in Katib's SDK (a JSON value). It returns a number (the objective metric), a dict of
        numbers (metrics) or ``None`` (it printed ``name=value`` or called
        ``katib.report_metrics`` itself). It travels with cloudpickle, closures, notebook
        globals and helpers included, to trials in this environment (this machine, Ray);
        a trial in a Kubernetes pod of another image gets its source, so there it must use
        nothing from outside its body, and creating the experiment says so otherwise.

        Each metric is read at its latest value: what the function returns, reported last,
        is the trial's result (as in Ray Tune and Optuna), whatever it printed before it
        (``name=value`` lines are read as the trial's intermediate values, for early
        stopping). ``metric_strategies`` (``{"accuracy": "max"}``) reads a metric otherwise:
        ``max`` or ``min`` over every value reported, as Katib's own default does. With the
        StdOut collector a metric name must be one Katib's filter reads whole (letters,
        digits, ``_``, ``-``, ``|``).

        ``wait`` (default): block until the experiment ends, showing its progress (a live
        line in a terminal, an updating output in Jupyter; ``progress=False`` for none), and
        return its ``ExperimentResult``; ``NoResultError`` if no trial reported the
        objective metric, ``ExperimentFailedError`` (its ``result`` attached) if it ended
        ``Failed`` (too many failed trials), as ``katib run`` exits 1. ``wait=False`` returns at once, as Katib's SDK does
        (``get_experiment_result`` reads it later). ``if_exists``: ``error`` (default),
        ``reuse`` (keep the experiment of that name and its results; carry on if it is
        unfinished) or ``replace`` (delete it and start again), so a notebook cell can be
        run again. ``algorithm_name`` defaults to ``auto``, which picks the algorithm per
        search space and budget (docs/algorithms.md); Katib's SDK defaults to ``random``."""
        from .. import _tune

        ns = self._ns(namespace)
        manager = getattr(self._backend, "manager", None)
        payload_dir = None
        if manager is not None:
            from ..names import RunLayout

            payload_dir = RunLayout(manager.runs_root).experiment(ns, name)
        doc, shipment = _tune.experiment_doc(
            name, objective, parameters, objective_metric_name, metrics_collector, payload_dir,
            objective_type=objective_type, objective_goal=objective_goal, additional_metric_names=additional_metric_names,
            algorithm_name=algorithm_name, algorithm_settings=algorithm_settings, max_trial_count=max_trial_count,
            parallel_trial_count=parallel_trial_count, max_failed_trial_count=max_failed_trial_count,
            resources_per_trial=resources_per_trial, env_per_trial=env_per_trial, base_image=base_image,
            metric_strategies=metric_strategies)
        _tune.create(self, doc, shipment, ns, if_exists)
        if not wait:
            return self.get_experiment_result(name, ns)
        return _tune.watch(self, name, ns, progress, timeout)

    def get_experiment_result(self, name: str, namespace: str | None = None) -> ExperimentResult:
        """The experiment and its trials as Python values, as they stand now: ``best_params``,
        ``best_value``, ``trials``, ``trials_dataframe()``, ``to_optuna_study()``."""
        from .._results import ExperimentResult

        return ExperimentResult(self.get_experiment(name, namespace), self.list_trials(name, namespace))

    def load_model(self, name: str, trial: str | None = None, namespace: str | None = None,
                   trust_model_code: bool = False, trust_pickles: bool = False) -> Any:
        """The model the experiment's best trial (or ``trial``) saved with ``katib.save_model``,
        loaded as ``katib serve`` serves it (embedded: the trials' folders are on this machine).
        A model from a ``katib server --auth`` store (a tenant's file, which acts as you as it
        loads or runs) loads only with ``trust_model_code`` (``trust_pickles``, its older name)."""
        from .._model import load_model, shared_store
        from ..serve import locate

        if not isinstance(self._backend, _Embedded):
            raise KatibError("load_model() reads the trials' folders, which a katib server keeps on its machine: "
                             "run katib serve there, or use an embedded KatibClient()")
        _, folder = locate(self._backend.store, self._backend.manager.runs_root, self._ns(namespace), name, trial)
        trusted = trust_model_code or trust_pickles
        return load_model(folder, allow_pickle=trusted or not shared_store(self._backend.store))

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

    def stop_trial(self, name: str, namespace: str | None = None) -> None:
        """Stop one running trial: it ends ``EarlyStopped`` and the experiment carries on.
        ConflictError unless it runs under this client's (or the server's) controller."""
        self._backend.stop_trial(name, self._ns(namespace))

    def retry_trial(self, name: str, namespace: str | None = None) -> None:
        """Run an ended, unsuccessful trial's parameters again, as a new trial labelled
        ``katib.kubeflow.org/retry-of``, before the algorithm's next one and within
        ``maxTrialCount``. ConflictError with the reason when it cannot be (running or
        succeeded, already retried, a hyperband or PBT plan, the budget spent, or the
        experiment not run by this client or the server)."""
        self._backend.retry_trial(name, self._ns(namespace))

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
