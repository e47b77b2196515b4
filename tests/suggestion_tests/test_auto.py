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
        (TWO, 1, False, 35, ("trust-region", "2 numeric parameters, 35 or more completed trials", 0.1)),
        (TWELVE, 1, False, 24, ("tpe", "12 numeric parameters, fewer than 25 completed trials", 0.0)),
        (TWELVE, 1, False, 25, ("cmaes", "12 numeric parameters, 25 or more completed trials", 0.1)),
        (TWO, 2, False, 1000, ("tpe", "several objectives", 0.0)),
        (TWO, 1, True, 1000, ("tpe", "constraints", 0.0)),
        ([*TWO, CAT], 1, False, 1000, ("tpe", "list or categorical parameters", 0.0)),
        ([*TWO, DISCRETE], 1, False, 1000, ("tpe", "list or categorical parameters", 0.0)),
        ([*INTS, CAT], 1, False, 49, ("tpe", "a finite space with list or categorical parameters, "
                                            "fewer than 50 completed trials", 0.0)),
        ([*INTS, CAT], 1, False, 50, ("local-search", "a finite space with list or categorical parameters, "
                                                     "50 or more completed trials", 0.0)),
        ([CAT, DISCRETE, *STEPPED], 1, False, 50, ("local-search", "a finite space with list or categorical "
                                                                  "parameters, 50 or more completed trials", 0.0)),
        ([CAT, DISCRETE], 2, False, 1000, ("tpe", "several objectives", 0.0)),
        ([CAT, DISCRETE], 1, True, 1000, ("tpe", "constraints", 0.0)),
        (TWO[:1], 1, False, 1000, ("tpe", "fewer than two numeric parameters", 0.0)),
        (INTS, 1, False, 1000, ("tpe", "every numeric parameter has at most 20 values", 0.0)),
        (STEPPED, 1, False, 1000, ("tpe", "every numeric parameter has at most 20 values", 0.0)),
        (INTS_21, 1, False, 35, ("trust-region", "4 numeric parameters, 35 or more completed trials", 0.1)),
        ([*INTS, *TWO], 1, False, 35, ("trust-region", "6 numeric parameters, 35 or more completed trials", 0.1)),
        (TWELVE[:10], 1, False, 35, ("trust-region", "10 numeric parameters, 35 or more completed trials", 0.1)),
    ],
)
def test_decisions(params, objectives, constrained, completed, expected):
    choice = choose(space(params), objectives, constrained, completed)
    assert (choice.algorithm, choice.reason, choice.sigma) == expected


def test_the_switch_comes_earlier_as_the_dimension_grows():
    assert [switch_point(n) for n in (2, 5, 10, 11, 20, 100)] == [(35, 0.05)] * 3 + [(25, 0.1)] * 3


def test_auto_learns_then_switches_to_cmaes_at_the_incumbent(monkeypatch):
    monkeypatch.setattr("suggestion._auto.SWITCH_POINTS", ((None, 40, 0.1),))
    monkeypatch.setattr("suggestion._auto.TRUST_REGION_MAX", 1)  # CMA-ES's phase, as above 10 parameters
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
    monkeypatch.setattr("suggestion._auto.TRUST_REGION_MAX", 1)
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


FIVE = [{"name": f"x{i}", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "5"}} for i in range(5)]


def ellipsoid(p: dict[str, str]) -> float:
    """An ill-conditioned ellipsoid (condition 10^4) with its minimum, 0, at x_i = 1."""
    return sum(10 ** (4 * i / 4) * (float(p[f"x{i}"]) - 1) ** 2 for i in range(5))


def run_to(alg, exp, n: int, count: int = 1, state=None) -> list[TrialView]:
    history: list[TrialView] = []
    while len(history) < n:
        for a in alg.suggest(exp, history, count, state):
            history.append(TrialView(f"t{len(history)}", a.parameters, "Succeeded", ellipsoid(a.parameters)))
    return history


def test_the_trust_region_descends_an_ill_conditioned_valley_the_tpe_does_not():
    """Five parameters: after its 35 TPE trials ``auto``'s quadratic trust region reaches the
    ellipsoid's minimum within 1e-3 by 100 trials; the TPE alone is still above 1 (the
    BBOB tables in docs/benchmarks.md: 10^2 against 10^4 on their ellipsoids)."""
    exp = admit(doc_for("auto", [{"name": "random_state", "value": "4"}], FIVE))
    auto = get_algorithm("auto")
    history = run_to(auto, exp, 100)
    assert auto.last.algorithm == "trust-region"  # type: ignore[attr-defined]
    assert min(t.objective for t in history) < 1e-3  # type: ignore[type-var]
    tpe_exp = admit(doc_for("tpe", [{"name": "random_state", "value": "4"}], FIVE))
    assert min(t.objective for t in run_to(get_algorithm("tpe"), tpe_exp, 100)) > 1  # type: ignore[type-var]


