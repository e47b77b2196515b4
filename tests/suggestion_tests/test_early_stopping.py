"""Early stopping rules, alone and in a running experiment."""

from __future__ import annotations

import time

import pytest

from katib.controller import Controller, admit
from katib.errors import ValidationError
from katib.spec import apply_defaults, parse_experiment
from suggestion import ASHA, Curve, LiveMedianStop
from tests.conftest import experiment, python_command


def exp_with(rule: str, settings: dict[str, str], objective_type: str = "minimize"):
    doc = experiment(earlyStopping={"algorithmName": rule,
                                    "algorithmSettings": [{"name": k, "value": v} for k, v in settings.items()]},
                     objective={"type": objective_type, "objectiveMetricName": "loss"})
    return apply_defaults(parse_experiment(doc))


def done(*values: float) -> Curve:
    return Curve("c", list(values), True)


@pytest.mark.parametrize(
    ("trial", "others", "stop"),
    [
        ([0.9, 0.9], [done(0.5, 0.5), done(0.4, 0.4), done(0.6, 0.6)], True),    # worse than the median 0.5
        ([0.9, 0.45], [done(0.5, 0.5), done(0.4, 0.4), done(0.6, 0.6)], False),  # its best beats the median
        ([0.9], [done(0.5, 0.5), done(0.4, 0.4), done(0.6, 0.6)], False),        # before start_step
        ([0.9, 0.9], [done(0.5, 0.5), done(0.4, 0.4)], False),                   # too few completed
        ([0.9, 0.9], [done(0.5, 0.5), done(0.4, 0.4), done(0.6)], False),        # one never reached step 2
        ([0.9, 0.9], [done(0.5, 0.5), done(0.4, 0.4), Curve("r", [0.1, 0.1], False), done(0.6, 0.6)], True),
        # the median, not the mean: median 0.5 < 0.6 < mean 0.67 → stop
        ([0.6, 0.6], [done(0.5, 0.5), done(0.4, 0.4), done(1.1, 1.1)], True),
    ],
)
def test_live_median(trial, others, stop):
    """``medianstop-live``: the true median, asked at every report (Katib's own rule is
    ported in tests/katib_conformance/test_medianstop.py)."""
    exp = exp_with("medianstop-live", {"min_trials_required": "3", "start_step": "2"})
    reason = LiveMedianStop().should_stop(exp, Curve("t", trial, False), others)
    assert (reason is not None) is stop
    if stop:
        assert "worse than the median" in reason


def test_live_median_maximize():
    exp = exp_with("medianstop-live", {"min_trials_required": "2", "start_step": "1"}, "maximize")
    assert LiveMedianStop().should_stop(exp, Curve("t", [0.3], False), [done(0.5), done(0.7)])
    assert not LiveMedianStop().should_stop(exp, Curve("t", [0.8], False), [done(0.5), done(0.7)])


def test_asha_keeps_the_top_third_at_each_rung():
    exp = exp_with("asha", {"min_resource": "1", "reduction_factor": "3"})
    peers = [Curve(f"p{i}", [v], True) for i, v in enumerate([0.1, 0.2, 0.3, 0.4, 0.5])]
    assert ASHA().should_stop(exp, Curve("t", [0.9], False), peers)            # 6 at rung 1: keep 2
    assert not ASHA().should_stop(exp, Curve("t", [0.15], False), peers)
    assert not ASHA().should_stop(exp, Curve("t", [0.9, 0.9], False), peers)   # step 2 is no rung
    assert not ASHA().should_stop(exp, Curve("t", [0.9], False), [])           # alone: it goes on


def test_asha_decides_at_every_rung_passed_since_its_last_decision():
    """Two reports between two reads: the curve jumps from 2 to 4 values, past the rung at
    step 3; ASHA still decides there."""
    exp = exp_with("asha", {"min_resource": "1", "reduction_factor": "3"})
    peers = [Curve(f"p{i}", [0.5, 0.4, v, 0.1], True) for i, v in enumerate([0.1, 0.2, 0.3, 0.4, 0.5])]
    jumped = Curve("t", [0.2, 0.2, 0.9, 0.9], False, decided=2)
    reason = ASHA().should_stop(exp, jumped, peers)
    assert reason and "at rung 3" in reason
    assert not ASHA().should_stop(exp, Curve("t", [0.2, 0.2, 0.15, 0.9], False, decided=2), peers)
    # From the start: rung 1 comes first, and there it is already out.
    reason = ASHA().should_stop(exp, Curve("t", [0.9, 0.1, 0.1], False, decided=0), peers)
    assert reason and "at rung 1" in reason
    # Rungs decided before are not decided again.
    assert not ASHA().should_stop(exp, Curve("t", [0.9, 0.9], False, decided=1), peers)


