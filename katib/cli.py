"""The ``katib`` command line: validate, run, resume, get, describe, logs, delete."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import threading
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from katib.errors import FieldError, KatibError, NotFoundError, ValidationError
from katib.names import RunLayout

app = typer.Typer(
    help="Run Kubeflow Katib experiments on this machine: no cluster, no server.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
get_app = typer.Typer(help="List experiments or trials, or show one.", no_args_is_help=True)
suggestion_app = typer.Typer(help="The gRPC suggestion service (Katib's API).", no_args_is_help=True)
user_app = typer.Typer(help="Users, API tokens and roles for `katib server --auth`.", no_args_is_help=True)
describe_app = typer.Typer(help="Show one experiment in detail.", no_args_is_help=True)
delete_app = typer.Typer(help="Delete an experiment with its trials.", no_args_is_help=True)
export_app = typer.Typer(help="Write what would run an experiment's result in a cluster.", no_args_is_help=True)
app.add_typer(get_app, name="get")
app.add_typer(describe_app, name="describe")
app.add_typer(delete_app, name="delete")
app.add_typer(export_app, name="export")
app.add_typer(suggestion_app, name="suggestion")
app.add_typer(user_app, name="user")

# Piped output is never cut to 80 columns: scripts and logs get whole lines.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 400)
err = Console(stderr=True, soft_wrap=True)

EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 1, 2, 130


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"katib {version('katib')}")
        except PackageNotFoundError:
            from katib import __version__

            print(f"katib {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print katib's version and exit."),
) -> None:
    pass


class Output(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


ExecutorOption = typer.Option("local", "--executor",
                              help="Where trials run: local (processes here), ray or kubernetes.")
RayAddressOption = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS",
                                help="Ray cluster to use with --executor ray (default: start a local one).")
KubeconfigOption = typer.Option(None, "--kubeconfig", envvar="KUBECONFIG",
                                help="kubeconfig for --executor kubernetes (default: in-cluster, else ~/.kube/config).")
ContextOption = typer.Option(None, "--context", help="kubeconfig context for --executor kubernetes.")
CleanEnvOption = typer.Option(
    False, "--clean-env",
    help="Start trials with only their template's env, katib's KATIB_* variables, PATH, the locale and TZ "
         "(HOME is the trial's folder), not with this shell's environment (katib server always does).")


def _executor_factory(executor: str, ray_address: str | None, kubeconfig: str | None = None,
                      context: str | None = None, push_url: str | None = None, push_tokens: Any = None,
                      clean_env: bool = False, sandbox: Any = None) -> Any:
    """What makes each experiment's executor. ``clean_env``: trials get none of this
    process's environment but ``PATH``, the locale and ``TZ`` (pods never get it);
    ``sandbox``: local trials run in it (``trials._sandbox.Sandbox``)."""
    if executor == "local":
        from trials import LocalExecutor

        return lambda: LocalExecutor(clean_env=clean_env, sandbox=sandbox)
    if executor == "ray":
        try:
            import ray  # noqa: F401  (the extra is checked here, before anything is stored)

            from trials import RayExecutor
        except ImportError:
            raise KatibError("--executor ray needs Ray: pip install 'katib[ray]'") from None
        return lambda: RayExecutor(ray_address, clean_env=clean_env)
    if executor == "kubernetes":
        try:
            import kubernetes  # noqa: F401

            from trials import KubernetesExecutor
        except ImportError:
            raise KatibError("--executor kubernetes needs its extra: pip install 'katib[kubernetes]'") from None
        api = KubernetesExecutor.connect(kubeconfig, context)  # fail now, with the reason, if there is no cluster
        return lambda: KubernetesExecutor(api_client=api, push_url=push_url, push_tokens=push_tokens)
    raise KatibError(f"--executor must be local, ray or kubernetes (got {executor!r})")


def _start_executor(factory: Any, executor: str) -> Any:
    """Make the executor now, before the experiment is stored or driven: a Ray node that
    cannot start, or a cluster out of reach, is one sentence and leaves nothing behind."""
    try:
        return factory()
    except KatibError:
        raise
    except Exception as exc:  # Ray and the Kubernetes client raise many kinds; the first line says why
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        why = (lines[0] if lines else type(exc).__name__)[:300]
        if executor == "ray":
            raise KatibError(f"--executor ray: Ray could not start a node here or reach its cluster ({why}); "
                             "give the address of a running one with --ray-address (or $RAY_ADDRESS)") from None
        raise KatibError(f"--executor {executor} could not start: {why}") from None


SuggestionOption = typer.Option(
    None, "--suggestion-service", envvar="KATIB_SUGGESTION_SERVICE",
    help="host:port of a gRPC suggestion service (ours or Katib's) to ask instead of the built-in algorithms.",
)
DbOption = typer.Option(None, "--db", envvar="KATIB_DB", help="SQLite file or database URL (default ~/.katib/katib.db).")
def _namespace(value: str | None) -> str | None:
    """The namespace option follows the name rule before anything is looked up or touched."""
    from katib.names import name_errors

    if value is None:
        return None
    errors = name_errors("namespace", value, "--namespace")
    if errors:
        raise typer.BadParameter("; ".join(e.message for e in errors))
    return value


NamespaceOption = typer.Option(
    None, "--namespace", "-n", callback=_namespace, show_default=False,
    help="Namespace of the experiment or trial (default: the one namespace that holds the name; else default).")
OutputOption = typer.Option(Output.table, "--output", "-o", help="table, json or yaml.")


def _store(db: str | None) -> Any:
    from katib.store import Store

    return Store(db)


def _locate(store: Any, name: str, namespace: str | None, kind: str = "experiment") -> str:
    """The namespace to find ``name`` in: the one given with ``-n``; without it, the one
    namespace holding that name. A name in several namespaces is refused, naming them;
    one that is nowhere is looked up in ``default`` (whose error says so)."""
    found = store.namespaces_of(name, kind)
    if namespace is not None:
        if namespace not in found and found:
            raise NotFoundError(f"{kind} {namespace}/{name} not found; it is in namespace "
                                f"{', '.join(found)}: -n {found[0]}")
        return namespace
    if len(found) > 1:
        raise KatibError(f"{kind} {name} is in {len(found)} namespaces ({', '.join(found)}): choose one with -n, "
                         f"e.g. -n {found[0]}")
    return found[0] if found else "default"


def _hint(store: Any, db: str | None, words: list[str], name: str, namespace: str) -> str:
    """A command to print for the user, complete enough to work as printed: with ``-n``
    unless the experiment is the only one of its name in ``default``, with ``--db`` when
    one was given on the command line."""
    parts = ["katib", *words, name]
    if namespace != "default" or len(store.namespaces_of(name)) > 1:
        parts += ["-n", namespace]
    if db is not None and db != os.environ.get("KATIB_DB"):
        parts += ["--db", db]
    return shlex.join(parts)


def _runs_root(store: Any) -> Path:
    if store.dialect == "sqlite" and store.url not in ("sqlite://", "sqlite:///:memory:"):
        return Path(store.url.split("///", 1)[1]).parent / "runs"
    return Path(os.environ.get("KATIB_HOME", Path.home() / ".katib")) / "runs"


def _print_errors(exc: ValidationError, source: str = "") -> None:
    where = f"{source}: " if source else ""
    err.print(f"[bold red]error:[/] {escape(where)}invalid {exc.what} ({len(exc.errors)} error(s))", highlight=False)
    for e in exc.errors:
        err.print(f"  - {e}", highlight=False, markup=False)


def _dump(obj: Any, fmt: Output) -> None:
    if fmt is Output.json:
        out.print_json(json.dumps(obj))
    else:
        print(yaml.safe_dump(obj, sort_keys=False), end="")


def _read_experiments(path: Path) -> list[Any]:
    from katib.spec import experiment_documents

    try:
        text = path.read_text()
    except OSError as exc:
        raise KatibError(f"cannot read {path}: {exc.strerror}") from None
    docs = experiment_documents(text)
    if not docs:
        raise KatibError(f"{path}: no Experiment found")
    return docs


# -- validate ---------------------------------------------------------------------------


@app.command()
def validate(
    files: list[Path] = typer.Argument(..., help="Experiment YAML or JSON files."),
    output: Output | None = typer.Option(None, "--output", "-o", help="Print the defaulted experiment (json or yaml)."),
) -> None:
    """Check experiments like `kubectl apply --dry-run`: defaults applied, every rule checked."""
    from katib.controller import admit

    bad = 0
    for path in files:
        for doc in _read_experiments(path):
            try:
                exp = admit(doc)
            except ValidationError as exc:
                bad += 1
                _print_errors(exc, str(path))
                continue
            if output in (Output.json, Output.yaml):
                _dump(exp.to_dict(), output)
            else:
                out.print(f"experiment.kubeflow.org/{exp.name} validated ({path}; dry run)", highlight=False)
    if bad:
        raise typer.Exit(EXIT_INVALID)


# -- run / resume -------------------------------------------------------------------------


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
            out.print(f"{trial.name}  Running    {params}", highlight=False)
        elif event == "finished":
            out.print(f"{trial.name}  {trial.state:<10} {self._metrics(trial)}{self._best_text()}", highlight=False)

    def _metrics(self, trial: Any) -> str:
        if trial.state not in ("Succeeded", "EarlyStopped"):
            message = next((c.get("message", "") for c in reversed(trial.conditions) if c.get("status") == "True"), "")
            return message if len(message) <= 240 else "…" + message[-240:]
        from katib.views import shown_value

        return " ".join(f"{k}={shown_value(trial.observation, k, self.run.strategies)}" for k in trial.observation or {})

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
            table.add_column(p.name or "", justify="right")
        for m in run.names:
            table.add_column(m, justify="right")
        shown = trials[-12:]
        notes = [_why(t) for t in shown]
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


def _why(trial: Any) -> str:
    """Why a trial failed, in brief: its condition's reason and message (before the
    trial's last output, which `katib logs` shows whole)."""
    if trial.state not in ("Failed", "MetricsUnavailable", "Killed"):
        return ""
    from katib.controller import LAST_OUTPUT

    cond: dict[str, Any] = next((c for c in reversed(trial.conditions) if c.get("type") == trial.state), {})
    message = (cond.get("message") or "").split(LAST_OUTPUT, 1)[0]
    return ": ".join(x for x in (cond.get("reason") or "", message) if x)