def test_the_trust_region_keeps_its_box_in_the_state_a_restart_carries_on_with():
    """The box and the steps out live in the algorithm state (JSON, stored by the
    controller): a new instance, as after a restart, carries on with the same box."""
    import json

    exp = admit(doc_for("auto", [{"name": "random_state", "value": "2"}], FIVE))
    state: dict = {}
    history = run_to(get_algorithm("auto"), exp, 45, state=state)
    [step] = get_algorithm("auto").suggest(exp, history, 1, state)  # the model's step, sent out
    region = json.loads(json.dumps(state))["trust_region"]
    assert 0 < region["delta"] <= 0.5 and list(region["out"]) == [str(tuple(sorted(step.parameters.items())))]
    running = [*history, TrialView("step", step.parameters, "Running")]
    again = get_algorithm("auto")  # a restarted controller: a new instance, the stored state
    [other] = again.suggest(exp, running, 1, state)  # the step is still out: a point in the box
    assert state["trust_region"] == region and other.parameters != step.parameters
    value = ellipsoid(step.parameters)
    back = [*history, TrialView("step", step.parameters, "Succeeded", value)]
    again.suggest(exp, back, 1, state)  # the step came back: its promise is settled, Δ moves by the rule
    [sent] = region["out"].values()
    gained = sent["before"] - value
    expected = (min(2 * region["delta"], 0.5) if gained > 0 and gained >= 0.75 * sent["promised"] and sent["step"] > 0.8
                else region["delta"] / 2 if gained <= 0 or gained < 0.1 * sent["promised"] else region["delta"])
    assert state["trust_region"]["delta"] == expected
    assert str(tuple(sorted(step.parameters.items()))) not in state["trust_region"]["out"]


def test_several_proposals_at_once_are_distinct_and_inside_the_box():
    """``parallelTrialCount`` 4: the model's minimum and three points at random in the box;
    with that model step still running, the next call's points are all in the box."""
    exp = admit(doc_for("auto", [{"name": "random_state", "value": "3"}], FIVE))
    alg = get_algorithm("auto")
    state: dict = {}
    history = run_to(alg, exp, 40, state=state)
    best = min(history, key=lambda t: t.objective)  # type: ignore[arg-type, return-value]
    batch = alg.suggest(exp, history, 4, state)
    assert len({tuple(sorted(a.parameters.items())) for a in batch}) == 4
    delta = state["trust_region"]["delta"] * 10  # the box's half-width in the parameters' units (range 10)
    for a in batch:
        assert all(abs(float(a.parameters[k]) - float(best.parameters[k])) <= delta + 1e-9 for k in a.parameters)
    running = history + [TrialView(f"r{i}", a.parameters, "Running") for i, a in enumerate(batch)]
    assert len(state["trust_region"]["out"]) == 1
    more = alg.suggest(exp, running, 2, state)
    assert len(more) == 2 and len(state["trust_region"]["out"]) == 1  # no second model step while one is out


def test_auto_reaches_its_trust_region_through_ask_and_tell(tmp_path):
    """45 trials through the store: the trust region's state is stored with the trials it
    proposes and read back by the next ask (``katib/controller/_ask_tell.py``)."""
    client = KatibClient(db=str(tmp_path / "a.db"), workdir=tmp_path)
    client.create_experiment({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "auto-local"},
        "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
                 "algorithm": {"algorithmName": "auto", "algorithmSettings": [{"name": "random_state", "value": "1"}]},
                 "executor": "external", "parallelTrialCount": 2, "maxTrialCount": 45, "parameters": FIVE},
    })
    told, values = 0, []
    while told < 45:
        for trial in client.ask("auto-local", count=2):
            values.append(ellipsoid(trial["parameters"]))
            client.tell("auto-local", trial["name"], {"loss": values[-1]})
            told += 1
    from katib.store import Store

    store = Store(str(tmp_path / "a.db"))
    state = store.algorithm_state(store.get_experiment("default", "auto-local").id)
    assert state is not None and 0 < state["trust_region"]["delta"] <= 0.5
    assert state["trust_region"]["delta"] != 0.1  # the steps came back, matched by their keys, and moved the box
    assert min(values[35:]) <= min(values[:35])  # it starts at the TPE's incumbent


