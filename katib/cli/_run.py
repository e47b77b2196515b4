"""Commands that drive an experiment: validate, run, resume."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.live import Live
from rich.table import Table
from rich.text import Text

from katib.cli._app import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    CleanEnvOption,
    ContextOption,
    DbOption,
    ExecutorOption,
    KubeconfigOption,
    KueuePriorityOption,
    KueueQueueOption,
    NamespaceOption,
    Output,
    RayAddressOption,
    SlurmAccountOption,
    SlurmPartitionOption,
    SuggestionOption,
    TickOption,
    UnreadableInput,
    _dump,
    _hint,
    _locate,
    _num,
    _print_errors,
    _read_experiments,
    _remote,
    _runs_root,
    _store,
    _why,
    app,
    err,
    out,
)
from katib.cli._executors import (
    AllowUnauthenticatedGrpcOption,
    CollectorImageOption,
    DbManagerOption,
    GrpcHostOption,
    GrpcPortOption,
    _db_manager_flags,
    _executor_factory,
    _serve_grpc,
    _start_executor,
    grpc_bind_checked,
)
from katib.errors import ConflictError, KatibError, NotFoundError, ValidationError

ConfigMapsOption = typer.Option(
    None, "--configmaps", envvar="KATIB_CONFIGMAPS",
    help="A ConfigMap manifest (or a folder of them) holding the trial templates that "
         "spec.trialTemplate.configMap names.")
def _with_configmap(doc: object, source: str | None, executor: str = "local", kubeconfig: str | None = None,
                    context: str | None = None) -> object:
    """The experiment with its ConfigMap trial template read in, when ConfigMaps are given;
    on the Kubernetes executor without them, from the cluster, as Katib reads it."""
    from katib.configmaps import read_configmaps, resolve_from_cluster, resolve_trial_template

    if source:
        return resolve_trial_template(doc, read_configmaps(source), source)
    if executor == "kubernetes":
        from trials import KubernetesExecutor

        tt = ((doc.get("spec") or {}).get("trialTemplate") or {}) if isinstance(doc, dict) else {}
        if isinstance(tt, dict) and tt.get("configMap"):
            return resolve_from_cluster(doc, KubernetesExecutor.connect(kubeconfig, context),
                                        f"the cluster of {kubeconfig or 'the kubeconfig'}")
    return doc


def _server_runs_it(remote: Any, executor: str, clean_env: bool) -> None:
    """Options about running trials here mean nothing to a server, which runs them its way."""
    if executor != "local" or clean_env:
        option = "--clean-env" if clean_env else "--executor"
        raise KatibError(f"{option} is for trials run here; the katib server at {remote.url} runs them with "
                         "its own executor (katib server --executor): drop it or drop --server")


@app.command()
def validate(
    files: list[Path] = typer.Argument(..., help="Experiment YAML or JSON files."),
    output: Output | None = typer.Option(None, "--output", "-o", help="Print the defaulted experiment (json or yaml)."),
    configmaps: str | None = ConfigMapsOption,
) -> None:
    """Check experiments like `kubectl apply --dry-run`: defaults applied, every rule checked."""
    from katib.controller import admit

    bad = 0
    valid: list[dict[str, Any]] = []
    for path in files:
        for doc in _read_experiments(path):
            try:
                exp = admit(_with_configmap(doc, configmaps))
            except ValidationError as exc:
                bad += 1
                _print_errors(exc, str(path))
                continue
            if output in (Output.json, Output.yaml):
                valid.append(exp.to_dict())
            else:
                out.print(f"experiment.kubeflow.org/{exp.name} validated ({path}; dry run)", highlight=False, markup=False)
    # Several, as kubectl prints them: YAML documents one after another, a JSON List.
    if output is Output.yaml:
        print("---\n".join(yaml.safe_dump(d, sort_keys=False) for d in valid), end="")
    elif output is Output.json and valid:
        _dump(valid[0] if len(valid) == 1 else {"apiVersion": "v1", "kind": "List", "items": valid}, output)
    if bad:
        raise typer.Exit(EXIT_INVALID)


def _waiting(trial: Any) -> str:
    """What a running trial waits for, as its Running condition says (its executor's
    reason: WaitingForAdmission, WaitingForGPU…); empty when it just runs."""
    cond = next((c for c in trial.conditions if c.type == "Running" and c.status == "True"), None)
    if trial.state != "Running" or cond is None or cond.reason in (None, "", "TrialRunning"):
        return ""
    return f"{cond.reason}: {cond.message or ''}".rstrip(": ")


# Control characters a trial's text may hold (its output ends up in a failed trial's
# message): a terminal would act on an escape sequence, a carriage return or a backspace.
# A line break in a value is a space: a progress line stays one line.
_CONTROLS = {**dict.fromkeys([*range(0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0)]), 0x0A: " ", 0x0D: " "}


def _line(text: str) -> None:
    """One plain progress line, as written (no markup, no emoji codes: a trial's values
    are any text) but for control characters, at a tenth of what ``Console.print`` costs
    per line, which a run pays twice per trial."""
    file = out.file
    file.write(text.translate(_CONTROLS) + "\n")
    file.flush()


class _Progress:
    """Shows an experiment as it runs: a live table on a terminal, plain lines elsewhere."""

    def __init__(self, live: bool) -> None:
        self.live_mode = live
        self.live: Live | None = None
        self.run: Any = None

    def __call__(self, event: str, run: Any, trial: Any) -> None:
        self.run = run
        if self.live_mode:
            if self.live is not None:
                self.live.update(self._table())
            return
        if event == "launched":
            params = " ".join(f"{a['name']}={a['value']}" for a in trial.assignments)
            _line(f"{trial.name}  Running    {params}")
        elif event == "finished":
            _line(f"{trial.name}  {trial.state:<10} {self._metrics(trial)}{self._best_text()}")
        elif event in ("waiting", "running"):  # what a running trial waits for (Kueue, a GPU), and its end
            _line(f"{trial.name}  {'Waiting' if event == 'waiting' else 'Running':<10} "
                  f"{_waiting(trial) or '(no longer waiting)'}")

    def _metrics(self, trial: Any) -> str:
        if trial.state not in ("Succeeded", "EarlyStopped"):
            message = next((c.message or "" for c in reversed(trial.conditions) if c.status == "True"), "")
            return message if len(message) <= 240 else "…" + message[-240:]
        from katib.views import shown_value

        # six significant digits, as the best beside it and the tables show them
        return " ".join(f"{k}={_num(shown_value(trial.observation, k, self.run.strategies))}"
                        for k in trial.observation or {})

    def _best_text(self) -> str:
        best = self.run._best() if self.run else None
        return f"  (best {self.run.objective}={best:g})" if best is not None else ""

    def _table(self) -> Table:
        from katib import views

        run = self.run
        trials = list(run.trials.values())
        spec = run.exp.spec
        done = sum(1 for t in trials if t.state not in ("Created", "Running"))
        total = spec.max_trial_count or len(trials)
        width = 30
        filled = int(width * done / total) if total else 0
        best = run._best()
        # A Text, not markup: rich would take "[###...]" for a style and print nothing of it.
        title = Text(f"{run.exp.name}  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} trials"
                     + (f"   best {run.objective} = {best:g}" if best is not None else ""))
        table = Table(title=title, title_justify="left", expand=False)
        table.add_column("trial")
        table.add_column("state")
        for p in spec.parameters or []:
            table.add_column(Text(p.name or ""), justify="right")
        for m in run.names:
            table.add_column(Text(m), justify="right")  # a metric's name is any text: not markup
        shown = trials[-12:]
        notes = [_why(t) or _waiting(t) for t in shown]
        if any(notes):
            table.add_column("why", overflow="ellipsis", no_wrap=True, max_width=60)
        for t, note in zip(shown, notes, strict=True):
            params = t.parameters()
            reducer = run.reducers.get(t.name)
            obs = t.observation or (reducer.observation(run.names) if reducer else {})
            style = {"Succeeded": "green", "Failed": "red", "Running": "cyan", "MetricsUnavailable": "yellow"}.get(t.state, "")
            table.add_row(
                Text(t.name), Text(t.state, style=style),
                *[Text(_num(params.get(p.name or "", ""))) for p in spec.parameters or []],
                *[Text(_num(views.shown_value(obs, m, run.strategies))) for m in run.names],
                *([Text(note, style="red")] if any(notes) else []),
            )
        return table


def _summary(rec: Any, trials: list[Any]) -> int:
    """The ended experiment in a few lines, and the exit code: 0 only when it Succeeded with
    a best trial (``rec``, ``trials``: records, from the store or converted from a server's)."""
    from katib import views

    name = rec.name
    status = rec.status
    phase, reason = views.phase(rec), views.reason(rec)
    colour = "green" if phase == "Succeeded" else "red" if phase == "Failed" else "yellow"
    out.print(f"\nexperiment [bold]{name}[/] [{colour}]{phase}[/] ({reason})", highlight=False)
    warm = views.warm_starts(rec)  # Succeeded trials it did not run
    counts = ", ".join(
        f"{n} {label}" for n, label in (
            (status.trials_succeeded - warm, "succeeded"), (status.trials_failed, "failed"), (status.trials_killed, "killed"),
            (status.trials_early_stopped, "early stopped"), (status.trial_metrics_unavailable, "metrics unavailable"))
        if n
    )
    given = f"; {warm} result(s) given in spec.warmStart" if warm else ""
    out.print(f"trials: {status.trials - warm} ({counts or 'none finished'}){given}", highlight=False)
    best = status.best
    if best is not None:
        out.print(f"best trial: {best.best_trial_name}", highlight=False)
        for a in best.parameter_assignments:
            out.print(f"  {a.name} = {a.value}", highlight=False, markup=False)
        strategies = views.strategies_of(rec)
        for name, m in best.metrics().items():
            value = views.shown_value({name: m}, name, strategies)
            if m.get("min") == m.get("max") in (m.get("latest"), "unavailable"):  # one value, or a text metric
                out.print(f"  {name}: {value}", highlight=False)
            else:
                out.print(f"  {name}: {value} ({strategies.get(name, 'latest')}; latest {m.get('latest')}, "
                          f"min {m.get('min')}, max {m.get('max')})", highlight=False)
    failure = views.last_failure(trials)
    if phase == "Failed" and failure:
        out.print(Text.assemble(("last failure: ", "bold red"),
                                f"{failure['trial']} {failure['state']} ({failure['reason']}): {failure['message']}"))
    note = views.no_result(rec, trials)
    if note:
        out.print(Text.assemble(("no result: ", "bold red"), note))
        return EXIT_FAILED
    return 0 if phase == "Succeeded" else EXIT_FAILED


def _not_run_elsewhere(store: Any, rec: Any, db: str | None) -> None:
    """Refuse, before anything is written or said, a stored experiment another live
    controller runs (it printed "resumed", then refused)."""
    from trials import owner_alive, owner_text

    if rec.owner and owner_alive(rec.owner):
        raise ConflictError(f"experiment {rec.namespace}/{rec.name} is being run by another controller "
                            f"({owner_text(rec.owner)}): "
                            f"`{_hint(store, db, ['stop'], rec.name, rec.namespace)}` stops it, "
                            f"`{_hint(store, db, ['get', 'trials'], rec.name, rec.namespace)}` shows how it goes")
    _not_a_tenants(store, rec.namespace, rec.name, "resume")


def _not_a_tenants(store: Any, namespace: str, name: str, how: str) -> None:
    """Refuse to run here an experiment of a `katib server --auth`'s store (one that has
    users): its experiments are its tenants', and their trials would run here as whoever
    runs this, with none of the server's fences (its sandbox, its quota, a clean environment)."""
    from katib.store import UserStore

    if UserStore(store).list_users():
        ns = f" -n {namespace}" if namespace != "default" else ""
        target = f"resume {name}{ns}" if how == "resume" else "run FILE"
        raise ConflictError(f"experiment {namespace}/{name} is in the store of a `katib server --auth` (it has users): "
                            "its trials are a tenant's code, which this would run here unfenced, as you, outside the "
                            f"server's sandbox and quota; run it through the server: `katib --server URL {target}` "
                            "(your token in $KATIB_TOKEN)")


def _drive(store: Any, namespace: str, name: str, tick: float, suggestion: str | None = None,
           executor: Any = None, resume_hint: str | None = None, grpc: Any = None) -> int:
    from katib.controller import Controller

    progress = _Progress(live=out.is_terminal)
    controller = Controller(store, executor=executor() if executor else None, runs_root=_runs_root(store), tick=tick,
                            listener=progress, suggestion_address=suggestion)
    if grpc is not None:  # a Custom collector reports to it too
        controller.db_manager_address = f"127.0.0.1:{grpc.bound_port}"
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    def on_interrupt(signum: int, _frame: Any) -> None:
        # Ctrl-C: at once (KeyboardInterrupt), and for certain: one raised inside a
        # finalizer is printed and dropped by Python, and the run went on to its end.
        stop.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_signal)
    # Not where Ctrl-C is ignored (nohup, a background job) or handled by a caller.
    replaced = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if replaced:
        signal.signal(signal.SIGINT, on_interrupt)
    try:
        if progress.live_mode:
            with Live(console=out, refresh_per_second=4, transient=False) as live:
                progress.live = live
                controller.run(namespace, name, stop=stop)
                if progress.run is not None:
                    live.update(progress._table())
        else:
            controller.run(namespace, name, stop=stop)
    except KeyboardInterrupt:
        stop.set()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if replaced:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if grpc is not None:
            grpc.stop(grace=1)
    if stop.is_set():
        err.print(f"interrupted: running trials were stopped; `{resume_hint or _hint(store, None, ['resume'], name, namespace)}` "
                  "carries on", highlight=False, markup=False)
        return EXIT_INTERRUPTED
    rec = store.get_experiment(namespace, name)
    return _summary(rec, store.list_trials(rec.id))


