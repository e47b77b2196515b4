"""Algorithm settings: each Katib suggestion service's ValidateAlgorithmSettings, case by case.

Katib serves each algorithm name with one service in its stock install
(manifests/v1beta1/installs/katib-standalone/katib-config.yaml): ``random`` and ``tpe``
with hyperopt, ``grid`` and ``multivariate-tpe`` with optuna, ``cmaes`` and ``sobol``
with goptuna, ``bayesianoptimization`` with skopt, and ``hyperband``, ``pbt``, ``enas``
and ``darts`` with their own. Our verdict is that service's. The upstream test tables are
ported as they are, with the case's upstream expectation (optuna's table also tests
``tpe``, ``random`` and ``cmaes``, which stock Katib serves elsewhere); services without a
table (goptuna, hyperband, pbt, enas) and skopt's accepted values get cases derived from
their ``ValidateAlgorithmSettings`` code (a crash there counts as a refusal: the
experiment fails). A case ``differ``s when we answer otherwise on purpose: it is
``xfail(strict=True)`` with the reason, and listed in docs/algorithms.md.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from katib.errors import KatibError
from katib.spec import apply_defaults, parse_experiment
from suggestion import get_algorithm
from tests.conftest import experiment

OPTUNA_TEST = "test/unit/v1beta1/suggestion/test_optuna_service.py"
HYPEROPT_TEST = "test/unit/v1beta1/suggestion/test_hyperopt_service.py"
SKOPT_TEST = "test/unit/v1beta1/suggestion/test_skopt_service.py"
DARTS_TEST = "test/unit/v1beta1/suggestion/test_darts_service.py"
OPTUNA = "pkg/suggestion/v1beta1/optuna/service.py"
HYPEROPT = "pkg/suggestion/v1beta1/hyperopt/service.py"
SKOPT = "pkg/suggestion/v1beta1/skopt/service.py"
GOPTUNA = "pkg/suggestion/v1beta1/goptuna/service.go"
HYPERBAND = "pkg/suggestion/v1beta1/hyperband/service.py"
PBT = "pkg/suggestion/v1beta1/pbt/service.py"
ENAS = "pkg/suggestion/v1beta1/nas/enas/service.py"
DARTS = "pkg/suggestion/v1beta1/nas/darts/service.py"


def p(name: str, kind: str, lo: str | None = None, hi: str | None = None, step: str | None = None,
      values: list[str] | None = None) -> dict[str, Any]:
    space = {k: v for k, v in (("min", lo), ("max", hi), ("step", step), ("list", values)) if v is not None}
    return {"name": name, "parameterType": kind, "feasibleSpace": space}


TWO_INTS = [p("param-1", "int", "1", "5"), p("param-2", "int", "9", "10")]


def case(source: str, label: str, algorithm: str, settings: dict[str, str], valid: bool, *,
         params: list | None = None, max_trials: int = 100, parallel: int = 1, differ: str | None = None) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=differ)] if differ else []
    return pytest.param(algorithm, settings, params if params is not None else [], max_trials, parallel, valid,
                        marks=marks, id=f"{source}:{label}")


STOCK_CMAES = "stock Katib serves cmaes with goptuna, which ignores unknown settings and takes any integer seed"

CASES = [
    # -- test_optuna_service.py::test_validate_algorithm_settings, as upstream --------------
    case(OPTUNA_TEST, "invalid-algorithm-name", "invalid", {}, False, max_trials=1),
    case(OPTUNA_TEST, "tpe-valid", "tpe", {"n_startup_trials": "5", "n_ei_candidates": "24", "random_state": "1"}, True),
    case(OPTUNA_TEST, "tpe-invalid-name", "tpe", {"invalid": "5"}, False),
    case(OPTUNA_TEST, "tpe-n_startup_trials--1", "tpe", {"n_startup_trials": "-1"}, False),
    case(OPTUNA_TEST, "tpe-n_ei_candidate--1", "tpe", {"n_ei_candidate": "-1"}, False),
    case(OPTUNA_TEST, "tpe-random_state--1", "tpe", {"random_state": "-1"}, False),
    case(OPTUNA_TEST, "multivariate-tpe-valid", "multivariate-tpe",
         {"n_startup_trials": "5", "n_ei_candidates": "24", "random_state": "1"}, True),
    case(OPTUNA_TEST, "cmaes-valid", "cmaes", {"restart_strategy": "ipop", "sigma": "0.1", "random_state": "10"}, True,
         params=TWO_INTS, max_trials=20),
    case(OPTUNA_TEST, "cmaes-invalid-name", "cmaes", {"invalid": "invalid", "sigma": "0.1"}, False, params=TWO_INTS,
         differ=STOCK_CMAES),
    case(OPTUNA_TEST, "cmaes-invalid-restart_strategy", "cmaes", {"restart_strategy": "invalid", "sigma": "0.1"}, False,
         params=TWO_INTS, max_trials=15),
    case(OPTUNA_TEST, "cmaes-sigma--10", "cmaes", {"restart_strategy": "None", "sigma": "-10"}, False,
         params=TWO_INTS, max_trials=55),
    case(OPTUNA_TEST, "cmaes-random_state--20", "cmaes", {"sigma": "0.2", "random_state": "-20"}, False,
         params=TWO_INTS, max_trials=25, differ=STOCK_CMAES),
    case(OPTUNA_TEST, "cmaes-one-parameter", "cmaes", {"sigma": "0.2"}, False, params=TWO_INTS[:1], max_trials=5),
    case(OPTUNA_TEST, "random-valid", "random", {"random_state": "10"}, True, params=TWO_INTS, max_trials=23),
    case(OPTUNA_TEST, "random-invalid-name", "random", {"invalid": "invalid"}, False, max_trials=33),
    case(OPTUNA_TEST, "random-random_state--1", "random", {"random_state": "-1"}, False, max_trials=33),
    case(OPTUNA_TEST, "grid-valid", "grid", {"random_state": "10"}, True, params=TWO_INTS[:1], max_trials=5),
    case(OPTUNA_TEST, "grid-invalid-name", "grid", {"invalid": "invalid"}, False, max_trials=33),
    case(OPTUNA_TEST, "grid-random_state--1", "grid", {"random_state": "-1"}, False, max_trials=10),
    case(OPTUNA_TEST, "grid-double-without-step", "grid", {"random_state": "1"}, False,
         params=[p("param-1", "double", "1", "5")], max_trials=26),
    case(OPTUNA_TEST, "grid-max_trial_count-above-the-grid", "grid", {"random_state": "1"}, False,
         params=[p("param-1", "int", "1", "5"), p("param-2", "double", "1", "5", "1")], max_trials=26),
    # -- test_hyperopt_service.py::test_validate_algorithm_settings ---------------------------
    case(HYPEROPT_TEST, "tpe-valid", "tpe",
         {"random_state": "10", "gamma": "0.25", "prior_weight": "1.0", "n_EI_candidates": "24"}, True),
    case(HYPEROPT_TEST, "unknown-algorithm-name", "unknown", {}, False),
    case(HYPEROPT_TEST, "random-unknown-setting", "random", {"unknown_conf": "1111"}, False),
    case(HYPEROPT_TEST, "tpe-gamma-1.5", "tpe", {"gamma": "1.5"}, False),
    case(HYPEROPT_TEST, "tpe-n_EI_candidates-0", "tpe", {"n_EI_candidates": "0"}, False),
    case(HYPEROPT_TEST, "tpe-random_state--1", "tpe", {"random_state": "-1"}, False),
    case(HYPEROPT_TEST, "tpe-prior_weight-aaa", "tpe", {"prior_weight": "aaa"}, False),
    # -- hyperopt's service.py (the stock tpe and random) ------------------------------------
    case(HYPEROPT, "tpe-gamma-1", "tpe", {"gamma": "1"}, False),
    case(HYPEROPT, "tpe-prior_weight-0", "tpe", {"prior_weight": "0"}, False),
    case(HYPEROPT, "tpe-n_startup_trials", "tpe", {"n_startup_trials": "5"}, False,
         differ="tpe takes Optuna's settings too (Katib's optuna service serves tpe as well): we run Optuna's TPE"),
    # -- test_skopt_service.py::test_validate_algorithm_settings ----------------------------
    case(SKOPT_TEST, "valid", "bayesianoptimization", {"random_state": "10"}, True),
    case(SKOPT_TEST, "unknown-algorithm-name", "unknown", {}, False),
    case(SKOPT_TEST, "unknown-setting", "bayesianoptimization", {"unknown_conf": "1111"}, False),
    case(SKOPT_TEST, "base_estimator-unknown", "bayesianoptimization", {"base_estimator": "unknown estimator"}, False),
    case(SKOPT_TEST, "n_initial_points--1", "bayesianoptimization", {"n_initial_points": "-1"}, False),
    case(SKOPT_TEST, "acq_func-unknown", "bayesianoptimization", {"acq_func": "unknown"}, False),
    case(SKOPT_TEST, "acq_optimizer-unknown", "bayesianoptimization", {"acq_optimizer": "unknown"}, False),
    case(SKOPT_TEST, "random_state--1", "bayesianoptimization", {"random_state": "-1"}, False),
    # -- skopt's service.py: every value it lists -------------------------------------------
    *[case(SKOPT, f"base_estimator-{v}", "bayesianoptimization", {"base_estimator": v}, True)
      for v in ("GP", "RF", "ET", "GBRT")],
    *[case(SKOPT, f"acq_func-{v}", "bayesianoptimization", {"acq_func": v}, True)
      for v in ("gp_hedge", "LCB", "EI", "PI", "EIps", "PIps")],
    *[case(SKOPT, f"acq_optimizer-{v}", "bayesianoptimization", {"acq_optimizer": v}, True)
      for v in ("auto", "sampling", "lbfgs")],
    case(SKOPT, "n_initial_points-0", "bayesianoptimization", {"n_initial_points": "0"}, True),
    # -- optuna's service.py: the stock multivariate-tpe and grid --------------------------
    case(OPTUNA, "multivariate-tpe-gamma", "multivariate-tpe", {"gamma": "0.25"}, False,
         differ="multivariate-tpe also takes hyperopt's gamma and prior_weight, as tpe does (both are Optuna's TPE here)"),
    case(OPTUNA, "grid-max_trial_count-equal-to-the-grid", "grid", {}, True,
         params=[p("param-1", "int", "1", "5"), p("param-2", "double", "1", "5", "1")], max_trials=25),
    case(OPTUNA, "grid-double-step-counted-as-np.arange", "grid", {}, True,
         params=[p("param-1", "double", "0.1", "0.3", "0.1"), p("param-2", "discrete", values=["1", "2"])], max_trials=6),
    case(OPTUNA, "grid-int-step", "grid", {}, False, params=[p("param-1", "int", "1", "10", "3")], max_trials=5),
    # -- goptuna's service.go and converter.go (the stock cmaes and sobol) ----------------
    case(GOPTUNA, "cmaes-unknown-setting-ignored", "cmaes", {"unknown": "1"}, True, params=TWO_INTS),
    case(GOPTUNA, "cmaes-restart_strategy-bipop", "cmaes", {"restart_strategy": "bipop"}, True, params=TWO_INTS),
    case(GOPTUNA, "cmaes-restart_strategy-none", "cmaes", {"restart_strategy": "none"}, True, params=TWO_INTS),
    case(GOPTUNA, "cmaes-restart_strategy-None", "cmaes", {"restart_strategy": "None"}, False, params=TWO_INTS),
    case(GOPTUNA, "cmaes-random_state-negative", "cmaes", {"random_state": "-1"}, True, params=TWO_INTS),
    case(GOPTUNA, "cmaes-random_state-not-an-integer", "cmaes", {"random_state": "1.5"}, False, params=TWO_INTS),
    case(GOPTUNA, "cmaes-sigma-not-a-number", "cmaes", {"sigma": "abc"}, False, params=TWO_INTS),
    case(GOPTUNA, "cmaes-sigma-negative", "cmaes", {"sigma": "-1"}, True, params=TWO_INTS,
         differ="Optuna's CMA-ES needs a positive sigma; goptuna takes any number and fails later"),
    case(GOPTUNA, "cmaes-one-numeric-and-a-list", "cmaes", {}, False,
         params=[TWO_INTS[0], p("param-3", "categorical", values=["a", "b"])]),
    case(GOPTUNA, "cmaes-an-int-and-a-discrete", "cmaes", {}, False,
         params=[TWO_INTS[0], p("param-3", "discrete", values=["1", "2"])]),
    case(GOPTUNA, "sobol-no-settings", "sobol", {}, True, params=TWO_INTS),
    case(GOPTUNA, "sobol-unknown-setting-ignored", "sobol", {"random_state": "1", "anything": "x"}, True,
         params=TWO_INTS),
    # -- hyperband's service.py ValidateAlgorithmSettings -----------------------------------
    *[case(HYPERBAND, label, "hyperband", settings, valid, params=[p("x", "double", "0", "1"), p("epochs", "int", "1", "9")],
           parallel=parallel, differ=differ)
      for label, settings, parallel, valid, differ in [
          ("valid", {"r_l": "9", "resource_name": "epochs"}, 9, True, None),
          ("r_l-missing", {"resource_name": "epochs"}, 9, False, None),
          ("resource_name-missing", {"r_l": "9"}, 9, False, None),
          ("r_l-not-a-number", {"r_l": "abc", "resource_name": "epochs"}, 9, False, None),
          ("r_l-negative", {"r_l": "-1", "resource_name": "epochs"}, 9, False, None),
          ("r_l-0-log-of-zero", {"r_l": "0", "resource_name": "epochs"}, 9, False, None),
          ("resource_name-not-a-parameter", {"r_l": "9", "resource_name": "steps"}, 9, False, None),
          ("unknown-setting-ignored", {"r_l": "9", "resource_name": "epochs", "anything": "x"}, 9, True, None),
          ("eta-0-is-3", {"r_l": "9", "resource_name": "epochs", "eta": "0"}, 9, True, None),
          ("eta-negative-is-3", {"r_l": "9", "resource_name": "epochs", "eta": "-2"}, 9, True, None),
          ("eta-1-divides-by-log-1", {"r_l": "9", "resource_name": "epochs", "eta": "1"}, 9, False, None),
          ("eta-not-a-number", {"r_l": "9", "resource_name": "epochs", "eta": "abc"}, 9, False, None),
          ("eta-1.5-truncated-to-1", {"r_l": "9", "resource_name": "epochs", "eta": "1.5"}, 9, False,
           "Katib's validator truncates eta to 1 and divides by log 1; eta = 1.5 is a fine halving rate here"),
          ("eta-0.5", {"r_l": "9", "resource_name": "epochs", "eta": "0.5"}, 9, True,
           "Katib checks it as eta = 3 and then plans with 0.5, which gives no bracket; refused here"),
          ("r_l-0.5", {"r_l": "0.5", "resource_name": "epochs"}, 1, True,
           "Katib plans one trial on int(0.5) = 0 epochs; we ask for r_l >= 1"),
      ]],
    case(HYPERBAND, "resource-a-categorical-parameter", "hyperband", {"r_l": "9", "resource_name": "epochs"}, True,
         params=[p("x", "double", "0", "1"), p("epochs", "categorical", values=["1", "3", "9"])], parallel=9,
         differ="the resource is written as a number; a list parameter cannot take it"),
    case(HYPERBAND, "nothing-searched-but-the-resource", "hyperband", {"r_l": "9", "resource_name": "epochs"}, True,
         params=[p("epochs", "int", "1", "9")], parallel=9,
         differ="every configuration would be the same one; refused here"),
    # -- pbt's service.py ValidateAlgorithmSettings -----------------------------------------
    *[case(PBT, label, "pbt", settings, valid, params=[p("lr", "double", "0.01", "0.1")], differ=differ)
      for label, settings, valid, differ in [
          ("valid", {"suggestion_trial_dir": "/var/log/katib/checkpoints/", "n_population": "5",
                     "truncation_threshold": "0.2"}, True, None),
          ("suggestion_trial_dir-missing", {"n_population": "5", "truncation_threshold": "0.2"}, False, None),
          ("n_population-missing", {"suggestion_trial_dir": "/c", "truncation_threshold": "0.2"}, False, None),
          ("truncation_threshold-missing", {"suggestion_trial_dir": "/c", "n_population": "5"}, False, None),
          ("n_population-4", {"suggestion_trial_dir": "/c", "n_population": "4", "truncation_threshold": "0.2"},
           False, None),
          ("n_population-not-an-integer", {"suggestion_trial_dir": "/c", "n_population": "5.5",
                                           "truncation_threshold": "0.2"}, False, None),
          ("truncation_threshold-1.5", {"suggestion_trial_dir": "/c", "n_population": "5",
                                        "truncation_threshold": "1.5"}, False, None),
          ("truncation_threshold-0", {"suggestion_trial_dir": "/c", "n_population": "5",
                                      "truncation_threshold": "0"}, True, None),
          ("unknown-setting-ignored", {"suggestion_trial_dir": "/c", "n_population": "5",
                                       "truncation_threshold": "0.2", "anything": "x"}, True, None),
          ("resample_probability", {"suggestion_trial_dir": "/c", "n_population": "5", "truncation_threshold": "0.2",
                                    "resample_probability": "0.5"}, False,
           "Katib's validator compares the setting's text with numbers, which raises, for every value"),
          ("suggestion_trial_dir-relative", {"suggestion_trial_dir": "checkpoints", "n_population": "5",
                                             "truncation_threshold": "0.2"}, True,
           "the directory is mapped into each trial's folder: it must be an absolute path, as in Katib's examples"),
      ]],
]

ENAS_CASES = [
    (label, settings, valid, differ) for label, settings, valid, differ in [
        ("defaults", {}, True, None),
        ("every-setting", {"controller_hidden_size": "64", "controller_temperature": "5.0",
                           "controller_tanh_const": "2.25", "controller_entropy_weight": "1e-5",
                           "controller_baseline_decay": "0.999", "controller_learning_rate": "5e-5",
                           "controller_skip_target": "0.4", "controller_skip_weight": "0.8",
                           "controller_train_steps": "50", "controller_log_every_steps": "10"}, True, None),
        ("unknown-setting", {"anything": "x"}, False, None),
        ("controller_hidden_size-0", {"controller_hidden_size": "0"}, False, None),
        ("controller_hidden_size-not-an-integer", {"controller_hidden_size": "1.5"}, False, None),
        ("controller_temperature-None", {"controller_temperature": "None"}, True, None),
        ("controller_temperature-0", {"controller_temperature": "0"}, False, None),
        ("controller_entropy_weight-0", {"controller_entropy_weight": "0"}, False, None),
        ("controller_entropy_weight-None", {"controller_entropy_weight": "None"}, True, None),
        ("controller_baseline_decay-0", {"controller_baseline_decay": "0"}, False, None),
        ("controller_baseline_decay-1", {"controller_baseline_decay": "1"}, True, None),
        ("controller_baseline_decay-None", {"controller_baseline_decay": "None"}, False, None),
        ("controller_learning_rate-1", {"controller_learning_rate": "1"}, True, None),
        ("controller_learning_rate-1.5", {"controller_learning_rate": "1.5"}, False, None),
        ("controller_skip_weight-0", {"controller_skip_weight": "0"}, False, None),
        ("controller_train_steps-0", {"controller_train_steps": "0"}, False, None),
        ("controller_skip_target-1", {"controller_skip_target": "1"}, True,
         "a skip target of 1 puts log(0) in the skip penalty: Katib's controller trains on NaN; refused here"),
        ("random_state", {"random_state": "1"}, False,
         "random_state is ours (reproducible controllers); Katib's enas knows no such setting"),
    ]
]

DARTS_CASES = [
    # test_darts_service.py::test_validate_algorithm_spec
    (DARTS_TEST, "valid", {"num_epoch": "10", "w_lr": "0.01", "w_lr_min": "0.01", "alpha_lr": "0.01",
                           "w_weight_decay": "0.25", "alpha_weight_decay": "0.25", "w_momentum": "0.9",
                           "w_grad_clip": "5.0", "batch_size": "100", "num_workers": "0", "init_channels": "1",
                           "print_step": "100", "num_nodes": "4", "stem_multiplier": "3"}, True),
    (DARTS_TEST, "num_epochs-0", {"num_epochs": "0"}, False),
    (DARTS_TEST, "w_lr--0.1", {"w_lr": "-0.1"}, False),
    (DARTS_TEST, "alpha_weight_decay--0.02", {"alpha_weight_decay": "-0.02"}, False),
    (DARTS_TEST, "w_momentum--0.8", {"w_momentum": "-0.8"}, False),
    (DARTS_TEST, "batch_size-0", {"batch_size": "0"}, False),
    (DARTS_TEST, "batch_size-None", {"batch_size": "None"}, True),
    (DARTS_TEST, "print_step-0", {"print_step": "0"}, False),
    # darts' service.py validate_algorithm_settings
    (DARTS, "unknown-setting-ignored", {"anything": "x"}, True),
    (DARTS, "num_workers--1", {"num_workers": "-1"}, False),
    (DARTS, "w_grad_clip-0", {"w_grad_clip": "0"}, True),
    (DARTS, "init_channels-not-an-integer", {"init_channels": "abc"}, False),
]

NAS = yaml.safe_load("""
graphConfig: {numLayers: 3, inputSizes: [8, 8, 1], outputSizes: [10]}
operations:
  - operationType: separable_convolution
    parameters:
      - {name: filter_size, parameterType: categorical, feasibleSpace: {list: ["3", "5"]}}
      - {name: num_filter, parameterType: categorical, feasibleSpace: {list: ["16"]}}
      - {name: stride, parameterType: categorical, feasibleSpace: {list: ["1"]}}
  - operationType: max_pooling
    parameters:
      - {name: filter_size, parameterType: categorical, feasibleSpace: {list: ["3"]}}
