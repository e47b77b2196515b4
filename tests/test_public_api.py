"""Each package's public names, as users import them."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "katib": {"report_metrics", "KatibError", "ValidationError", "FieldError", "NotFoundError", "NoResultError",
              "ConflictError", "ExperimentFailedError", "TemporaryError", "__version__", "KatibClient", "search", "save_model", "load_model",
              "ExperimentResult"},
    "api": {"ServerLimits", "create_app"},
    "katib.spec": {"Experiment", "Trial", "Suggestion", "admit", "apply_defaults", "validate", "render"},
    "katib.store": {"Store", "TrialRecord", "ExperimentRecord", "ObservationRow"},
    "katib.controller": {"Controller", "ExperimentManager", "admit", "trials_to_create", "end_condition"},
    "suggestion": {"Algorithm", "Assignment", "TrialView", "get_algorithm", "algorithm_names", "get_early_stopper",
                   "EarlyStopper", "RemoteAlgorithm", "serve"},
    "trials": {"Executor", "LocalExecutor", "Collector", "RunState", "TrialJob"},
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_all_lists_the_public_names(module):
    mod = importlib.import_module(module)
    assert PUBLIC[module] <= set(mod.__all__)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is in __all__ but missing"


def test_validate_does_not_import_heavy_modules():
    import subprocess
    import sys

    code = ("import sys, katib.controller, yaml; from tests.conftest import experiment; "
            "katib.controller.admit(experiment()); "
            "print(sorted(m for m in ('torch', 'ray', 'optuna', 'sklearn', 'alembic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
