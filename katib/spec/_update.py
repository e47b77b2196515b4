"""Katib's rules for editing an existing experiment (its validating webhook's
``ValidateExperiment`` with ``oldInst``, validator.go)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from katib.errors import FieldError

from ._models import ExperimentStatus

EDITABLE = ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount")
RESTART_POLICIES = ("LongRunning", "FromVolume")


def update_errors(old: Mapping[str, Any], new: Mapping[str, Any], status: ExperimentStatus) -> list[FieldError]:
    """Every rule an edit of an existing experiment breaks: ``old`` and ``new`` are the
    defaulted specs (``spec`` as written, camelCase), ``status`` the experiment's now.
    Katib's validating webhook (``ValidateExperiment`` with ``oldInst``, validator.go),
    which checks only when the spec changes:

    - a completed experiment may change only when it is restartable: ``Succeeded`` with
      ``ExperimentMaxTrialsReached`` and ``resumePolicy`` LongRunning or FromVolume
      (``IsCompletedExperimentRestartable``); any edit of another is refused;
    - ``maxTrialCount``, when set, must exceed ``status.trials`` (running or not);
    - only ``parallelTrialCount``, ``maxTrialCount`` and ``maxFailedTrialCount`` change.

    >>> update_errors({"maxTrialCount": 6}, {"maxTrialCount": 6}, ExperimentStatus(trials=6))
    []
    >>> [str(e) for e in update_errors({"maxTrialCount": 6}, {"maxTrialCount": 5}, ExperimentStatus(trials=6))]
    ['spec.maxTrialCount: must be greater than status.trials count (5 <= 6 trials)']
    """
    if dict(old) == dict(new):
        return []
    errors: list[FieldError] = []
    true = {c.type: c for c in status.conditions if c.status == "True"}
    if "Succeeded" in true or "Failed" in true:
        policy = old.get("resumePolicy") or "Never"
        succeeded = true.get("Succeeded")
        if succeeded is None or succeeded.reason != "ExperimentMaxTrialsReached" or policy not in RESTART_POLICIES:
            state = f"Succeeded ({succeeded.reason})" if succeeded is not None else f"Failed ({true['Failed'].reason})"
            errors.append(FieldError(
                "spec.resumePolicy",
                "Experiment can be restarted if it is in succeeded state by reaching max trials and spec.resumePolicy "
                f"= LongRunning or spec.resumePolicy = FromVolume, when experiment is completed (it is {state}, "
                f"resumePolicy {policy})"))
    max_trials = new.get("maxTrialCount")
    if max_trials is not None and max_trials <= status.trials:
        errors.append(FieldError("spec.maxTrialCount",
                                 f"must be greater than status.trials count ({max_trials} <= {status.trials} trials)"))
    fixed = sorted(k for k in set(old) | set(new) if k not in EDITABLE and old.get(k) != new.get(k))
    errors += [FieldError(f"spec.{k}", "cannot be changed on an existing experiment "
                                       "(only parallelTrialCount, maxTrialCount and maxFailedTrialCount can)")
               for k in fixed]
    return errors


__all__ = ["EDITABLE", "RESTART_POLICIES", "update_errors"]
