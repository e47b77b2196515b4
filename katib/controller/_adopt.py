"""After a restart: follow on what an earlier controller left running; run again only what
is gone.

A trial still ``Running`` under a controller that died is offered to the executor's
``adopt``. An adopted trial keeps its state, attempt, start time and observations: its
metrics are read on from its output (what was stored already is not stored twice), and
it is polled, stopped at its deadline, early-stopped and stopped like any other. A trial
the executor cannot adopt (its process or job is gone, or the executor cannot follow what
another controller started, as Ray's) is killed if anything of it is left and run again,
under the same name with the same parameters, its condition saying why. A trial stored
``Created`` whose launch left its handle (the controller died between launching it and
storing it ``Running``) is adopted the same way; one that left no handle (the controller
died inside the launch) is killed, what is left of it, and run again. So is one its
controller stopped on the way out (``katib run`` interrupted). A launch the executor knows
was cut short before the trial's command started (``Adoption.ran``, ``Executor.started``)
is no attempt: the trial waits for its turn on the same attempt. A trial its controller was
stopping early (the reason is stored before the stop is sent) ends ``EarlyStopped``:
followed on to its end if it is still there, at once with what was stored if it is gone.
"""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING

from katib.store import TrialRecord

from ._status import (
    ACTIVE_TRIAL_STATES,
    MetricReducer,
    mark_trial,
    metric_value,
    numbers,
    set_condition,
)

if TYPE_CHECKING:
    from ._run import ExperimentRun

INTERRUPTED = "interrupted"  # a handle flag: the controller stopped this trial as it stopped
STOPPING = "stopping"  # a handle flag: the early-stopping reason, stored before the stop is sent
KILLING = "killing"  # a handle flag: why the experiment's end kills it, stored before the stop is sent
ADOPTED_MESSAGE = "Trial is running (followed on by a restarted controller)"
INTERRUPTED_MESSAGE = "the trial was stopped as its controller stopped; the experiment's next run runs it again"


def recover(run: ExperimentRun) -> None:
    """Adopt or re-run every trial an earlier controller left active. Trials another kind of
    executor left running are refused, before anything is touched: this executor can neither
    follow nor stop them, and would run them again while they run on."""
    _same_executor(run)
    for t in run.trials.values():
        if t.state not in ACTIVE_TRIAL_STATES:
            continue
        if t.state == "Created" and not t.handle:
            launched(run, t)
        running = t.state == "Running" and bool(t.handle)
        if running and run.executor.owns(t.handle or {}):
            continue  # this executor started it and follows it already
        why = "the controller running this trial was lost"
        killing = (t.handle or {}).get(KILLING) if running else None
        if killing:  # the experiment's end was killing it when its controller died: it ends so
            run.executor.recover(t.handle or {}, run._trial_dir(t))  # whatever is left of it
            t.completion_time = time.time()
            mark_trial(t, "Killed", str(killing))
            run.store.save_trial(t)
            continue
        stopping = (t.handle or {}).get(STOPPING) if running else None
        ran = True
        if (t.handle or {}).get(INTERRUPTED) and not stopping:  # Created since it was stopped (Running before)
            why = "the controller running this trial stopped it as it stopped"
        elif running:
            assert t.handle is not None
            adoption = run.executor.adopt({"started_at": t.start_time, **t.handle}, run._job(t))
            if adoption:
                follow_on(run, t)
                continue
            if stopping:  # stopped early, and gone before its end was stored: it ended so
                end_stopped(run, t, stopping)
                continue
            why += f" and the trial cannot be followed on: {adoption.reason}"
            ran = adoption.ran
        run_again(run, t, why, ran)
    run._dirty = True