def _trials_setup(executor: str, ray_address: str | None, kubeconfig: str | None, context: str | None,
                  clean_env: bool, slurm_partition: str | None, slurm_account: str | None, kueue_queue: str | None,
                  kueue_priority_class: str | None, grpc_port: int | None, db_manager_address: str | None,
                  collector_image: list[str]) -> tuple[Any, str | None, list[str]]:
    """What ``run`` and ``resume`` make of their executor flags: the executor's factory,
    the host the DBManager binds alone (``--db-manager-address HOST``), and the words of
    the resume hint that carries on as this command ran."""
    from katib.cli._server import _collector_images

    address, host_only = _db_manager_flags(db_manager_address, grpc_port)
    factory = _executor_factory(executor, ray_address, kubeconfig, context, clean_env=clean_env,
                                slurm_partition=slurm_partition, slurm_account=slurm_account,
                                kueue_queue=kueue_queue, kueue_priority_class=kueue_priority_class,
                                db_manager_address=address, collector_images=_collector_images(collector_image))
    words = _resume_words(executor, {"--ray-address": ray_address, "--kubeconfig": kubeconfig, "--context": context,
                                     "--slurm-partition": slurm_partition, "--slurm-account": slurm_account,
                                     "--kueue-queue": kueue_queue, "--kueue-priority-class": kueue_priority_class,
                                     "--grpc-port": grpc_port, "--db-manager-address": db_manager_address})
    return factory, host_only, words


