"""Commands that read the store: get, describe, logs; and delete."""

from __future__ import annotations

import sys
import time
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from katib.cli import _api as _r
from katib.cli._app import (
    DbOption,
    NamespaceOption,
    Output,
    OutputOption,
    _dump,
    _hint,
    _locate,
    _num,
    _remote,
    _runs_root,
    _store,
    _why,
    app,
    delete_app,
    describe_app,
    err,
    get_app,
    out,
)
from katib.errors import KatibError, NotFoundError
from katib.names import RunLayout


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
    from katib import views

    remote = _remote()
    if remote is not None:
        c = _r.client(remote)
        objs = c.list_experiments(namespace) if namespace else c.list_experiments(all_namespaces=True)
        if output is not Output.table:
            _dump({"apiVersion": "v1", "kind": "List", "items": [_r.katib_object(o) for o in objs]}, output)
            return
        out.print(_experiments_table([_r.experiment_record(o) for o in objs], [bool(o.get("active")) for o in objs]))
        return
    recs = _store(db).list_experiments(namespace)
    if output is not Output.table:
        _dump({"apiVersion": "v1", "kind": "List", "items": [views.experiment_object(r) for r in recs]}, output)
        return
    out.print(_experiments_table(recs))


def _experiments_table(recs: list[Any], active: list[bool] | None = None) -> Table:
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
            str(r.status.trials_succeeded), str(r.status.trials_failed),
            f"{objective}={_num(value)}" if value else "", _age(r.created_at))))
    return table


def _trials_done(rec: Any) -> str:
    """Trials ended of the budget (``7/12``), or of those made when there is no budget."""
    status = rec.status
    done = status.trials - status.trials_running - status.trials_pending
    budget = (rec.spec.get("spec") or {}).get("maxTrialCount")
    return f"{done}/{budget}" if budget else f"{done}/{status.trials}"


@get_app.command("trials")
def get_trials(
    experiment: str = typer.Argument(..., help="Experiment name."),
    namespace: str | None = NamespaceOption,
    output: Output = OutputOption,
    db: str | None = DbOption,
) -> None:
    """List an experiment's trials with their parameters and metrics."""
    from katib import views

    remote = _remote()
    if remote is not None:
        c = _r.client(remote)
        rec, _, _ = _r.experiment(c, remote, experiment, namespace)
        objs = c.list_trials(rec.name, rec.namespace)
        if output is not Output.table:
            _dump({"apiVersion": "v1", "kind": "List", "items": objs}, output)
            return
        out.print(_trials_table(rec, [_r.trial_record(o, i) for i, o in enumerate(objs)]))
        return
    store = _store(db)
    rec = store.get_experiment(_locate(store, experiment, namespace), experiment)
    trials = store.list_trials(rec.id)
    if output is not Output.table:
        _dump({"apiVersion": "v1", "kind": "List", "items": [views.trial_object(rec, t) for t in trials]}, output)
        return
    out.print(_trials_table(rec, trials))


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
        obs = t.observation or {}
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
    from katib import views

    remote = _remote()
    if remote is not None:
        c = _r.client(remote)
        rec, active, obj = _r.experiment(c, remote, name, namespace)
        if output is not Output.table:
            _dump(_r.katib_object(obj), output)
            return
        _experiment_notes(rec, active, lambda: _r.trials(c, rec), _r.hint(remote, ["resume"], name, rec.namespace))
        return
    store = _store(db)
    rec = store.get_experiment(_locate(store, name, namespace), name)
    if output is not Output.table:
        _dump(views.experiment_object(rec), output)
        return
    _experiment_notes(rec, None, lambda: store.list_trials(rec.id), _hint(store, db, ['resume'], name, rec.namespace))


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


@get_app.command("trial")
def get_trial(
    name: str = typer.Argument(..., help="Trial name."),
    namespace: str | None = NamespaceOption,
    output: Output = OutputOption,
    db: str | None = DbOption,
) -> None:
    """One trial: its parameters, metrics and why it failed, or Katib's object (-o json|yaml)."""
    from katib import views

    remote = _remote()
    if remote is not None:
        rec, t, obj = _r.trial(_r.client(remote), remote, name, namespace)
        if output is not Output.table:
            _dump(obj, output)
            return
        out.print(_trials_table(rec, [t], experiment_column=True))
        return
    store = _store(db)
    rec, t = store.get_trial(_locate(store, name, namespace, "trial"), name)
    if output is not Output.table:
        _dump(views.trial_object(rec, t), output)
        return
    out.print(_trials_table(rec, [t], experiment_column=True))