def test_a_region_that_shrinks_away_spends_its_basin_and_starts_again_in_another():
    """Shrunk below DELTA_MIN around a local minimum, the box spends its basin: the TPE proposes
    ``EXPLORE`` points, then the region starts again around the best point of another basin
    (on BBOB's multimodal functions a region that restarted where it was spent the rest of
    the budget there)."""
    from suggestion._trust_region import DELTA0, DELTA_MIN, EXPLORE, propose

    rng = np.random.default_rng(0)
    x = np.array([[0.5, 0.5], [0.52, 0.5], [0.9, 0.9], [0.1, 0.8]])
    y = np.array([0.0, 0.1, 0.5, 0.7])
    state = {"delta": 1.5 * DELTA_MIN, "out": {"k": {"before": 0.0, "promised": 1.0, "step": 1.0}}}
    assert propose(x, y, ["a", "b", "c", "k"], set(), set(), state, 1, rng) == []  # the step gained nothing: spent
    assert state["spent"] == [[0.5, 0.5]] and state["explore"] == EXPLORE and state["delta"] == DELTA0
    state["explore"] = 0  # the TPE has had its turn (Auto counts it down)
    [(point, promise)] = propose(x, y, ["a", "b", "c", "k"], set(), set(), state, 1, rng)
    assert promise is not None and np.linalg.norm(point - [0.9, 0.9]) <= DELTA0 * np.sqrt(2) + 1e-9  # around (0.9, 0.9)


def test_auto_hands_the_tpe_its_turn_and_counts_it_down():
    from suggestion._trust_region import DELTA_MIN, EXPLORE

    exp = admit(doc_for("auto", [{"name": "random_state", "value": "1"}], FIVE))
    alg = get_algorithm("auto")
    state: dict = {}
    history = run_to(alg, exp, 38, state=state)
    region = state["trust_region"]
    spent = len(region.get("spent", []))
    region.update(delta=1.5 * DELTA_MIN, out={}, explore=0)
    # a model step that gains nothing, in a box that cannot shrink further
    [step] = alg.suggest(exp, history, 1, state)
    history.append(TrialView("last", step.parameters, "Succeeded", 1e9))
    alg.suggest(exp, history, 3, state)
    assert len(region["spent"]) == spent + 1 and region["explore"] == EXPLORE - 3, region
    assert alg.last.algorithm == "trust-region"  # type: ignore[attr-defined]


def test_a_step_that_crashed_or_diverged_shrinks_the_box():
    """A failed step, or one whose value is NaN, was neither done nor pending: its promise
    was dropped, the box kept its size, and the region stepped into the bad area again
    (156 of 165 trials NaN where the learning rate was too high, in a review's run)."""
    exp = admit(doc_for("auto", [{"name": "random_state", "value": "5"}], FIVE))
    alg = get_algorithm("auto")
    for outcome in (("Failed", None), ("Succeeded", float("nan"))):
        state: dict = {}
        history = run_to(alg, exp, 40, state=state)
        delta = state["trust_region"]["delta"]
        [step] = alg.suggest(exp, history, 1, state)
        alg.suggest(exp, [*history, TrialView("bad", step.parameters, *outcome)], 1, state)
        assert state["trust_region"]["delta"] == delta / 2, outcome


def test_integers_a_model_step_rounds_onto_a_known_point_shrinks_the_box_and_the_basin_is_spent():
    """Once the box is narrower than one integer, the model's step rounds back onto a point
    already tried: that was a neighbour with no promise, the box never moved and the basin
    was never spent (trials 49 to 200 around the incumbent, in a review's run)."""
    exp = admit(doc_for("auto", [{"name": "random_state", "value": "1"}], INTS_21))
    alg = get_algorithm("auto")

    def bowl(p: dict[str, str]) -> float:
        return sum((float(v) - 7) ** 2 for v in p.values())

    state: dict = {}
    history: list[TrialView] = []
    while len(history) < 120:
        for a in alg.suggest(exp, history, 1, state):
            history.append(TrialView(f"t{len(history)}", a.parameters, "Succeeded", bowl(a.parameters)))
    region = state["trust_region"]
    assert region.get("spent"), region  # the basin at (7, 7, 7, 7) was found and spent
    assert min(t.objective for t in history) == 0  # type: ignore[type-var]
    assert len({tuple(sorted(t.parameters.items())) for t in history}) == len(history)  # no point twice


def test_a_fixed_parameter_stays_put_and_maximize_climbs():
    """A parameter whose min is its max takes no part in the box: no step moves it, so no
    step's length counts it (the model's minimum put it anywhere in [-1, 1], and a short
    step passed for one to the box's edge); a maximized objective is climbed."""
    from suggestion._trust_region import propose

    x = np.array([[0.5, 0.5, 0.5], [0.6, 0.5, 0.5], [0.5, 0.6, 0.5], [0.4, 0.4, 0.5]])
    y = np.array([0.0, 0.1, 0.1, 0.2])
    [(point, promise)] = propose(x, y, ["a", "b", "c", "d"], set(), set(), {}, 1, np.random.default_rng(0),
                                 np.array([True, True, False]))
    assert point[2] == 0.5 and promise is not None
    params = [*FIVE[:3], {"name": "fixed", "parameterType": "double", "feasibleSpace": {"min": "2", "max": "2"}}]
    doc = doc_for("auto", [{"name": "random_state", "value": "2"}], params)
    doc["spec"]["objective"]["type"] = "maximize"
    exp = admit(doc)
    alg = get_algorithm("auto")
    history: list[TrialView] = []
    while len(history) < 90:
        for a in alg.suggest(exp, history, 1):
            value = -sum((float(a.parameters[f"x{i}"]) - 1) ** 2 for i in range(3))
            history.append(TrialView(f"t{len(history)}", a.parameters, "Succeeded", value))
    assert alg.last.algorithm == "trust-region"  # type: ignore[attr-defined]
    assert {t.parameters["fixed"] for t in history} == {"2.0"}
    assert max(t.objective for t in history) > -1e-3  # type: ignore[type-var]


