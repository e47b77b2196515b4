"""Hyperband (Li et al., 2018), as Katib runs it: synchronous brackets of successive
halving, the resource handed to each trial through a parameter."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from katib.errors import FieldError
from katib.spec import Experiment, Limits, new_trial_name

from ._base import Algorithm, Assignment, Setting, TrialView, number, seed
from ._space import SearchSpace


def s_max(r_l: float, eta: float) -> int:
    """Katib's ``int(log(r_l)/log(eta))``, float error included (log(1000)/log(10) is
    2.9999999999999996: 2)."""
    return int(math.log(r_l) / math.log(eta))


#: Most brackets (s_max + 1 of them) a plan may have: each bracket's first rung starts
#: ``ceil((s_max+1)·eta^s/(s+1))`` trials, so a bigger plan is far beyond any
#: ``parallelTrialCount`` anyway; without a bound, r_l=e^4 with eta=1.001 (4002 brackets)
#: cost seconds and hundreds of MB to plan.
MAX_BRACKETS = 64
SETTINGS_PATH = "spec.algorithm.algorithmSettings"


def bracket(r_l: float, eta: float, index: int) -> list[tuple[int, int]]:
    """The rungs of bracket ``index`` (0 is the first, ``s = s_max - index``): per rung,
    (number of configurations, resource), with Katib's arithmetic
    (pkg/suggestion/v1beta1/hyperband/service.py): bracket ``s`` starts
    ``ceil((s_max+1)·eta^s/(s+1))`` configurations on ``int(r_l·eta^-s)``; rung ``i``
    promotes ``ceil(ceil(n·eta^-i)/eta)`` of them to ``int(r·eta^(i+1))``."""
    top = s_max(r_l, eta)
    s = top - index
    n = int(math.ceil(float(top + 1) * (float(eta**s) / float(s + 1))))
    r = r_l * eta ** (-s)
    rungs = [(n, int(r))]
    rungs += [(int(math.ceil(math.ceil(n * eta ** (-i)) / eta)), int(r * eta ** (i + 1))) for i in range(s)]
    return rungs


def bracket_sizes(r_l: float, eta: float) -> list[list[tuple[int, int]]]:
    """Every bracket's rungs (s = s_max … 0), see ``bracket``: O(s_max²), for tests and
    small plans; the algorithm builds one bracket at a time."""
    return [bracket(r_l, eta, index) for index in range(s_max(r_l, eta) + 1)]


def parallel_needed(r_l: float, eta: float) -> int:
    """The ``parallelTrialCount`` Katib's validator asks for: ``ceil(eta^s_max)`` with eta
    truncated to an integer there (it divides by log(1) for 1 < eta < 2; we take the
    first bracket's size instead, computed alone: O(1))."""
    whole = int(eta)
    if whole < 2:
        top = s_max(r_l, eta)
        return int(math.ceil(float(top + 1) * (float(eta**top) / float(top + 1))))
    return int(math.ceil(whole ** s_max(r_l, whole)))


def _eta(text: str) -> float:
    """Katib's eta: a number, 3 when it is not positive (HyperBandParam.convert)."""
    value = number()(text)
    if value <= 0:
        return 3.0
    if value <= 1:
        raise ValueError(f"must be > 1 (got {text})")
    return value


class _Plan:
    """The plan as ``suggest`` reads it: ``plan[b][i]`` and ``len(plan)``, building only
    the brackets asked for (one per call), not all of them."""

    def __init__(self, r_l: float, eta: float) -> None:
        self.r_l, self.eta = r_l, eta
        self._brackets: dict[int, list[tuple[int, int]]] = {}

    def __len__(self) -> int:
        return s_max(self.r_l, self.eta) + 1

    def __getitem__(self, index: int) -> list[tuple[int, int]]:
        if index not in self._brackets:
            self._brackets[index] = bracket(self.r_l, self.eta, index)
        return self._brackets[index]


def _check_state(state: dict[str, Any], plan: _Plan) -> None:
    """A plan this algorithm wrote (a remote client hands it back): a ValueError if not."""
    b, r = state.get("bracket"), state.get("rung")
    if not (type(b) is int and 0 <= b < len(plan) and type(r) is int and 0 <= r < len(plan[b])):
        raise ValueError(f"bracket {b!r} and rung {r!r} are not of this plan ({len(plan)} brackets)")
    for key in ("queue", "members"):
        if not isinstance(state.get(key), list) or len(state[key]) > plan[b][r][0]:
            raise ValueError(f"{key} must be a list of at most the rung's {plan[b][r][0]} configurations")


class Hyperband(Algorithm):
    """Hyperband with Katib's settings.

    ``r_l`` is the largest resource a trial gets (epochs, say), ``resource_name`` the
    parameter that carries it (its value is set by the algorithm, not searched), ``eta``
    the halving rate (default 3; 3 as well when not positive, as in Katib). Each bracket starts ``n`` random configurations on a
    small resource; when a rung has finished, the best ``ceil(n/eta)`` go on with ``eta``
    times the resource, as new trials: Katib's plan and rounding, see ``bracket_sizes``
    (the resource is an integer, as Katib writes it). A rung runs all at once, so
    ``parallelTrialCount`` must be at least the first bracket's size,
    ``ceil(eta^int(log(r_l)/log(eta)))``, as in Katib (see ``parallel_needed``); a plan
    has at most ``MAX_BRACKETS`` (64) brackets, a bound on the work of one suggestion.
    The plan (which bracket and rung, which configurations) is kept in the algorithm state
    the controller persists, so a restart carries on; when every bracket is done the
    experiment ends with ``ExperimentSuggestionEndReached``.
    """

    name = "hyperband"
    plans_trials = True
    ignores_unknown_settings = True  # as Katib's service
    settings = {
        "r_l": Setting(number(0, low_open=True)),
        "resource_name": Setting(str),
        "eta": Setting(_eta, 3.0),
        "random_state": Setting(seed),
    }

    def request_errors(self, experiment: Experiment) -> list[FieldError]:
        """A ``GetSuggestions`` request needs its settings and a plan of bounded size;
        Katib's own test asks with a ``resource_name`` that names no parameter and no
        ``parallelTrialCount``, and is answered (``ValidateAlgorithmSettings`` refuses both)."""
        errors, s = self._settings(experiment)
        return errors if s is None else self._plan_errors(s)

    def _settings(self, experiment: Experiment) -> tuple[list[FieldError], dict[str, Any] | None]:
        """The settings' errors, or the settings parsed."""
        errors = super().validate(experiment)
        if errors:
            return errors, None
        given = experiment.spec.algorithm.settings() if experiment.spec.algorithm else {}
        for required in ("r_l", "resource_name"):
            if required not in given:
                errors.append(FieldError(SETTINGS_PATH, f"hyperband needs the setting {required!r}"))
        return (errors, None) if errors else ([], self.parsed_settings(experiment))

    @staticmethod
    def _plan_errors(s: dict[str, Any]) -> list[FieldError]:
        if s["r_l"] < 1:
            return [FieldError(SETTINGS_PATH, f"r_l must be >= 1 (got {s['r_l']:g})")]
        if s_max(s["r_l"], s["eta"]) + 1 > MAX_BRACKETS:
            return [FieldError(SETTINGS_PATH, f"r_l={s['r_l']:g} and eta={s['eta']:g} plan "
                                              f"{s_max(s['r_l'], s['eta']) + 1} brackets (int(log(r_l)/log(eta)) + 1); "
                                              f"at most {MAX_BRACKETS}: lower r_l or raise eta")]
        # The first rung of the first bracket is sampled whole at once: as many configurations
        # as trials may run at once, at most (validate's parallelTrialCount rule says the same
        # of the experiment; a GetSuggestions request has no parallelTrialCount to check).
        first, most = bracket(s["r_l"], s["eta"], 0)[0][0], Limits.from_env().parallel_trials
        if first > most:
            return [FieldError(SETTINGS_PATH, f"r_l={s['r_l']:g} and eta={s['eta']:g} start the first bracket with "
                                              f"{first} configurations; at most {most} (KATIB_MAX_PARALLEL_TRIALS): "
                                              "lower r_l or raise eta")]
        return []

    def validate(self, experiment: Experiment) -> list[FieldError]:
        errors, s = self._settings(experiment)
        if s is None:
            return errors
        params = {p.name or "": p for p in experiment.spec.parameters or []}
        resource = params.get(s["resource_name"])
        if resource is None:
            errors.append(FieldError(SETTINGS_PATH, f"resource_name {s['resource_name']!r} must name a parameter "
                                                    f"(have: {', '.join(params)})"))
        elif resource.parameter_type not in ("int", "double"):
            errors.append(FieldError(SETTINGS_PATH, f"resource_name {s['resource_name']!r} must be an int or double parameter"))
        plan = self._plan_errors(s)
        errors += plan
        if not plan:
            need = parallel_needed(s["r_l"], s["eta"])
            parallel = experiment.spec.parallel_trial_count or 0
            if parallel < need:
                errors.append(FieldError("spec.parallelTrialCount",
                                         f"must be >= {need} for hyperband with r_l={s['r_l']:g} and eta={s['eta']:g} (got {parallel})"))
        if len(params) < 2:
            errors.append(FieldError("spec.parameters", "hyperband needs a parameter to search besides the resource"))
        return errors

    def exhausted(self, experiment: Experiment, trials: Sequence[TrialView], state: dict[str, Any] | None = None) -> bool:
        return bool(state and state.get("done"))

    def suggest(
        self,
        experiment: Experiment,
        trials: Sequence[TrialView],
        count: int,
        state: dict[str, Any] | None = None,
    ) -> list[Assignment]:
        state = {} if state is None else state
        s = self.parsed_settings(experiment)
        plan = _Plan(s["r_l"], s["eta"])
        rng = np.random.default_rng(None if s["random_state"] is None else [s["random_state"], len(trials)])
        by_name = {t.name: t for t in trials}
        if "bracket" in state:
            _check_state(state, plan)
        if "bracket" not in state:
            state.update(bracket=0, rung=0, queue=[], members=[])
            self._start_rung(experiment, state, plan, rng, configs=None)
        while not state.get("done"):
            if state["queue"]:
                break
            members = [by_name.get(m) for m in state["members"]]
            if any(m is None or m.state in ("Created", "Running") for m in members):
                return self._pop(experiment, state, count)  # the rung is still running
            self._next_rung(experiment, state, plan, rng, [m for m in members if m is not None])
        return self._pop(experiment, state, count)

    def _pop(self, experiment: Experiment, state: dict[str, Any], count: int) -> list[Assignment]:
        out: list[Assignment] = []
        while state["queue"] and len(out) < count:
            item = state["queue"].pop(0)
            state["members"].append(item["name"])
            out.append(Assignment(item["parameters"], name=item["name"],
                                  labels={"katib.kubeflow.org/hyperband-bracket": str(state["bracket"]),
                                          "katib.kubeflow.org/hyperband-rung": str(state["rung"])}))
        return out

    def _start_rung(self, experiment: Experiment, state: dict[str, Any], plan: _Plan, rng: np.random.Generator,
                    configs: list[dict[str, str]] | None) -> None:
        s = self.parsed_settings(experiment)
        n, resource = plan[state["bracket"]][state["rung"]]
        space = SearchSpace.from_experiment(experiment)
        others = [d for d in space.dims if d.name != s["resource_name"]]
        if configs is None:
            configs = [{d.name: d.sample(rng) for d in others} for _ in range(max(n, 1))]
        # As Katib: the resource is written as an integer, whatever the parameter's type;
        # a resource_name that names no parameter (Katib's GetSuggestions does not check) sets nothing.
        resource_param = {s["resource_name"]: str(resource)} if len(others) < len(space.dims) else {}
        state["members"] = []
        state["queue"] = [{"name": new_trial_name(experiment.name), "parameters": {**c, **resource_param}} for c in configs]

    def _next_rung(self, experiment: Experiment, state: dict[str, Any], plan: _Plan, rng: np.random.Generator,
                   members: list[TrialView]) -> None:
        s = self.parsed_settings(experiment)
        rungs = plan[state["bracket"]]
        if state["rung"] + 1 < len(rungs):
            keep = rungs[state["rung"] + 1][0]  # Katib's count from the plan: ceil, not floor
            maximize = experiment.spec.objective is not None and experiment.spec.objective.type == "maximize"
            scored = [m for m in members if m.objective is not None]
            scored.sort(key=lambda m: m.objective, reverse=maximize)  # type: ignore[arg-type, return-value]
            survivors = [{k: v for k, v in m.parameters.items() if k != s["resource_name"]} for m in scored[:keep]]
            if survivors:
                state["rung"] += 1
                self._start_rung(experiment, state, plan, rng, survivors)
                return
        if state["bracket"] + 1 < len(plan):
            state["bracket"] += 1
            state["rung"] = 0
            self._start_rung(experiment, state, plan, rng, None)
        else:
            state["done"] = True
            state["queue"] = []

