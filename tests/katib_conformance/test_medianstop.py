"""Median stopping as Katib does it.

Ported from ``test/unit/v1beta1/earlystopping/test_medianstop_service.py`` (settings
validation, rules for trials without results), plus scenarios derived from the two
upstream files that together make the rule:

- ``pkg/earlystopping/v1beta1/medianstop/service.py``: when trials are created, the rule's
  value is the *mean*, over the succeeded trials, of each one's average over its first
  ``start_step`` objective reports; no rule until ``min_trials_required`` such trials;
- ``cmd/metricscollector/v1beta1/file-metricscollector/main.go`` (``updateStopRules``):
  the running trial's best value so far is compared with it once, at its
  ``start_step``-th report; strictly worse (greater when minimising, less when
  maximising) stops it.
"""

from __future__ import annotations

import pytest

from katib.errors import KatibError
from katib.spec import apply_defaults, parse_experiment
from suggestion import Curve, get_early_stopper
from tests.conftest import experiment

SERVICE_TEST = "test/unit/v1beta1/earlystopping/test_medianstop_service.py"
SERVICE = "pkg/earlystopping/v1beta1/medianstop/service.py"
COLLECTOR = "cmd/metricscollector/v1beta1/file-metricscollector/main.go"


def exp_with(settings: dict[str, str], objective_type: str = "minimize", name: str = "medianstop"):
    doc = experiment(earlyStopping={"algorithmName": name,
                                    "algorithmSettings": [{"name": k, "value": v} for k, v in settings.items()]},
                     objective={"type": objective_type, "objectiveMetricName": "loss"})
    return apply_defaults(parse_experiment(doc))


# -- settings (test_validate_early_stopping_settings) ------------------------------------

@pytest.mark.parametrize(
    ("name", "settings", "valid"),
    [
        pytest.param("medianstop", {"min_trials_required": "2", "start_step": "5"}, True, id=f"{SERVICE_TEST}:valid"),
        pytest.param("unknown", {}, False, id=f"{SERVICE_TEST}:unknown-algorithm-name"),
        pytest.param("medianstop", {"unknown_conf": "100"}, False, id=f"{SERVICE_TEST}:unknown-setting"),
        pytest.param("medianstop", {"min_trials_required": "0"}, False, id=f"{SERVICE_TEST}:min_trials_required-0"),
        pytest.param("medianstop", {"start_step": "0"}, False, id=f"{SERVICE_TEST}:start_step-0"),
    ],
)
def test_validate_early_stopping_settings(name, settings, valid):
    try:
        stopper = get_early_stopper(name)
    except KatibError:
        assert not valid
        return
    errors = stopper.validate(exp_with(settings, name=name))
    assert (not errors) is valid, errors


def test_get_early_stopping_rules_without_succeeded_trials():
    """test_get_earlystopping_rules: two trials with no status → no rule, no stop."""
    exp = exp_with({})
    others = [Curve("test-asfjh", [], False), Curve("test-234hs", [], False)]
    assert get_early_stopper("medianstop").should_stop(exp, Curve("t", [9.0] * 4, False), others) is None


# -- the rule (service.py + the collector's updateStopRules) -----------------------------

def done(*values: float, ended: float = 0.0) -> Curve:
    return Curve("c", list(values), True, ended=ended)


