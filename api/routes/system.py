"""Health and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from katib.controller import experiment_phase
from katib.store import experiment_census

from .._auth import can_read, current_user
from .._state import ServerState, get_state

router = APIRouter(tags=["system"])


@router.get("/healthz", response_class=PlainTextResponse)
def healthz(state: ServerState = Depends(get_state)) -> str:
    state.store.list_experiments("-")  # the database answers
    return "ok"


def _label(value: str) -> str:
    """A Prometheus label value, escaped as its text format asks (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request, state: ServerState = Depends(get_state)) -> str:
    """Prometheus text format: experiments by phase, trials by state, controllers running
    (of the namespaces the caller may read). Counted by SQL (``experiment_census``): no
    spec is read, and no status of a namespace the caller may not read."""
    user = current_user(request)
    lines = ["# HELP katib_experiments Experiments by phase.", "# TYPE katib_experiments gauge"]
    phases: dict[tuple[str, str], int] = {}
    trials: dict[tuple[str, str, str], int] = {}
    running = 0
    for exp in experiment_census(state.store, None if user is None else (lambda ns: can_read(user, ns))):
        key = (exp.namespace, experiment_phase(exp.conditions))
        phases[key] = phases.get(key, 0) + 1
        running += state.manager.runs_here(exp.namespace, exp.name)
        for label, n in exp.counts.items():  # by the name its status gives each state
            trials[(exp.namespace, exp.name, label)] = n
    q = _label
    lines += [f'katib_experiments{{namespace="{q(ns)}",phase="{q(ph)}"}} {n}' for (ns, ph), n in sorted(phases.items())]
    lines += ["# HELP katib_trials Trials by experiment and state.", "# TYPE katib_trials gauge"]
    lines += [f'katib_trials{{namespace="{q(ns)}",experiment="{q(e)}",state="{s}"}} {n}'
              for (ns, e, s), n in sorted(trials.items())]
    lines += ["# HELP katib_controllers_running Experiments whose controller runs in this server.",
              "# TYPE katib_controllers_running gauge", f"katib_controllers_running {running}"]
    return "\n".join(lines) + "\n"