def _summary(store: Any, namespace: str, name: str) -> int:
    from katib import views

    rec = store.get_experiment(namespace, name)
    status = rec.status
    phase, reason = views.phase(rec), views.reason(rec)
    colour = "green" if phase == "Succeeded" else "red" if phase == "Failed" else "yellow"
    out.print(f"\nexperiment [bold]{name}[/] [{colour}]{phase}[/] ({reason})", highlight=False)
    counts = ", ".join(
        f"{status.get(k, 0)} {label}" for k, label in (
            ("trialsSucceeded", "succeeded"), ("trialsFailed", "failed"), ("trialsKilled", "killed"),
            ("trialsEarlyStopped", "early stopped"), ("trialMetricsUnavailable", "metrics unavailable"))
        if status.get(k)
    )
    out.print(f"trials: {status.get('trials', 0)} ({counts or 'none finished'})", highlight=False)
    best = status.get("currentOptimalTrial") or {}
    if best.get("bestTrialName"):
        out.print(f"best trial: {best['bestTrialName']}", highlight=False)
        for a in best.get("parameterAssignments", []):
            out.print(f"  {a['name']} = {a['value']}", highlight=False)
        strategies = views.strategies_of(rec)
        for m in (best.get("observation") or {}).get("metrics", []):
            value = views.shown_value({m["name"]: m}, m["name"], strategies)
            if m.get("min") == m.get("max") == m.get("latest"):  # one value, or a text metric
                out.print(f"  {m['name']}: {value}", highlight=False)
            else:
                out.print(f"  {m['name']}: {value} ({strategies.get(m['name'], 'latest')}; latest {m.get('latest')}, "
                          f"min {m.get('min')}, max {m.get('max')})", highlight=False)
    trials = store.list_trials(rec.id)
    failure = views.last_failure(trials)
    if phase == "Failed" and failure:
        out.print(Text.assemble(("last failure: ", "bold red"),
                                f"{failure['trial']} {failure['state']} ({failure['reason']}): {failure['message']}"))
    note = views.no_result(rec, trials)
    if note:
        out.print(Text.assemble(("no result: ", "bold red"), note))
        return EXIT_FAILED
    return 0 if phase == "Succeeded" else EXIT_FAILED


