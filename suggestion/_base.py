"""The algorithm seam: what every suggestion algorithm implements.

An algorithm is asked two things. ``validate(experiment)`` returns every problem with its
settings or with the search space it is given (each a ``FieldError`` naming the field),
before the first trial runs. ``suggest(experiment, trials, count)`` returns up to
``count`` new assignments, given *all* the experiment's trials so far, pending and running
ones included, so parallel proposals never repeat a point. It may return fewer than
``count``: either nothing more can come *now* (hyperband waits for a rung to finish) or
ever; ``exhausted(experiment, trials, state)`` says which. When it is exhausted the
experiment ends with ``ExperimentSuggestionEndReached`` once its running trials finish.

Algorithms are stateless between calls: whatever they need is rebuilt from ``trials``
(and from ``state``, a JSON-able dict the controller persists for the few algorithms that
need more), so a restarted process carries on where it stopped.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from katib.errors import FieldError
from katib.spec import Experiment

# Trial states an algorithm sees (Katib's trial condition types).
ACTIVE_STATES = frozenset({"Created", "Running"})
COMPLETED_STATES = frozenset({"Succeeded", "Failed", "Killed", "EarlyStopped", "MetricsUnavailable"})
# The label on a trial that starts from another trial's checkpoint (PBT's exploit step).
CHECKPOINT_FROM_LABEL = "katib.kubeflow.org/checkpoint-from"


@dataclass(frozen=True)
class TrialView:
    """What an algorithm knows of one trial.

    ``objective`` is the primary objective's value (per its metric strategy); ``values``
    holds every objective's value, primary first, when the experiment has several;
    ``violations`` how far each constraint is broken (0: it holds).
    """

    name: str
    parameters: dict[str, str]
    state: str
    objective: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    values: tuple[float, ...] | None = None
    violations: tuple[float, ...] = ()
    # the trial's labels (an algorithm's own, such as PBT's generation, and ours) and its
    # start and end (epoch seconds), as Katib's controller sends them to a service
    labels: dict[str, str] = field(default_factory=dict)
    start_time: float | None = None
    completion_time: float | None = None


def best_and_latest(values: Sequence[float], half: int) -> list[int]:
    """The indices (in order) of at most ``2 * half`` of ``values``: the ``half`` lowest and
    the ``half`` latest others; all of them when there are no more. What a surrogate whose
    cost grows with the history learns from."""
    if len(values) <= 2 * half:
        return list(range(len(values)))
    best = set(sorted(range(len(values)), key=values.__getitem__)[:half])
    latest = [i for i in range(len(values) - 1, -1, -1) if i not in best][:half]
    return sorted(best | set(latest))


@dataclass
class Assignment:
    """One proposal: parameter values as Katib strings, optionally a name and labels."""

    parameters: dict[str, str]
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Setting:
    """One algorithm setting: its parser (raises ValueError with a reason) and default."""

    parse: Callable[[str], Any]
    default: Any = None


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An integer setting in ``[minimum, maximum]`` (either end open when None). An upper
    bound keeps a tenant's setting from making one suggestion cost the server unbounded
    time or memory (docs/security.md, "Bounded work per request")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"must be an integer (got {text!r})") from None
        if minimum is not None and value < minimum:
            raise ValueError(f"must be >= {minimum} (got {value})")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be <= {maximum} (got {value})")
        return value

    return parse


def seed(text: str) -> int:
    """A ``random_state``: numpy's ``RandomState`` takes 0 to 2**32 - 1, and Katib's hyperopt,
    optuna and skopt services fail on a larger one (here it wrapped to a smaller seed)."""
    return integer(0, 2**32 - 1)(text)


def number(low: float | None = None, high: float | None = None, low_open: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"must be a number (got {text!r})") from None
        if not math.isfinite(value):
            raise ValueError(f"must be finite (got {text!r})")
        if low is not None and (value <= low if low_open else value < low):
            raise ValueError(f"must be {'>' if low_open else '>='} {low:g} (got {text})")
        if high is not None and value > high:
            raise ValueError(f"must be <= {high:g} (got {text})")
        return value

    return parse


def choice(*allowed: str, rejected: dict[str, str] | None = None) -> Callable[[str], str]:
    """One of ``allowed``; ``rejected`` maps known-but-unsupported values to the reason."""

    def parse(text: str) -> str:
        if text in allowed:
            return text
        if rejected and text in rejected:
            raise ValueError(f"{text!r} is not supported: {rejected[text]}")
        raise ValueError(f"must be one of {', '.join(allowed)} (got {text!r})")

    return parse


def check_settings(path: str, given: Sequence[Any] | None, known: dict[str, Setting], owner: str,
                   ignore_unknown: bool = False) -> list[FieldError]:
    """Every unknown setting name (unless ``ignore_unknown``) and unparsable value among
    ``given`` (``{name, value}``)."""
    errors: list[FieldError] = []
    for i, s in enumerate(given or []):
        where = f"{path}[{i}]"
        if s.name not in known:
            if ignore_unknown:
                continue
            names = ", ".join(sorted(known)) or "none"
            errors.append(FieldError(f"{where}.name", f"unknown setting {s.name!r} for {owner} (known: {names})"))
            continue
        try:
            known[s.name].parse(s.value or "")
        except ValueError as exc:
            errors.append(FieldError(f"{where}.value", f"{s.name} {exc}"))
    return errors


def resolve_settings(given: dict[str, str], known: dict[str, Setting]) -> dict[str, Any]:
    """Every known setting's value, parsed, defaults filled in."""
    return {name: (s.parse(given[name]) if name in given else s.default) for name, s in known.items()}


