"""Optuna's ``TPESampler``, made to cost less per proposal on a long history, proposing
exactly what Optuna's own does (tests/suggestion_tests/test_tpe_cache.py).

Optuna rebuilds everything from the whole history at every proposal: it converts each
trial's parameters to their internal representation, reads each trial's constraints and
sorts the trials as Python objects. At 5,000 trials that is most of a proposal
(docs/benchmarks.md). A finished trial never changes, so this subclass keeps, per search
space, one row per finished trial in numpy arrays (its number, value, constraint score and
internal parameters), adds the trials it has not seen yet, and splits the history into
good and bad with a stable ``argsort``, as Python's stable ``sorted`` splits it. Running
trials (the constant liars, whose relative parameters live in their system attributes)
are read afresh at every proposal, as Optuna reads them.

The fast path covers a single objective; several objectives (Optuna's non-domination
split) and pruned trials (split by their intermediate values; Katib's early-stopped trials
reach the study as complete) go through Optuna's own code, with the parameters still
converted once.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from ._tpe_logpdf import log_pdf


class _Rows:
    """The finished trials of one search space, one row each, in growable arrays."""

    def __init__(self, n_params: int) -> None:
        self.slot: dict[int, int] = {}  # trial id -> row
        self.size = 0
        self.number = np.empty(64, dtype=np.int64)
        self.value = np.empty(64)  # the objective, or nan where the trial is not complete
        self.infeasible = np.empty(64)  # Optuna's infeasibility score: the summed violations
        self.complete = np.empty(64, dtype=bool)  # complete (else pruned)
        self.has_params = np.empty(64, dtype=bool)  # holds every parameter of the space
        self.params = np.empty((64, n_params))

    def add(self, trial_id: int, number: int, value: float, infeasible: float, complete: bool,
            row: tuple[float, ...] | None) -> int:
        if self.size == len(self.number):
            grow = 2 * self.size
            for name in ("number", "value", "infeasible", "complete", "has_params"):
                old = getattr(self, name)
                new = np.empty(grow, dtype=old.dtype)
                new[: self.size] = old
                setattr(self, name, new)
            params = np.empty((grow, self.params.shape[1]))
            params[: self.size] = self.params
            self.params = params
        i = self.size
        self.number[i], self.value[i], self.infeasible[i] = number, value, infeasible
        self.complete[i], self.has_params[i] = complete, row is not None
        self.params[i] = row if row is not None else np.nan
        self.slot[trial_id] = i
        self.size += 1
        return i


def _kept_groups() -> Any:
    """Optuna's grouping of the parameters that appear together (``group=True``), adding
    each finished trial once where Optuna adds every trial at every proposal. A group
    refines by each trial's parameter names, and refining again by a name set already
    applied changes nothing, so the groups come out the same."""
    import copy

    from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace, _SearchSpaceGroup
    from optuna.trial import TrialState

    class KeptGroups(_GroupDecomposedSearchSpace):
        _katib_storage: Any = None
        _katib_added: set[int]

        def calculate(self, study: Any, use_cache: bool = False) -> Any:
            if self._katib_storage is not study._storage:
                self._katib_storage, self._katib_added = study._storage, set()
                self._search_space = _SearchSpaceGroup()
            states = (TrialState.COMPLETE, TrialState.PRUNED) if self._include_pruned else (TrialState.COMPLETE,)
            added = self._katib_added
            for trial in study._get_trials(deepcopy=False, states=states, use_cache=use_cache):
                if trial._trial_id not in added:
                    self._search_space.add_distributions(trial.distributions)
                    added.add(trial._trial_id)
            return copy.deepcopy(self._search_space)

    return KeptGroups(True)


@cache
def sampler_class() -> Any:
    """``TPESampler`` with the history kept (see the module docstring); Optuna's own class
    where this Optuna lacks the methods it builds on."""
    from optuna.samplers import TPESampler
    from optuna.samplers._tpe import sampler as tpe_module
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    needed = ("_get_internal_repr", "_get_params", "_sample", "_compute_acquisition_func", "_compare")
    if not all(hasattr(TPESampler, n) for n in needed) or not hasattr(tpe_module, "_get_infeasible_trial_score"):
        return TPESampler

    class _QuickerParzenEstimator(_ParzenEstimator):
        """Optuna's estimator, its log-density computed by ``_tpe_logpdf`` (the same numbers)."""

        def log_pdf(self, samples_dict: dict[str, Any]) -> Any:
            mixture = getattr(self, "_mixture_distribution", None)
            transform = getattr(self, "_transform", None)
            if mixture is not None and transform is not None:
                out = log_pdf(mixture, transform(samples_dict))
                if out is not None:
                    return out
            return super().log_pdf(samples_dict)

    class CachedTPESampler(TPESampler):
        _katib_storage: Any = None
        _katib_rows: dict[tuple[tuple[str, str], ...], _Rows]

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if getattr(self, "_group_decomposed_search_space", None) is not None:
                self._group_decomposed_search_space = _kept_groups()
            if getattr(self, "_parzen_estimator_cls", None) is _ParzenEstimator:
                self._parzen_estimator_cls = _QuickerParzenEstimator

        def _history(self, study: Any, search_space: dict[str, Any]) -> _Rows:
            if self._katib_storage is not study._storage:  # held: its trial ids are its own
                self._katib_storage, self._katib_rows = study._storage, {}
            key = tuple((n, repr(d)) for n, d in search_space.items())
            rows = self._katib_rows.get(key)
            if rows is None:
                rows = self._katib_rows[key] = _Rows(len(search_space))
            return rows

        def _row(self, trial: Any, search_space: dict[str, Any], study: Any) -> tuple[float, ...] | None:
            params = self._get_params(trial, study)
            if not search_space.keys() <= params.keys():
                return None
            return tuple(d.to_internal_repr(params[n]) for n, d in search_space.items())

        def _rows_of(self, trials: list[Any], search_space: dict[str, Any], study: Any) -> tuple[_Rows, Any, list[Any]]:
            """The history with every finished trial of ``trials`` in it; the rows of those
            trials, in their order; and the trials that are not finished."""
            rows = self._history(study, search_space)
            slot_of = rows.slot.get
            slots, others = [], []
            for trial in trials:
                slot = slot_of(trial._trial_id)
                if slot is None:
                    if not trial.state.is_finished():
                        others.append(trial)
                        continue
                    complete = trial.state == TrialState.COMPLETE
                    value = trial.values[0] if complete and len(trial.values) == 1 else np.nan
                    slot = rows.add(trial._trial_id, trial.number, value, tpe_module._get_infeasible_trial_score(trial),
                                    complete, self._row(trial, search_space, study))
                slots.append(slot)
            return rows, np.asarray(slots, dtype=np.int64), others

        def _get_internal_repr(self, trials: list[Any], search_space: dict[str, Any], study: Any) -> dict[str, Any]:
            rows, _, _ = self._rows_of(trials, search_space, study)
            out: list[tuple[float, ...]] = []
            for trial in trials:
                slot = rows.slot.get(trial._trial_id)
                if slot is None:
                    row = self._row(trial, search_space, study)
                    if row is not None:
                        out.append(row)
                elif rows.has_params[slot]:
                    out.append(tuple(rows.params[slot]))
            return {n: np.asarray([r[i] for r in out]) for i, n in enumerate(search_space)}

        def _sample(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
            if len(study.directions) != 1:
                return super()._sample(study, trial, search_space)
            states: tuple[Any, ...] = (TrialState.COMPLETE, TrialState.PRUNED)
            if self._constant_liar:
                states += (TrialState.RUNNING,)
            trials = study._get_trials(deepcopy=False, states=states, use_cache=not self._constant_liar)
            rows, slots, running = self._rows_of(trials, search_space, study)
            running = [t for t in running if t.number != trial.number]
            if not rows.complete[slots].all():  # pruned trials: Optuna's split by intermediate values
                return super()._sample(study, trial, search_space)
            if self._gamma is None:
                self._gamma = tpe_module.default_gamma
            n_below = self._gamma(len(slots))

            # Optuna's _split_trials: the feasible complete trials by value (a stable sort,
            # best first), then the infeasible ones by their score; running ones are bad.
            infeasible = rows.infeasible[slots] > 0
            feasible, unfit = slots[~infeasible], slots[infeasible]
            values = rows.value[feasible]
            if study.direction == StudyDirection.MAXIMIZE:
                values = -values
            by_value = feasible[np.argsort(values, kind="stable")]
            k = min(n_below, len(by_value))
            by_score = unfit[np.argsort(rows.infeasible[unfit], kind="stable")]
            j = min(max(0, n_below - k), len(by_score))
            below = np.concatenate([by_value[:k], by_score[:j]])
            above = np.concatenate([by_value[k:], by_score[j:]])

            mpe_below = self._estimator(rows, below, [], search_space, study)
            mpe_above = self._estimator(rows, above, running, search_space, study)
            samples_below = mpe_below.sample(self._rng.rng, self._n_ei_candidates)
            acq_func_vals = self._compute_acquisition_func(samples_below, mpe_below, mpe_above)
            ret = TPESampler._compare(samples_below, acq_func_vals)
            for name, dist in search_space.items():
                ret[name] = dist.to_external_repr(ret[name])
            return ret

        def _estimator(self, rows: _Rows, slots: Any, running: list[Any], search_space: dict[str, Any],
                       study: Any) -> Any:
            """Optuna's Parzen estimator over these trials, in trial-number order (the
            order sets the weights: older trials weigh less)."""
            slots = slots[rows.has_params[slots]]
            numbers, params = rows.number[slots], rows.params[slots]
            extra = [(t.number, r) for t in running if (r := self._row(t, search_space, study)) is not None]
            if extra:
                numbers = np.concatenate([numbers, [n for n, _ in extra]])
                params = np.concatenate([params, np.asarray([r for _, r in extra]).reshape(len(extra), -1)])
            params = params[np.argsort(numbers, kind="stable")]
            observations = {n: params[:, i].copy() for i, n in enumerate(search_space)}
            return self._parzen_estimator_cls(observations, search_space, self._parzen_estimator_parameters)

    return CachedTPESampler
