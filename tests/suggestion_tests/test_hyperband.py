"""Hyperband: the plan, the halving, the state across restarts, a whole experiment."""

from __future__ import annotations

import copy
import time

import pytest

from katib.controller import Controller, admit
from katib.errors import ValidationError
from suggestion import TrialView, get_algorithm
from suggestion._hyperband import bracket_sizes
from tests.conftest import experiment, python_command

PARAMS = [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
          {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}}]


def hb_doc(r_l="9", eta="3", parallel=9, resource="epochs", command=None, max_trials=100):
    doc = experiment(algorithm={"algorithmName": "hyperband", "algorithmSettings": [
        {"name": "r_l", "value": r_l}, {"name": "eta", "value": eta}, {"name": "resource_name", "value": resource},
        {"name": "random_state", "value": "4"}]},
        parameters=PARAMS, parallelTrialCount=parallel, maxTrialCount=max_trials)
    tt = doc["spec"]["trialTemplate"]
    tt["trialParameters"] = [{"name": "x", "reference": "x"}, {"name": "epochs", "reference": "epochs"}]
    tt["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = command or [
        "echo", "${trialParameters.x}", "${trialParameters.epochs}"]
    return doc


def test_plan_rounds_up_as_katib_does_not_down_as_the_paper():
    """The paper promotes floor(n/eta) (34 → 11 → 3 → 1); Katib's service promotes
    ceil(n/eta) (34 → 12 → 4 → 2), and so do we (tests/katib_conformance has the plans)."""
    assert bracket_sizes(81, 3)[1] == [(34, 3), (12, 9), (4, 27), (2, 81)]
    assert bracket_sizes(81, 3)[3] == [(8, 27), (3, 81)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"parallel": 8}, "spec.parallelTrialCount: must be >= 9 for hyperband with r_l=9 and eta=3 (got 8)"),
        ({"resource": "lr"}, "resource_name 'lr' must name a parameter (have: x, epochs)"),
        ({"eta": "1"}, "eta must be > 1 (got 1)"),
        ({"r_l": "0.5", "parallel": 1}, "r_l must be >= 1 (got 0.5)"),
    ],
)
def test_validation(kwargs, message):
    with pytest.raises(ValidationError) as info:
        admit(hb_doc(**kwargs))
    assert any(message in str(e) for e in info.value.errors), info.value.errors


def test_a_huge_plan_is_refused_fast():
    """r_l=e^4 with eta=1.001 is 4002 brackets: planning them all took 5 s and 400 MB;
    r_l=1e9 would take ~10 GB. At most 64 brackets, refused before any is built."""
    start = time.perf_counter()
    for r_l in ("54.6", "1e9"):
        with pytest.raises(ValidationError) as info:
            admit(hb_doc(r_l=r_l, eta="1.001", parallel=1000, max_trials=10000))
        assert any("lower r_l or raise eta" in str(e) and "at most 64" in str(e) for e in info.value.errors), \
            info.value.errors
    assert time.perf_counter() - start < 0.5


def objective(p: dict[str, str]) -> float:
    return float(p["x"]) / float(p["epochs"])  # lower x is better, more epochs help


def test_successive_halving_runs_the_whole_plan_and_keeps_the_best():
    exp = admit(hb_doc())
    alg = get_algorithm("hyperband")
    state: dict = {}
    history: list[TrialView] = []
    rungs: list[list[TrialView]] = []
    while True:
        batch = alg.suggest(exp, history, 100, state)
        if not batch:
            assert alg.exhausted(exp, history, state)
            break
        rung = [TrialView(a.name, a.parameters, "Succeeded", objective(a.parameters)) for a in batch]
        assert all(a.name and a.name.startswith("demo-") for a in batch)
        rungs.append(rung)
        history += rung
    sizes = [(len(r), r[0].parameters["epochs"]) for r in rungs]
    assert sizes == [(9, "1"), (3, "3"), (1, "9"), (5, "3"), (2, "9"), (3, "9")]
    # The survivors of a rung are its best third, with the same x.
    best3 = sorted(rungs[0], key=lambda t: t.objective)[:3]
    assert {t.parameters["x"] for t in rungs[1]} == {t.parameters["x"] for t in best3}


def test_a_rung_waits_for_its_trials_and_state_survives_a_restart():
    exp = admit(hb_doc())
    state: dict = {}
    first = get_algorithm("hyperband").suggest(exp, [], 4, state)
    assert len(first) == 4
    running = [TrialView(a.name, a.parameters, "Running") for a in first]
    rest = get_algorithm("hyperband").suggest(exp, running, 10, state)
    assert len(rest) == 5  # the rest of the first rung
    views = running + [TrialView(a.name, a.parameters, "Running") for a in rest]
    saved = copy.deepcopy(state)  # what the controller persisted
    assert get_algorithm("hyperband").suggest(exp, views, 10, state) == []  # waiting, not exhausted
    assert not get_algorithm("hyperband").exhausted(exp, views, state)
    finished = [TrialView(v.name, v.parameters, "Succeeded", objective(v.parameters)) for v in views]
    again = get_algorithm("hyperband").suggest(exp, finished, 10, saved)
    assert len(again) == 3 and all(a.parameters["epochs"] == "3" for a in again)


def test_hyperband_experiment_end_to_end(store, tmp_path):
    code = "print('loss=' + str(float('${trialParameters.x}') / int('${trialParameters.epochs}')))"
    doc = hb_doc(r_l="3", parallel=3, command=python_command(code), max_trials=20)
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    trials = store.list_trials(rec.id)
    assert [c["reason"] for c in status["conditions"] if c["status"] == "True"][-1] == "ExperimentSuggestionEndReached"
    assert [t.parameters()["epochs"] for t in trials] == ["1", "1", "1", "3", "3", "3"]
    assert {t.state for t in trials} == {"Succeeded"}
    assert trials[0].labels["katib.kubeflow.org/hyperband-bracket"] == "0"
    assert store.algorithm_state(rec.id)["done"] is True
