"""What the controller's every step needs of all an experiment's trials, kept so no step
reads them all (issue 16: bookkeeping per trial stays flat from 1,000 to 100,000 trials).

A trial is *active* (Created or Running) for a few steps and *ended* for ever after, so
the ended ones are summarised once, when each ends: their counts by state (with and
without warm-start trials, which use none of the budget), the best trial and, for several
objectives, the Pareto front. Both are associative (the best of all is the best of the
best so far and the newly ended; a point off the front stays off it), so each step costs
what the active trials cost, not what the experiment has done.

>>> from katib.store import TrialRecord
>>> tally = Tally(None, [TrialRecord(id=1, experiment_id=1, name="a", state="Succeeded", assignments=[])],
...               multi_objective=False, best=lambda trials: None)
>>> tally.add(TrialRecord(id=2, experiment_id=1, name="b", state="Running", assignments=[]))
>>> tally.counts().succeeded, tally.counts().running
(1, 1)
>>> tally.active["b"].state = "Failed"
>>> [t.name for t in tally.settle()], tally.counts().failed, list(tally.active)
(['b'], 1, [])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from katib.store import TrialRecord

from ._arithmetic import Counts
from ._status import FINAL_TRIAL_STATES, Scoring, best_trial, is_warm_start, pareto_front


def _counts(c: Counter[str]) -> Counts:
    return Counts(pending=c["Created"], running=c["Running"], succeeded=c["Succeeded"], failed=c["Failed"],
                  killed=c["Killed"], early_stopped=c["EarlyStopped"], metrics_unavailable=c["MetricsUnavailable"])


class Tally:
    """The active trials by name (creation order), and a summary of the ended ones."""

    def __init__(self, exp: Any, trials: Iterable[TrialRecord], multi_objective: bool | None = None,
                 best: Callable[[Sequence[TrialRecord]], TrialRecord | None] | None = None) -> None:
        self.exp = exp
        self.multi_objective = Scoring(exp).multi_objective if multi_objective is None else multi_objective
        self._best_of = best or (lambda trials: best_trial(exp, trials))
        self.active: dict[str, TrialRecord] = {}
        self._ended: Counter[str] = Counter()
        self._ended_budget: Counter[str] = Counter()
        self.best: TrialRecord | None = None
        self.front: list[TrialRecord] = []
        ended = []
        for t in trials:
            if t.state in FINAL_TRIAL_STATES:
                ended.append(t)
            else:
                self.active[t.name] = t
        self._end(ended)

    def add(self, t: TrialRecord) -> None:
        """A new trial (active, or already ended: a launch that failed)."""
        if t.state in FINAL_TRIAL_STATES:
            self._end([t])
        else:
            self.active[t.name] = t

    def settle(self) -> list[TrialRecord]:
        """Take the trials that ended since the last call out of the active ones; returns them."""
        done = [t for t in self.active.values() if t.state in FINAL_TRIAL_STATES]
        for t in done:
            del self.active[t.name]
        self._end(done)
        return done

    def _end(self, ended: list[TrialRecord]) -> None:
        if not ended:
            return
        for t in ended:
            self._ended[t.state] += 1
            if not is_warm_start(t):
                self._ended_budget[t.state] += 1
        self.best = self._best_of([self.best, *ended] if self.best is not None else ended)
        if self.multi_objective:
            self.front = pareto_front(self.exp, [*self.front, *ended])

    def counts(self, budget: bool = False) -> Counts:
        """Trials by state; with ``budget``, without warm-start trials (as ``counts_of``)."""
        c = Counter(self._ended_budget if budget else self._ended)
        for t in self.active.values():
            if not (budget and is_warm_start(t)):
                c[t.state] += 1
        return _counts(c)

    def by_state(self) -> Counter[str]:
        """Every trial's count by state (what the status shows)."""
        c = Counter(self._ended)
        for t in self.active.values():
            c[t.state] += 1
        return c


__all__ = ["Tally"]
