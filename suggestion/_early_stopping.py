"""Early stopping: whether a running trial should stop, from the objective values it has
reported so far and the other trials' curves.

A *curve* is the objective metric's values in the order the trial reported them; step k
is the k-th report (Katib's convention). ``should_stop`` returns a reason (a sentence the
trial's condition will carry) or None to let the trial go on.
"""

from __future__ import annotations

import math
import statistics
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from katib.errors import FieldError
from katib.spec import Experiment

from ._base import Setting, check_settings, integer, number, resolve_settings


@dataclass(frozen=True)
class Curve:
    """One trial's objective values, in report order, and whether it ran to completion
    (Succeeded: early-stopped trials' partial curves are no yardstick).

    ``decided`` is how many of the values a stopper was already asked about (the curve's
    length at the previous call): several reports can arrive between two calls, and a rule
    that decides at given steps decides at each step in between too. ``None``: all but the
    last value.

    ``created`` is when the trial was created and ``ended`` when it ended (seconds since
    the epoch; None: unknown): a rule fixed when a trial is created (Katib's medianstop)
    counts only the trials that had ended by then."""

    name: str
    values: list[float]
    completed: bool
    decided: int | None = None
    created: float | None = None
    ended: float | None = None

    @property
    def new_steps(self) -> range:
        """The steps (1-based) not decided on yet."""
        first = len(self.values) if self.decided is None else self.decided + 1
        return range(max(first, 1), len(self.values) + 1)


class EarlyStopper(ABC):
    """Base class: settings by Katib name, validated like an algorithm's."""

    name: ClassVar[str]
    settings: ClassVar[dict[str, Setting]] = {}

    def validate(self, experiment: Experiment) -> list[FieldError]:
        es = experiment.spec.early_stopping
        return check_settings("spec.earlyStopping.algorithmSettings", es.algorithm_settings if es else None,
                              self.settings, f"early stopping {self.name}")

    def parsed_settings(self, experiment: Experiment) -> dict[str, Any]:
        es = experiment.spec.early_stopping
        return resolve_settings(es.settings() if es else {}, self.settings)

    @abstractmethod
    def should_stop(self, experiment: Experiment, trial: Curve, others: Sequence[Curve]) -> str | None:
        """A reason to stop ``trial`` now, or None."""

    def rules(self, experiment: Experiment, created: float, others: Sequence[Curve]) -> list[dict[str, Any]]:
        """The rules fixed for a trial created at ``created`` (Katib's
        ``Trial.spec.earlyStoppingRules``: ``name``, ``value``, ``comparison``, ``startStep``),
        stored with it; none for a stopper that decides live from the curves."""
        return []


def _maximize(experiment: Experiment) -> bool:
    return experiment.spec.objective is not None and experiment.spec.objective.type == "maximize"


MEDIAN_SETTINGS = {"min_trials_required": Setting(integer(1), 3), "start_step": Setting(integer(1), 4)}


class MedianStop(EarlyStopper):
    """Katib's median stopping rule, as Katib applies it (despite its name, a mean).

    When a trial is created its rule is fixed: the mean, over the trials that had
    succeeded by then, of each one's average over its first ``start_step`` reports; no rule
    while fewer than ``min_trials_required`` had succeeded. At the trial's
    ``start_step``-th report its best value so far is compared with the rule, once:
    strictly worse stops it. (Katib's ``pkg/earlystopping/v1beta1/medianstop/service.py``
    makes the rule, the metrics collector's ``updateStopRules`` applies it.)
    ``medianstop-live`` (``LiveMedianStop``) is the rule with the true median, live.
    """

    name = "medianstop"
    settings = MEDIAN_SETTINGS

    def _rule(self, experiment: Experiment, created: float | None, others: Sequence[Curve]) -> tuple[float, int] | None:
        """The rule's value and how many succeeded trials made it, for a trial created at
        ``created``; None while too few had succeeded."""
        s = self.parsed_settings(experiment)
        start = s["start_step"]
        # Succeeded trials without a report are skipped (Katib's service divides by zero).
        peers = [c for c in others if c.completed and c.values
                 and (created is None or c.ended is None or c.ended <= created)]
        if len(peers) < s["min_trials_required"]:
            return None
        # Summed in order and divided, as Katib's service does, so the verdicts agree to the bit.
        averages = [sum(c.values[:start]) / len(c.values[:start]) for c in peers]
        return sum(averages) / len(averages), len(peers)

    def rules(self, experiment: Experiment, created: float, others: Sequence[Curve]) -> list[dict[str, Any]]:
        found = self._rule(experiment, created, others)
        objective = experiment.spec.objective
        if found is None or objective is None or not objective.objective_metric_name:
            return []
        # Katib's service: value str(mean) ("less" when maximising: a lower value stops).
        return [{"name": objective.objective_metric_name, "value": str(found[0]),
                 "comparison": "less" if _maximize(experiment) else "greater",
                 "startStep": self.parsed_settings(experiment)["start_step"]}]

    def should_stop(self, experiment: Experiment, trial: Curve, others: Sequence[Curve]) -> str | None:
        start = self.parsed_settings(experiment)["start_step"]
        if start not in trial.new_steps:
            return None
        found = self._rule(experiment, trial.created, others)
        if found is None:
            return None
        rule, count = found
        maximize = _maximize(experiment)
        best = max(trial.values[:start]) if maximize else min(trial.values[:start])
        if (best < rule) if maximize else (best > rule):
            return (f"medianstop: best value {best:g} after {start} reports is worse than {rule:g}, the mean "
                    f"over {count} succeeded trials of their average over their first {start} reports")
        return None