# A finite space: four ordered lists of 8 values and a categorical one (8·8·8·8·3 points).
TABLE = [{"name": f"o{k}", "parameterType": "discrete", "feasibleSpace": {"list": [str(2 ** j) for j in range(8)]}}
         for k in range(4)] + [{"name": "c", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b", "c"]}}]


def table_score(p: dict[str, str]) -> float:
    """Lower is better; its minimum is at o_k = 8 and c = b."""
    return sum((np.log2(float(p[f"o{k}"])) - 3) ** 2 for k in range(4)) + (p["c"] != "b")


def test_in_a_finite_space_auto_steps_to_an_unseen_neighbour_of_the_incumbent():
    from suggestion._auto import LOCAL_SEARCH_AFTER

    exp = admit(doc_for("auto", [{"name": "random_state", "value": "2"}], TABLE))
    space = SearchSpace.from_experiment(exp)
    alg = get_algorithm("auto")
    history: list[TrialView] = []
    while len(history) < LOCAL_SEARCH_AFTER:
        for a in alg.suggest(exp, history, 1):
            history.append(TrialView(f"t{len(history)}", a.parameters, "Succeeded", table_score(a.parameters)))
        assert alg.last.algorithm == "tpe"  # type: ignore[attr-defined]
    for _ in range(60):
        best = min(history, key=lambda t: t.objective)  # type: ignore[arg-type,return-value]
        seen = {space.key(t.parameters) for t in history}
        free_neighbours = [space.key(p) for p in space.neighbours(best.parameters) if space.key(p) not in seen]
        (a,) = alg.suggest(exp, history, 1)
        assert alg.last.algorithm == ("local-search" if free_neighbours else "tpe")  # type: ignore[attr-defined]
        assert space.key(a.parameters) not in seen
        if free_neighbours:
            assert space.key(a.parameters) in free_neighbours
        history.append(TrialView(f"t{len(history)}", a.parameters, "Succeeded", table_score(a.parameters)))
    assert min(t.objective for t in history) == 0  # type: ignore[type-var]  # the optimum, one step at a time


def test_the_local_search_asked_for_more_than_the_neighbours_left_gives_distinct_unseen_points():
    exp = admit(doc_for("auto", [{"name": "random_state", "value": "4"}], TABLE))
    space = SearchSpace.from_experiment(exp)
    centre = {"o0": "8", "o1": "8", "o2": "8", "o3": "8", "c": "b"}
    neighbours = space.neighbours(centre)
    assert len(neighbours) == 4 * 2 + 2
    rng = np.random.default_rng(0)
    history = [TrialView("best", centre, "Succeeded", 0.0)] + [
        TrialView(f"n{i}", p, "Succeeded", 1.0) for i, p in enumerate(neighbours[:7])]
    while len(history) < 60:
        p = space.sample(rng)
        if space.key(p) not in {space.key(t.parameters) for t in history} and space.key(p) not in {
                space.key(q) for q in neighbours}:
            history.append(TrialView(f"r{len(history)}", p, "Succeeded", 5.0 + table_score(p)))
    batch = get_algorithm("auto").suggest(exp, history, 6)
    keys = [space.key(a.parameters) for a in batch]
    assert len(set(keys)) == 6 and not set(keys) & {space.key(t.parameters) for t in history}
    assert set(keys[:3]) == {space.key(p) for p in neighbours[7:]}  # the free neighbours first, then the next ring
    assert all(sum(a.parameters[k] != centre[k] for k in centre) <= 2 for a in batch)
    # every neighbour tried: the TPE's turn, which proposes elsewhere
    history += [TrialView(f"n{i}", p, "Succeeded", 1.0) for i, p in enumerate(neighbours[7:], start=7)]
    alg = get_algorithm("auto")
    (a,) = alg.suggest(exp, history, 1)
    assert alg.last.algorithm == "tpe" and alg.last.reason.endswith("every neighbour of the incumbent tried")  # type: ignore[attr-defined]
    assert space.key(a.parameters) not in {space.key(t.parameters) for t in history}
