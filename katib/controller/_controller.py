"""The experiment controller: the one writer of experiment and trial state.

``Controller.submit`` stores a new experiment (or applies an allowed edit to an existing
one); ``Controller.run`` drives it to the end with Katib's reconcile step, repeated on
every event (a trial finished, metrics arrived) and on a tick:

1. follow running trials: collect their metrics, notice the ones that ended;
2. set each ended trial's condition (Succeeded needs the objective metric);
3. derive the experiment status; stop when an end condition holds;
4. ask the algorithm for ``min(parallel, max − completed) − active`` new assignments;
5. store the new trials *before* launching them, then launch.

Writing before launching is what makes ``kill -9`` at any point recoverable: on the next
``run``, trials that were running under the dead controller are *adopted* (``_adopt.py``):
the executor follows them on, with their attempt, start time and observations; only the
ones that are gone are killed (what is left of them) and run again under the same name
with the same parameters, so nothing is duplicated and no assignment is lost.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from katib.errors import ConflictError, FieldError, NotFoundError, ValidationError
from katib.names import ARTIFACTS, RunLayout, map_into
from katib.spec import EXPERIMENT_LABEL, TRIAL_LABEL, Experiment, TrialMeta, new_trial_name, render
from katib.store import ExperimentRecord, ObservationRow, Store, TrialRecord
from suggestion import (
    CHECKPOINT_FROM_LABEL,
    Algorithm,
    Curve,
    EarlyStopper,
    RemoteAlgorithm,
    TrialView,
    get_algorithm,
    get_early_stopper,
)
from trials import (
    Collector,
    Deferred,
    Executor,
    LaunchError,
    LocalExecutor,
    RunState,
    TrialJob,
    owner_alive,
    owner_id,
)

from ._admission import runnable_errors
from ._adopt import INTERRUPTED, STOPPING, recover
from ._arithmetic import end_condition, goal_reached, trials_to_create
from ._status import (
    ACTIVE_TRIAL_STATES,
    END_MESSAGES,
    FINAL_TRIAL_STATES,
    LAST_OUTPUT,
    UNAVAILABLE,
    WARM_START_LABEL,
    MetricReducer,
    Scoring,
    best_trial,
    counts_of,
    experiment_status,
    has_condition,
    mark_trial,
    metric_names,
    metric_value,
    numbers,
    remove_condition,
    reported,
    rfc3339,
    set_condition,
    strategies,
)

EDITABLE = ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount")
DEFAULT_CHECKPOINT_DIR = "/var/log/katib/checkpoints/"
STATUS_SAVE_INTERVAL = 0.5

Listener = Callable[[str, "ExperimentRun", TrialRecord | None], None]


def is_completed(status: dict[str, Any]) -> bool:
    conditions = status.get("conditions", [])
    return has_condition(conditions, "Succeeded") or has_condition(conditions, "Failed")


def _spec_without_budget(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (spec.get("spec") or {}).items() if k not in EDITABLE}


def warm_start_trials(exp: Experiment) -> list[TrialRecord]:
    """The experiment's ``warmStart`` results as Succeeded trials (``experiment_id`` unset)."""
    if exp.spec.warm_start is None:
        return []
    names = metric_names(exp)
    strategy = strategies(exp)
    objective = names[0]
    now = time.time()
    out = []
    for i, w in enumerate(exp.spec.warm_start.trials or []):
        observation: dict[str, dict[str, str]] = {}
        for m in (w.observation.metrics if w.observation else []):
            given = [v for v in (m.latest, m.min, m.max) if v is not None]
            if m.name in names and given:
                observation[m.name] = {"min": m.min or given[0], "max": m.max or given[0], "latest": m.latest or given[0]}
        for name in names:
            observation.setdefault(name, {"min": UNAVAILABLE, "max": UNAVAILABLE, "latest": UNAVAILABLE})
        t = TrialRecord(
            id=0, experiment_id=0, name=f"{exp.name}-warm-{i + 1}", state="Created",
            assignments=[{"name": a.name, "value": a.value} for a in w.parameter_assignments or []],
            labels={EXPERIMENT_LABEL: exp.name, WARM_START_LABEL: "true"}, observation=observation,
            objective=metric_value(observation, objective, strategy[objective]),
            created_at=now, start_time=now, completion_time=now,
        )
        mark_trial(t, "Created")
        mark_trial(t, "Succeeded", "Known result given in spec.warmStart", reason="TrialWarmStarted")
        out.append(t)
    return out


