"""The controller's steps read the active trials and a summary of the ended ones, never
every trial (issue 16), and the summary says what a scan of every trial would."""

from __future__ import annotations

import random
import time

from katib.controller import Controller, admit
from katib.controller._arithmetic import Counts
from katib.controller._status import best_trial, counts_of, mark_trial, pareto_front
from katib.controller._tally import Tally
from katib.store import TrialRecord
from tests.conftest import experiment

STATES = ["Succeeded", "Failed", "Killed", "EarlyStopped", "MetricsUnavailable"]


def _trial(i: int, rng: random.Random) -> TrialRecord:
    labels = {"katib.kubeflow.org/warm-start": "true"} if i % 17 == 0 else {}
    t = TrialRecord(id=i + 1, experiment_id=1, name=f"t{i}", state="Created", assignments=[], labels=labels,
                    created_at=float(i))
    mark_trial(t, "Created")
    return t


def _end(t: TrialRecord, rng: random.Random) -> None:
    state = rng.choice(STATES)
    loss, cost = round(rng.random(), 2), round(rng.random(), 2)  # ties happen
    if state in ("Succeeded", "EarlyStopped"):
        t.observation = {"loss": {"min": str(loss), "max": str(loss), "latest": str(loss)},
                         "cost": {"min": str(cost), "max": str(cost), "latest": str(cost)}}
        t.objective = loss
    t.completion_time = time.time() + rng.random()
    mark_trial(t, state)


def test_the_tally_says_what_a_scan_of_every_trial_says():
    exp = admit(experiment(objective={"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["cost"],
                                      "additionalObjectives": [{"metricName": "cost", "type": "minimize"}]}))
    rng = random.Random(7)
    trials = [_trial(i, rng) for i in range(40)]
    for t in trials[:25]:
        _end(t, rng)
    tally = Tally(exp, trials[:30])
    everything = list(trials[:30])
    for step in range(60):
        if step % 3 == 0 and len(everything) < len(trials):
            new = trials[len(everything)]
            tally.add(new)
            everything.append(new)
        active = [t for t in everything if t.state in ("Created", "Running")]
        for t in rng.sample(active, min(len(active), 2)):
            if t.state == "Created":
                mark_trial(t, "Running")
            else:
                _end(t, rng)
        tally.settle()
        for budget in (False, True):
            assert tally.counts(budget) == counts_of(everything, budget)
        assert tally.best is best_trial(exp, everything)
        assert sorted(t.name for t in tally.front) == sorted(t.name for t in pareto_front(exp, everything))
        assert set(tally.active) == {t.name for t in everything if t.state in ("Created", "Running")}
    assert tally.counts() != Counts()


class _Counting(dict):
    """The run's trials, counting the reads of all of them."""

    scans = 0

    def values(self):  # type: ignore[override]
        type(self).scans += 1
        return super().values()

    def items(self):  # type: ignore[override]
        type(self).scans += 1
        return super().items()

    def __iter__(self):
        type(self).scans += 1
        return super().__iter__()


def test_a_step_reads_the_active_trials_not_all(sqlite_store, tmp_path):
    """An experiment of 300 ended trials runs 6 more: its steps scan no trial list (before:
    several full scans a step: counts, best, views, following, launching, status)."""
    steps = []

    def listener(event, run, trial):
        if event == "started":
            run.trials = _Counting(run.trials)
        steps.append(event)

    ctl = Controller(sqlite_store, runs_root=tmp_path / "runs", tick=0.02, listener=listener)
    rec, _ = ctl.submit(admit(experiment(maxTrialCount=306, parallelTrialCount=2, maxFailedTrialCount=306,
                                         command=["sh", "-c", "echo loss=${trialParameters.x}"])), tmp_path)
    rng = random.Random(1)
    ended = []
    for i in range(300):
        t = _trial(i, rng)
        t.id, t.experiment_id, t.labels = 0, rec.id, {}
        mark_trial(t, "Running")
        _end(t, rng)
        ended.append(t)
    sqlite_store.add_trials(ended)
    status = ctl.run(rec.namespace, rec.name)
    assert status.trials == 306 and steps.count("finished") == 6
    assert status.conditions[-1].reason == "ExperimentMaxTrialsReached"
    assert _Counting.scans <= 2, _Counting.scans  # the end's status, once