S2 = {"min_trials_required": "3", "start_step": "2"}
# (settings, objective type, the running trial (values, decided, created), others, stop)
SCENARIOS = [
    pytest.param(S2, "minimize", ([0.6, 0.6], None, 1.0), [done(0.5, 0.5), done(0.4, 0.4), done(1.1, 1.1)], False,
                 id=f"{SERVICE}:the-mean-not-the-median"),
    pytest.param(S2, "minimize", ([0.5, 0.5], None, 1.0), [done(1.0, 0.2, 0.2), done(1.0, 0.2), done(1.0, 0.2)], False,
                 id=f"{SERVICE}:each-trials-average-over-its-first-start_step-reports"),
    pytest.param(S2, "minimize", ([0.9, 0.9], None, 1.0), [done(0.5, 0.5), done(0.4, 0.4), done(0.6, 0.6, ended=2.0)],
                 False, id=f"{SERVICE}:fixed-when-the-trial-is-created"),
    pytest.param(S2, "minimize", ([0.9, 0.9], None, 1.0), [done(0.5, 0.5), done(0.4, 0.4), done(0.6)], True,
                 id=f"{SERVICE}:a-trial-with-fewer-reports-averages-what-it-has"),
    pytest.param(S2, "minimize", ([0.45, 0.45, 0.45], 2, 1.0),
                 [done(0.5, 0.5, 0.1), done(0.4, 0.4, 0.1), done(0.6, 0.6, 0.1)], False,
                 id=f"{COLLECTOR}:compared-once-at-start_step-not-after"),
    pytest.param(S2, "minimize", ([0.9, 0.9, 0.9], 1, 1.0), [done(0.5, 0.5), done(0.4, 0.4), done(0.6, 0.6)], True,
                 id=f"{COLLECTOR}:decided-at-start_step-when-reports-arrive-together"),
    pytest.param(S2, "minimize", ([0.9, 0.9], None, 1.0), [done(0.5, 0.5), done(0.4, 0.4), done(0.6, 0.6)], True,
                 id=f"{COLLECTOR}:worse-than-the-rule-stops"),
    pytest.param(S2, "minimize", ([0.9, 0.45], None, 1.0), [done(0.5, 0.5), done(0.4, 0.4), done(0.6, 0.6)], False,
                 id=f"{COLLECTOR}:the-best-value-so-far-is-compared"),
    pytest.param(S2, "minimize", ([0.5, 0.5], None, 1.0), [done(0.5, 0.5), done(0.4, 0.4), done(0.6, 0.6)], False,
                 id=f"{COLLECTOR}:equal-to-the-rule-goes-on"),
    pytest.param(S2, "minimize", ([0.9], None, 1.0), [done(0.5, 0.5), done(0.4, 0.4), done(0.6, 0.6)], False,
                 id=f"{COLLECTOR}:before-start_step-nothing"),
    pytest.param(S2, "minimize", ([0.9, 0.9], None, 1.0), [done(0.5, 0.5), done(0.4, 0.4)], False,
                 id=f"{SERVICE}:fewer-than-min_trials_required-no-rule"),
    pytest.param(S2, "minimize", ([0.9, 0.9], None, 1.0),
                 [done(0.5, 0.5), done(0.4, 0.4), Curve("r", [0.1, 0.1], False), Curve("e", [0.1, 0.1], False)], False,
                 id=f"{SERVICE}:only-succeeded-trials-count"),
    pytest.param({"min_trials_required": "2", "start_step": "1"}, "maximize", ([0.3], None, 1.0),
                 [done(0.5), done(0.7)], True, id=f"{COLLECTOR}:maximize-less-than-the-rule-stops"),
    pytest.param({"min_trials_required": "2", "start_step": "1"}, "maximize", ([0.8], None, 1.0),
                 [done(0.5), done(0.7)], False, id=f"{COLLECTOR}:maximize-better-goes-on"),
    pytest.param({}, "minimize", ([0.9, 0.9, 0.9, 0.9], None, 1.0),
                 [done(0.1, 0.2, 0.3, 0.4, 5.0), done(0.2, 0.3, 0.4, 0.5), done(0.3, 0.4, 0.5, 0.6)], True,
                 id=f"{SERVICE}:defaults-min_trials_required-3-start_step-4"),
]


@pytest.mark.parametrize(("settings", "objective_type", "trial", "others", "stop"), SCENARIOS)
def test_medianstop_rule(settings, objective_type, trial, others, stop):
    values, decided, created = trial
    exp = exp_with(settings, objective_type)
    reason = get_early_stopper("medianstop").should_stop(exp, Curve("t", values, False, decided, created=created), others)
    assert (reason is not None) is stop, reason
