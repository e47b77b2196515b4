"""A finite space never gets a point twice: when the sampler keeps proposing known points,
the nearest free one (in grid steps) is taken, not a random one."""

from __future__ import annotations

import numpy as np
import pytest

from suggestion import TrialView, get_algorithm
from suggestion._space import Dimension, SearchSpace
from tests.suggestion_tests.test_algorithms import exp_for


def _space() -> SearchSpace:
    return SearchSpace([
        Dimension("lr", "discrete", choices=tuple(str(v) for v in range(10))),
        Dimension("n", "int", low=2, high=20, step=2.0, step_text="2"),
        Dimension("opt", "categorical", choices=("sgd", "adam", "rmsprop")),
    ])


def _steps(space: SearchSpace, a: dict, b: dict) -> int:
    """Grid steps between two points (categorical: 0 or 1)."""
    total = 0
    for d in space.dims:
        if d.categorical:
            total += a[d.name] != b[d.name]
        elif d.choices:
            total += abs(d.choices.index(a[d.name]) - d.choices.index(b[d.name]))
        else:
            total += round(abs(float(a[d.name]) - float(b[d.name])) / d.step)
    return total


def test_the_nearest_free_point_is_one_step_away_then_two():
    space, rng = _space(), np.random.default_rng(0)
    point = {"lr": "5", "n": "10", "opt": "adam"}
    seen = {space.key(point)}
    near = space.nearest_free(point, seen, rng)
    assert near is not None and _steps(space, point, near) == 1
    # Every one-step neighbour taken: a two-step one.
    for q in space.neighbours(point):
        seen.add(space.key(q))
    assert len(space.neighbours(point)) == 2 + 2 + 2  # lr 4|6, n 8|12, opt sgd|rmsprop
    near = space.nearest_free(point, seen, rng)
    assert near is not None and _steps(space, point, near) == 2 and space.key(near) not in seen


def test_the_edges_of_a_grid_and_a_full_space():
    space, rng = _space(), np.random.default_rng(1)
    corner = {"lr": "0", "n": "2", "opt": "sgd"}
    assert sorted((q["lr"], q["n"], q["opt"]) for q in space.neighbours(corner)) == [
        ("0", "2", "adam"), ("0", "2", "rmsprop"), ("0", "4", "sgd"), ("1", "2", "sgd")]
    every = {space.key({"lr": a, "n": str(n), "opt": o}) for a in map(str, range(10))
             for n in range(2, 21, 2) for o in ("sgd", "adam", "rmsprop")}
    assert len(every) == space.size()
    assert space.nearest_free(corner, every, rng) is None


@pytest.mark.parametrize("name", ["tpe", "multivariate-tpe"])
def test_a_sampler_stuck_on_a_known_point_gets_its_nearest_free_neighbour(name, monkeypatch):
    # A sampler that proposes the same point every time (as a converged TPE does on a small
    # grid): before, after 30 asks a random free point was taken, anywhere in the space.
    from optuna.samplers import PartialFixedSampler, RandomSampler

    params = [{"name": "a", "parameterType": "discrete", "feasibleSpace": {"list": [str(v) for v in range(100)]}},
              {"name": "b", "parameterType": "categorical", "feasibleSpace": {"list": ["x", "y"]}}]
    exp = exp_for(name, params)
    space = SearchSpace.from_experiment(exp)
    stuck = {"a": space.dims[0].to_unit("50"), "b": "x"}
    alg = get_algorithm(name)
    monkeypatch.setattr(type(alg), "reseed", lambda self, sampler, seed: False)
    monkeypatch.setattr(type(alg), "make_sampler",
                        lambda self, settings, seed, n: PartialFixedSampler(stuck, RandomSampler(seed=seed)))
    centre = {"a": "50", "b": "x"}
    every = [{"a": str(a), "b": b} for a in range(100) for b in ("x", "y")]
    history = [TrialView("t0", centre, "Succeeded", 1.0)]
    for i in range(1, 7):
        (proposal,) = alg.suggest(exp, history, 1)
        taken = [t.parameters for t in history]
        assert proposal.parameters not in taken
        nearest = min(_steps(space, centre, q) for q in every if q not in taken)
        assert _steps(space, centre, proposal.parameters) == nearest, proposal.parameters
        history.append(TrialView(f"t{i}", proposal.parameters, "Succeeded", 0.5))
    assert {t.parameters["a"] for t in history} <= {"48", "49", "50", "51", "52"}


def test_the_size_of_a_space_past_a_floats_range_is_asked_without_overflow():
    """An int past a float's range (3^700 points) times a continuous dimension's inf was an
    OverflowError wherever a sampler asked the size; so was math.isinf of the int alone."""
    import math

    from katib.controller import admit
    from suggestion import get_algorithm
    from tests.suggestion_tests.test_model_based import doc_for

    many = [{"name": f"c{i}", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b", "c"]}}
            for i in range(700)]
    double = {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}
    for params, infinite in ((many, False), ([*many, double], True)):
        space = SearchSpace.from_experiment(admit(doc_for("random", [], params)))
        assert space.infinite is infinite and (space.size() == math.inf) is infinite
    exp = admit(doc_for("tpe", [{"name": "random_state", "value": "1"}], [*many[:50], double]))
    assert len(get_algorithm("tpe").suggest(exp, [], 1)) == 1
