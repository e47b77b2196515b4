"""After a restart: follow on what an earlier controller left running; run again only what
is gone.

A trial still ``Running`` under a controller that died is offered to the executor's
``adopt``. An adopted trial keeps its state, attempt, start time and observations: its
metrics are read on from its output (what was stored already is not stored twice), and
it is polled, stopped at its deadline, early-stopped and stopped like any other. A trial
the executor cannot adopt (its process or job is gone, or the executor cannot follow what
another controller started, as Ray's) is killed if anything of it is left and run again,
under the same name with the same parameters, its condition saying why. So is a trial that
was being launched when the controller died (stored ``Created`` with a trial directory)
and one its controller stopped on the way out (``katib run`` interrupted).
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from katib.store import TrialRecord

from ._status import ACTIVE_TRIAL_STATES, MetricReducer, numbers, set_condition

if TYPE_CHECKING:
    from ._controller import ExperimentRun

INTERRUPTED = "interrupted"  # a handle flag: the controller stopped this trial as it stopped
ADOPTED_MESSAGE = "Trial is running (followed on by a restarted controller)"


def recover(run: ExperimentRun) -> None:
    """Adopt or re-run every trial an earlier controller left active."""
    for t in run.trials.values():
        if t.state not in ACTIVE_TRIAL_STATES:
            continue
        running = t.state == "Running" and bool(t.handle)
        if running and run.executor.owns(t.handle or {}):
            continue  # this executor started it and follows it already
        why = "the controller running this trial was lost"
        if running and (t.handle or {}).get(INTERRUPTED):
            why = "the controller running this trial stopped it as it stopped"
        elif running:
            assert t.handle is not None
            adoption = run.executor.adopt({"started_at": t.start_time, **t.handle}, run._job(t))
            if adoption:
                follow_on(run, t)
                continue
            why += f" and the trial cannot be followed on: {adoption.reason}"
        run_again(run, t, why)
    run._dirty = True


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
    condition = next((c for c in t.conditions if c["type"] == "Running"), None)
    set_condition(t.conditions, "Running", "True", condition.get("reason", "TrialRunning") if condition else "TrialRunning",
                  ADOPTED_MESSAGE)
    run.store.save_trial(t)


def run_again(run: ExperimentRun, t: TrialRecord, why: str) -> None:
    """Kill what is left of the trial and make it ``Created`` again (the next attempt)."""
    trial_dir = run._trial_dir(t)
    run.executor.recover(t.handle or {}, trial_dir)
    if t.state != "Running" and not trial_dir.exists():
        return  # never launched: it simply waits for its turn
    run.store.clear_observations(t.id)
    shutil.rmtree(trial_dir, ignore_errors=True)
    t.attempt += 1
    t.handle = None
    t.start_time = None
    t.state = "Created"
    t.conditions = [c for c in t.conditions if c["type"] == "Created"]
    set_condition(t.conditions, "Created", "True", "TrialRestarted", f"{why}; run again (attempt {t.attempt + 1})")
    run.store.save_trial(t)
