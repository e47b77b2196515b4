"""An experiment's results as Python values: the best trial, a table, an Optuna study.

``ExperimentResult`` is a snapshot of one experiment and its trials, read from the same
Katib objects every surface shows (``KatibClient.get_experiment`` and ``list_trials``), so
it is the same embedded or against a server. Its face follows Optuna's ``Study``:

>>> result = client.tune("quad", objective, {"x": search.double(-5, 5)},
...                      objective_metric_name="loss", objective_type="minimize")  # doctest: +SKIP
>>> result.best_params, result.best_value                                          # doctest: +SKIP
({'x': 1.98}, 0.0004)
>>> result.trials_dataframe().head()                                               # doctest: +SKIP
>>> optuna.visualization.plot_optimization_history(result.to_optuna_study())       # doctest: +SKIP
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._function import kinds
from .errors import KatibError, NoResultError

# The reason of the Running=False condition a user's stop shows on an unfinished experiment
# (``katib.views.shown_status``): Katib has no stop, so none of its condition types says it.
STOPPED = "ExperimentStopped"

STATES = ("Succeeded", "Failed", "MetricsUnavailable", "EarlyStopped", "Killed", "Running", "Created")
COUNTED = ("Succeeded", "EarlyStopped")  # the states whose objective value is a result, as Katib's best trial reads
_ROWS = 50  # trials shown in a notebook before "… more"


@dataclass(frozen=True)
class TrialResult:
    """One trial: its parameters (typed as the search space says), its state, the objective
    value and every metric, each the value its metric strategy picks."""

    name: str
    state: str
    params: dict[str, Any]
    value: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    started: datetime | None = None
    completed: datetime | None = None
    message: str = ""

    @property
    def duration(self) -> float | None:
        if self.started and self.completed:
            return (self.completed - self.started).total_seconds()
        return None

    def _repr_html_(self) -> str:
        rows = [("state", self.state), ("value", _num(self.value)),
                *[(k, _num(v) if not isinstance(v, str) else v) for k, v in self.params.items()],
                *[(k, _num(v)) for k, v in self.metrics.items()]]
        if self.message and self.state != "Succeeded":
            rows.append(("message", self.message))
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th><td style='text-align:left'>"
                       f"{html.escape(str(v))}</td></tr>" for k, v in rows)
        return f"<div><b>trial {html.escape(self.name)}</b><table>{body}</table></div>"


class ExperimentResult:
    """A snapshot of an experiment and its trials (``KatibClient.get_experiment_result`` reads
    a fresh one). ``best_params``/``best_value``/``best_trial`` raise ``NoResultError`` when no
    trial reported the objective metric."""

    def __init__(self, experiment: dict[str, Any], trials: list[dict[str, Any]]) -> None:
        self.experiment = experiment
        meta = experiment.get("metadata") or {}
        spec = experiment.get("spec") or {}
        objective = spec.get("objective") or {}
        self.name: str = meta.get("name", "")
        self.namespace: str = meta.get("namespace", "default")
        self.direction: str = objective.get("type", "maximize")
        self.metric_name: str = objective.get("objectiveMetricName", "")
        self.status: dict[str, Any] = experiment.get("status") or {}
        self._space = {p["name"]: p for p in spec.get("parameters") or []}
        self._kinds = kinds(self._space)
        self._strategies = _strategies(objective)
        self.trials: list[TrialResult] = [self._trial(t) for t in trials]

    # -- Optuna's Study face ------------------------------------------------------------

    @property
    def state(self) -> str:
        """Running, Succeeded, Failed… (the experiment's newest true condition: the last in
        Katib's order, as Katib's UI shows it; a restarted experiment that runs again keeps
        its Restarting condition, listed before Running), or Stopped (unfinished, stopped by
        a user: ``katib resume`` or ``tune(..., if_exists="reuse")`` carries on)."""
        kinds = ("Created", "Running", "Restarting", "Succeeded", "Failed")
        conditions = self.status.get("conditions") or []
        if any(c.get("type") == "Running" and c.get("status") == "False" and c.get("reason") == STOPPED
               for c in conditions):
            return "Stopped"  # unfinished, a user's stop (or Ctrl-C in tune) on it: not "Created"
        for c in reversed(conditions):
            if c.get("type") in kinds and c.get("status") == "True":
                return str(c["type"])
        return "Unknown"

    def _shown_state(self) -> str:
        """``state`` as a person reads it: an experiment that ended ``Succeeded`` (Katib's word
        for reaching its trial budget) without a best trial has no result, and says so."""
        state = self.state
        return "ended without a result" if state == "Succeeded" and not self._has_best() else state

    @property
    def best_trial(self) -> TrialResult:
        best = (self.status.get("currentOptimalTrial") or {}).get("bestTrialName")
        found = next((t for t in self.trials if t.name == best), None) if best else None
        if found is None:
            message = next((c.get("message") for c in self.status.get("conditions", [])
                            if c.get("type") in ("Succeeded", "Failed") and c.get("status") == "True"), None)
            raise NoResultError(f"experiment {self.namespace}/{self.name} has no best trial"
                                + (f": {message}" if message else " yet"))
        return found

    @property
    def best_params(self) -> dict[str, Any]:
        return dict(self.best_trial.params)

    @property
    def best_value(self) -> float:
        value = self.best_trial.value
        if value is None:
            raise NoResultError(f"the best trial of {self.namespace}/{self.name} has no {self.metric_name!r}")
        return value

    def trials_dataframe(self) -> Any:
        """One row per trial: ``number``, ``name``, ``state``, ``value`` (the objective metric),
        ``params_<name>``, ``metrics_<name>`` (the other metrics), ``datetime_start``,
        ``datetime_complete``, ``duration`` (seconds);
        Optuna's column names where they mean the same. Needs pandas."""
        try:
            import pandas as pd
        except ImportError:
            raise KatibError("trials_dataframe() needs pandas: pip install pandas (or 'katib[notebook]')") from None
        rows = []
        for number, t in enumerate(self.trials):
            row: dict[str, Any] = {"number": number, "name": t.name, "state": t.state, "value": t.value}
            row.update({f"params_{k}": v for k, v in t.params.items()})
            row.update({f"metrics_{k}": v for k, v in t.metrics.items() if k != self.metric_name})  # that is value
            row.update(datetime_start=t.started, datetime_complete=t.completed, duration=t.duration)
            rows.append(row)
        columns = ["number", "name", "state", "value", *[f"params_{k}" for k in self._space],
                   *sorted({c for r in rows for c in r if c.startswith("metrics_")}),
                   "datetime_start", "datetime_complete", "duration"]
        return pd.DataFrame(rows, columns=columns)

    def to_optuna_study(self) -> Any:
        """The experiment as an in-memory Optuna study (``optuna.trial.create_trial``, with
        distributions from the search space), for Optuna's plots and importance evaluators.
        Succeeded trials are COMPLETE, early-stopped ones PRUNED, the other ended ones FAIL;
        each keeps its Katib name and metrics as user attributes."""
        from ._optuna import to_study

        return to_study(self)

    # -- display ------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (f"ExperimentResult({self.namespace}/{self.name}: {self._shown_state()}, {len(self.trials)} trials"
                + (f", best {self.metric_name}={_num(self._best_value_or_none())}" if self._has_best() else "") + ")")

    def _has_best(self) -> bool:
        return bool((self.status.get("currentOptimalTrial") or {}).get("bestTrialName"))

    def _best_value_or_none(self) -> float | None:
        try:
            return self.best_value
        except NoResultError:
            return None

    def _repr_html_(self) -> str:
        head = (f"<b>experiment {html.escape(self.namespace)}/{html.escape(self.name)}</b>: {html.escape(self._shown_state())}, "
                f"{len(self.trials)} trials ({html.escape(self.direction)} {html.escape(self.metric_name)})")
        best_name = ""
        if self._has_best():
            try:
                best = self.best_trial
                best_name = best.name
                params = ", ".join(f"{k}={_num(v) if not isinstance(v, str) else v}" for k, v in best.params.items())
                head += (f"<br>best: <b>{html.escape(best.name)}</b> {html.escape(self.metric_name)}="
                         f"{_num(best.value)} ({html.escape(params)})")
            except NoResultError:
                pass
        names = list(self._space)
        metrics = sorted({m for t in self.trials for m in t.metrics if m != self.metric_name})
        cells = ["trial", "state", self.metric_name, *names, *metrics]
        header = "".join(f"<th>{html.escape(c)}</th>" for c in cells)
        rows = []
        for t in self.trials[:_ROWS]:
            values = [t.name, t.state, _num(t.value), *[_shown(t.params.get(n)) for n in names],
                      *[_num(t.metrics.get(m)) for m in metrics]]
            style = " style='font-weight:bold'" if t.name == best_name else ""
            rows.append(f"<tr{style}>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in values) + "</tr>")
        more = f"<p>… {len(self.trials) - _ROWS} more trials</p>" if len(self.trials) > _ROWS else ""
        return f"<div><p>{head}</p><table><tr>{header}</tr>{''.join(rows)}</table>{more}</div>"

    # -- reading Katib's objects ----------------------------------------------------------

    def _trial(self, obj: dict[str, Any]) -> TrialResult:
        status = obj.get("status") or {}
        conditions = status.get("conditions") or []
        state = next((c["type"] for c in reversed(conditions) if c.get("status") == "True" and c.get("type") in STATES),
                     "Created")
        message = next((c.get("message", "") for c in reversed(conditions) if c.get("type") == state), "")
        params = {a["name"]: self.typed(a["name"], a.get("value"))
                  for a in (obj.get("spec") or {}).get("parameterAssignments") or []}
        metrics = {}
        for m in (status.get("observation") or {}).get("metrics") or []:
            number = _float(m.get(self._strategies.get(m.get("name"), _default_strategy(self.direction))))
            if number is not None:
                metrics[m["name"]] = number
        # A trial's value is its result, as an Optuna trial's: only one that ended with it has
        # one (a failed trial's object has no observation, as in Katib: it stays off the top
        # of a table sorted by value).
        value = metrics.get(self.metric_name) if state in COUNTED else None
        return TrialResult(name=(obj.get("metadata") or {}).get("name", ""), state=state, params=params,
                           value=value, metrics=metrics,
                           started=_time(status.get("startTime")), completed=_time(status.get("completionTime")),
                           message=message)

    def typed(self, name: str, value: Any) -> Any:
        """A parameter's value as its type in the search space (int, float or str)."""
        kind = self._kinds.get(name, "str")
        try:
            if kind == "int":
                number = float(value)
                return int(number) if number.is_integer() else number
            if kind == "float":
                return float(value)
        except (TypeError, ValueError):
            return value
        return value


def _strategies(objective: dict[str, Any]) -> dict[str, str]:
    default = _default_strategy(objective.get("type", "maximize"))
    # Katib's metricStrategies and defaults, as katib.controller._status.metric_strategies
    # reads them (not imported: a client of a server loads neither the store nor the loop).
    own = {a.get("metricName"): _default_strategy(a.get("type", "maximize")) for a in objective.get("additionalObjectives") or []}
    bounded = {c.get("metricName") for c in objective.get("constraints") or []}
    names = [objective.get("objectiveMetricName"), *(objective.get("additionalMetricNames") or []), *own, *bounded]
    out = {n: default for n in names if n}
    out.update({n: "latest" for n in bounded if n and n != objective.get("objectiveMetricName")})
    out.update({n: v for n, v in own.items() if n})
    out.update({s["name"]: s["value"] for s in objective.get("metricStrategies") or [] if s.get("name") and s.get("value")})
    return out


def _default_strategy(direction: str) -> str:
    return "min" if direction == "minimize" else "max"


def _float(text: Any) -> float | None:
    """A metric's value as a number when it is a finite one (``nan`` or ``inf``, which a
    Katib server may hold, is no result)."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else _num(value)