class Algorithm(ABC):
    """Base class of every suggestion algorithm; see the module docstring for the contract."""

    #: Katib's algorithm name, e.g. ``"random"``.
    name: ClassVar[str]
    #: The settings this algorithm accepts, by Katib name.
    settings: ClassVar[dict[str, Setting]] = {}
    #: Whether a setting it does not know is ignored (as Katib's service for it does) rather than refused.
    ignores_unknown_settings: ClassVar[bool] = False
    #: Whether it can optimise several objectives at once (``additionalObjectives``).
    multi_objective: ClassVar[bool] = False
    #: Whether it searches ``nasConfig`` spaces (ENAS, DARTS) instead of ``parameters``.
    searches_nas: ClassVar[bool] = False
    #: Whether it names its trials in a plan of its own (hyperband's brackets, PBT's
    #: generations), so that a user's retry of one would fall outside the plan.
    plans_trials: ClassVar[bool] = False

    def request_errors(self, experiment: Experiment) -> list[FieldError]:
        """What a gRPC ``GetSuggestions`` request is still refused for. Katib's services
        check their settings in ``ValidateAlgorithmSettings`` only (the controller calls it
        once, before asking); by default every rule of ``validate`` applies here too. An
        algorithm whose ``suggest`` works without some of them says so, keeping what
        bounds the cost of a suggestion."""
        return self.validate(experiment)

    def validate(self, experiment: Experiment) -> list[FieldError]:
        """Problems with the settings or the search space; an empty list when fine."""
        algorithm = experiment.spec.algorithm
        errors = check_settings("spec.algorithm.algorithmSettings", algorithm.algorithm_settings if algorithm else None,
                                self.settings, f"algorithm {self.name}", self.ignores_unknown_settings)
        objective = experiment.spec.objective
        if objective is not None and objective.additional_objectives and not self.multi_objective:
            errors.append(FieldError(
                "spec.objective.additionalObjectives",
                f"the {self.name} algorithm optimises one objective; for several use tpe, "
                "multivariate-tpe, random, grid or sobol",
            ))
        if experiment.spec.nas_config is not None and not self.searches_nas:
            errors.append(FieldError("spec.nasConfig", f"the {self.name} algorithm searches parameters; for nasConfig use enas or darts"))
        if experiment.spec.nas_config is None and self.searches_nas:
            errors.append(FieldError("spec.nasConfig", f"the {self.name} algorithm needs spec.nasConfig (not parameters)"))
        return errors

    def checkpoint_dir(self, experiment: Experiment) -> str | None:
        """The absolute path where this algorithm's trials keep their checkpoint (Katib's
        ``suggestion_trial_dir`` setting), mapped by the controller into each trial's own
        checkpoint folder; None when its trials keep none. A trial whose assignment carries
        ``CHECKPOINT_FROM_LABEL`` starts from a copy of the named trial's checkpoint."""
        settings = experiment.spec.algorithm.settings() if experiment.spec.algorithm else {}
        return settings.get("suggestion_trial_dir") or None

    def parsed_settings(self, experiment: Experiment) -> dict[str, Any]:
        """Every setting's value, defaults filled in (call after ``validate``)."""
        return resolve_settings(experiment.spec.algorithm.settings() if experiment.spec.algorithm else {}, self.settings)

    def exhausted(
        self, experiment: Experiment, trials: Sequence[TrialView], state: dict[str, Any] | None = None
    ) -> bool:
        """Whether no new assignment can ever come. By default: a finite space whose every
        point has been proposed."""
        from ._space import SearchSpace

        space = SearchSpace.from_experiment(experiment)
        if space.infinite:
            return False
        return len({space.key(t.parameters) for t in trials}) >= space.size()

    @abstractmethod
    def suggest(
        self,
        experiment: Experiment,
        trials: Sequence[TrialView],
        count: int,
        state: dict[str, Any] | None = None,
    ) -> list[Assignment]:
        """Up to ``count`` new assignments (see ``exhausted`` when there are fewer)."""