def _same_executor(run: ExperimentRun) -> None:
    # A conflict, not a failure: a server that starts under another executor leaves the
    # experiment as it is (resumable), where a failure would mark it Failed with its jobs running.
    from katib.errors import ConflictError
    from trials import read_handle

    ours = run.executor.name
    for t in run.trials.values():
        handle = t.handle or {}
        if t.state == "Created" and not handle:  # launched, not stored Running: its launch's handle file
            handle = read_handle(run._trial_dir(t)) or {}
        theirs = str(handle.get("executor") or "local")
        if t.state in ("Running", "Created") and handle and not handle.get(INTERRUPTED) and theirs != ours:
            raise ConflictError(
                f"experiment {run.exp.namespace}/{run.exp.name}: trial {t.name} was left running by the {theirs} "
                f"executor, and this controller runs the {ours} executor, which can neither follow nor stop it (it "
                f"would run it again while it runs on): resume it with --executor {theirs} (and that executor's "
                "options), or stop it first")


def launched(run: ExperimentRun, t: TrialRecord) -> None:
    """A trial stored ``Created`` that its controller launched but died before storing
    ``Running``: what the launch left (``Executor.launched``) makes it a running trial, to
    be adopted (or, if it cannot be, run again) as any other, not launched a second time."""
    handle = run.executor.launched(run._job(t))
    if not handle:
        return
    t.handle = handle
    t.start_time = float(handle.get("started_at") or time.time())
    mark_trial(t, "Running")


def follow_on(run: ExperimentRun, t: TrialRecord) -> None:
    """Take up an adopted trial where the earlier controller left it: its stored
    observations feed its reducer and its early-stopping curve, and are skipped when its
    output is read again from the start."""
    rows = run.store.observations(t.id)
    reducer = run.reducers.setdefault(t.name, MetricReducer())
    for row in rows:
        reducer.add(row.time, row.metric_name, row.value)
    run._collector(t).skip((row.metric_name, row.value) for row in rows)
    if run.stopper is not None:
        curve = numbers(row.value for row in rows if row.metric_name == run.objective)
        run.curves[t.name] = curve
        run._decided[t.name] = len(curve)  # the earlier controller decided on these already
    condition = next((c for c in t.conditions if c.type == "Running"), None)
    set_condition(t.conditions, "Running", "True", (condition.reason if condition else None) or "TrialRunning",
                  ADOPTED_MESSAGE)
    run.store.save_trial(t)
    reason = (t.handle or {}).get(STOPPING)
    if reason:  # the earlier controller stopped it early (or was about to): it ends so
        run._stopping[t.name] = reason
        run.executor.stop(t.handle or {})


def end_stopped(run: ExperimentRun, t: TrialRecord, reason: str) -> None:
    """End a trial stopped early whose process or job is gone before its end was stored
    (a Kubernetes job is deleted as it is stopped): ``EarlyStopped``, with the
    observations stored up to the stop."""
    run.executor.recover(t.handle or {}, run._trial_dir(t))  # whatever is left of it
    rows = run.store.observations(t.id)
    reducer = MetricReducer()
    for row in rows:
        reducer.add(row.time, row.metric_name, row.value)
    t.observation = reducer.observation(run.names)
    t.objective = metric_value(t.observation, run.objective, run.strategies[run.objective])
    t.completion_time = time.time()
    mark_trial(t, "EarlyStopped", reason)
    run.curves[t.name] = numbers(row.value for row in rows if row.metric_name == run.objective)
    run.store.save_trial(t)


def run_again(run: ExperimentRun, t: TrialRecord, why: str, ran: bool = True) -> None:
    """Kill what is left of the trial and make it ``Created`` again: the next attempt or,
    when the executor knows its launch was cut short before its command started (``ran``
    False), the same one, to be launched when its turn comes."""
    trial_dir = run._trial_dir(t)
    run.executor.recover(t.handle or {}, trial_dir)
    if ran and t.state != "Running" and not run.executor.started(trial_dir):
        return  # never launched, or its launch stopped before it started anything: it waits for its turn
    if ran:
        run.store.clear_observations(t.id)
    shutil.rmtree(trial_dir, ignore_errors=True)
    t.handle = None
    t.start_time = None
    t.state = "Created"
    t.conditions = [c for c in t.conditions if c.type == "Created"]
    if ran:
        t.attempt += 1
        set_condition(t.conditions, "Created", "True", "TrialRestarted", f"{why}; run again (attempt {t.attempt + 1})")
    run.store.save_trial(t)