def _drive(store: Any, namespace: str, name: str, tick: float, suggestion: str | None = None,
           executor: Any = None, resume_hint: str | None = None) -> int:
    from katib.controller import Controller

    progress = _Progress(live=out.is_terminal)
    controller = Controller(store, executor=executor() if executor else None, runs_root=_runs_root(store), tick=tick,
                            listener=progress, suggestion_address=suggestion)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
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
    if stop.is_set():
        err.print(f"interrupted: running trials were stopped; `{resume_hint or _hint(store, None, ['resume'], name, namespace)}` "
                  "carries on", highlight=False, markup=False)
        return EXIT_INTERRUPTED
    return _summary(store, namespace, name)


@app.command()
def run(
    file: Path = typer.Argument(..., help="Experiment YAML or JSON file."),
    db: str | None = DbOption,
    tick: float = typer.Option(1.0, help="Seconds between metric reads of running trials."),
    suggestion: str | None = SuggestionOption,
    executor: str = ExecutorOption,
    ray_address: str | None = RayAddressOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
    clean_env: bool = CleanEnvOption,
) -> None:
    """Run an experiment to its end in the foreground (local processes, SQLite).

    Running the same file again resumes it; raising maxTrialCount restarts a finished
    experiment whose resumePolicy is LongRunning or FromVolume."""
    from katib.controller import Controller, admit, admit_remote

    docs = _read_experiments(file)
    if len(docs) > 1:
        raise KatibError(f"{file}: holds {len(docs)} experiments; `katib run` takes one")
    exp = admit_remote(docs[0], suggestion) if suggestion else admit(docs[0])
    factory = _executor_factory(executor, ray_address, kubeconfig, context, clean_env=clean_env)
    from katib.controller import runnable_errors

    errors = runnable_errors(exp, executor)
    if errors:
        raise ValidationError(errors)
    made = _start_executor(factory, executor)  # before anything is stored: a failure leaves nothing behind
    store = _store(db)
    rec, action = Controller(store, runs_root=_runs_root(store)).submit(exp, file.resolve().parent)
    verb = {"created": "created", "resumed": "resumed", "restarted": "restarted",
            "unchanged": "already finished"}[action]
    out.print(f"experiment.kubeflow.org/{rec.name} {verb}", highlight=False)
    words = ["resume", *(["--executor", executor] if executor != "local" else [])]
    raise typer.Exit(_drive(store, rec.namespace, rec.name, tick, suggestion, lambda: made,
                            _hint(store, db, words, rec.name, rec.namespace)))


