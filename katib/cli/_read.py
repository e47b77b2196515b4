"""Commands that read an experiment or its trials: get, describe, logs; and delete. Each
asks ``_source.source(db)`` (the store here, or the server of ``--server``) for what it shows."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from katib.cli._app import (
    DbOption,
    NamespaceOption,
    Output,
    OutputOption,
    _dump,
    _num,
    _why,
    app,
    delete_app,
    describe_app,
    err,
    get_app,
    out,
)
from katib.cli._source import source


def _age(ts: float) -> str:
    seconds = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@get_app.command("experiments")
def get_experiments(
    namespace: str | None = typer.Option(None, "--namespace", "-n", help="Only this namespace."),
    output: Output = OutputOption,
    db: str | None = DbOption,
) -> None:
    """List experiments."""
    found = source(db).experiments(namespace)
    if output is not Output.table:
        _dump({"apiVersion": "v1", "kind": "List", "items": [f.obj() for f in found]}, output)
        return
    out.print(_experiments_table([f.rec for f in found], [f.active for f in found]))


def _experiments_table(recs: list[Any], active: Sequence[bool | None] | None = None) -> Table:
    """Experiments as `katib get experiments` shows them: the phase every screen shows
    (``Stopped`` when no controller runs an unfinished one), trials done of the budget.
    ``active``: whether a controller runs each, when a server says so (else this
    machine's processes tell)."""
    from katib import views

    table = Table(box=None)
    for col in ("NAMESPACE", "NAME", "STATUS", "REASON", "TRIALS", "SUCCEEDED", "FAILED", "BEST", "AGE"):
        table.add_column(col)
    for i, r in enumerate(recs):
        best = r.status.best
        objective = r.spec.get("spec", {}).get("objective", {}).get("objectiveMetricName")
        metrics = best.metrics() if best else {}
        value = views.shown_value(metrics, objective or "", views.strategies_of(r))
        shown = views.shown_phase(r, active[i] if active is not None else None)
        table.add_row(*map(Text, (
            r.namespace, r.name, shown, views.shown_reason(r, shown), _trials_done(r),
            # the trials it ran (warmStart results are given, not run); FAILED counts what
            # maxFailedTrialCount counts (Katib: Failed and MetricsUnavailable)
            str(r.status.trials_succeeded - views.warm_starts(r)),
            str(r.status.trials_failed + r.status.trial_metrics_unavailable),
            f"{objective}={_num(value)}" if value else "", _age(r.created_at))))
    return table


def _trials_done(rec: Any) -> str:
    """Trials ended of the budget (``7/12``), or of those made when there is no budget: the
    trials it ran (``spec.warmStart`` results use none of the budget)."""
    from katib import views

    status, warm = rec.status, views.warm_starts(rec)
    done = status.trials - status.trials_running - status.trials_pending - warm
    budget = (rec.spec.get("spec") or {}).get("maxTrialCount")
    return f"{done}/{budget}" if budget else f"{done}/{status.trials - warm}"


@get_app.command("trials")
def get_trials(
    experiment: str = typer.Argument(..., help="Experiment name."),
    namespace: str | None = NamespaceOption,
    output: Output = OutputOption,
    db: str | None = DbOption,
) -> None:
    """List an experiment's trials with their parameters and metrics."""
    src = source(db)
    found = src.experiment(experiment, namespace)
    trials = src.trials(found)
    if output is not Output.table:
        _dump({"apiVersion": "v1", "kind": "List", "items": [t.obj() for t in trials]}, output)
        return
    out.print(_trials_table(found.rec, [t.trial for t in trials]))


def _trials_table(rec: Any, trials: list[Any], experiment_column: bool = False) -> Table:
    """Trials with their parameters and metrics (six significant digits), and why the
    failed ones failed."""
    from katib import views

    spec = rec.spec.get("spec", {})
    params = [p["name"] for p in spec.get("parameters", [])]
    obj = spec.get("objective", {})
    metrics = [obj.get("objectiveMetricName"), *obj.get("additionalMetricNames", [])]
    strategies = views.strategies_of(rec)
    why = [_why(t) for t in trials]
    table = Table(box=None)
    for col in ("NAME", *(["EXPERIMENT"] if experiment_column else []), "STATUS", *params, *metrics,
                *(["WHY"] if any(why) else [])):
        table.add_column(col)
    for t, note in zip(trials, why, strict=True):
        p = t.parameters()
        obs = (t.observation or {}) if t.state not in views.NO_OBSERVATION else {}  # as its object (Katib's)
        table.add_row(*map(Text, (t.name, *([rec.name] if experiment_column else []), t.state,
                                  *[_num(p.get(n, "")) for n in params],
                                  *[_num(views.shown_value(obs, m, strategies)) for m in metrics],
                                  *([note] if any(why) else []))))
    return table


@get_app.command("experiment")
def get_experiment(
    name: str = typer.Argument(..., help="Experiment name."),
    namespace: str | None = NamespaceOption,
    output: Output = OutputOption,
    db: str | None = DbOption,
) -> None:
    """One experiment: a table row with why it failed, or Katib's object (-o json|yaml)."""
    src = source(db)
    found = src.experiment(name, namespace)
    if output is not Output.table:
        _dump(found.obj(), output)
        return
    _experiment_notes(found.rec, found.active, lambda: [t.trial for t in src.trials(found)],
                      src.hint(["resume"], name, found.rec.namespace))


def _experiment_notes(rec: Any, active: bool | None, trials: Any, resume_hint: str) -> None:
    """The experiment's row, with its failure's message and last failed trial, or how to
    carry on when no controller runs it."""
    from katib import views

    out.print(_experiments_table([rec], None if active is None else [active]))
    shown = views.shown_phase(rec, active)
    if shown == "Failed":
        message = next((c.message or "" for c in rec.status.conditions
                        if c.type == "Failed" and c.status == "True"), "")
        out.print(Text(f"\nmessage: {message}"))
        failure = views.last_failure(trials())
        if failure:
            out.print(Text(f"last failure: {failure['trial']} {failure['state']} ({failure['reason']}): "
                           f"{failure['message']}"))
    elif shown == "Stopped":
        out.print(Text(f"\nstopped: no controller runs it; `{resume_hint}` carries on"))
    if shown in ("Succeeded", "Failed"):
        note = views.no_result(rec, trials())
        if note:
            out.print(Text.assemble(("no result: ", "bold red"), note))


@get_app.command("trial")
def get_trial(
    name: str = typer.Argument(..., help="Trial name."),
    namespace: str | None = NamespaceOption,
    output: Output = OutputOption,
    db: str | None = DbOption,
) -> None:
    """One trial: its parameters, metrics and why it failed, or Katib's object (-o json|yaml)."""
    found = source(db).trial(name, namespace)
    if output is not Output.table:
        _dump(found.obj(), output)
        return
    out.print(_trials_table(found.rec, [found.trial], experiment_column=True))


@describe_app.command("experiment")
def describe_experiment(
    name: str = typer.Argument(..., help="Experiment name."),
    namespace: str | None = NamespaceOption,
    output: Output = typer.Option(Output.yaml, "--output", "-o", help="yaml or json."),
    db: str | None = DbOption,
) -> None:
    """The whole experiment object: spec and status, as Katib shows it."""
    from katib import views

    src = source(db)
    found = src.experiment(name, namespace)
    rec = found.rec
    resume_hint = src.hint(["resume"], name, rec.namespace)
    _dump(found.obj(), Output.json if output is Output.json else Output.yaml)
    note = views.no_result(rec, [t.trial for t in src.trials(found)])
    if note:
        err.print(Text.assemble(("no result: ", "bold red"), note))
    if views.shown_phase(rec, found.active) == "Stopped":
        err.print(Text(f"stopped: no controller runs it; `{resume_hint}` carries on"))


@app.command()
def logs(
    trial: str = typer.Argument(..., help="Trial name."),
    namespace: str | None = NamespaceOption,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing while the trial runs."),
    db: str | None = DbOption,
) -> None:
    """Print a trial's output (stdout and stderr of its process)."""
    source(db).print_log(trial, namespace, follow)


@delete_app.command("experiment")
def delete_experiment(
    name: str = typer.Argument(..., help="Experiment name."),
    namespace: str | None = NamespaceOption,
    db: str | None = DbOption,
) -> None:
    """Delete an experiment, its trials, their logs and observations."""
    namespace = source(db).delete(name, namespace)
    where = "" if namespace == "default" else f" in namespace {namespace}"
    out.print(f'experiment.kubeflow.org "{name}" deleted{where}', highlight=False)
