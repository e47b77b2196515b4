"""Population based training (Jaderberg et al., 2017), with Katib's settings.

Each trial trains for a while from its parent's checkpoint and reports its score. When a
trial finishes, it is *expanded* into one successor: if it ranks in the bottom
``truncation_threshold`` of the population, the successor copies a top-ranked trial
(exploit) instead; either way the successor's parameters are the copied ones perturbed
(explore: numbers times 0.8 or 1.2, lists to a neighbouring value) or, with probability
``resample_probability``, drawn afresh. The successor starts from the copied trial's
checkpoint: its label ``katib.kubeflow.org/checkpoint-from`` names that trial, and the
controller copies that trial's checkpoint directory into the successor's before it runs.

Trials are named by the algorithm and carry ``pbt.suggestion.katib.kubeflow.org/generation``
and ``…/parent`` labels, as in Katib. The population's bookkeeping lives in the algorithm
state the controller persists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from katib.errors import FieldError
from katib.spec import Experiment, new_trial_name

from ._base import (
    CHECKPOINT_FROM_LABEL,
    Algorithm,
    Assignment,
    Setting,
    TrialView,
    integer,
    number,
    seed,
)
from ._space import Dimension, SearchSpace

GENERATION_LABEL = "pbt.suggestion.katib.kubeflow.org/generation"
PARENT_LABEL = "pbt.suggestion.katib.kubeflow.org/parent"
DEFAULT_TRIAL_DIR = "/var/log/katib/checkpoints/"


class PBT(Algorithm):
    """Population based training; see the module docstring."""

    name = "pbt"
    plans_trials = True
    ignores_unknown_settings = True  # as Katib's service
    #: Katib's service refuses an experiment without them.
    required = ("suggestion_trial_dir", "n_population", "truncation_threshold")
    settings = {
        "suggestion_trial_dir": Setting(str, DEFAULT_TRIAL_DIR),
        "n_population": Setting(integer(5, 1000), 40),  # bounded: the server keeps the population
        "truncation_threshold": Setting(number(0, 1), 0.2),
        "resample_probability": Setting(number(0, 1), 0.0),
        "random_state": Setting(seed),
    }

    def checkpoint_dir(self, experiment: Experiment) -> str | None:
        return super().checkpoint_dir(experiment) or DEFAULT_TRIAL_DIR

    def validate(self, experiment: Experiment) -> list[FieldError]:
        errors = super().validate(experiment)
        given = experiment.spec.algorithm.settings() if experiment.spec.algorithm else {}
        missing = [k for k in self.required if k not in given]
        if missing:
            errors.append(FieldError("spec.algorithm.algorithmSettings", f"pbt needs the settings {', '.join(missing)}"))
        if "suggestion_trial_dir" in given and not given["suggestion_trial_dir"].startswith("/"):
            errors.append(FieldError("spec.algorithm.algorithmSettings",
                                     f"suggestion_trial_dir must be an absolute path (got {given['suggestion_trial_dir']!r})"))
        return errors

    def exhausted(self, experiment: Experiment, trials: Sequence[TrialView], state: dict[str, Any] | None = None) -> bool:
        return False  # a population can always train on; maxTrialCount ends it

    def suggest(
        self,
        experiment: Experiment,
        trials: Sequence[TrialView],
        count: int,
        state: dict[str, Any] | None = None,
    ) -> list[Assignment]:
        state = {} if state is None else state
        generation: dict[str, int] = state.setdefault("generation", {})
        expanded: list[str] = state.setdefault("expanded", [])
        s = self.parsed_settings(experiment)
        rng = np.random.default_rng(None if s["random_state"] is None else [s["random_state"], len(trials)])
        space = SearchSpace.from_experiment(experiment)
        maximize = experiment.spec.objective is not None and experiment.spec.objective.type == "maximize"
        out: list[Assignment] = []

        founders = sum(1 for g in generation.values() if g == 0)
        while len(out) < count and founders < s["n_population"]:
            out.append(self._new(experiment, state, space.sample(rng), 0, None, None))
            founders += 1

        # The population: the newest n_population scored members.
        scored = [t for t in trials if t.state in ("Succeeded", "EarlyStopped") and t.objective is not None]
        scored = scored[-s["n_population"]:]
        ranked = sorted(scored, key=lambda t: t.objective, reverse=maximize)  # type: ignore[arg-type, return-value]
        cut = max(1, int(math.ceil(len(ranked) * s["truncation_threshold"])))
        top, bottom = ranked[:cut], {t.name for t in ranked[-cut:]} if len(ranked) > cut else set()
        done = set(expanded)
        finished = [t for t in trials if t.state not in ("Created", "Running") and t.name not in done]
        for t in finished:
            if len(out) >= count:
                break
            expanded.append(t.name)
            if t.objective is None:  # a failed member is replaced by a copy of a good one
                source = top[int(rng.integers(len(top)))] if top else None
            elif t.name in bottom and top:
                source = top[int(rng.integers(len(top)))]
            else:
                source = t
            if source is None:
                params = space.sample(rng)
                out.append(self._new(experiment, state, params, generation.get(t.name, 0) + 1, t.name, None))
                continue
            params = {d.name: self._explore(d, source.parameters[d.name], rng, s["resample_probability"])
                      for d in space.dims}
            out.append(self._new(experiment, state, params, generation.get(t.name, 0) + 1, t.name, source.name))
        return out

    @staticmethod
    def _new(experiment: Experiment, state: dict[str, Any], params: dict[str, str], gen: int,
             parent: str | None, checkpoint_from: str | None) -> Assignment:
        name = new_trial_name(experiment.name, state["generation"])
        state["generation"][name] = gen
        labels = {GENERATION_LABEL: str(gen)}
        if parent:
            labels[PARENT_LABEL] = parent
        if checkpoint_from:
            labels[CHECKPOINT_FROM_LABEL] = checkpoint_from
        return Assignment(params, name=name, labels=labels)

    @staticmethod
    def _explore(d: Dimension, value: str, rng: np.random.Generator, resample: float) -> str:
        if rng.random() < resample:
            return d.sample(rng)
        if d.choices:
            i = d.choices.index(value) if value in d.choices else 0
            if d.categorical:
                return d.choices[int(rng.integers(len(d.choices)))]
            j = min(max(i + int(rng.choice([-1, 1])), 0), len(d.choices) - 1)
            return d.choices[j]
        factor = float(rng.choice([0.8, 1.2]))
        x = min(max(float(value) * factor, d.low), d.high)
        if d.step is not None:
            k = min(max(round((x - d.low) / d.step), 0), int(d.size()) - 1)
            x = d.low + k * d.step
        return d.format(x)