@app.command()
def resume(
    name: str = typer.Argument(..., help="Experiment name."),
    namespace: str | None = NamespaceOption,
    db: str | None = DbOption,
    tick: float = typer.Option(1.0, help="Seconds between metric reads of running trials."),
    suggestion: str | None = SuggestionOption,
    executor: str = ExecutorOption,
    ray_address: str | None = RayAddressOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
    clean_env: bool = CleanEnvOption,
) -> None:
    """Carry on with an experiment whose controller stopped or died."""
    factory = _executor_factory(executor, ray_address, kubeconfig, context, clean_env=clean_env)
    store = _store(db)
    namespace = _locate(store, name, namespace)
    store.get_experiment(namespace, name)
    made = _start_executor(factory, executor)
    words = ["resume", *(["--executor", executor] if executor != "local" else [])]
    raise typer.Exit(_drive(store, namespace, name, tick, suggestion, lambda: made,
                            _hint(store, db, words, name, namespace)))


def _katib_command(pid: int) -> list[str] | None:
    """The katib command a process runs (``["run", "exp.yaml", ...]``), from its command
    line; None when it is not the katib command line (a program using KatibClient)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    for i, arg in enumerate(argv):
        if (arg == "katib" and i > 0 and argv[i - 1] == "-m") or (Path(arg).name == "katib" and i <= 1):
            return [a for a in argv[i + 1:] if a]
    return None


def _option(args: list[str], name: str, default: str) -> str:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def _stop_on_server(url: str, token: str | None, name: str, namespace: str | None) -> str:
    """POST …/stop to a katib server; the namespace found there as ``_locate`` does here."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60) as http:
        def call(method: str, path: str) -> Any:
            try:
                r = http.request(method, "/api/v1" + path)
            except httpx.HTTPError as exc:
                raise KatibError(f"cannot reach the katib server at {url}: {exc}") from None
            if r.status_code == 401:
                raise KatibError(f"the katib server at {url} needs an API token: --token or $KATIB_TOKEN")
            if r.status_code == 404:
                raise NotFoundError(f"experiment {namespace or 'default'}/{name} not found on {url}")
            if r.status_code >= 300:
                raise KatibError(f"the katib server at {url} answered {r.status_code}: {r.text[:300]}")
            return r.json()

        if namespace is None:
            found = sorted({e["metadata"]["namespace"] for e in call("GET", "/experiments")["items"]
                            if e["metadata"]["name"] == name})
            if len(found) > 1:
                raise KatibError(f"experiment {name} is in {len(found)} namespaces ({', '.join(found)}): "
                                 f"choose one with -n, e.g. -n {found[0]}")
            namespace = found[0] if found else "default"
        call("POST", f"/namespaces/{namespace}/experiments/{name}/stop")
    return namespace


@app.command()
def stop(
    name: str = typer.Argument(..., help="Experiment name."),
    namespace: str | None = NamespaceOption,
    db: str | None = DbOption,
    server_url: str | None = typer.Option(
        None, "--server", envvar="KATIB_SERVER", metavar="URL",
        help="A katib server that runs it (http://127.0.0.1:8080): stop it through the server's API."),
    token: str | None = typer.Option(None, "--token", envvar="KATIB_TOKEN", help="API token for --server under --auth."),
    timeout: float = typer.Option(60.0, help="Seconds to wait for its controller to stop."),
) -> None:
    """Stop a running experiment's controller and its running trials; `katib resume` carries on.

    The `katib run` (or `resume`) running it is stopped as Ctrl-C would; one that a
    `katib server` runs is stopped through that server's API (found from its command line
    on this machine, or given with --server)."""
    from katib import views

    if server_url:
        _stop_on_server(server_url, token, name, namespace)
        out.print(f"experiment {name} stopped on {server_url}", highlight=False)
        return
    store = _store(db)
    namespace = _locate(store, name, namespace)
    rec = store.get_experiment(namespace, name)
    resume_hint = _hint(store, db, ["resume"], name, namespace)
    shown = views.shown_phase(rec)
    if shown in ("Succeeded", "Failed"):
        out.print(f"experiment {name} has ended ({shown}): nothing to stop", highlight=False)
        return
    if shown == "Stopped" or not rec.owner:
        out.print(f"experiment {name} is not running (no controller runs it); `{resume_hint}` carries on",
                  highlight=False, markup=False)
        return
    import socket

    host, pid_text, _ = rec.owner.rsplit(":", 2)
    if host != socket.gethostname():
        raise KatibError(f"experiment {name} is run by a controller on {host} (pid {pid_text}); stop it there")
    pid = int(pid_text)
    command = _katib_command(pid)
    if command and command[0] == "server":
        url = (f"http://{_option(command, '--host', '127.0.0.1')}:{_option(command, '--port', '8080')}")
        ns = _stop_on_server(url, token, name, namespace)
        out.print(f"experiment {name} stopped (by the katib server at {url}); "
                  f"`{_hint(store, db, ['resume'], name, ns)}` carries on", highlight=False, markup=False)
        return
    if not command or command[0] not in ("run", "resume"):
        raise KatibError(f"experiment {name} is run by process {pid}, a program using KatibClient, not by "
                         "`katib run`: stop it there (KatibClient.close(), or end that program)")
    os.kill(pid, signal.SIGTERM)  # what Ctrl-C does: running trials are stopped, the store is left resumable
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and views.controller_alive(store.get_experiment(namespace, name)):
        time.sleep(0.2)
    if views.controller_alive(store.get_experiment(namespace, name)):
        raise KatibError(f"experiment {name}: its controller (pid {pid}) is still stopping after {timeout:g} s")
    out.print(f"experiment {name} stopped: its running trials were ended; `{resume_hint}` carries on",
              highlight=False, markup=False)