class Controller:
    """Stores experiments and runs them to the end.

    >>> ctl = Controller(Store("sqlite://"), runs_root=Path("/tmp/katib-runs"))  # doctest: +SKIP
    >>> rec, action = ctl.submit(experiment, workdir=Path("examples"))  # doctest: +SKIP
    >>> ctl.run(rec.namespace, rec.name)["conditions"][-1]["reason"]  # doctest: +SKIP
    'ExperimentMaxTrialsReached'
    """

    def __init__(
        self,
        store: Store,
        executor: Executor | None = None,
        runs_root: Path | None = None,
        tick: float = 1.0,
        listener: Listener | None = None,
        suggestion_address: str | None = None,
    ) -> None:
        self.store = store
        self.suggestion_address = suggestion_address
        self.executor = executor or LocalExecutor()
        self.runs_root = runs_root or Path.home() / ".katib" / "runs"
        self.tick = tick
        self.listener = listener

    # -- submission --------------------------------------------------------------------

    def submit(self, exp: Experiment, workdir: Path) -> tuple[ExperimentRecord, str]:
        """Store ``exp`` (admitted already). Returns the record and what happened:
        ``created``, ``resumed`` (unfinished, budget possibly edited), ``restarted``
        (finished, budget raised, resumePolicy allows it) or ``unchanged`` (finished)."""
        errors = runnable_errors(exp, self.executor.name)
        if errors:
            raise ValidationError(errors)
        spec = exp.model_dump(by_alias=True, exclude_none=True, mode="json", exclude={"status"})
        try:
            rec = self.store.get_experiment(exp.namespace, exp.name)
        except NotFoundError:
            now = time.time()
            status: dict[str, Any] = {"startTime": rfc3339(now), "conditions": []}
            set_condition(status["conditions"], "Created", "True", "ExperimentCreated", "Experiment is created", now)
            rec = self.store.create_experiment(exp.namespace, exp.name, spec, status, str(workdir.resolve()),
                                               initial_trials=warm_start_trials(exp))
            return rec, "created"
        return rec, self._edit(rec, spec)

    def _edit(self, rec: ExperimentRecord, spec: dict[str, Any]) -> str:
        if _spec_without_budget(rec.spec) != _spec_without_budget(spec):
            changed = sorted(
                k for k in set(_spec_without_budget(rec.spec)) | set(_spec_without_budget(spec))
                if _spec_without_budget(rec.spec).get(k) != _spec_without_budget(spec).get(k)
            )
            raise ValidationError([
                FieldError(f"spec.{k}", "cannot be changed on an existing experiment (only parallelTrialCount, maxTrialCount and maxFailedTrialCount can)")
                for k in changed
            ])
        old, new = rec.spec["spec"], spec["spec"]
        budget_changed = any(old.get(k) != new.get(k) for k in EDITABLE)
        status = rec.status
        if not is_completed(status):
            if budget_changed:
                self.store.update_experiment(rec.id, spec=spec)
            return "resumed"
        if not budget_changed:
            return "unchanged"
        if (new.get("maxTrialCount") or 0) <= (old.get("maxTrialCount") or 0):
            # A finished experiment keeps its result; only a larger budget restarts it.
            self.store.update_experiment(rec.id, spec=spec)
            return "unchanged"
        errors = self._restart_errors(rec, new)
        if errors:
            raise ValidationError(errors)
        conditions = status["conditions"]
        remove_condition(conditions, "Succeeded")
        set_condition(conditions, "Restarting", "True", "ExperimentRestarting", "Experiment is restarting")
        status.pop("completionTime", None)
        self.store.update_experiment(rec.id, spec=spec, status=status)
        return "restarted"

    def _restart_errors(self, rec: ExperimentRecord, new: dict[str, Any]) -> list[FieldError]:
        conditions = rec.status.get("conditions", [])
        reason = next((c.get("reason") for c in conditions if c["type"] == "Succeeded" and c.get("status") == "True"), None)
        if reason != "ExperimentMaxTrialsReached":
            state = "Failed" if has_condition(conditions, "Failed") else f"Succeeded ({reason})"
            return [FieldError("spec.maxTrialCount", f"only an experiment that ended with ExperimentMaxTrialsReached can be restarted (this one is {state})")]
        policy = new.get("resumePolicy", "Never")
        if policy not in ("LongRunning", "FromVolume"):
            return [FieldError("spec.resumePolicy", f"must be LongRunning or FromVolume to restart a finished experiment (got {policy})")]
        ran = rec.status.get("trials", 0)
        if new.get("maxTrialCount") is None or new["maxTrialCount"] <= ran:
            return [FieldError("spec.maxTrialCount", f"must exceed the {ran} trials already run to restart the experiment")]
        return []

    # -- running -----------------------------------------------------------------------

    def run(self, namespace: str, name: str, stop: threading.Event | None = None) -> dict[str, Any]:
        """Drive the experiment until it ends (or ``stop`` is set); returns its status."""
        rec = self.store.get_experiment(namespace, name)
        if (rec.spec.get("spec") or {}).get("executor") == "external":
            raise ConflictError(f"experiment {namespace}/{name} is driven from outside (spec.executor: external): "
                                "use ask and tell (katib server or KatibClient)")
        me = owner_id()
        self.store.claim_experiment(rec.id, me, owner_alive)
        try:
            run = ExperimentRun(self, rec)
            return run.loop(stop)
        finally:
            self.store.update_experiment(rec.id, owner=None)