class LiveMedianStop(EarlyStopper):
    """The median stopping rule with the true median, decided live (``medianstop-live``).

    Once ``min_trials_required`` trials have succeeded, a running trial that has reported
    at least ``start_step`` values stops when its best value so far is worse than the
    median of the succeeded trials' values at the same step (trials that never reached
    that step are left out; if fewer than ``min_trials_required`` did, it goes on). Unlike
    Katib's ``medianstop`` it is asked again at every report, against the trials that
    have succeeded so far.
    """

    name = "medianstop-live"
    settings = MEDIAN_SETTINGS

    def should_stop(self, experiment: Experiment, trial: Curve, others: Sequence[Curve]) -> str | None:
        s = self.parsed_settings(experiment)
        step = len(trial.values)
        if step < s["start_step"]:
            return None
        peers = [c.values[step - 1] for c in others if c.completed and len(c.values) >= step]
        if len(peers) < s["min_trials_required"]:
            return None
        maximize = _maximize(experiment)
        best = max(trial.values) if maximize else min(trial.values)
        median = statistics.median(peers)
        if (best < median) if maximize else (best > median):
            return (f"medianstop-live: best value {best:g} after {step} reports is worse than the median "
                    f"{median:g} of {len(peers)} succeeded trials at that step")
        return None


class ASHA(EarlyStopper):
    """Asynchronous successive halving (Li et al., 2020), as a stopping rule.

    Rungs sit at steps ``min_resource · reduction_factor^(k + min_early_stopping_rate)``.
    When a trial reaches a rung, it goes on only if its value there is in the top
    ``1 / reduction_factor`` of all trials that reached the rung (at least one always goes
    on); otherwise it stops.
    """

    name = "asha"
    settings = {
        "min_resource": Setting(integer(1), 1),
        "reduction_factor": Setting(number(1.01), 3.0),  # nearer 1, a check walks millions of rungs
        "min_early_stopping_rate": Setting(integer(0, 64), 0),  # bounded: eta**k overflows past it
    }

    def should_stop(self, experiment: Experiment, trial: Curve, others: Sequence[Curve]) -> str | None:
        s = self.parsed_settings(experiment)
        eta, r0 = s["reduction_factor"], s["min_resource"]
        k = s["min_early_stopping_rate"]
        new = trial.new_steps
        rungs = []
        while r0 * eta**k <= len(trial.values):
            rungs.append(int(round(r0 * eta**k)))
            k += 1
        # Decisions happen when a trial reaches a rung: at each rung reached since the last call.
        for rung in sorted(set(rungs)):
            if rung in new:
                reason = self._at_rung(experiment, rung, trial, others, eta)
                if reason:
                    return reason
        return None

    def _at_rung(self, experiment: Experiment, rung: int, trial: Curve, others: Sequence[Curve], eta: float) -> str | None:
        maximize = _maximize(experiment)
        value = trial.values[rung - 1]
        peers = [c.values[rung - 1] for c in others if len(c.values) >= rung] + [value]
        keep = max(1, math.floor(len(peers) / eta))
        ranked = sorted(peers, reverse=maximize)
        if (value < ranked[keep - 1]) if maximize else (value > ranked[keep - 1]):
            return (f"asha: value {value:g} at rung {rung} is outside the top {keep} of "
                    f"{len(peers)} trials that reached it")
        return None
