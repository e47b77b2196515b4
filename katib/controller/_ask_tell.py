"""Ask and tell: an outside loop asks for parameters and reports results.

For experiments with ``spec.executor: external``. ``ask`` stores new trials (Running)
with the algorithm's proposals, within the experiment's budget and parallelism; ``tell``
stores a trial's metrics and outcome, then derives the experiment's status and end
conditions exactly as the controller does for trials it runs itself.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from katib.errors import ConflictError, FieldError, ValidationError
from katib.spec import Experiment, new_trial_name
from katib.store import ExperimentRecord, ObservationRow, Store, TrialRecord
from suggestion import Algorithm, TrialView, get_algorithm

from ._arithmetic import end_condition, goal_reached, trials_to_create
from ._status import (
    END_MESSAGES,
    FINAL_TRIAL_STATES,
    UNAVAILABLE,
    MetricReducer,
    Scoring,
    best_trial,
    counts_of,
    experiment_status,
    is_completed,
    mark_trial,
    metric_names,
    metric_value,
    rfc3339,
    set_condition,
    strategies,
)

OUTCOMES = ("Succeeded", "Failed")


class AskTell:
    """Ask-and-tell over the store; one algorithm instance per experiment. An ask or a
    tell holds the experiment's lock among every process on the database (several servers,
    a ``KatibClient`` beside them): each reads the trials and writes its own after the
    last one's, so no two asks fill one slot or propose one point, a tell told twice ends
    its trial once, and an ask never reopens an experiment a tell just ended."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._algorithms: dict[tuple[str, str], Algorithm] = {}
        self._guard = threading.Lock()

    @contextmanager
    def _lock(self, key: tuple[str, str]) -> Iterator[None]:
        with self._guard:
            local = self._locks.setdefault(key, threading.Lock())
        with local, self.store.locked(f"ask-tell/{key[0]}/{key[1]}"):
            yield

    def _load(self, namespace: str, name: str) -> tuple[Any, Experiment, list[TrialRecord]]:
        rec = self.store.get_experiment(namespace, name)
        exp = Experiment.model_validate(rec.spec)
        if exp.spec.executor != "external":
            raise ConflictError(f"experiment {namespace}/{name} runs its own trials; ask and tell need spec.executor: external")
        return rec, exp, self.store.list_trials(rec.id)

    def ask(self, namespace: str, name: str, count: int = 1) -> list[dict[str, Any]]:
        """Up to ``count`` new trials to run: ``[{name, parameters}]``."""
        key = (namespace, name)
        with self._lock(key):
            rec, exp, trials = self._load(namespace, name)
            if is_completed(rec.status):
                raise ConflictError(f"experiment {namespace}/{name} has finished")
            # Its end, checked again: a budget edited since the last tell (maxFailedTrialCount
            # lowered to the failures there are) ends it, as Katib's reconcile would.
            ended = self._end(exp, trials)
            if ended:
                self._finish(rec, exp, trials, ended)
                raise ConflictError(f"experiment {namespace}/{name} has finished ({ended[1]})")
            want = min(count, trials_to_create(exp.spec.parallel_trial_count or 1, exp.spec.max_trial_count,
                                               counts_of(trials, budget=True)))
            if want <= 0:
                raise ConflictError(f"experiment {namespace}/{name} has no free slot: tell the results of its running "
                                    "trials first (parallelTrialCount), or its budget is spent (maxTrialCount)")
            algorithm = self._algorithm(key, exp)
            views = _views(exp, trials)
            state = self.store.algorithm_state(rec.id) or {}
            # A deep snapshot: the algorithms change nested lists (hyperband's queue, PBT's
            # population) in place, which a shallow copy would share and never see change.
            before = json.dumps(state, sort_keys=True)
            assignments = algorithm.suggest(exp, views, want, state)
            changed = (rec.id, state) if json.dumps(state, sort_keys=True) != before else None
            if not assignments:
                if changed:
                    self.store.save_algorithm_state(*changed)
                if not any(t.state == "Running" for t in trials):
                    self._finish(rec, exp, trials, ("Succeeded", "ExperimentSuggestionEndReached"))
                raise ConflictError(f"experiment {namespace}/{name} has nothing more to try now")
            now = time.time()
            names = {t.name for t in trials}
            order = [p.name for p in exp.spec.parameters or []]
            new = []
            for a in assignments:
                trial_name = a.name or new_trial_name(exp.name, names)
                names.add(trial_name)
                t = TrialRecord(id=0, experiment_id=rec.id, name=trial_name, state="Created",
                                assignments=[{"name": k, "value": a.parameters[k]} for k in order if k in a.parameters],
                                labels={"katib.kubeflow.org/experiment": exp.name, **a.labels}, created_at=now,
                                start_time=now)
                mark_trial(t, "Created")
                mark_trial(t, "Running")
                new.append(t)
            self.store.write_trials(new=new, algorithm_state=changed)  # the plan and its trials together
            self._save_status(rec, exp, trials + new)
            return [{"name": t.name, "parameters": t.parameters()} for t in new]

    def tell(self, namespace: str, name: str, trial: str, metrics: dict[str, float] | None = None,
             outcome: str = "Succeeded", message: str | None = None) -> dict[str, Any]:
        """Report a trial's metrics (name → value, or a list of ``{name, value, timestamp}``)
        and its outcome; returns the trial's final state."""
        if outcome not in OUTCOMES:
            raise ValidationError([FieldError("outcome", f"must be Succeeded or Failed (got {outcome!r})")], "request")
        key = (namespace, name)
        with self._lock(key):
            rec, exp, trials = self._load(namespace, name)
            t = next((x for x in trials if x.name == trial), None)
            if t is None:
                raise ValidationError([FieldError("trial", f"no trial {trial!r} in experiment {namespace}/{name}")], "request")
            if t.state != "Running":
                self._settle(key, rec, exp, trials)  # a tell told again after a crash cut off its end
                raise ConflictError(f"trial {trial} has already ended ({t.state})")
            names = metric_names(exp)
            rows = _rows(metrics or {}, set(names))
            reducer = MetricReducer()
            for old in self.store.observations(t.id):
                reducer.add(old.time, old.metric_name, old.value)
            for row in rows:
                reducer.add(row.time, row.metric_name, row.value)
            t.observation = reducer.observation(names)
            objective = names[0]
            t.objective = metric_value(t.observation, objective, strategies(exp)[objective])
            t.completion_time = time.time()
            if outcome == "Failed":
                mark_trial(t, "Failed", message or "the outside loop reported a failure")
            elif t.objective is None:
                mark_trial(t, "MetricsUnavailable", f"no value of the objective metric {objective!r} was told")
            else:
                mark_trial(t, "Succeeded")
            self.store.write_trials(save=[t], samples=[(t.id, r) for r in rows])
            ended = self._end(exp, trials) or self._spent(key, rec, exp, trials)
            if ended:
                self._finish(rec, exp, trials, ended)
            else:
                self._save_status(rec, exp, trials)
            return {"name": t.name, "state": t.state, "observation": t.observation}

    def settle(self, namespace: str, name: str) -> bool:
        """End the experiment if its trials say it has ended: a tell stores its trial, then
        the experiment's end, and a crash between the two left it Running for ever (a
        server that starts settles every outside loop's experiment). Whether it ended it."""
        key = (namespace, name)
        with self._lock(key):
            rec, exp, trials = self._load(namespace, name)
            return self._settle(key, rec, exp, trials)

    def _settle(self, key: tuple[str, str], rec: ExperimentRecord, exp: Experiment, trials: list[TrialRecord]) -> bool:
        if is_completed(rec.status):
            return False
        ended = self._end(exp, trials) or self._spent(key, rec, exp, trials)
        if ended:
            self._finish(rec, exp, trials, ended)
        return bool(ended)

    def _algorithm(self, key: tuple[str, str], exp: Experiment) -> Algorithm:
        return self._algorithms.setdefault(key, get_algorithm(exp.spec.algorithm.algorithm_name))  # type: ignore[union-attr, arg-type]

    def _spent(self, key: tuple[str, str], rec: ExperimentRecord, exp: Experiment,
               trials: list[TrialRecord]) -> tuple[str, str] | None:
        """The end a told last trial brings when the algorithm can propose nothing more (a
        grid whose every point was tried, hyperband's last bracket): Succeeded, as the
        controller ends it when no trial is left to wait for. Not only at the next ask,
        which a loop that counted the grid never makes."""
        if any(t.state in ("Created", "Running") for t in trials):
            return None
        if not self._algorithm(key, exp).exhausted(exp, _views(exp, trials), self.store.algorithm_state(rec.id) or {}):
            return None
        return "Succeeded", "ExperimentSuggestionEndReached"

    def _end(self, exp: Experiment, trials: list[TrialRecord]) -> tuple[str, str] | None:
        best = best_trial(exp, trials)
        scoring = Scoring(exp)
        value = best.objective if best is not None and scoring.feasible(best.observation) else None
        obj = exp.spec.objective
        assert obj is not None
        return end_condition(counts_of(trials, budget=True), exp.spec.max_trial_count, exp.spec.max_failed_trial_count,
                             goal_reached(value, obj.goal, obj.type == "maximize"), False)

    def _save_status(self, rec: ExperimentRecord, exp: Experiment, trials: list[TrialRecord]) -> None:
        status = rec.status
        conditions = status.conditions
        if not any(c.type == "Running" and c.status == "True" for c in conditions):  # new, or restarted
            set_condition(conditions, "Running", "True", "ExperimentRunning", "Experiment is running")
        self.store.update_experiment(rec.id, status=experiment_status(exp, trials, status))

    def _finish(self, rec: ExperimentRecord, exp: Experiment, trials: list[TrialRecord], ended: tuple[str, str]) -> None:
        condition, reason = ended
        status = rec.status
        conditions = status.conditions
        running = next((c for c in conditions if c.type == "Running"), None)
        if running is not None:
            set_condition(conditions, "Running", "False", running.reason or "", running.message or "")
        set_condition(conditions, condition, "True", reason, END_MESSAGES[reason])
        status.completion_time = rfc3339(time.time())
        killed = []
        for t in trials:
            if t.state in ("Created", "Running"):
                t.completion_time = time.time()
                t.observation = t.observation or MetricReducer().observation(metric_names(exp))
                mark_trial(t, "Killed", f"the experiment ended ({reason})")
                killed.append(t)
        if killed:
            self.store.write_trials(save=killed)
        self.store.update_experiment(rec.id, status=experiment_status(exp, trials, status))