class ExperimentRun:
    """One controller's hold on one experiment, from ``run`` to its end."""

    def __init__(self, ctl: Controller, rec: ExperimentRecord) -> None:
        self.ctl = ctl
        self.store = ctl.store
        self.executor = ctl.executor
        self.rec = rec
        self.exp = Experiment.model_validate(rec.spec)
        assert self.exp.spec.algorithm and self.exp.spec.algorithm.algorithm_name
        name = self.exp.spec.algorithm.algorithm_name
        self.algorithm: Algorithm = (
            RemoteAlgorithm(ctl.suggestion_address, name) if ctl.suggestion_address else get_algorithm(name)
        )
        self.algorithm_state: dict[str, Any] = self.store.algorithm_state(rec.id) or {}
        self._state_changed = False  # the algorithm's state changed since the last write
        self.trials: dict[str, TrialRecord] = {t.name: t for t in self.store.list_trials(rec.id)}
        self.reducers: dict[str, MetricReducer] = {}
        self.collectors: dict[str, Collector] = {}
        self.status: dict[str, Any] = dict(rec.status)
        self.names = metric_names(self.exp)
        self.strategies = strategies(self.exp)
        obj = self.exp.spec.objective
        assert obj is not None and obj.objective_metric_name
        self.objective = obj.objective_metric_name
        self.maximize = obj.type == "maximize"
        self.scoring = Scoring(self.exp)
        self.exhausted = False
        self._dirty = True
        self._saved_at = 0.0
        self._collected_at = 0.0
        self._unsaved: dict[str, TrialRecord] = {}
        self._budget_lock = threading.Lock()
        self._new_budget: dict[str, Any] | None = None
        self._stop_requests: dict[str, str] = {}  # trial -> reason, from another thread (SetTrialStatus)
        self._samples: list[tuple[int, ObservationRow]] = []
        self._views: dict[str, TrialView] = {}
        es = self.exp.spec.early_stopping
        self.stopper: EarlyStopper | None = (
            get_early_stopper(es.algorithm_name) if es is not None and es.algorithm_name else None
        )
        # Objective values in report order, per trial: what early stopping compares.
        self.curves: dict[str, list[float]] = {}
        self._stopping: dict[str, str] = {}
        self._decided: dict[str, int] = {}  # per trial: how much of its curve the stopper has seen
        if self.stopper is not None:
            by_id = self.store.metric_series(rec.id, self.objective)
            for t in self.trials.values():
                if t.state in FINAL_TRIAL_STATES:
                    self.curves[t.name] = numbers(by_id.get(t.id, []))

    # -- the loop ----------------------------------------------------------------------

    def loop(self, stop: threading.Event | None) -> dict[str, Any]:
        if is_completed(self.status):
            return self._save_status(force=True)
        self._recover()
        conditions = self.status.setdefault("conditions", [])
        remove_condition(conditions, "Restarting")
        set_condition(conditions, "Running", "True", "ExperimentRunning", "Experiment is running")
        self._save_status(force=True)
        self._emit("started", None)
        try:
            while True:
                self._apply_budget()
                self._follow_running()
                ended = self._check_end()
                new = [] if ended else self._create_trials()
                # One transaction per event: what ended, what was measured, what is new.
                # The new trials are stored before they are launched.
                self._flush(new)
                if ended:
                    self._save_status(force=True)
                    self._emit("ended", None)
                    break
                self._launch_created()
                self._flush()
                self._save_status()
                if stop is not None and stop.is_set():
                    self._interrupt()
                    break
                self.executor.wait(self.ctl.tick)
        except BaseException:
            self._interrupt()
            raise
        finally:
            self.executor.settle()
            self.executor.close()  # nothing of this run is running any more: release what it holds
        return self.status

    def update_budget(self, spec: dict[str, Any]) -> None:
        """Take new ``parallelTrialCount``/``maxTrialCount``/``maxFailedTrialCount`` values
        (from another thread); the loop applies them at its next step."""
        with self._budget_lock:
            self._new_budget = {k: spec.get(k) for k in EDITABLE}

    def request_early_stop(self, trial: str, reason: str) -> None:
        """Stop a running trial early (from another thread: Katib's ``SetTrialStatus``);
        the loop does it at its next step, and the trial ends ``EarlyStopped``."""
        with self._budget_lock:
            self._stop_requests[trial] = reason

    def _apply_budget(self) -> None:
        with self._budget_lock:
            budget, self._new_budget = self._new_budget, None
            requests, self._stop_requests = self._stop_requests, {}
        for name, reason in requests.items():
            t = self.trials.get(name)
            if t is not None and t.state == "Running" and t.handle and name not in self._stopping:
                self._stop_early(t, reason)
        if budget:
            spec = self.exp.spec
            spec.parallel_trial_count = budget["parallelTrialCount"] or spec.parallel_trial_count
            spec.max_trial_count = budget["maxTrialCount"]
            spec.max_failed_trial_count = budget["maxFailedTrialCount"]
            self._dirty = True

    def _touch(self, t: TrialRecord) -> None:
        self._unsaved[t.name] = t
        self._dirty = True

    def _flush(self, new: list[TrialRecord] | None = None) -> None:
        if not (self._unsaved or new or self._samples or self._state_changed):
            return
        state = (self.rec.id, self.algorithm_state) if self._state_changed else None
        # Cleared first: if this write fails, the plan goes with its trials, and no later
        # write (the interrupt's) may store it without them.
        self._state_changed = False
        self.store.write_trials(save=list(self._unsaved.values()), new=new or [], samples=self._samples,
                                algorithm_state=state)
        ended = [t.handle for t in self._unsaved.values() if t.state in FINAL_TRIAL_STATES and t.handle]
        self._unsaved.clear()
        self._samples = []
        for t in new or []:
            self.trials[t.name] = t
        for handle in ended:  # their ends are stored: what their jobs leave may go
            self.executor.release(handle)

    def _emit(self, event: str, trial: TrialRecord | None) -> None:
        if self.ctl.listener is not None:
            self.ctl.listener(event, self, trial)

    # -- step 1 and 2: follow running trials -------------------------------------------

    def _follow_running(self) -> None:
        """Notice ended trials (every wake) and read running ones' metrics (every tick)."""
        now = time.monotonic()
        read_metrics = now - self._collected_at >= self.ctl.tick
        if read_metrics:
            self._collected_at = now
        for t in list(self.trials.values()):
            if t.state != "Running":
                continue
            state = self.executor.poll(t.handle or {})
            if state.finished:
                self._finish(t, state)
            elif read_metrics:
                samples = self._collector(t).collect()
                if samples:
                    self._reduce(t, samples)
                    self._samples += [(t.id, ObservationRow(*x)) for x in samples]
                    self._emit("metrics", t)
                    if self._extend_curve(t, samples):
                        self._consider_stopping(t)

    def _extend_curve(self, t: TrialRecord, samples: list[Any]) -> bool:
        values = numbers(x.value for x in samples if x.metric == self.objective)
        if values:
            self.curves.setdefault(t.name, []).extend(values)
        return bool(values)

    def _consider_stopping(self, t: TrialRecord) -> None:
        if self.stopper is None or t.name in self._stopping or not t.handle:
            return
        others = [Curve(o.name, self.curves.get(o.name, []), o.state == "Succeeded", ended=o.completion_time)
                  for o in self.trials.values() if o.name != t.name and o.state != "Created"]
        curve = self.curves.get(t.name, [])
        reason = self.stopper.should_stop(
            self.exp, Curve(t.name, curve, False, self._decided.get(t.name, 0), created=t.created_at or None), others)
        self._decided[t.name] = len(curve)
        if reason:
            self._stop_early(t, reason)

    def _stop_early(self, t: TrialRecord, reason: str) -> None:
        assert t.handle is not None
        self._stopping[t.name] = reason
        # Stored before the stop is sent: a controller that dies in between leaves the
        # next one a trial it knows was stopped early, not one that failed or is gone.
        t.handle = {**t.handle, STOPPING: reason}
        self._touch(t)
        self._flush()
        self.executor.stop(t.handle)
        self._emit("stopping", t)

    def _collector(self, t: TrialRecord) -> Collector:
        collector = self.collectors.get(t.name)
        if collector is None:
            mc = self.exp.spec.metrics_collector_spec
            kind = mc.collector.kind if mc and mc.collector and mc.collector.kind else "StdOut"
            fsp = mc.source.file_system_path if mc and mc.source else None
            filters = mc.source.filter.metrics_format if mc and mc.source and mc.source.filter else None
            trial_dir = self._trial_dir(t)
            collector = Collector(
                kind=kind, names=set(self.names), output=trial_dir / "trial.log",
                push_file=trial_dir / "push.jsonl",
                metrics_file=Path(self._path_map(t)[fsp.path]) if kind == "File" and fsp and fsp.path else None,
                file_format=(fsp.format or "TEXT") if fsp else "TEXT",
                filters=filters or None,
            )
            self.collectors[t.name] = collector
        return collector

    def _reduce(self, t: TrialRecord, samples: list[Any]) -> None:
        reducer = self.reducers.setdefault(t.name, MetricReducer())
        for s in samples:
            reducer.add(s.time, s.metric, s.value)

    def _finish(self, t: TrialRecord, state: RunState) -> None:
        collector = self._collector(t)
        samples = collector.collect(final=True)
        self._reduce(t, samples)
        self._extend_curve(t, samples)
        reducer = self.reducers.get(t.name, MetricReducer())
        t.observation = reducer.observation(self.names)
        t.objective = metric_value(t.observation, self.objective, self.strategies[self.objective])
        t.completion_time = time.time()
        if t.name in self._stopping:
            mark_trial(t, "EarlyStopped", self._stopping.pop(t.name))
        elif state.reason == "Killed":
            mark_trial(t, "Killed", state.message)
        elif state.succeeded:
            if t.objective is not None or reported(t.observation, self.objective):
                mark_trial(t, "Succeeded")
            else:
                mark_trial(t, "MetricsUnavailable", self._no_metrics_hint(t, collector))
        else:
            mark_trial(t, "Failed", self._failure_message(t, state), reason="TrialFailed")
        self._samples += [(t.id, ObservationRow(*x)) for x in samples]
        self._touch(t)
        self.collectors.pop(t.name, None)
        self.reducers.pop(t.name, None)
        self._emit("finished", t)

    def _log_tail(self, t: TrialRecord, lines: int = 5) -> str:
        try:
            text = (self._trial_dir(t) / "trial.log").read_text(errors="replace")
        except OSError:
            return ""
        tail = [line for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail)

    def _failure_message(self, t: TrialRecord, state: RunState) -> str:
        tail = self._log_tail(t)
        return f"{state.message}" + (f"{LAST_OUTPUT}{tail}" if tail else "")

    def _no_metrics_hint(self, t: TrialRecord, collector: Collector) -> str:
        kind = collector.kind
        if kind == "File":
            where = f"the file {self._metrics_path_hint()}"
        elif kind == "Push":
            where = "katib.report_metrics() calls"
        else:
            where = "the trial's output"
        example = f"{self.objective}=0.93"
        tail = self._log_tail(t, 3)
        hint = (
            f"the objective metric {self.objective!r} was never reported: the {kind} collector read {where}"
            + (f" with filters {collector.filter_patterns}, expecting lines such as {example!r}" if kind != "Push" else "")
        )
        return hint + (f"{LAST_OUTPUT}{tail}" if tail else "")

    def _metrics_path_hint(self) -> str:
        mc = self.exp.spec.metrics_collector_spec
        fsp = mc.source.file_system_path if mc and mc.source else None
        return fsp.path if fsp and fsp.path else "(none)"

    # -- step 3: status and the end -----------------------------------------------------

    def _best(self) -> float | None:
        """The best primary objective among feasible trials (what the goal is checked on)."""
        best = best_trial(self.exp, self.trials.values())
        if best is None or not self.scoring.feasible(best.observation):
            return None
        return best.objective

    def _check_end(self) -> bool:
        spec = self.exp.spec
        counts = counts_of(self.trials.values(), budget=True)
        goal = spec.objective.goal if spec.objective else None
        ended = end_condition(
            counts, spec.max_trial_count, spec.max_failed_trial_count,
            goal_reached(self._best(), goal, self.maximize), self.exhausted,
        )
        if ended is None:
            return False
        condition, reason = ended
        for t in self.trials.values():
            if t.state in ACTIVE_TRIAL_STATES:
                if t.handle:
                    self.executor.stop(t.handle)
                t.completion_time = time.time()
                mark_trial(t, "Killed", f"the experiment ended ({reason})")
                self._touch(t)
        conditions = self.status["conditions"]
        running = next((c for c in conditions if c["type"] == "Running"), None)
        if running is not None:
            set_condition(conditions, "Running", "False", running.get("reason", ""), running.get("message", ""))
        set_condition(conditions, condition, "True", reason, END_MESSAGES[reason])
        self.status["completionTime"] = rfc3339(time.time())
        return True

    def _save_status(self, force: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        if not force and (not self._dirty or now - self._saved_at < STATUS_SAVE_INTERVAL):
            return self.status
        self.status = experiment_status(self.exp, list(self.trials.values()), self.status)
        self.store.update_experiment(self.rec.id, status=self.status)
        self._dirty = False
        self._saved_at = now
        return self.status

    # -- steps 4 and 5: new trials ------------------------------------------------------


    def _view(self, t: TrialRecord) -> TrialView:
        view = self._views.get(t.name)
        if view is None or view.state != t.state:
            metrics = {k: v for k in self.names if (v := metric_value(t.observation, k, self.strategies[k])) is not None}
            final = t.state in FINAL_TRIAL_STATES
            view = TrialView(
                t.name, t.parameters(), t.state, t.objective, metrics,
                values=self.scoring.values(t.observation) if final and self.scoring.multi_objective else None,
                violations=self.scoring.violations(t.observation) if final and self.scoring.constraints else (),
            )
            self._views[t.name] = view
        return view

    def _create_trials(self) -> list[TrialRecord]:
        """New trials for the free slots, in memory; ``_flush`` stores them."""
        spec = self.exp.spec
        want = trials_to_create(spec.parallel_trial_count or 1, spec.max_trial_count,
                                counts_of(self.trials.values(), budget=True))
        if want <= 0 or self.exhausted:
            return []
        views = [self._view(t) for t in self.trials.values()]
        before = json.dumps(self.algorithm_state, sort_keys=True)
        assignments = self.algorithm.suggest(self.exp, views, want, self.algorithm_state)
        if len(assignments) < want:
            active = any(t.state in ACTIVE_TRIAL_STATES for t in self.trials.values())
            # Nothing now, nothing running to wait for: nothing will ever come.
            self.exhausted = self.algorithm.exhausted(self.exp, views, self.algorithm_state) or (
                not assignments and not active)
        if json.dumps(self.algorithm_state, sort_keys=True) != before:
            self._state_changed = True  # stored by _flush, in one transaction with the new trials
        order = [p.name for p in spec.parameters or []]
        now = time.time()
        new = []
        for a in assignments:
            name = a.name or new_trial_name(self.exp.name, self.trials)
            params = [{"name": k, "value": a.parameters[k]} for k in order if k in a.parameters]
            params += [{"name": k, "value": v} for k, v in a.parameters.items() if k not in order]
            t = TrialRecord(
                id=0, experiment_id=self.rec.id, name=name, state="Created", assignments=params,
                labels={EXPERIMENT_LABEL: self.exp.name, **a.labels}, created_at=now,
            )
            mark_trial(t, "Created")
            new.append(t)
        if new:
            self._dirty = True
        return new

    def _collector_kind(self) -> str:
        mc = self.exp.spec.metrics_collector_spec
        return mc.collector.kind if mc and mc.collector and mc.collector.kind else "StdOut"

    def _trial_dir(self, t: TrialRecord) -> Path:
        return RunLayout(self.ctl.runs_root).trial(self.exp.namespace, self.exp.name, t.name)

    def _checkpoint_dir(self, name: str) -> Path:
        return RunLayout(self.ctl.runs_root).checkpoint(self.exp.namespace, self.exp.name, name)

    def _path_map(self, t: TrialRecord) -> dict[str, str]:
        """Katib's absolute paths, mapped into the trial's own directories: the metrics
        file, and the checkpoint directory (``suggestion_trial_dir``) of PBT."""
        out = {}
        mc = self.exp.spec.metrics_collector_spec
        fsp = mc.source.file_system_path if mc and mc.source else None
        if mc and mc.collector and mc.collector.kind == "File" and fsp and fsp.path:
            out[fsp.path] = str(map_into(self._trial_dir(t), fsp.path))
        checkpoints = self.exp.spec.algorithm.settings().get("suggestion_trial_dir") if self.exp.spec.algorithm else None
        if self.exp.spec.algorithm and self.exp.spec.algorithm.algorithm_name == "pbt":
            checkpoints = checkpoints or DEFAULT_CHECKPOINT_DIR
        if checkpoints:
            out[checkpoints.rstrip("/")] = str(self._checkpoint_dir(t.name))
        return out

    def _prepare_checkpoint(self, t: TrialRecord) -> None:
        """A trial that starts from another's checkpoint gets a fresh copy of it."""
        target = self._checkpoint_dir(t.name)
        shutil.rmtree(target, ignore_errors=True)
        source_name = t.labels.get(CHECKPOINT_FROM_LABEL)
        source = self._checkpoint_dir(source_name) if source_name else None
        if source is not None and source.is_dir():
            # Links stay links: the trial that made them must not get the server to copy
            # what they point to (the store, another tenant's files) into its checkpoint.
            shutil.copytree(source, target, symlinks=True)
        else:
            target.mkdir(parents=True, exist_ok=True)

    def _job(self, t: TrialRecord) -> TrialJob:
        tt = self.exp.spec.trial_template
        assert tt is not None and tt.primary_container_name
        labels = {**t.labels, TRIAL_LABEL: t.name}
        run_spec = render(tt, t.parameters(), TrialMeta(name=t.name, namespace=self.exp.namespace, labels=labels))
        metadata = run_spec.setdefault("metadata", {})
        metadata.update(name=t.name, namespace=self.exp.namespace)
        metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
        trial_dir = self._trial_dir(t)
        return TrialJob(
            name=t.name, experiment=self.exp.name, namespace=self.exp.namespace, run_spec=run_spec,
            primary_container=tt.primary_container_name, workdir=Path(self.rec.workdir),
            trial_dir=trial_dir, path_map=self._path_map(t),
            success_condition=tt.success_condition, failure_condition=tt.failure_condition,
            primary_pod_labels=tt.primary_pod_labels, retain=bool(tt.retain), collector=self._collector_kind(),
            env={
                "KATIB_TRIAL_NAME": t.name, "KATIB_EXPERIMENT_NAME": self.exp.name,
                "KATIB_NAMESPACE": self.exp.namespace, "KATIB_TRIAL_DIR": str(trial_dir),
                "KATIB_PUSH_FILE": str(trial_dir / "push.jsonl"),
                "KATIB_CHECKPOINT_DIR": str(self._checkpoint_dir(t.name)),
                # katib.save_model writes the trial's model here; katib serve reads it.
                "KATIB_ARTIFACT_DIR": str(trial_dir / ARTIFACTS),
            },
        )

    def _launch_created(self) -> None:
        for t in list(self.trials.values()):
            if t.state != "Created":
                continue
            job = self._job(t)
            try:
                self._prepare_checkpoint(t)
                (self._trial_dir(t) / ARTIFACTS).mkdir(parents=True, exist_ok=True)
                t.handle = self.executor.launch(job)
            except Deferred:
                continue  # it waits, pending, for running trials to free what it needs
            except LaunchError as exc:
                t.completion_time = time.time()
                t.observation = MetricReducer().observation(self.names)
                mark_trial(t, "Failed", str(exc), reason="LaunchFailed")
                self._touch(t)
                self._emit("finished", t)
                continue
            t.start_time = time.time()
            mark_trial(t, "Running")
            self._touch(t)
            self._emit("launched", t)

    # -- crash recovery -----------------------------------------------------------------

    def _recover(self) -> None:
        """Trials left active by an earlier controller: adopt them, or run them again."""
        recover(self)

    def _interrupt(self) -> None:
        """Stop what runs without marking it: the next ``run`` re-runs those trials."""
        for t in self.trials.values():
            if t.state == "Running" and t.handle:
                self.executor.stop(t.handle)
                t.handle = {**t.handle, INTERRUPTED: True}  # stopped, so not to be adopted
                self._touch(t)
        try:
            self._flush()
            self._save_status(force=True)
        except Exception:  # the database may be what failed; the trials are stopped anyway
            pass


__all__ = ["Controller", "ExperimentRun", "is_completed"]
