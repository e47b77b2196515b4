"""``auto``: its decisions, and that it runs an experiment end to end."""

from __future__ import annotations

import numpy as np
import pytest

from katib import KatibClient
from katib.controller import admit
from suggestion import TrialView, get_algorithm
from suggestion._auto import SWITCH_AT, choose
from suggestion._space import SearchSpace
from tests.suggestion_tests.test_model_based import TWO, doc_for, sphere

CAT = {"name": "c", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}}
DISCRETE = {"name": "d", "parameterType": "discrete", "feasibleSpace": {"list": ["1", "2", "4"]}}


def space(params) -> SearchSpace:
    return SearchSpace.from_experiment(admit(doc_for("random", [], params)))


@pytest.mark.parametrize(
    ("params", "objectives", "constrained", "completed", "expected"),
    [
        (TWO, 1, False, 0, ("tpe", "fewer than 250 completed trials")),
        (TWO, 1, False, SWITCH_AT - 1, ("tpe", "fewer than 250 completed trials")),
        (TWO, 1, False, SWITCH_AT, ("cmaes", "numeric space, 250 or more completed trials")),
        (TWO, 2, False, 1000, ("tpe", "several objectives")),
        (TWO, 1, True, 1000, ("tpe", "constraints")),
        ([*TWO, CAT], 1, False, 1000, ("tpe", "list or categorical parameters")),
        ([*TWO, DISCRETE], 1, False, 1000, ("tpe", "list or categorical parameters")),
        (TWO[:1], 1, False, 1000, ("tpe", "fewer than two numeric parameters")),
    ],
)
def test_decisions(params, objectives, constrained, completed, expected):
    choice = choose(space(params), objectives, constrained, completed)
    assert (choice.algorithm, choice.reason) == expected


def test_auto_learns_then_switches_to_cmaes_at_the_incumbent(monkeypatch):
    monkeypatch.setattr("suggestion._auto.SWITCH_AT", 40)
    exp = admit(doc_for("auto", [{"name": "random_state", "value": "3"}]))
    alg = get_algorithm("auto")
    history: list[TrialView] = []
    while len(history) < 24:
        for a in alg.suggest(exp, history, 4):
            history.append(TrialView(a.name or f"t{len(history)}", a.parameters, "Succeeded", sphere(a.parameters)))
    assert alg.last is not None and alg.last.algorithm == "tpe"  # type: ignore[attr-defined]
    assert min(t.objective for t in history[-8:]) < 2.0  # random search's best of 8 is ~4 on this sphere
    # More random points, one of them at (1, 1): CMA-ES takes over there.
    rng = np.random.default_rng(0)
    for i in range(16):
        x, y = (1.0, 1.0) if i == 7 else rng.uniform(-5, 5, 2)
        p = {"x": repr(float(x)), "y": repr(float(y))}
        history.append(TrialView(f"r{i}", p, "Succeeded", (float(x) - 1) ** 2 + (float(y) - 1) ** 2))
    batch = alg.suggest(exp, history, 4)
    assert alg.last.algorithm == "cmaes"  # type: ignore[attr-defined]
    assert len(batch) == 4
    for a in batch:  # a step of 0.1 of the unit range (1 unit here) around the incumbent
        assert abs(float(a.parameters["x"]) - 1) < 3 and abs(float(a.parameters["y"]) - 1) < 3


def test_auto_through_ask_and_tell(tmp_path):
    client = KatibClient(db=str(tmp_path / "a.db"), workdir=tmp_path)
    client.create_experiment({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "auto-outside"},
        "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
                 "algorithm": {"algorithmName": "auto"}, "executor": "external",
                 "parallelTrialCount": 2, "maxTrialCount": 6,
                 "parameters": [*TWO, CAT]},
    })
    told = 0
    while told < 6:
        for trial in client.ask("auto-outside", count=2):
            client.tell("auto-outside", trial["name"], {"loss": sphere(trial["parameters"])})
            told += 1
    assert client.get_experiment("auto-outside")["status"]["trialsSucceeded"] == 6


def test_each_experiment_gets_its_own_cmaes_start(monkeypatch):
    """One auto instance serving two experiments starts CMA-ES at each one's incumbent."""
    monkeypatch.setattr("suggestion._auto.SWITCH_AT", 6)
    alg = get_algorithm("auto")
    for name, best in (("first", (1.0, 1.0)), ("second", (-4.0, -4.0))):
        doc = doc_for("auto", [{"name": "random_state", "value": "1"}])
        doc["metadata"]["name"] = name
        exp = admit(doc)
        points = [best, (4.0, 4.0), (-4.0, 4.0), (4.0, -4.0), (0.0, 4.5), (4.5, 0.0)]
        history = [TrialView(f"{name}{i}", {"x": repr(x), "y": repr(y)}, "Succeeded", 0.0 if i == 0 else 50.0)
                   for i, (x, y) in enumerate(points)]
        batch = alg.suggest(exp, history, 3)
        assert alg.last.algorithm == "cmaes"  # type: ignore[attr-defined]
        for a in batch:
            assert abs(float(a.parameters["x"]) - best[0]) < 3 and abs(float(a.parameters["y"]) - best[1]) < 3
