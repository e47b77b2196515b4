"""Bayesian optimisation: Optuna's ``GPSampler`` for a GP with EI, scikit-learn surrogates
for the rest of Katib's settings."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from katib.errors import FieldError
from katib.spec import Experiment

from ._base import Assignment, Setting, TrialView, choice, integer, seed
from ._optuna import OptunaAlgorithm
from ._space import SearchSpace

# What Optuna's GPSampler (log EI, sampling then L-BFGS-B) covers; the rest runs on
# scikit-learn surrogates (``_skbo``).
OPTUNA_PATH = {"base_estimator": ("GP",), "acq_func": ("gp_hedge", "EI"), "acq_optimizer": ("auto", "lbfgs")}


class BayesianOptimization(OptunaAlgorithm):
    """Bayesian optimisation with Katib's settings (scikit-optimize's, in Katib).

    ``base_estimator`` (``GP``, Katib's default, or the tree ensembles ``RF``, ``ET``,
    ``GBRT``), ``n_initial_points`` (random trials first, default 10), ``acq_func``
    (``gp_hedge``, Katib's default, ``EI``, ``LCB``, ``PI``, ``EIps``, ``PIps``),
    ``acq_optimizer`` (``auto``, ``sampling``, ``lbfgs``) and ``random_state``.

    A GP with ``gp_hedge`` or ``EI`` (optimised by ``auto`` or ``lbfgs``) is Optuna's
    ``GPSampler``: Matern-5/2, log expected improvement, sampling then L-BFGS-B; it needs
    PyTorch. Everything else is fitted with scikit-learn and its acquisition optimised over
    sampled points (see ``_skbo``): ``gp_hedge`` there is EI, and ``EIps``/``PIps`` are EI/PI
    (no trial reports its time).
    """

    name = "bayesianoptimization"
    settings = {
        "base_estimator": Setting(choice("GP", "RF", "ET", "GBRT"), "GP"),
        "n_initial_points": Setting(integer(0), 10),
        "acq_func": Setting(choice("gp_hedge", "LCB", "EI", "PI", "EIps", "PIps"), "gp_hedge"),
        "acq_optimizer": Setting(choice("auto", "sampling", "lbfgs"), "auto"),
        "random_state": Setting(seed),
    }
    # One sampler per study, reseeded per call (its search-space intersection grows with
    # the history instead of being recomputed); the kernel's warm start is in the state.
    _own_state: tuple[tuple[str, str] | None, dict[str, Any]]
    _state: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self._own_state = (None, {})
        self._state = {}

    @staticmethod
    def on_optuna(settings: dict[str, Any]) -> bool:
        """Whether these settings run on Optuna's GPSampler (else on scikit-learn)."""
        return all(settings[k] in allowed for k, allowed in OPTUNA_PATH.items())

    def validate(self, experiment: Experiment) -> list[FieldError]:
        errors = super().validate(experiment)
        if errors:
            return errors
        if self.on_optuna(self.parsed_settings(experiment)):
            if importlib.util.find_spec("torch") is None:
                errors.append(FieldError(
                    "spec.algorithm.algorithmName",
                    "bayesianoptimization with a GP and EI needs PyTorch (Optuna's GPSampler runs on it): "
                    "pip install 'katib[gp]'",
                ))
        elif importlib.util.find_spec("sklearn") is None:
            errors.append(FieldError(
                "spec.algorithm.algorithmSettings",
                "these bayesianoptimization settings run on scikit-learn: pip install 'katib[gp]'",
            ))
        return errors

    def suggest(
        self,
        experiment: Experiment,
        trials: Sequence[TrialView],
        count: int,
        state: dict[str, Any] | None = None,
    ) -> list[Assignment]:
        settings = self.parsed_settings(experiment)
        if self.on_optuna(settings):
            # The kernel's last fit lives in the algorithm state (see ``_gp``); a caller
            # that keeps none gets one per experiment held here.
            if state is None:
                key = (experiment.namespace, experiment.name)
                if self._own_state[0] != key:
                    self._own_state = (key, {})
                state = self._own_state[1]
            self._state = state
            return super().suggest(experiment, trials, count, state)
        from ._skbo import propose

        base = settings["random_state"]
        seed = None if base is None else (base * 1_000_003 + len(trials)) % 2**31
        maximize = experiment.spec.objective is not None and experiment.spec.objective.type == "maximize"
        points = propose(SearchSpace.from_experiment(experiment), trials, count, settings, maximize, seed)
        return [Assignment(p) for p in points]

    def reseed(self, sampler: Any, seed: int | None) -> bool:
        # GPSampler's generator and its random sampler's, as GPSampler(seed=seed) and
        # RandomSampler(seed=seed) seed them.
        sampler._rng.rng.seed(seed)
        sampler._independent_sampler._rng.rng.seed(seed)
        sampler.state = self._state
        return True

    def make_sampler(self, settings: dict[str, Any], seed: int | None, n_params: int) -> Any:
        from optuna.samplers import RandomSampler

        from ._gp import ScheduledGPSampler

        sampler = ScheduledGPSampler(
            seed=seed, n_startup_trials=settings["n_initial_points"],
            independent_sampler=RandomSampler(seed=seed),
        )
        sampler.state = self._state
        return sampler