def test_asha_stops_trials_whose_reports_come_in_pairs(store, tmp_path):
    """Each metric read sees two new reports (2, 4, 6): no read lands on rung 1 or 3."""
    code = ("import time\nx = float('${trialParameters.x}')\n"
            "for _ in range(3):\n    print(f'loss={x}\\nloss={x}', flush=True)\n    time.sleep(0.4)")
    doc = experiment(
        command=python_command(code), maxTrialCount=4, parallelTrialCount=1, algorithm={"algorithmName": "grid"},
        parameters=[{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["0.1", "0.7", "0.8", "0.9"]}}],
        earlyStopping={"algorithmName": "asha", "algorithmSettings": [{"name": "reduction_factor", "value": "3"}]},
    )
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    trials = {t.parameters()["x"]: t for t in store.list_trials(rec.id)}
    assert trials["0.1"].state == "Succeeded"
    for x in ("0.7", "0.8", "0.9"):
        assert trials[x].state == "EarlyStopped", (x, trials[x].conditions[-1])
        assert "at rung 1" in trials[x].conditions[-1].message


def test_unknown_early_stopping_setting_is_refused():
    doc = experiment(earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [{"name": "patience", "value": "2"}]})
    with pytest.raises(ValidationError, match=r"spec.earlyStopping.algorithmSettings\[0\].name: unknown setting 'patience' for early stopping medianstop"):
        admit(doc)
    doc = experiment(earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [{"name": "start_step", "value": "0"}]})
    with pytest.raises(ValidationError, match="start_step must be >= 1"):
        admit(doc)


def test_asha_min_early_stopping_rate_is_bounded():
    """Past 64 (eta**k overflows; no trial reaches such a rung) the setting is refused."""
    assert ASHA().validate(exp_with("asha", {"min_early_stopping_rate": "64"})) == []
    errors = ASHA().validate(exp_with("asha", {"min_early_stopping_rate": "65"}))
    assert any("min_early_stopping_rate" in str(e) and "must be <= 64" in str(e) for e in errors), errors


def test_asha_reduction_factor_near_1_is_refused():
    """1 + 1e-9 made each check walk about 10**10 rungs, in the server."""
    assert ASHA().validate(exp_with("asha", {"reduction_factor": "1.01"})) == []
    errors = ASHA().validate(exp_with("asha", {"reduction_factor": "1.000000001"}))
    assert any("reduction_factor" in str(e) and "must be >= 1.01" in str(e) for e in errors), errors


def test_medianstop_stops_bad_trials_in_a_running_experiment(store, tmp_path):
    code = ("import time\nx = float('${trialParameters.x}')\n"
            "for step in range(12):\n    print(f'loss={x}', flush=True)\n    time.sleep(0.08)")
    doc = experiment(
        command=python_command(code), maxTrialCount=7, parallelTrialCount=1,
        algorithm={"algorithmName": "grid"},
        parameters=[{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["0.1", "0.2", "0.3", "0.5", "0.6", "0.7", "0.8"]}}],
        earlyStopping={"algorithmName": "medianstop",
                       "algorithmSettings": [{"name": "min_trials_required", "value": "3"}, {"name": "start_step", "value": "2"}]},
    )
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    started = time.monotonic()
    status = ctl.run(rec.namespace, rec.name).to_dict()
    trials = {t.parameters()["x"]: t for t in store.list_trials(rec.id)}
    assert [trials[x].state for x in ("0.1", "0.2", "0.3")] == ["Succeeded"] * 3
    stopped = [trials[x] for x in ("0.5", "0.6", "0.7", "0.8")]
    assert [t.state for t in stopped] == ["EarlyStopped"] * 4
    for t in stopped:
        # Katib's rule: the mean of the three succeeded trials' averages over 2 reports
        assert "worse than 0.2, the mean over 3 succeeded trials" in t.conditions[-1].message
        reports = len(store.observations(t.id, "loss"))
        assert 2 <= reports < 12  # partial results are kept
        assert t.objective is not None
    assert status["trialsEarlyStopped"] == 4 and status["earlyStoppedTrialList"]
    assert [c["reason"] for c in status["conditions"] if c["status"] == "True"][-1] == "ExperimentMaxTrialsReached"
    assert time.monotonic() - started < 3 * 1.2 + 4 * 1.0 + 5


def test_the_controller_tells_the_stopper_when_trials_were_created_and_ended(store, tmp_path, monkeypatch):
    """Katib's medianstop fixes a trial's rule when it is created: the controller hands the
    stopper each trial's creation time and the others' completion times from the store."""
    from suggestion import MedianStop

    seen: list[tuple[Curve, list[Curve]]] = []
    original = MedianStop.should_stop

    def spy(self, experiment, trial, others):
        seen.append((trial, list(others)))
        return original(self, experiment, trial, others)

    monkeypatch.setattr(MedianStop, "should_stop", spy)
    code = ("import time\nx = float('${trialParameters.x}')\n"
            "for step in range(3):\n    print(f'loss={x}', flush=True)\n    time.sleep(0.1)")
    doc = experiment(
        command=python_command(code), maxTrialCount=2, parallelTrialCount=1, algorithm={"algorithmName": "grid"},
        parameters=[{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["0.1", "0.2"]}}],
        earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [{"name": "min_trials_required", "value": "1"}]},
    )
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    trials = {t.name: t for t in store.list_trials(rec.id)}
    second = [(t, o) for t, o in seen if o and o[0].completed]
    assert second, "the second trial was never considered with the first one ended"
    trial, others = second[-1]
    assert trial.created == trials[trial.name].created_at
    assert others[0].ended == trials[others[0].name].completion_time
    assert others[0].ended <= trial.created