""")


def verdict(algorithm: str, settings: dict[str, str], params: list, max_trials: int, parallel: int,
            nas: bool = False) -> tuple[bool, list]:
    """Whether our validation of the algorithm accepts the experiment, and its errors."""
    doc = experiment(algorithm={"algorithmName": algorithm,
                                "algorithmSettings": [{"name": k, "value": v} for k, v in settings.items()]},
                     maxTrialCount=max_trials, parallelTrialCount=parallel)
    if nas:
        del doc["spec"]["parameters"]
        doc["spec"]["nasConfig"] = NAS
    else:
        doc["spec"]["parameters"] = params
    try:
        alg = get_algorithm(algorithm)
    except KatibError as exc:
        return False, [exc]
    errors = alg.validate(apply_defaults(parse_experiment(doc)))
    return not errors, errors


@pytest.mark.parametrize(("algorithm", "settings", "params", "max_trials", "parallel", "valid"), CASES)
def test_validate_algorithm_settings(algorithm, settings, params, max_trials, parallel, valid):
    ok, errors = verdict(algorithm, settings, params, max_trials, parallel)
    assert ok is valid, errors


@pytest.mark.parametrize(
    ("settings", "valid"),
    [pytest.param(s, v, id=f"{ENAS}:{label}", marks=[pytest.mark.xfail(strict=True, reason=d)] if d else [])
     for label, s, v, d in ENAS_CASES],
)
def test_enas_settings(settings, valid):
    pytest.importorskip("torch")
    ok, errors = verdict("enas", settings, [], 10, 1, nas=True)
    assert ok is valid, errors


@pytest.mark.parametrize(("settings", "valid"), [pytest.param(s, v, id=f"{src}:{label}") for src, label, s, v in DARTS_CASES])
def test_darts_settings(settings, valid):
    ok, errors = verdict("darts", settings, [], 1, 1, nas=True)
    assert ok is valid, errors


@pytest.mark.parametrize(
    ("algorithm", "name", "bound", "settings", "nas"),
    [
        ("tpe", "n_ei_candidates", 10_000, {}, False),
        ("tpe", "n_EI_candidates", 10_000, {}, False),
        ("multivariate-tpe", "n_ei_candidates", 10_000, {}, False),
        ("pbt", "n_population", 1000, {"suggestion_trial_dir": "/c", "truncation_threshold": "0.2"}, False),
        ("enas", "controller_hidden_size", 512, {}, True),
        ("enas", "controller_train_steps", 1000, {}, True),
    ],
)
def test_size_settings_are_bounded(algorithm, name, bound, settings, nas):
    """Ours, not Katib's: the algorithms run in the server, so a size-like setting has an
    upper bound (docs/security.md, "Bounded work per request"); the bound itself is fine."""
    if nas:
        pytest.importorskip("torch")
    params = [p("x", "double", "0", "1"), p("y", "double", "0", "1")]
    ok, errors = verdict(algorithm, {**settings, name: str(bound)}, params, 10, 1, nas=nas)
    assert ok, errors
    ok, errors = verdict(algorithm, {**settings, name: str(bound + 1)}, params, 10, 1, nas=nas)
    assert not ok
    assert any(name in str(e) and f"must be <= {bound}" in str(e) for e in errors), errors


def test_darts_hands_unknown_settings_to_the_trial():
    """test_darts_service.py::test_get_suggestion: the trial's algorithm-settings hold the
    experiment's settings, ``num_epoch`` (no DARTS setting) included, as Katib passes them."""
    from nas import parse_katib_text

    doc = experiment(algorithm={"algorithmName": "darts", "algorithmSettings": [{"name": "num_epoch", "value": "10"}]},
                     maxTrialCount=1, parallelTrialCount=1)
    del doc["spec"]["parameters"]
    doc["spec"]["nasConfig"] = {"graphConfig": {"numLayers": 3}, "operations": [
        {"operationType": "separable_convolution", "parameters": [
            {"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": ["3", "5"]}}]}]}
    exp = apply_defaults(parse_experiment(doc))
    (got,) = get_algorithm("darts").suggest(exp, [], 1)
    assert parse_katib_text(got.parameters["algorithm-settings"])["num_epoch"] == "10"
    assert parse_katib_text(got.parameters["search-space"]) == ["separable_convolution_3x3", "separable_convolution_5x5"]
    assert got.parameters["num-layers"] == "3"
