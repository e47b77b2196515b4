"""One controller's hold on one experiment (``ExperimentRun``), driven by ``Controller.run``
with Katib's reconcile step, repeated on every event (a trial finished, metrics arrived)
and on a tick:

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

The steps live in three modules: ``_follow.py`` (steps 1 and 2: metrics, ends, early
stopping), this one (steps 3 and 4, the transaction, the loop), ``_launch.py`` (step 5:
the trial's job, folders and checkpoint, and the launch).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from katib.errors import KatibError
from katib.names import RESERVED_TRIAL_NAMES
from katib.spec import EDITABLE, EXPERIMENT_LABEL, Experiment, ExperimentStatus, new_trial_name
from katib.store import ExperimentRecord, ObservationRow, TrialRecord, stored_status
from suggestion import (
    Algorithm,
    EarlyStopper,
    RemoteAlgorithm,
    TrialView,
    get_algorithm,
    get_early_stopper,
)
from trials import Collector

from ._adopt import INTERRUPTED, INTERRUPTED_MESSAGE, KILLING, STOPPING, recover
from ._arithmetic import end_condition, goal_reached, trials_to_create
from ._follow import Following
from ._launch import Launching
from ._retry import accept, make_retries, waiting
from ._status import (
    ACTIVE_TRIAL_STATES,
    END_MESSAGES,
    FINAL_TRIAL_STATES,
    MetricReducer,
    Scoring,
    experiment_status,
    is_completed,
    mark_trial,
    metric_names,
    metric_value,
    numbers,
    rfc3339,
    set_condition,
    strategies,
)
from ._tally import Tally

if TYPE_CHECKING:
    from ._controller import Controller

STATUS_SAVE_INTERVAL = 0.5

Listener = Callable[[str, "ExperimentRun", TrialRecord | None], None]


_END_ATTEMPTS = 20  # tries to write the end over the spec last read (``_save_end``)


class ExperimentRun(Following, Launching):
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
        # The active trials, and the ended ones summarised: what each step reads (not all trials).
        self.tally = Tally(self.exp, self.trials.values())
        self.reducers: dict[str, MetricReducer] = {}
        self.collectors: dict[str, Collector] = {}
        self.status: ExperimentStatus = rec.status.model_copy(deep=True)
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
        self._written: dict[str, Any] | None = None  # the stored part of the status last written
        # Ending on ExperimentMaxTrialsReached: the spec the budget was last read from, and the
        # status before the end was set (see ``_save_end``).
        self._end_spec: dict[str, Any] | None = None
        self._before_end: tuple[list[Any], str | None] | None = None
        self._collected_at = 0.0
        self._unsaved: dict[str, TrialRecord] = {}
        self._budget_lock = threading.Lock()
        self._new_budget: dict[str, Any] | None = None
        self._stop_requests: dict[str, str] = {}  # trial -> reason, from another thread (SetTrialStatus)
        self._retry_requests: list[tuple[str, Future[str]]] = []  # from another thread (the API)
        self.retry_queue: list[str] = waiting(self.trials.values())  # originals whose retry is to be made
        self._samples: list[tuple[int, ObservationRow]] = []
        self._views: dict[str, TrialView] = {}  # every trial's, in creation order, once the algorithm asks
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

    def loop(self, stop: threading.Event | None) -> ExperimentStatus:
        if is_completed(self.status):
            self._save_status(force=True)
            return self.status
        self._recover()
        # A restarted experiment keeps its Restarting condition, as Katib's does
        # (MarkExperimentStatusRunning leaves it): Running moves after it.
        set_condition(self.status.conditions, "Running", "True", "ExperimentRunning", "Experiment is running")
        self._save_status(force=True)
        self._emit("started", None)
        try:
            while True:
                self._apply_budget()
                self._follow_running()
                ended = self._check_end()
                if not ended and stop is not None and stop.is_set():  # asked to stop: nothing new is started
                    self._interrupt()
                    break
                new = [] if ended else self._create_trials()
                # One transaction per event: what ended, what was measured, what is new.
                # The new trials are stored before they are launched.
                self._flush(new)
                if ended:
                    if not self._save_end():
                        continue  # a budget stored as it ended: run on under it
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

    def request_retry(self, trial: str) -> Future[str]:
        """Run an ended, unsuccessful trial's parameters again (from another thread); the
        future answers once the loop has checked the request (``_retry.py``)."""
        answer: Future[str] = Future()
        with self._budget_lock:
            self._retry_requests.append((trial, answer))
        return answer

    def _apply_budget(self) -> None:
        with self._budget_lock:
            budget, self._new_budget = self._new_budget, None
            requests, self._stop_requests = self._stop_requests, {}
            retries, self._retry_requests = self._retry_requests, []
        for name, reason in requests.items():
            t = self.trials.get(name)
            if t is not None and t.state == "Running" and t.handle and name not in self._stopping:
                self._stop_early(t, reason)
        for name, answer in retries:
            accept(self, name, answer)
        if budget:
            self._take_budget(budget)

    def _take_budget(self, budget: dict[str, Any]) -> None:
        spec = self.exp.spec
        spec.parallel_trial_count = budget.get("parallelTrialCount") or spec.parallel_trial_count
        spec.max_trial_count = budget.get("maxTrialCount")
        spec.max_failed_trial_count = budget.get("maxFailedTrialCount")
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
            self.tally.add(t)
        for handle in ended:  # their ends are stored: what their jobs leave may go
            self.executor.release(handle)

    def _emit(self, event: str, trial: TrialRecord | None) -> None:
        if self.ctl.listener is not None:
            self.ctl.listener(event, self, trial)

    # -- step 3: status and the end -----------------------------------------------------

    def _settle(self) -> None:
        """Note the trials that ended since the last step (their views too, once built)."""
        for t in self.tally.settle():
            if self._views:
                self._view(t)

    def _best(self) -> float | None:
        """The best primary objective among feasible trials (what the goal is checked on)."""
        best = self.tally.best
        if best is None or not self.scoring.feasible(best.observation):
            return None
        return best.objective

    def _check_end(self) -> bool:
        spec = self.exp.spec
        self._settle()
        counts = self.tally.counts(budget=True)
        goal = spec.objective.goal if spec.objective else None
        ended = end_condition(
            counts, spec.max_trial_count, spec.max_failed_trial_count,
            goal_reached(self._best(), goal, self.maximize), self.exhausted,
        )
        if ended is None:
            return False
        condition, reason = ended
        if reason == "ExperimentMaxTrialsReached" and self._budget_raised():
            return False
        message = f"the experiment ended ({reason})"
        self._before_end = ([c.model_copy(deep=True) for c in self.status.conditions], self.status.completion_time)
        cut = [t for t in self.tally.active.values() if t.state in ACTIVE_TRIAL_STATES]
        # Stored before the stops are sent (with what ended them): a controller that dies
        # in between leaves the next one trials it knows it killed, not ones that failed.
        for t in cut:
            if t.handle:
                t.handle = {**t.handle, KILLING: message}
                self._touch(t)
        self._flush()
        for t in cut:
            if t.handle:
                self.executor.stop(t.handle)
            t.completion_time = time.time()
            mark_trial(t, "Killed", message)
            self._touch(t)
        conditions = self.status.conditions
        running = next((c for c in conditions if c.type == "Running"), None)
        if running is not None:
            set_condition(conditions, "Running", "False", running.reason or "", running.message or "")
        set_condition(conditions, condition, "True", reason, END_MESSAGES[reason])
        self.status.completion_time = rfc3339(time.time())
        return True

    def _budget_raised(self) -> bool:
        """Whether a budget stored since this run last took one (an edit through another
        server, or one that came as the last trial ended) allows more trials: taken now,
        rather than ending the experiment under it. One read, at the end."""
        document = self.store.get_experiment_by_id(self.rec.id).spec
        self._end_spec = None
        stored = document.get("spec") or {}
        most, mine = stored.get("maxTrialCount"), self.exp.spec.max_trial_count
        if mine is None or (most is not None and most <= mine):
            self._end_spec = document  # what the end is written over (``_save_end``)
            return False
        self._take_budget(stored)
        most = self.exp.spec.max_trial_count
        if most is None or self.tally.counts(budget=True).completed < most:
            return True
        self._end_spec = document
        return False

    def _save_end(self) -> bool:
        """Write the final status; False when a budget stored since ``_budget_raised`` read
        one reopens the run. An edit stored before the end is written was answered as taken
        by this run: the end is written only over the spec that read saw, compared where it
        is written, and is made again (the end undone) when the budget in between allows
        more trials. An edit that comes after the end is written restarts the experiment."""
        for attempt in range(_END_ATTEMPTS):
            if_spec, self._end_spec = self._end_spec, None
            last = attempt == _END_ATTEMPTS - 1  # edits that keep coming: the end is written over them
            if self._save_status(force=True, if_spec=None if last else if_spec) is not None:
                return True
            if self._budget_raised():
                assert self._before_end is not None
                self.status.conditions, self.status.completion_time = self._before_end
                self._dirty = True
                return False
        raise AssertionError("unreachable: the last attempt writes unconditionally")

    def _save_status(self, force: bool = False, if_spec: dict[str, Any] | None = None) -> ExperimentStatus | None:
        """Write the status when it changed (or ``force``); with ``if_spec``, only over that
        stored spec (``_save_end``): None when another was stored meanwhile."""
        now = time.monotonic()
        if not force and (not self._dirty or now - self._saved_at < STATUS_SAVE_INTERVAL):
            return self.status
        self._settle()
        if force:  # the run's start and end: every trial, once
            self.status = experiment_status(self.exp, list(self.trials.values()), self.status)
        else:  # each step: what the stored part needs (the best, the front) and the counts kept
            self.status = experiment_status(self.exp, self._status_trials(), self.status)
            by_state = self.tally.by_state()
            self.status.trials = len(self.trials)
            self.status.trials_succeeded, self.status.trials_failed = by_state["Succeeded"], by_state["Failed"]
            self.status.trials_killed, self.status.trials_early_stopped = by_state["Killed"], by_state["EarlyStopped"]
            self.status.trial_metrics_unavailable = by_state["MetricsUnavailable"]
            self.status.succeeded_trial_list = self.status.failed_trial_list = None  # derived when read
            self.status.killed_trial_list = self.status.early_stopped_trial_list = None
            self.status.metrics_unavailable_trial_list = None
        # The store keeps what the trial rows do not say (counts and lists are derived when
        # read): written when that changes, not because a trial started or ended.
        kept = {k: v for k, v in stored_status(self.status.to_dict()).items() if k != "lastReconcileTime"}
        if force or kept != self._written:
            if not self.store.update_experiment(self.rec.id, status=self.status, if_spec=if_spec):
                return None
            self._written = kept
        self._dirty = False
        self._saved_at = now
        return self.status

    def _status_trials(self) -> list[TrialRecord]:
        """The trials a step's status is made of: the active ones, the best and the front."""
        kept = {t.name: t for t in [*([self.tally.best] if self.tally.best else []), *self.tally.front]}
        return [*kept.values(), *self.tally.active.values()]

    # -- steps 4 and 5: new trials (launched by Launching._launch_created) --------------

    def _view(self, t: TrialRecord) -> TrialView:
        view = self._views.get(t.name)
        if view is None or view.state != t.state or view.labels != t.labels:
            metrics = {k: v for k in self.names if (v := metric_value(t.observation, k, self.strategies[k])) is not None}
            final = t.state in FINAL_TRIAL_STATES
            view = TrialView(
                t.name, t.parameters(), t.state, t.objective, metrics,
                values=self.scoring.values(t.observation) if final and self.scoring.multi_objective else None,
                violations=self.scoring.violations(t.observation) if final and self.scoring.constraints else (),
                labels=dict(t.labels), start_time=t.start_time, completion_time=t.completion_time,
            )
            self._views[t.name] = view
        return view

    def _create_trials(self) -> list[TrialRecord]:
        """New trials for the free slots, in memory; ``_flush`` stores them."""
        spec = self.exp.spec
        self._settle()
        want = trials_to_create(spec.parallel_trial_count or 1, spec.max_trial_count, self.tally.counts(budget=True))
        if want <= 0:
            return []
        now = time.time()
        new = make_retries(self, want, now)  # a user's retries go first
        want -= len(new)
        if want <= 0 or self.exhausted:
            self._dirty = self._dirty or bool(new)
            return new
        if not self._views:  # the first time: every trial's, in creation order
            for t in self.trials.values():
                self._view(t)
        for t in self.tally.active.values():  # then only the active ones change (ended ones in _settle)
            self._view(t)
        views = list(self._views.values())
        before = json.dumps(self.algorithm_state, sort_keys=True)
        assignments = self.algorithm.suggest(self.exp, views, want, self.algorithm_state)[:want]
        if len(assignments) < want:
            active = any(t.state in ACTIVE_TRIAL_STATES for t in self.tally.active.values())
            # Nothing now, nothing running to wait for: nothing will ever come.
            self.exhausted = self.algorithm.exhausted(self.exp, views, self.algorithm_state) or (
                not assignments and not active)
        if json.dumps(self.algorithm_state, sort_keys=True) != before:
            self._state_changed = True  # stored by _flush, in one transaction with the new trials
        order = [p.name for p in spec.parameters or []]
        for a in assignments:
            name = a.name or new_trial_name(self.exp.name, self.trials)
            if name in self.trials or name in RESERVED_TRIAL_NAMES or any(t.name == name for t in new):
                raise KatibError(f"the algorithm named a new trial {name!r}, which is taken")
            params = [{"name": k, "value": a.parameters[k]} for k in order if k in a.parameters]
            params += [{"name": k, "value": v} for k, v in a.parameters.items() if k not in order]
            t = TrialRecord(
                id=0, experiment_id=self.rec.id, name=name, state="Created", assignments=params,
                labels={**a.labels, EXPERIMENT_LABEL: self.exp.name}, created_at=now,
            )
            mark_trial(t, "Created")
            self._stopping_rules(t)
            new.append(t)
        if new:
            self._dirty = True
        return new

    # -- crash recovery -----------------------------------------------------------------

    def _recover(self) -> None:
        """Trials left active by an earlier controller: adopt them, or run them again; then
        what a starting server counted for them and none took over is given back."""
        from trials import release_reserved

        recover(self)
        release_reserved(self.exp.namespace, self.exp.name)

    def _interrupt(self) -> None:
        """Stop what runs, and say so: a stopped trial waits ``Created`` (its ``Running``
        condition False, ``TrialInterrupted``) for the next ``run``, which runs it again.
        A trial that has already ended on its own is neither stopped nor marked: the next
        ``run`` adopts it and collects its result, rather than running it a second time.
        A trial being stopped early keeps ``Running``: the next ``run`` ends it so."""
        running = [t for t in self.trials.values() if t.state == "Running" and t.handle
                   and not self.executor.exited(t.handle)]
        for t in running:  # stored before the stop is sent: a stopped trial is never adopted as failed
            t.handle = {**(t.handle or {}), INTERRUPTED: True}
            if not t.handle.get(STOPPING):
                set_condition(t.conditions, "Running", "False", "TrialInterrupted", INTERRUPTED_MESSAGE)
                t.state = "Created"
            self._touch(t)
        try:
            self._flush()
            self._save_status(force=True)
        except Exception:  # the database may be what failed; the trials are stopped anyway
            pass
        finally:
            for t in running:
                self.executor.stop(t.handle or {})

__all__ = ["EDITABLE", "ExperimentRun", "Listener", "is_completed"]