AllowedHostOption = typer.Option(
    [], "--allowed-host",
    help="A name the Host header may carry besides loopback names (without --auth, other names are refused: DNS rebinding).")
MaxBodyOption = typer.Option(1 << 20, "--max-body", help="The largest request body accepted, in bytes.")


UNFENCED = ("every editor of a namespace could run code as this server's user: read and change the store, "
            "other namespaces' trials and files, and the server's secrets")


def _fence(executor: str, auth: bool, sandbox: bool | None, allow_unfenced: bool, store: Any,
           secrets: list[Path] | None = None) -> Any:
    """The sandbox local trials run in (None: none), which hides the store's files and
    ``secrets``. With ``auth`` an executor that cannot fence trials in is refused unless
    ``allow_unfenced``: a tenant's trial would be code run as this server. Kubernetes pods
    are fenced in by their cluster."""
    want = auth if sandbox is None else sandbox
    if executor == "local" and want:
        from trials import Sandbox, store_files
        from trials import sandbox_problem as problem

        why = problem()
        if why is None:
            sqlite = store.dialect == "sqlite" and store.url not in ("sqlite://", "sqlite:///:memory:")
            hidden = [*(store_files(Path(store.url.split("///", 1)[1])) if sqlite else []), *(secrets or [])]
            return Sandbox(_runs_root(store), hidden=hidden)
        if sandbox:
            raise KatibError(f"--sandbox: trials cannot be sandboxed on this machine: {why}")
        unfenced = f"local trials cannot be sandboxed on this machine ({why})"
    elif executor == "local":
        unfenced = "--no-sandbox runs local trials unfenced"
    elif executor == "ray":
        unfenced = "Ray has no sandbox: a trial runs as the Ray workers' user, with their files and processes"
    else:
        return None
    if auth and not allow_unfenced:
        raise KatibError(f"refusing to run trials under --auth: {unfenced}, so {UNFENCED}. Install bubblewrap "
                         "(apt-get install bubblewrap) for the local executor, use --executor kubernetes, or pass "
                         "--allow-unfenced-trials if every editor may do that")
    if auth:
        err.print(f"[bold yellow]warning:[/] --allow-unfenced-trials: {unfenced}; {UNFENCED}", highlight=False)
    return None


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def server(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port."),
    db: str | None = DbOption,
    workdir: Path = typer.Option(Path("."), help="Folder that relative trial commands run in."),
    tick: float = typer.Option(1.0, help="Seconds between metric reads of running trials."),
    executor: str = ExecutorOption,
    ray_address: str | None = RayAddressOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
    push_url: str | None = typer.Option(
        None, "--push-url", help="This server's address as pods reach it, for the Push collector with --executor kubernetes."),
    push_token: str | None = typer.Option(
        None, "--push-token", envvar="KATIB_PUSH_TOKEN", hidden=True,
        help="No longer used: each pod gets a token that pushes its own trial's metrics and nothing else."),
    auth: bool = typer.Option(False, "--auth", help="Require bearer tokens and per-namespace roles (katib user …)."),
    allow_unauthenticated: bool = typer.Option(
        False, "--allow-unauthenticated", help="Listen on a non-loopback address without --auth."),
    sandbox: bool | None = typer.Option(
        None, "--sandbox/--no-sandbox",
        help="Run local trials in a bubblewrap sandbox (the default with --auth): no store, no other namespace's "
             "files or processes, no server secrets, memory limits enforced."),
    allow_unfenced_trials: bool = typer.Option(
        False, "--allow-unfenced-trials",
        help="With --auth, run trials even where they cannot be fenced in (no bubblewrap, --no-sandbox, --executor ray): "
             "every editor may then run code as this server's user, reading and changing the store, other "
             "namespaces' files and the server's secrets. docs/security.md"),
    allowed_host: list[str] = AllowedHostOption,
    max_body: int = MaxBodyOption,
) -> None:
    """Serve the REST API and the Kubernetes-style endpoints, and run every experiment.

    Unfinished experiments carry on when the server starts; stopping it stops their
    running trials, which the next start runs again."""
    if not _loopback(host) and not (auth or allow_unauthenticated):
        raise KatibError(f"refusing to listen on {host} without authentication: pass --auth "
                         "(and create users with `katib user add`), or --allow-unauthenticated")
    try:
        import uvicorn

        from api import create_app
    except ImportError as exc:
        raise KatibError(f"katib server needs its extra: pip install 'katib[server]' ({exc.name} is missing)") from None
    if push_token:
        err.print("[bold yellow]warning:[/] --push-token (KATIB_PUSH_TOKEN) is no longer used: each pod gets a "
                  "token that pushes its own trial's metrics and nothing else", highlight=False)
    store = _store(db)
    from katib._pushtoken import PushTokens

    # Beside the runs folder, so tokens given to pods stay good when the server restarts.
    secret = _runs_root(store).parent / "push-secret"
    push_tokens = PushTokens.load(secret)
    fence = _fence(executor, auth, sandbox, allow_unfenced_trials, store, secrets=[secret])
    # A server's trials never see its environment: its tokens, keys and store URL stay its own.
    factory = _executor_factory(executor, ray_address, kubeconfig, context, push_url, push_tokens, clean_env=True,
                                sandbox=fence)
    application = create_app(store, _runs_root(store), workdir.resolve(), tick=tick, auth=auth, executor_factory=factory,
                             executor=executor, allowed_hosts=[*allowed_host, host], max_body=max_body,
                             push_tokens=push_tokens)
    uvicorn.run(application, host=host, port=port, log_level="info")


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port."),
    db: str | None = DbOption,
    allowed_host: list[str] = AllowedHostOption,
) -> None:
    """Open the web viewer on a store (e.g. after `katib run`), read-only: it runs, changes
    and deletes nothing."""
    try:
        import uvicorn

        from api import create_app
    except ImportError as exc:
        raise KatibError(f"katib ui needs the server extra: pip install 'katib[server]' ({exc.name} is missing)") from None
    if not _loopback(host):
        raise KatibError(f"katib ui serves without authentication; listen on loopback, not {host} (or use katib server --auth)")
    from katib.store import default_db_url

    path = db or default_db_url()
    if "://" not in path and not Path(path).expanduser().exists():
        # A typo would otherwise open a new, empty store and show no experiments.
        raise KatibError(f"no store at {path}: katib ui opens an existing one (katib run and katib server make it); "
                         "check --db (or $KATIB_DB)")
    store = _store(db)
    application = create_app(store, _runs_root(store), Path(".").resolve(), resume=False, read_only=True,
                             allowed_hosts=[*allowed_host, host])
    out.print(f"the viewer: http://{host}:{port}/", highlight=False)
    uvicorn.run(application, host=host, port=port, log_level="warning")


