"""The ``katib`` command line: validate, run, resume, get, describe, logs, delete."""

from __future__ import annotations

import json
import os
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
from rich.table import Table
from rich.text import Text

from katib.errors import FieldError, KatibError, NotFoundError, ValidationError
from katib.names import RunLayout

app = typer.Typer(
    help="Run Kubeflow Katib experiments on this machine: no cluster, no server.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
get_app = typer.Typer(help="List experiments or trials.", no_args_is_help=True)
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
            from trials._ray import RayExecutor
        except ImportError:
            raise KatibError("--executor ray needs Ray: pip install 'katib[ray]'") from None
        return lambda: RayExecutor(ray_address, clean_env=clean_env)
    if executor == "kubernetes":
        try:
            from trials._kubernetes import KubernetesExecutor
        except ImportError:
            raise KatibError("--executor kubernetes needs its extra: pip install 'katib[kubernetes]'") from None
        api = KubernetesExecutor.connect(kubeconfig, context)  # fail now, with the reason, if there is no cluster
        return lambda: KubernetesExecutor(api_client=api, push_url=push_url, push_tokens=push_tokens)
    raise KatibError(f"--executor must be local, ray or kubernetes (got {executor!r})")


SuggestionOption = typer.Option(
    None, "--suggestion-service", envvar="KATIB_SUGGESTION_SERVICE",
    help="host:port of a gRPC suggestion service (ours or Katib's) to ask instead of the built-in algorithms.",
)
DbOption = typer.Option(None, "--db", envvar="KATIB_DB", help="SQLite file or database URL (default ~/.katib/katib.db).")
def _namespace(value: str) -> str:
    """The namespace option follows the name rule before anything is looked up or touched."""
    from katib.names import name_errors

    errors = name_errors("namespace", value, "--namespace")
    if errors:
        raise typer.BadParameter("; ".join(e.message for e in errors))
    return value


NamespaceOption = typer.Option("default", "--namespace", "-n", help="Namespace of the experiment.", callback=_namespace)
OutputOption = typer.Option(Output.table, "--output", "-o", help="table, json or yaml.")


def _store(db: str | None) -> Any:
    from katib.store import Store

    return Store(db)


def _runs_root(store: Any) -> Path:
    if store.dialect == "sqlite" and store.url not in ("sqlite://", "sqlite:///:memory:"):
        return Path(store.url.split("///", 1)[1]).parent / "runs"
    return Path(os.environ.get("KATIB_HOME", Path.home() / ".katib")) / "runs"


def _print_errors(exc: ValidationError, source: str = "") -> None:
    where = f"{source}: " if source else ""
    err.print(f"[bold red]error:[/] {where}invalid {exc.what} ({len(exc.errors)} error(s))", highlight=False)
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
        title = (f"{run.exp.name}  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} trials"
                 + (f"   best {run.objective} = {best:g}" if best is not None else ""))
        table = Table(title=title, title_justify="left", expand=False)
        table.add_column("trial")
        table.add_column("state")
        for p in spec.parameters or []:
            table.add_column(p.name or "", justify="right")
        for m in run.names:
            table.add_column(m, justify="right")
        for t in trials[-12:]:
            params = t.parameters()
            reducer = run.reducers.get(t.name)
            obs = t.observation or (reducer.observation(run.names) if reducer else {})
            style = {"Succeeded": "green", "Failed": "red", "Running": "cyan", "MetricsUnavailable": "yellow"}.get(t.state, "")
            table.add_row(
                t.name, f"[{style}]{t.state}[/]" if style else t.state,
                *[params.get(p.name or "", "") for p in spec.parameters or []],
                *[views.shown_value(obs, m, run.strategies) for m in run.names],
            )
        return table


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
    note = views.no_result(rec, store.list_trials(rec.id))
    if note:
        out.print(Text.assemble(("no result: ", "bold red"), note))
        return EXIT_FAILED
    return 0 if phase == "Succeeded" else EXIT_FAILED


def _drive(store: Any, namespace: str, name: str, tick: float, suggestion: str | None = None,
           executor: Any = None) -> int:
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
        err.print(f"interrupted: running trials were stopped; `katib resume {name}` carries on", highlight=False)
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
    store = _store(db)
    from katib.controller import runnable_errors

    errors = runnable_errors(exp, executor)
    if errors:
        raise ValidationError(errors)
    rec, action = Controller(store, runs_root=_runs_root(store)).submit(exp, file.resolve().parent)
    verb = {"created": "created", "resumed": "resumed", "restarted": "restarted",
            "unchanged": "already finished"}[action]
    out.print(f"experiment.kubeflow.org/{rec.name} {verb}", highlight=False)
    raise typer.Exit(_drive(store, rec.namespace, rec.name, tick, suggestion, factory))


@app.command()
def resume(
    name: str = typer.Argument(..., help="Experiment name."),
    namespace: str = NamespaceOption,
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
    store.get_experiment(namespace, name)
    raise typer.Exit(_drive(store, namespace, name, tick, suggestion, factory))


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
        from trials._sandbox import Sandbox, problem, store_files

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
    table = Table(box=None)
    for col in ("NAMESPACE", "NAME", "STATUS", "REASON", "TRIALS", "SUCCEEDED", "FAILED", "BEST", "AGE"):
        table.add_column(col)
    for r in recs:
        best = r.status.get("currentOptimalTrial") or {}
        objective = r.spec.get("spec", {}).get("objective", {}).get("objectiveMetricName")
        metrics = {m["name"]: m for m in (best.get("observation") or {}).get("metrics", [])}
        value = views.shown_value(metrics, objective or "", views.strategies_of(r))
        table.add_row(r.namespace, r.name, views.phase(r), views.reason(r), str(r.status.get("trials", 0)),
                      str(r.status.get("trialsSucceeded", 0)), str(r.status.get("trialsFailed", 0)),
                      f"{objective}={value}" if value else "", _age(r.created_at))
    out.print(table)


@get_app.command("trials")
def get_trials(
    experiment: str = typer.Argument(..., help="Experiment name."),
    namespace: str = NamespaceOption,
    output: Output = OutputOption,
    db: str | None = DbOption,
) -> None:
    """List an experiment's trials with their parameters and metrics."""
    from katib import views

    store = _store(db)
    rec = store.get_experiment(namespace, experiment)
    trials = store.list_trials(rec.id)
    if output is not Output.table:
        _dump({"apiVersion": "v1", "kind": "List", "items": [views.trial_object(rec, t) for t in trials]}, output)
        return
    spec = rec.spec.get("spec", {})
    params = [p["name"] for p in spec.get("parameters", [])]
    obj = spec.get("objective", {})
    metrics = [obj.get("objectiveMetricName"), *obj.get("additionalMetricNames", [])]
    strategies = views.strategies_of(rec)
    table = Table(box=None)
    for col in ("NAME", "STATUS", *params, *metrics):
        table.add_column(col)
    for t in trials:
        p = t.parameters()
        obs = t.observation or {}
        table.add_row(t.name, t.state, *[p.get(n, "") for n in params],
                      *[views.shown_value(obs, m, strategies) for m in metrics])
    out.print(table)


@describe_app.command("experiment")
def describe_experiment(
    name: str = typer.Argument(..., help="Experiment name."),
    namespace: str = NamespaceOption,
    output: Output = typer.Option(Output.yaml, "--output", "-o", help="yaml or json."),
    db: str | None = DbOption,
) -> None:
    """The whole experiment object: spec and status, as Katib shows it."""
    from katib import views

    store = _store(db)
    rec = store.get_experiment(namespace, name)
    _dump(views.experiment_object(rec), Output.json if output is Output.json else Output.yaml)
    note = views.no_result(rec, store.list_trials(rec.id))
    if note:
        err.print(Text.assemble(("no result: ", "bold red"), note))


@app.command()
def logs(
    trial: str = typer.Argument(..., help="Trial name."),
    namespace: str = NamespaceOption,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing while the trial runs."),
    db: str | None = DbOption,
) -> None:
    """Print a trial's output (stdout and stderr of its process)."""
    store = _store(db)
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
    namespace: str = NamespaceOption,
    db: str | None = DbOption,
) -> None:
    """Delete an experiment, its trials, their logs and observations."""
    import shutil

    from trials import owner_alive

    store = _store(db)
    folder = RunLayout(_runs_root(store)).experiment(namespace, name)  # checks the names first
    rec = store.get_experiment(namespace, name)
    if rec.owner and owner_alive(rec.owner):
        raise KatibError(f"experiment {name} is running under {rec.owner}; stop it first")
    store.delete_experiment(namespace, name)
    shutil.rmtree(folder, ignore_errors=True)
    out.print(f'experiment.kubeflow.org "{name}" deleted', highlight=False)


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
    from katib.serve import locate, namespace_of
    from katib.serve import serve as serve_model

    store = _store(db)
    namespace = namespace_of(store, experiment, namespace)
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
    from katib.serve import locate, namespace_of

    store = _store(db)
    namespace = namespace_of(store, experiment, namespace)
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
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