def _resume_words(executor: str, flags: dict[str, object]) -> list[str]:
    """``resume`` with what decides where and how the trials run, as given: the printed
    command must carry on as this one ran (a Kueue queue, a Slurm partition, a cluster)."""
    words = ["resume", *(["--executor", executor] if executor != "local" else [])]
    for flag, value in flags.items():
        if value is not None:
            words += [flag, str(value)]
    return words


def _kept_source(db: str | None, doc: object) -> tuple[Any, str | None]:
    """The store, opened only when ``doc`` carries the OptimizationJob annotation, and the
    annotation the stored experiment of its name keeps (admission's ``kept_source``): the
    file of an experiment written from an OptimizationJob (``katib get -o yaml``) runs again
    as it did before the annotation was reserved; a new experiment may not carry it."""
    from katib.spec import is_optimization_job, optimization_job_source_text

    if is_optimization_job(doc) or optimization_job_source_text(doc) is None:
        return None, None  # admission's answer needs no stored experiment
    from katib.optimizationjobs import source_annotation, stored_experiment

    store = _store(db)
    return store, source_annotation(stored_experiment(store, doc))


@app.command()
def run(
    file: Path = typer.Argument(..., help="Experiment YAML or JSON file."),
    db: str | None = DbOption,
    tick: float = TickOption,
    suggestion: str | None = SuggestionOption,
    executor: str = ExecutorOption,
    ray_address: str | None = RayAddressOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
    slurm_partition: str | None = SlurmPartitionOption,
    slurm_account: str | None = SlurmAccountOption,
    kueue_queue: str | None = KueueQueueOption,
    kueue_priority_class: str | None = KueuePriorityOption,
    grpc_port: int | None = GrpcPortOption,
    grpc_host: str = GrpcHostOption,
    allow_unauthenticated: bool = AllowUnauthenticatedGrpcOption,
    db_manager_address: str | None = DbManagerOption,
    collector_image: list[str] = CollectorImageOption,
    clean_env: bool = CleanEnvOption,
    configmaps: str | None = ConfigMapsOption,
) -> None:
    """Run an experiment to its end in the foreground (local processes, SQLite).

    Running the same file again resumes it; raising maxTrialCount restarts a finished
    experiment whose resumePolicy is LongRunning or FromVolume. With --server the server
    runs it (with its executor, in its --workdir) and this follows it to its end."""
    grpc_bind_checked(grpc_host, grpc_port, allow_unauthenticated)
    remote = _remote()
    if remote is not None:
        from katib.cli import _follow

        _server_runs_it(remote, executor, clean_env)
        raise typer.Exit(_follow.submit(remote, file, configmaps, tick))
    from katib.controller import Controller, admit, admit_remote

    docs = _read_experiments(file)
    if len(docs) > 1:
        raise UnreadableInput(f"{file}: holds {len(docs)} experiments; `katib run` takes one (invalid input)")
    doc = _with_configmap(docs[0], configmaps, executor, kubeconfig, context)
    store, kept = _kept_source(db, doc)
    exp = admit_remote(doc, suggestion, kept) if suggestion else admit(doc, kept)
    factory, host_only, words = _trials_setup(executor, ray_address, kubeconfig, context, clean_env, slurm_partition,
                                              slurm_account, kueue_queue, kueue_priority_class, grpc_port,
                                              db_manager_address, collector_image)
    from katib.controller import runnable_errors

    errors = runnable_errors(exp, executor)
    if errors:
        raise ValidationError(errors)
    store = store or _store(db)
    try:
        stored: Any = store.get_experiment(exp.namespace or "default", exp.name or "")
        _not_run_elsewhere(store, stored, db)
    except NotFoundError:
        stored = None
        _not_a_tenants(store, exp.namespace or "default", exp.name or "", "run")  # a new one too: in a tenant's name
    made = _start_executor(factory, executor)  # before anything is stored: a failure leaves nothing behind
    grpc = _serve_grpc(store, made, grpc_host, grpc_port, host_only)
    try:
        rec, action = Controller(store, runs_root=_runs_root(store)).submit(exp, file.resolve().parent)
    except ValidationError as exc:
        if stored is None:
            raise
        _print_errors(exc, str(file))  # an edit Katib's webhook refuses: say the way forward too
        ns, name = exp.namespace or "default", exp.name or ""
        err.print(f"{file} edits the stored experiment {ns}/{name}, which may change only as Katib allows (its "
                  f"budget; a finished one if it can restart): `{_hint(store, db, ['delete', 'experiment'], name, ns)}` "
                  f"and run it again, or give metadata.name a new name", highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    verb = {"created": "created", "resumed": "resumed", "restarted": "restarted",
            "unchanged": "already finished"}[action]
    out.print(f"experiment.kubeflow.org/{rec.name} {verb}", highlight=False)
    raise typer.Exit(_drive(store, rec.namespace, rec.name, tick, suggestion, lambda: made,
                            _hint(store, db, words, rec.name, rec.namespace), grpc))


@app.command()
def resume(
    name: str = typer.Argument(..., help="Experiment name."),
    namespace: str | None = NamespaceOption,
    db: str | None = DbOption,
    tick: float = TickOption,
    suggestion: str | None = SuggestionOption,
    executor: str = ExecutorOption,
    ray_address: str | None = RayAddressOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
    slurm_partition: str | None = SlurmPartitionOption,
    slurm_account: str | None = SlurmAccountOption,
    kueue_queue: str | None = KueueQueueOption,
    kueue_priority_class: str | None = KueuePriorityOption,
    grpc_port: int | None = GrpcPortOption,
    grpc_host: str = GrpcHostOption,
    allow_unauthenticated: bool = AllowUnauthenticatedGrpcOption,
    db_manager_address: str | None = DbManagerOption,
    collector_image: list[str] = CollectorImageOption,
    clean_env: bool = CleanEnvOption,
) -> None:
    """Carry on with an experiment whose controller stopped or died."""
    grpc_bind_checked(grpc_host, grpc_port, allow_unauthenticated)
    remote = _remote()
    if remote is not None:
        from katib.cli import _follow

        _server_runs_it(remote, executor, clean_env)
        raise typer.Exit(_follow.resume(remote, name, namespace, tick))
    factory, host_only, words = _trials_setup(executor, ray_address, kubeconfig, context, clean_env, slurm_partition,
                                              slurm_account, kueue_queue, kueue_priority_class, grpc_port,
                                              db_manager_address, collector_image)
    store = _store(db)
    namespace = _locate(store, name, namespace)
    _not_run_elsewhere(store, store.get_experiment(namespace, name), db)
    made = _start_executor(factory, executor)
    grpc = _serve_grpc(store, made, grpc_host, grpc_port, host_only)
    raise typer.Exit(_drive(store, namespace, name, tick, suggestion, lambda: made,
                            _hint(store, db, words, name, namespace), grpc))
