"""Retrying one trial: a user asks for an ended, unsuccessful trial to run again.

As Ray Tune's ``restart_errored``, the trial's parameters run again; unlike it, the
original keeps its history and its outcome (it still counts as failed), and the retry is a
new trial labelled with what it retries. The request is kept in the store (a label on the
original, written in the step's one transaction), so a controller killed before a slot
frees still makes the retry when it comes back. A retry uses one trial of the budget and
goes before the algorithm's next suggestion.

Refused, with the reason: a trial that is running or succeeded, one already retried, one
whose algorithm names its trials in a plan of its own (hyperband's brackets, PBT's
generations: a retry would fall outside the plan), and any when the budget is spent.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from typing import TYPE_CHECKING

from katib.errors import ConflictError
from katib.spec import EXPERIMENT_LABEL, new_trial_name
from katib.store import TrialRecord

from ._status import FINAL_TRIAL_STATES, mark_trial

if TYPE_CHECKING:
    from ._run import ExperimentRun

#: On the original: "requested" until the retry exists, then the retry's name.
RETRY_LABEL = "katib.kubeflow.org/retried-as"
#: On the retry: the name of the trial it retries.
RETRY_OF_LABEL = "katib.kubeflow.org/retry-of"
REQUESTED = "requested"


def waiting(trials: Iterable[TrialRecord]) -> list[str]:
    """The originals whose retry is asked for and not made yet (as stored), oldest first:
    a restarted controller's queue."""
    asked = [t for t in trials if t.labels.get(RETRY_LABEL) == REQUESTED]
    return [t.name for t in sorted(asked, key=lambda t: (t.completion_time or 0.0, t.name))]


def accept(run: ExperimentRun, name: str, answer: Future[str]) -> None:
    """Check a retry request in the loop's thread and record it, or refuse it."""
    try:
        t = run.trials.get(name)
        if t is None:
            raise ConflictError(f"trial {name} is not a trial of experiment {run.exp.name}")
        if t.state not in FINAL_TRIAL_STATES or t.state == "Succeeded":
            raise ConflictError(f"trial {name} is {t.state}: only a trial that ended without succeeding can be retried")
        done = t.labels.get(RETRY_LABEL)
        if done:
            raise ConflictError(f"trial {name} is already retried" + ("" if done == REQUESTED else f" (as {done})"))
        if run.algorithm.plans_trials:
            raise ConflictError(f"the {run.algorithm.name} algorithm plans its trials by name; "
                                f"a retry of {name} would fall outside its plan")
        limit = run.exp.spec.max_trial_count
        run._settle()
        counts = run.tally.counts(budget=True)
        used = counts.completed + counts.active + len(run.retry_queue)
        if limit is not None and used >= limit:
            raise ConflictError(f"the budget is spent ({used} of maxTrialCount {limit} trials are done, running "
                                f"or asked for): raise spec.maxTrialCount to retry {name}")
    except ConflictError as exc:
        answer.set_exception(exc)
        return
    t.labels = {**t.labels, RETRY_LABEL: REQUESTED}
    run.retry_queue.append(name)
    run._touch(t)
    answer.set_result(name)


def make_retries(run: ExperimentRun, want: int, now: float) -> list[TrialRecord]:
    """Up to ``want`` new trials, one per pending request, with their originals' parameters."""
    new: list[TrialRecord] = []
    for original in [run.trials[n] for n in run.retry_queue[:want]]:
        del run.retry_queue[0]
        name = new_trial_name(run.exp.name, run.trials)
        t = TrialRecord(
            id=0, experiment_id=run.rec.id, name=name, state="Created", assignments=list(original.assignments),
            labels={EXPERIMENT_LABEL: run.exp.name, RETRY_OF_LABEL: original.name}, created_at=now,
        )
        mark_trial(t, "Created", f"retry of trial {original.name}, asked for by a user")
        run._stopping_rules(t)  # as every new trial: its early-stopping rules, fixed now
        original.labels = {**original.labels, RETRY_LABEL: name}
        run._touch(original)
        new.append(t)
    return new


__all__ = ["RETRY_LABEL", "RETRY_OF_LABEL", "accept", "make_retries", "waiting"]
