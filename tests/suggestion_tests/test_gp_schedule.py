"""bayesianoptimization on Optuna's GP (issue 17): the kernel is refitted on a schedule,
warm-started from its last fit kept in the algorithm state, and proposals stay a function
of the history and that state."""

from __future__ import annotations

import json

import pytest

from katib.controller import admit
from suggestion import TrialView, _gp, get_algorithm
from tests.suggestion_tests.test_model_based import doc_for, sphere

SETTINGS = [{"name": "random_state", "value": "3"}, {"name": "n_initial_points", "value": "4"}]


def run(alg, exp, n: int, state: dict) -> list[TrialView]:
    history: list[TrialView] = []
    while len(history) < n:
        (a,) = alg.suggest(exp, history, 1, state)
        history.append(TrialView(a.name or f"t{len(history)}", a.parameters, "Succeeded", sphere(a.parameters)))
    return history


def test_refit_schedule():
    assert _gp.refit_due(5, None)
    assert all(_gp.refit_due(n + 1, n) for n in range(1, _gp.REFIT_EVERY_TRIAL_UP_TO))
    assert not _gp.refit_due(150, 150)
    # Past 200 completed trials, once the history has grown by 5%: every ~50 at 1,000.
    assert not _gp.refit_due(1040, 1000) and not _gp.refit_due(1052, 1000)
    assert _gp.refit_due(1053, 1000) and _gp.refit_due(900, 1000)


def test_kernel_is_refitted_only_when_due(monkeypatch):
    monkeypatch.setattr(_gp, "REFIT_EVERY_TRIAL_UP_TO", 3)
    monkeypatch.setattr(_gp, "REFIT_GROWTH", 0.3)
    exp = admit(doc_for("bayesianoptimization", [{"name": "random_state", "value": "3"},
                                                 {"name": "n_initial_points", "value": "2"}]))
    alg = get_algorithm("bayesianoptimization")
    state: dict = {}
    history: list[TrialView] = []
    fitted_on = []
    while len(history) < 10:
        (a,) = alg.suggest(exp, history, 1, state)
        fitted_on.append(state.get("gp", {}).get("fitted_on"))
        history.append(TrialView(a.name or f"t{len(history)}", a.parameters, "Succeeded", sphere(a.parameters)))
    # Random points for the first 2; a fit at 2 and 3 trials; then once the history has
    # grown by 30% (rounded up): at 5 (2 >= 1.5), at 8 (3 >= 2.4).
    assert fitted_on == [None, None, 2, 3, 3, 5, 5, 5, 8, 8]
    assert alg._cache[1].sampler.fits == 4  # type: ignore[attr-defined]


def test_the_gp_learns_from_a_bounded_window_of_a_long_history(monkeypatch):
    """Its cost is cubic in the trials it learns from: past MAX_HISTORY, the best half and
    the latest half (tens of thousands of trials made one suggestion minutes of a server's
    CPU). The refit schedule still counts every completed trial."""
    from types import SimpleNamespace

    monkeypatch.setattr(_gp, "MAX_HISTORY", 8)
    monkeypatch.setattr(_gp, "REFIT_EVERY_TRIAL_UP_TO", 3)
    trials = [SimpleNamespace(values=[v]) for v in (5.0, 1.0, 9.0, 2.0, 7.0, 3.0, 8.0, 6.0, 4.0, 0.5, 9.5, 10.0)]
    kept = _gp.window(trials, sign=-1.0)  # minimised: the 4 smallest, then the 4 latest others
    assert [t.values[0] for t in kept] == [1.0, 2.0, 3.0, 6.0, 4.0, 0.5, 9.5, 10.0]
    assert _gp.window(trials[:8], sign=1.0) == trials[:8]
    sizes: list[tuple[int, int]] = []
    real = _gp.ScheduledGPSampler._kernel

    def kernel(self, gp, torch, x, y, is_categorical, completed):
        sizes.append((len(x), completed))
        return real(self, gp, torch, x, y, is_categorical, completed)

    monkeypatch.setattr(_gp.ScheduledGPSampler, "_kernel", kernel)
    exp = admit(doc_for("bayesianoptimization", SETTINGS))
    state: dict = {}
    run(get_algorithm("bayesianoptimization"), exp, 14, state)
    assert max(n for n, _ in sizes) == 8 and sizes[-1] == (8, 13)
    assert state["gp"]["fitted_on"] == 13  # refitted on the schedule of all 13, not of the window


def test_proposals_follow_from_history_and_state():
    """The same random_state gives the same run; new instances given the history and the
    stored state (through JSON, as the store keeps it) propose the same points, and what
    the running one proposes (up to the rounding of the parameters' strings it rebuilds
    its trials from)."""
    exp = admit(doc_for("bayesianoptimization", SETTINGS))
    state_a: dict = {}
    state_b: dict = {}
    a = run(get_algorithm("bayesianoptimization"), exp, 10, state_a)
    alg = get_algorithm("bayesianoptimization")
    b = run(alg, exp, 10, state_b)
    assert [t.parameters for t in a] == [t.parameters for t in b]
    assert state_a == state_b and state_a["gp"]["fitted_on"] == 10 - 1
    restarted = [get_algorithm("bayesianoptimization").suggest(exp, b, 2, json.loads(json.dumps(state_b)))
                 for _ in range(2)]
    assert [p.parameters for p in restarted[0]] == [p.parameters for p in restarted[1]]
    running = alg.suggest(exp, b, 2, state_b)
    for fresh, kept in zip(restarted[0], running, strict=True):
        assert all(abs(float(fresh.parameters[k]) - float(v)) < 1e-6 for k, v in kept.parameters.items())


@pytest.mark.parametrize("state", [None, {}])
def test_a_caller_without_state_gets_the_same_proposals(state):
    exp = admit(doc_for("bayesianoptimization", SETTINGS))
    alg = get_algorithm("bayesianoptimization")
    history: list[TrialView] = []
    for _ in range(7):
        (p,) = alg.suggest(exp, history, 1, None if state is None else state)
        history.append(TrialView(p.name or "", p.parameters, "Succeeded", sphere(p.parameters)))
    ref = run(get_algorithm("bayesianoptimization"), exp, 7, {})
    assert [t.parameters for t in history] == [t.parameters for t in ref]


def test_the_acquisition_screen_shrinks_past_200_trials(monkeypatch):
    # Up to 200 completed trials Optuna's 2,048 random points are screened (the quality
    # tables run to 200); past them fewer, as the screen's cost grows with the history.
    assert [_gp.screened(n) for n in (5, 200)] == [2048, 2048]
    assert [_gp.screened(n) for n in (400, 800, 1000, 5000)] == [1024, 512, 512, 512]
    monkeypatch.setattr(_gp, "REFIT_EVERY_TRIAL_UP_TO", 6)
    screens = []
    real = _gp.ScheduledGPSampler._optimize_acqf
    monkeypatch.setattr(_gp.ScheduledGPSampler, "_optimize_acqf",
                        lambda self, acqf, best: screens.append(self._n_preliminary_samples) or real(self, acqf, best))
    exp = admit(doc_for("bayesianoptimization", SETTINGS))
    run(get_algorithm("bayesianoptimization"), exp, 10, {})
    # Random points for the first 4; then 2,048 up to 6 completed trials, then 2048 * 6 / n.
    assert screens == [2048, 2048, 2048, 1755, 1536, 1365], screens