@user_app.command("add")
def user_add(name: str = typer.Argument(..., help="User name."),
             admin: bool = typer.Option(False, "--admin", help="May do everything in every namespace."),
             db: str | None = DbOption) -> None:
    """Create a user and print their first API token (it is stored hashed: keep it)."""
    from katib.store import UserStore

    print(UserStore(_store(db)).add_user(name, admin))


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str | None) -> float | None:
    """``30d``, ``12h``, ``90m``, ``45s`` in seconds (None stays None)."""
    if text is None:
        return None
    number, unit = text.strip()[:-1], text.strip()[-1:]
    try:
        seconds = float(number) * _DURATION_UNITS[unit]
    except (KeyError, ValueError):
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ValidationError([FieldError("--expires", "must be a positive number followed by s, m, h or d, "
                                          f"like 30d or 12h (got {text!r})")], "option")
    return seconds


def _span(seconds: float) -> str:
    """A duration as its largest whole unit: ``29d``, ``5h``, ``3m``, ``40s``."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@user_app.command("token")
def user_token(name: str = typer.Argument(..., help="User name."),
               expires: str | None = typer.Option(None, "--expires", metavar="DURATION",
                                                  help="Valid for this long: 45s, 90m, 12h, 30d (default: until revoked)."),
               db: str | None = DbOption) -> None:
    """Print a new API token for the user (its id, for `katib user revoke`, goes to stderr)."""
    from katib.store import UserStore

    token, info = UserStore(_store(db)).issue_token(name, _duration(expires))
    print(token)
    until = "until revoked" if info.expires_at is None else "until " + time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(info.expires_at))
    err.print(f"token {info.id} of {name}, valid {until}", highlight=False)


@user_app.command("tokens")
def user_tokens(name: str = typer.Argument(..., help="User name."), db: str | None = DbOption) -> None:
    """The user's tokens: id, age, expiry and last use (never the tokens themselves)."""
    from katib.store import UserStore

    now = time.time()
    table = Table(box=None)
    for col in ("ID", "AGE", "EXPIRES", "LAST USED"):
        table.add_column(col)
    for t in UserStore(_store(db)).list_tokens(name):
        if t.expires_at is None:
            expires = "never"
        elif t.expired(now):
            expires = f"expired {_span(now - t.expires_at)} ago"
        else:
            expires = f"in {_span(t.expires_at - now)}"
        used = "never" if t.last_used_at is None else f"{_span(now - t.last_used_at)} ago"
        table.add_row(str(t.id), _span(now - t.created_at), expires, used)
    out.print(table)


@user_app.command("revoke")
def user_revoke(name: str = typer.Argument(..., help="User name."),
                token_id: int = typer.Argument(..., help="Token id, as `katib user tokens NAME` shows it."),
                db: str | None = DbOption) -> None:
    """Revoke one of the user's tokens: the server refuses it from the next request on."""
    from katib.store import UserStore

    UserStore(_store(db)).revoke_token(name, token_id)
    out.print(f"token {token_id} of {name} revoked", highlight=False)


@user_app.command("remove")
def user_remove(name: str = typer.Argument(..., help="User name."), db: str | None = DbOption) -> None:
    """Delete the user with their tokens and roles (their experiments stay)."""
    from katib.store import UserStore

    UserStore(_store(db)).remove_user(name)
    out.print(f"user {name} removed", highlight=False)


