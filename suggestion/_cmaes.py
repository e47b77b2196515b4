"""CMA-ES: Optuna's ``CmaEsSampler``."""

from __future__ import annotations

from typing import Any

from katib.errors import FieldError
from katib.spec import Experiment

from ._base import Setting, choice, integer, number
from ._optuna import OptunaAlgorithm


class CMAES(OptunaAlgorithm):
    """Covariance Matrix Adaptation Evolution Strategy over the numeric parameters
    (categorical ones are drawn at random alongside).

    Settings: ``random_state``, ``sigma`` (initial step size in the unit cube, default
    1/6), ``restart_strategy`` (``ipop``, ``bipop`` or ``none``). Needs at least two int or
    double parameters, and ignores settings it does not know, as Katib's stock cmaes
    (goptuna) does.
    """

    name = "cmaes"
    ignores_unknown_settings = True
    settings = {
        "random_state": Setting(integer()),
        "sigma": Setting(number(0, low_open=True)),
        "restart_strategy": Setting(choice("ipop", "bipop", "none"), "none"),
    }

    def validate(self, experiment: Experiment) -> list[FieldError]:
        errors = super().validate(experiment)
        numeric = [p for p in experiment.spec.parameters or [] if p.parameter_type in ("int", "double")]
        if len(numeric) < 2:
            errors.append(FieldError("spec.parameters", f"cmaes needs at least 2 int or double parameters (got {len(numeric)})"))
        return errors

    def make_sampler(self, settings: dict[str, Any], seed: int | None, n_params: int) -> Any:
        from optuna.samplers import CmaEsSampler, RandomSampler

        restart = settings["restart_strategy"]
        return CmaEsSampler(
            sigma0=settings["sigma"], seed=seed, restart_strategy=None if restart == "none" else restart,
            independent_sampler=RandomSampler(seed=seed),
        )
