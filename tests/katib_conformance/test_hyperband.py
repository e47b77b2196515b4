"""Hyperband as Katib plans it.

Ported from ``test/unit/v1beta1/suggestion/test_hyperband_service.py`` (its one case), plus
plans derived from ``pkg/suggestion/v1beta1/hyperband/service.py``: ``s_max`` is
``int(log(r_l)/log(eta))`` (truncated, float error included), bracket ``s`` starts
``n = ceil((s_max+1) · eta^s / (s+1))`` configurations on ``int(r_l · eta^-s)``, and each
rung promotes ``ceil(ceil(n · eta^-i) / eta)`` of them to ``int(r · eta^(i+1))``
(``_make_child_bracket``); ``ValidateAlgorithmSettings`` wants ``parallelTrialCount`` of at
least ``ceil(eta^s_max)`` with ``eta`` truncated to an integer.
"""

from __future__ import annotations

import pytest

from katib.spec import apply_defaults, parse_experiment
from suggestion import TrialView, get_algorithm
from suggestion._hyperband import bracket_sizes
from tests.conftest import experiment

SERVICE_TEST = "test/unit/v1beta1/suggestion/test_hyperband_service.py"
SERVICE = "pkg/suggestion/v1beta1/hyperband/service.py"
EXAMPLE = "examples/v1beta1/hp-tuning/hyperband.yaml"

# (r_l, eta) → per bracket (s = s_max … 0), per rung: (configurations, resource)
PLANS = [
    pytest.param(9, 3, [[(9, 1), (3, 3), (1, 9)], [(5, 3), (2, 9)], [(3, 9)]], id=f"{SERVICE}:r_l=9,eta=3"),
    pytest.param(2, 2, [[(2, 1), (1, 2)], [(2, 2)]], id=f"{EXAMPLE}:r_l=2,eta=2"),
    pytest.param(10, 3, [[(9, 1), (3, 3), (1, 10)], [(5, 3), (2, 10)], [(3, 10)]], id=f"{SERVICE_TEST}:r_l=10,eta=3"),
    pytest.param(81, 3, [[(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)], [(34, 3), (12, 9), (4, 27), (2, 81)],
                         [(15, 9), (5, 27), (2, 81)], [(8, 27), (3, 81)], [(5, 81)]], id=f"{SERVICE}:r_l=81,eta=3"),
    pytest.param(27, 3, [[(27, 1), (9, 3), (3, 9), (1, 27)], [(12, 3), (4, 9), (2, 27)], [(6, 9), (2, 27)], [(4, 27)]],
                 id=f"{SERVICE}:r_l=27,eta=3"),
    # log(1000)/log(10) is 2.9999999999999996: Katib truncates it to 2
    pytest.param(1000, 10, [[(100, 10), (10, 100), (1, 1000)], [(15, 100), (2, 1000)], [(3, 1000)]],
                 id=f"{SERVICE}:r_l=1000,eta=10"),
    # log(243)/log(3) is 4.999999999999999: 4 brackets' worth, starting on 3
    pytest.param(243, 3, [[(81, 3), (27, 9), (9, 27), (3, 81), (1, 243)], [(34, 9), (12, 27), (4, 81), (2, 243)],
                          [(15, 27), (5, 81), (2, 243)], [(8, 81), (3, 243)], [(5, 243)]], id=f"{SERVICE}:r_l=243,eta=3"),
    pytest.param(8, 2, [[(8, 1), (4, 2), (2, 4), (1, 8)], [(6, 2), (3, 4), (2, 8)], [(4, 4), (2, 8)], [(4, 8)]],
                 id=f"{SERVICE}:r_l=8,eta=2"),
]


@pytest.mark.parametrize(("r_l", "eta", "plan"), PLANS)
def test_plan(r_l, eta, plan):
    assert bracket_sizes(r_l, eta) == plan


def hb_experiment(r_l: str, eta: str, parallel: int, resource: str = "epochs", params: list | None = None):
    doc = experiment(
        algorithm={"algorithmName": "hyperband", "algorithmSettings": [
            {"name": "r_l", "value": r_l}, {"name": "eta", "value": eta}, {"name": "resource_name", "value": resource}]},
        parameters=params or [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
                              {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}}],
        parallelTrialCount=parallel, maxTrialCount=max(parallel, 1000))
    return apply_defaults(parse_experiment(doc))


@pytest.mark.parametrize(("r_l", "eta", "plan"), PLANS)
def test_the_service_runs_the_plan(r_l, eta, plan):
    """Rung by rung: how many trials, on which resource, and the best ones promoted."""
    exp = hb_experiment(str(r_l), str(eta), parallel=1000)
    alg = get_algorithm("hyperband")
    state: dict = {}
    history: list[TrialView] = []
    ran = []
    while batch := alg.suggest(exp, history, 1000, state):
        views = [TrialView(a.name or "", a.parameters, "Succeeded", float(a.parameters["x"])) for a in batch]
        if ran and ran[-1][0] == batch[0].labels["katib.kubeflow.org/hyperband-bracket"]:
            best = sorted(ran[-1][2], key=lambda v: v.objective)[: len(views)]
            assert {v.parameters["x"] for v in views} == {v.parameters["x"] for v in best}
        ran.append((batch[0].labels["katib.kubeflow.org/hyperband-bracket"], batch[0].parameters["epochs"], views))
        history += views
    got = [(len(views), int(epochs)) for _, epochs, views in ran]
    assert got == [rung for bracket in plan for rung in bracket]


@pytest.mark.parametrize(
    ("r_l", "eta", "parallel", "valid"),
    [
        pytest.param("9", "3", 9, True, id=f"{SERVICE}:parallel-ceil(eta^s_max)"),
        pytest.param("9", "3", 8, False, id=f"{SERVICE}:parallel-below-ceil(eta^s_max)"),
        pytest.param("1000", "10", 100, True, id=f"{SERVICE}:s_max-truncated-float-error"),
        pytest.param("2", "2", 2, True, id=f"{EXAMPLE}:the-example"),
        pytest.param("10", "2.9", 8, True, id=f"{SERVICE}:eta-truncated-to-int-in-the-check"),
    ],
)
def test_parallel_trial_count(r_l, eta, parallel, valid):
    errors = get_algorithm("hyperband").validate(hb_experiment(r_l, eta, parallel))
    assert (not errors) is valid, errors


def test_get_suggestion():
    """test_get_suggestion: two trials asked, two given (the resource named in the
    settings, ``--num-epochs``, is no parameter here; Katib's GetSuggestions does not
    validate, and the assignments carry no resource)."""
    params = [
        {"name": "param-1", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "5"}},
        {"name": "param-2", "parameterType": "categorical", "feasibleSpace": {"list": ["cat1", "cat2", "cat3"]}},
        {"name": "param-3", "parameterType": "discrete", "feasibleSpace": {"list": ["3", "2", "6"]}},
        {"name": "param-4", "parameterType": "double", "feasibleSpace": {"min": "1", "max": "5"}},
    ]
    exp = hb_experiment("10", "3", 2, resource="--num-epochs", params=params)
    trials = [
        TrialView("test-asfjh", {"param-1": "2", "param-2": "cat1", "param-3": "2", "param-4": "3.44"}, "Created"),
        TrialView("test-234hs", {"param-1": "3", "param-2": "cat2", "param-3": "6", "param-4": "4.44"}, "Created"),
    ]
    got = get_algorithm("hyperband").suggest(exp, trials, 2, {})
    assert len(got) == 2
    assert all(set(a.parameters) == {"param-1", "param-2", "param-3", "param-4"} for a in got)