@user_app.command("ungrant")
def user_ungrant(name: str = typer.Argument(..., help="User name."),
                 namespace: str = typer.Argument(..., help="Namespace."),
                 db: str | None = DbOption) -> None:
    """Take the user's role in a namespace away."""
    from katib.store import UserStore

    UserStore(_store(db)).ungrant(name, namespace)
    out.print(f"{name} has no role in {namespace} now", highlight=False)


@user_app.command("grant")
def user_grant(name: str = typer.Argument(..., help="User name."),
               namespace: str = typer.Argument(..., help="Namespace."),
               role: str = typer.Argument(..., help="viewer, editor or owner."),
               db: str | None = DbOption) -> None:
    """Give the user a role in a namespace (replacing the one they had there)."""
    from katib.store import UserStore

    UserStore(_store(db)).grant(name, namespace, role)
    out.print(f"{name} is {role} in {namespace}", highlight=False)


@user_app.command("list")
def user_list(db: str | None = DbOption) -> None:
    """Users and their roles."""
    from katib.store import UserStore

    for u in UserStore(_store(db)).list_users():
        roles = ", ".join(f"{ns}: {r}" for ns, r in sorted(u.roles.items())) or "-"
        out.print(f"{u.name}{' (admin)' if u.admin else ''}  {roles}", highlight=False)