@describe_app.command("experiment")
def describe_experiment(
    name: str = typer.Argument(..., help="Experiment name."),
    namespace: str | None = NamespaceOption,
    output: Output = typer.Option(Output.yaml, "--output", "-o", help="yaml or json."),
    db: str | None = DbOption,
) -> None:
    """The whole experiment object: spec and status, as Katib shows it."""
    from katib import views

    remote = _remote()
    active: bool | None = None
    if remote is not None:
        c = _r.client(remote)
        rec, active, obj = _r.experiment(c, remote, name, namespace)
        shown_obj, trials = _r.katib_object(obj), lambda: _r.trials(c, rec)
        resume_hint = _r.hint(remote, ["resume"], name, rec.namespace)
    else:
        store = _store(db)
        rec = store.get_experiment(_locate(store, name, namespace), name)
        shown_obj, trials = views.experiment_object(rec), lambda: store.list_trials(rec.id)
        resume_hint = _hint(store, db, ["resume"], name, rec.namespace)
    _dump(shown_obj, Output.json if output is Output.json else Output.yaml)
    note = views.no_result(rec, trials())
    if note:
        err.print(Text.assemble(("no result: ", "bold red"), note))
    if views.shown_phase(rec, active) == "Stopped":
        err.print(Text(f"stopped: no controller runs it; `{resume_hint}` carries on"))


@app.command()
def logs(
    trial: str = typer.Argument(..., help="Trial name."),
    namespace: str | None = NamespaceOption,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing while the trial runs."),
    db: str | None = DbOption,
) -> None:
    """Print a trial's output (stdout and stderr of its process)."""
    import codecs

    remote = _remote()
    if remote is not None:
        _follow_remote(remote, trial, namespace, follow)
        return
    from katib.controller import trial_log_since

    store = _store(db)
    namespace = _locate(store, trial, namespace, "trial")
    rec, t = store.get_trial(namespace, trial)
    runs_root = _runs_root(store)
    read = trial_log_since(runs_root, rec, t, 0)  # as the trial's executor reads it (Executor.log_since)
    if read is None:
        raise NotFoundError(f"no log for trial {trial} (it has not started on this machine)")
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span two reads
    while True:
        chunk, offset = read
        if chunk:
            sys.stdout.write(decoder.decode(chunk))
            sys.stdout.flush()
        if not follow:
            break
        _, t = store.get_trial(namespace, trial)
        if t.state not in ("Created", "Running"):
            rest = trial_log_since(runs_root, rec, t, offset)
            sys.stdout.write(decoder.decode(rest[0] if rest else b"", final=True))
            break
        time.sleep(0.5)
        read = trial_log_since(runs_root, rec, t, offset) or (b"", offset)


def _follow_remote(remote: Any, trial: str, namespace: str | None, follow: bool) -> None:
    """``katib logs`` through a server: what the trial wrote, read on from where the last
    read ended while it runs (``-f``)."""
    import codecs

    c = _r.client(remote)
    _, t, obj = _r.trial(c, remote, trial, namespace)
    namespace = obj["metadata"]["namespace"]
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    offset = 0
    while True:
        chunk, offset = c.get_trial_log_since(trial, offset, namespace)
        if not offset and t.state == "Created" and not follow:
            raise NotFoundError(f"no log for trial {trial} (it has not started)")
        sys.stdout.write(decoder.decode(chunk))
        sys.stdout.flush()
        if chunk:
            continue  # more may be waiting (one answer holds at most the server's log_bytes)
        if not follow or t.state not in ("Created", "Running"):
            break
        time.sleep(0.5)
        t = _r.trial_record(c.get_trial(trial, namespace))
        if t.state not in ("Created", "Running"):
            continue  # one more read: what it wrote before it ended
    sys.stdout.write(decoder.decode(b"", final=True))


@delete_app.command("experiment")
def delete_experiment(
    name: str = typer.Argument(..., help="Experiment name."),
    namespace: str | None = NamespaceOption,
    db: str | None = DbOption,
) -> None:
    """Delete an experiment, its trials, their logs and observations."""
    remote = _remote()
    if remote is not None:
        c = _r.client(remote)
        rec, active, _ = _r.experiment(c, remote, name, namespace)
        if active:
            raise KatibError(f"experiment {name} is running on {remote.url}; stop it first: "
                             f"`{_r.hint(remote, ['stop'], name, rec.namespace)}`")
        c.delete_experiment(name, rec.namespace)
        namespace = rec.namespace
        where = "" if namespace == "default" else f" in namespace {namespace}"
        out.print(f'experiment.kubeflow.org "{name}" deleted{where}', highlight=False)
        return
    import shutil

    from trials import owner_alive

    store = _store(db)
    namespace = _locate(store, name, namespace)
    folder = RunLayout(_runs_root(store)).experiment(namespace, name)  # checks the names first
    rec = store.get_experiment(namespace, name)
    if rec.owner and owner_alive(rec.owner):
        raise KatibError(f"experiment {name} is running under {rec.owner}; stop it first: "
                         f"`{_hint(store, db, ['stop'], name, namespace)}`")
    store.delete_experiment(namespace, name)
    shutil.rmtree(folder, ignore_errors=True)
    where = "" if namespace == "default" else f" in namespace {namespace}"
    out.print(f'experiment.kubeflow.org "{name}" deleted{where}', highlight=False)
