"""``auto``: its decisions, and that it runs an experiment end to end."""

from __future__ import annotations

import numpy as np
import pytest

from katib import KatibClient
from katib.controller import admit
from suggestion import TrialView, get_algorithm
from suggestion._auto import choose, switch_point
from suggestion._space import SearchSpace
from tests.suggestion_tests.test_model_based import TWO, doc_for, sphere

CAT = {"name": "c", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}}
DISCRETE = {"name": "d", "parameterType": "discrete", "feasibleSpace": {"list": ["1", "2", "4"]}}


def space(params) -> SearchSpace:
    return SearchSpace.from_experiment(admit(doc_for("random", [], params)))


TWELVE = [{"name": f"x{i}", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "5"}} for i in range(12)]
# Four integers of 10 values: a cell each (0.1 of the unit range) wider than CMA-ES's first
# step of 0.05, where the TPE was ahead (docs/benchmarks.md); of 21 values, still coarse.
INTS = [{"name": f"i{k}", "parameterType": "int", "feasibleSpace": {"min": "0", "max": "9"}} for k in range(4)]
INTS_21 = [{"name": f"i{k}", "parameterType": "int", "feasibleSpace": {"min": "0", "max": "20"}} for k in range(4)]
STEPPED = [{"name": f"s{k}", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1", "step": "0.25"}}
           for k in range(2)]


@pytest.mark.parametrize(
    ("params", "objectives", "constrained", "completed", "expected"),
    [
        (TWO, 1, False, 0, ("tpe", "2 numeric parameters, fewer than 35 completed trials", 0.0)),
        (TWO, 1, False, 34, ("tpe", "2 numeric parameters, fewer than 35 completed trials", 0.0)),
        (TWO, 1, False, 35, ("cmaes", "2 numeric parameters, 35 or more completed trials", 0.05)),
        (TWELVE, 1, False, 24, ("tpe", "12 numeric parameters, fewer than 25 completed trials", 0.0)),
        (TWELVE, 1, False, 25, ("cmaes", "12 numeric parameters, 25 or more completed trials", 0.1)),
        (TWO, 2, False, 1000, ("tpe", "several objectives", 0.0)),
        (TWO, 1, True, 1000, ("tpe", "constraints", 0.0)),
        ([*TWO, CAT], 1, False, 1000, ("tpe", "list or categorical parameters", 0.0)),
        ([*TWO, DISCRETE], 1, False, 1000, ("tpe", "list or categorical parameters", 0.0)),
        (TWO[:1], 1, False, 1000, ("tpe", "fewer than two numeric parameters", 0.0)),
        (INTS, 1, False, 1000, ("tpe", "every numeric parameter has at most 20 values", 0.0)),
        (STEPPED, 1, False, 1000, ("tpe", "every numeric parameter has at most 20 values", 0.0)),
        (INTS_21, 1, False, 35, ("cmaes", "4 numeric parameters, 35 or more completed trials", 0.05)),
        ([*INTS, *TWO], 1, False, 35, ("cmaes", "6 numeric parameters, 35 or more completed trials", 0.05)),
    ],
)
def test_decisions(params, objectives, constrained, completed, expected):
    choice = choose(space(params), objectives, constrained, completed)
    assert (choice.algorithm, choice.reason, choice.sigma) == expected


def test_the_switch_comes_earlier_as_the_dimension_grows():
    assert [switch_point(n) for n in (2, 5, 10, 11, 20, 100)] == [(35, 0.05)] * 3 + [(25, 0.1)] * 3


def test_auto_learns_then_switches_to_cmaes_at_the_incumbent(monkeypatch):
    monkeypatch.setattr("suggestion._auto.SWITCH_POINTS", ((None, 40, 0.1),))
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
    assert alg._cma is not None and alg._cma[1].sigma == 0.1  # the step the rule chose
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
    monkeypatch.setattr("suggestion._auto.SWITCH_POINTS", ((None, 6, 0.1),))
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


def test_a_diverged_trial_is_neither_counted_nor_taken_for_the_incumbent():
    from suggestion._auto import Auto

    exp = admit(doc_for("auto", [{"name": "random_state", "value": "1"}]))
    history = [TrialView("nan", {"x": "4.0", "y": "4.0"}, "Succeeded", float("nan")),
               TrialView("ok", {"x": "1.0", "y": "1.0"}, "Succeeded", 0.0),
               TrialView("bad", {"x": "-4.0", "y": "-4.0"}, "Succeeded", 50.0)]
    start = Auto._incumbent(exp, history)
    assert start == Auto._incumbent(exp, history[1:])  # (1, 1), not the diverged (4, 4)
    assert Auto()._choice(exp, history).reason.endswith("fewer than 35 completed trials")
    many = [TrialView(f"n{i}", {"x": "4.0", "y": "4.0"}, "Succeeded", float("nan")) for i in range(40)]
    assert Auto()._choice(exp, many).algorithm == "tpe"  # 40 diverged trials are not 35 completed ones