@suggestion_app.command("serve")
def suggestion_serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 inside a pod)."),
    port: int = typer.Option(6789, help="Port (Katib's suggestion port is 6789)."),
) -> None:
    """Serve every algorithm over Katib's gRPC Suggestion API, with the gRPC health check."""
    from suggestion import serve

    server = serve(host, port)
    err.print(f"suggestion service on {host}:{server.bound_port} (api.v1.beta1.Suggestion, grpc.health.v1)", highlight=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.stop(grace=2).wait()


# -- read commands ----------------------------------------------------------------------


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

    recs = _store(db).list_experiments(namespace)
    if output is not Output.table:
        _dump({"apiVersion": "v1", "kind": "List", "items": [views.experiment_object(r) for r in recs]}, output)
        return
    out.print(_experiments_table(recs))


def _experiments_table(recs: list[Any]) -> Table:
    """Experiments as `katib get experiments` shows them: the phase every screen shows
    (``Stopped`` when no controller runs an unfinished one), trials done of the budget."""
    from katib import views

    table = Table(box=None)
    for col in ("NAMESPACE", "NAME", "STATUS", "REASON", "TRIALS", "SUCCEEDED", "FAILED", "BEST", "AGE"):
        table.add_column(col)
    for r in recs:
        best = r.status.get("currentOptimalTrial") or {}
        objective = r.spec.get("spec", {}).get("objective", {}).get("objectiveMetricName")
        metrics = {m["name"]: m for m in (best.get("observation") or {}).get("metrics", [])}
        value = views.shown_value(metrics, objective or "", views.strategies_of(r))
        shown = views.shown_phase(r)
        table.add_row(*map(Text, (
            r.namespace, r.name, shown, views.shown_reason(r, shown), _trials_done(r),
            str(r.status.get("trialsSucceeded", 0)), str(r.status.get("trialsFailed", 0)),
            f"{objective}={_num(value)}" if value else "", _age(r.created_at))))
    return table


def _trials_done(rec: Any) -> str:
    """Trials ended of the budget (``7/12``), or of those made when there is no budget."""
    status = rec.status
    done = status.get("trials", 0) - status.get("trialsRunning", 0) - status.get("trialsPending", 0)
    budget = (rec.spec.get("spec") or {}).get("maxTrialCount")
    return f"{done}/{budget}" if budget else f"{done}/{status.get('trials', 0)}"


def _num(text: Any) -> str:
    """A number as a table shows it: six significant digits (0.0631860, 1.23457e+06);
    integers and text as they are."""
    value = str(text)
    try:
        number = float(value)
    except ValueError:
        return value
    if value.lstrip("-").isdigit() or number != number or number in (float("inf"), float("-inf")):
        return value
    return f"{number:.6g}"


@get_app.command("trials")
def get_trials(
    experiment: str = typer.Argument(..., help="Experiment name."),
    namespace: str | None = NamespaceOption,
    output: Output = OutputOption,
    db: str | None = DbOption,
) -> None:
    """List an experiment's trials with their parameters and metrics."""
    from katib import views

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

    store = _store(db)
    rec = store.get_experiment(_locate(store, name, namespace), name)
    if output is not Output.table:
        _dump(views.experiment_object(rec), output)
        return
    out.print(_experiments_table([rec]))
    shown = views.shown_phase(rec)
    if shown == "Failed":
        message = next((c.get("message", "") for c in rec.status.get("conditions", [])
                        if c.get("type") == "Failed" and c.get("status") == "True"), "")
        out.print(Text(f"\nmessage: {message}"))
        failure = views.last_failure(store.list_trials(rec.id))
        if failure:
            out.print(Text(f"last failure: {failure['trial']} {failure['state']} ({failure['reason']}): "
                           f"{failure['message']}"))
    elif shown == "Stopped":
        out.print(Text(f"\nstopped: no controller runs it; `{_hint(store, db, ['resume'], name, rec.namespace)}` "
                       "carries on"))


@get_app.command("trial")
def get_trial(
    name: str = typer.Argument(..., help="Trial name."),
    namespace: str | None = NamespaceOption,
    output: Output = OutputOption,
    db: str | None = DbOption,
) -> None:
    """One trial: its parameters, metrics and why it failed, or Katib's object (-o json|yaml)."""
    from katib import views

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

    store = _store(db)
    rec = store.get_experiment(_locate(store, name, namespace), name)
    _dump(views.experiment_object(rec), Output.json if output is Output.json else Output.yaml)
    note = views.no_result(rec, store.list_trials(rec.id))
    if note:
        err.print(Text.assemble(("no result: ", "bold red"), note))
    if views.shown_phase(rec) == "Stopped":
        err.print(Text(f"stopped: no controller runs it; `{_hint(store, db, ['resume'], name, rec.namespace)}` carries on"))


@app.command()
def logs(
    trial: str = typer.Argument(..., help="Trial name."),
    namespace: str | None = NamespaceOption,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing while the trial runs."),
    db: str | None = DbOption,
) -> None:
    """Print a trial's output (stdout and stderr of its process)."""
    store = _store(db)
    namespace = _locate(store, trial, namespace, "trial")
    rec, t = store.get_trial(namespace, trial)
    path = RunLayout(_runs_root(store)).trial_log(rec.namespace, rec.name, t.name)
    if not path.exists():
        raise NotFoundError(f"no log for trial {trial} (it has not started on this machine)")
    with open(path, "rb") as f:
        while True:
            chunk = f.read()
            if chunk:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
            if not follow:
                break
            _, t = store.get_trial(namespace, trial)
            if t.state not in ("Created", "Running"):
                sys.stdout.write(f.read().decode(errors="replace"))
                break
            time.sleep(0.5)


@delete_app.command("experiment")
def delete_experiment(
    name: str = typer.Argument(..., help="Experiment name."),
    namespace: str | None = NamespaceOption,
    db: str | None = DbOption,
) -> None:
    """Delete an experiment, its trials, their logs and observations."""
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


@app.command()
def serve(
    experiment: str = typer.Argument(..., help="Experiment name."),
    trial: str | None = typer.Option(None, "--trial", help="Serve this trial's model instead of the best trial's."),
    namespace: str | None = NamespaceOption,
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port."),
    model_name: str | None = typer.Option(None, "--model-name", help="The model's name in the URLs (default: the experiment's)."),
    db: str | None = DbOption,
) -> None:
    """Serve the best trial's model (katib.save_model) over KServe's Open Inference Protocol
    (v2 REST: /v2/models/NAME/infer), with KServe's own server (pip install 'katib[serve]')."""
    from katib.serve import locate
    from katib.serve import serve as serve_model

    store = _store(db)
    namespace = _locate(store, experiment, namespace)
    trial_name, folder = locate(store, _runs_root(store), namespace, experiment, trial)
    store.close()
    name = model_name or experiment
    err.print(f"serving trial {trial_name}'s model ({folder}) as {name}: POST http://{host}:{port}/v2/models/{name}/infer",
              highlight=False)
    serve_model(folder, name, host, port)


@export_app.command("inferenceservice")
def export_inferenceservice(
    experiment: str = typer.Argument(..., help="Experiment name."),
    storage_uri: str | None = typer.Option(None, "--storage-uri", help="Where the cluster finds the model (s3://, gs://, pvc://…)."),
    trial: str | None = typer.Option(None, "--trial", help="This trial's model instead of the best trial's."),
    namespace: str | None = NamespaceOption,
    db: str | None = DbOption,
) -> None:
    """Print the serving.kserve.io/v1beta1 InferenceService that serves the best trial's model
    in a cluster (KServe's sklearn or Triton runtime, Open Inference Protocol v2)."""
    from katib._inferenceservice import inference_service, notes
    from katib._model import find_model
    from katib.serve import locate

    store = _store(db)
    namespace = _locate(store, experiment, namespace)
    trial_name, folder = locate(store, _runs_root(store), namespace, experiment, trial)
    saved = find_model(folder)
    if not storage_uri:
        raise KatibError(f"--storage-uri is needed: copy {saved.file_path} to storage your cluster reads (s3://, gs://, "
                         "pvc://…) and name that folder")
    rec = store.get_experiment(namespace, experiment)
    metric = rec.spec.get("spec", {}).get("objective", {}).get("objectiveMetricName")
    _, t = store.get_trial(namespace, trial_name)
    from katib.views import shown_value, strategies_of

    value = shown_value(t.observation, metric, strategies_of(rec)) if metric else None
    isvc = inference_service(experiment, namespace, trial_name, saved, storage_uri, metric, value)
    header = [f"The model of trial {trial_name} ({saved.format}), served as KServe serves it.",
              *notes(saved, storage_uri, experiment)]
    sys.stdout.write("".join(f"# {line}\n" for line in header) + yaml.safe_dump(isvc, sort_keys=False))


def main() -> None:
    """Entry point: every error this project raises on purpose is a message, not a trace."""
    try:
        app()
    except ValidationError as exc:
        _print_errors(exc)
        sys.exit(EXIT_INVALID)
    except KatibError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