def _views(exp: Experiment, trials: list[TrialRecord]) -> list[TrialView]:
    scoring = Scoring(exp)
    return [TrialView(t.name, t.parameters(), t.state, t.objective,
                      values=scoring.values(t.observation) if scoring.multi_objective and t.state in FINAL_TRIAL_STATES else None,
                      violations=scoring.violations(t.observation) if scoring.constraints and t.state in FINAL_TRIAL_STATES else (),
                      labels=dict(t.labels), start_time=t.start_time, completion_time=t.completion_time)
            for t in trials]


def _rows(metrics: Any, names: set[str]) -> list[ObservationRow]:
    """Told metrics as observation rows (numbers only; unknown metric names refused)."""
    from trials import parse_time

    items = metrics.items() if isinstance(metrics, dict) else [(m.get("name"), m) for m in metrics]
    rows, errors, now = [], [], time.time()
    for i, (name, raw) in enumerate(items):
        value = raw.get("value") if isinstance(raw, dict) else raw
        when = parse_time(raw.get("timestamp")) if isinstance(raw, dict) and raw.get("timestamp") is not None else now
        if when is None:
            errors.append(FieldError(f"metrics[{i}].timestamp", f"must be an RFC 3339 time or seconds since the epoch, "
                                     f"from the year 1 to 9999 (got {str(raw.get('timestamp'))[:80]!r})"))
            continue
        if name not in names:
            errors.append(FieldError(f"metrics[{i}]", f"{name!r} is not a metric of the experiment ({', '.join(sorted(names))})"))
            continue
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            errors.append(FieldError(f"metrics[{i}]", f"{name} must be a number (got {value!r})"))
            continue
        if number != number or number in (float("inf"), float("-inf")):
            errors.append(FieldError(f"metrics[{i}]", f"{name} must be finite (got {value!r})"))
            continue
        rows.append(ObservationRow(when, str(name), str(value)))
    if errors:
        raise ValidationError(errors, "request")
    return rows


__all__ = ["AskTell", "UNAVAILABLE"]
