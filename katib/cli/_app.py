"""The ``katib`` command line's root: the Typer apps, the consoles, the options every
command shares, and the helpers that find an experiment and print what it is."""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from katib.errors import KatibError, NotFoundError, ValidationError

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


@dataclass(frozen=True)
class Remote:
    """``--server URL`` (``$KATIB_SERVER``) and its ``--token``: the commands go through that
    server's API instead of opening a store here. ``given``: how the URL was given, and
    ``command`` the command run, for the sentence that refuses one."""

    url: str
    token: str | None
    given: str
    command: str


# What only works on this machine: each refuses --server in one sentence.
LOCAL_ONLY = {"server": "runs a server here", "ui": "serves a store of this machine",
              "user": "edits the users of a store of this machine", "serve": "serves a model from this machine's trial folders",
              "export": "reads this machine's trial folders", "suggestion": "serves algorithms from this machine"}
_REMOTE: list[Remote | None] = [None]  # set by the root callback on every invocation


@app.callback()
def _root(
    ctx: typer.Context,
    show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print katib's version and exit."),
    server: str | None = typer.Option(
        None, "--server", metavar="URL", show_default=False,
        help="A katib server (http://host:8080; default $KATIB_SERVER): run, get, describe, logs, delete, stop and "
             "resume go through its API instead of a store here."),
    token: str | None = typer.Option(None, "--token", metavar="TOKEN", show_default=False,
                                     help="API token for --server under --auth (default $KATIB_TOKEN; "
                                          "katib user token NAME makes one)."),
) -> None:
    given = "--server"
    if server is None and os.environ.get("KATIB_SERVER"):
        server, given = os.environ["KATIB_SERVER"], "$KATIB_SERVER"
    _REMOTE[0] = None
    if not server:
        return
    if not server.startswith(("http://", "https://")):
        raise typer.BadParameter(f"must be an http:// or https:// URL (got {server!r})",
                                 param_hint="--server" if given == "--server" else "KATIB_SERVER")
    command = ctx.invoked_subcommand or ""
    remote = _REMOTE[0] = Remote(server.rstrip("/"), token or os.environ.get("KATIB_TOKEN") or None, given, command)
    why = LOCAL_ONLY.get(command)
    if why:
        raise KatibError(f"`katib {command}` {why}, so it cannot go through {given} {remote.url}: "
                         f"run it without {given}")


def _remote() -> Remote | None:
    """The server the commands go through (``--server``), or None: the store here."""
    return _REMOTE[0]


class Output(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


def _known_executor(name: str) -> str:
    """``--executor`` names an executor this installation has: a usage error (exit 2) if not."""
    from trials import unknown_executor

    problem = unknown_executor(name)
    if problem is not None:
        raise typer.BadParameter(problem)
    return name


ExecutorOption = typer.Option("local", "--executor", callback=_known_executor,
                              help="Where trials run: local (processes here), ray, kubernetes, slurm, or an executor an "
                                   "installed package registers (katib.executors entry points, docs/plugins.md).")
RayAddressOption = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS",
                                help="Ray cluster to use with --executor ray (default: start a local one).")
KubeconfigOption = typer.Option(None, "--kubeconfig", envvar="KUBECONFIG",
                                help="kubeconfig for --executor kubernetes (default: in-cluster, else ~/.kube/config).")
ContextOption = typer.Option(None, "--context", help="kubeconfig context for --executor kubernetes.")
SlurmPartitionOption = typer.Option(None, "--slurm-partition", envvar="SBATCH_PARTITION",
                                    help="Slurm partition for --executor slurm (a trial template's "
                                         "slurm.katib.kubeflow.org/partition annotation overrides it).")
SlurmAccountOption = typer.Option(None, "--slurm-account", envvar="SBATCH_ACCOUNT",
                                  help="Slurm account for --executor slurm (or the slurm.katib.kubeflow.org/account "
                                       "annotation).")
KueueQueueOption = typer.Option(
    None, "--kueue-queue", metavar="NAME",
    help="With --executor kubernetes: submit each trial's job to this Kueue LocalQueue (the "
         "kueue.x-k8s.io/queue-name label, the job created suspended until Kueue admits it); a trial template's own "
         "label wins. docs/kubernetes.md")
KueuePriorityOption = typer.Option(
    None, "--kueue-priority-class", metavar="NAME",
    help="With --kueue-queue: the Kueue WorkloadPriorityClass of the trials' jobs (kueue.x-k8s.io/priority-class); "
         "a trial template's own label wins.")
CleanEnvOption = typer.Option(
    False, "--clean-env",
    help="Start trials with only their template's env, katib's KATIB_* variables, PATH, the locale and TZ "
         "(HOME is the trial's folder), not with this shell's environment (katib server always does).")


SuggestionOption = typer.Option(
    None, "--suggestion-service", envvar="KATIB_SUGGESTION_SERVICE",
    help="host:port of a gRPC suggestion service (ours or Katib's) to ask instead of the built-in algorithms.",
)
TickOption = typer.Option(1.0, "--tick", min=0.01, help="Seconds between metric reads of running trials "
                          "(at least 0.01: a smaller tick spins a core).")
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


def _store(db: str | None, create: bool = True) -> Any:
    """The store ``--db`` names (the default one when None). ``create=False`` (a command
    that only reads) refuses a SQLite file that is not there, where opening it would make
    its folders and an empty store: a mistyped path listed nothing and exited 0."""
    remote = _remote()
    if remote is not None:  # a command that has no way through a server must not open a store here instead
        raise KatibError(f"`katib {remote.command}` does not work through a katib server ({remote.url}) yet; "
                         f"run it without {remote.given}")
    from sqlalchemy.exc import DBAPIError

    from katib.store import Store, sqlite_path

    if not create and db is not None:
        path = sqlite_path(db)
        if path is not None and not path.exists():
            raise KatibError(f"--db {db}: there is no katib store there (reading creates none; check the path)")
    try:
        return Store(db)
    except DBAPIError as exc:
        first = str(exc.orig or exc).splitlines()[0]
        raise KatibError(f"--db {db or '~/.katib/katib.db'}: not a katib store that opens ({first})") from None


def _locate(store: Any, name: str, namespace: str | None, kind: str = "experiment") -> str:
    """The namespace to find ``name`` in: the one given with ``-n``; without it, the one
    namespace holding that name. A name in several namespaces is refused, naming them;
    one that is nowhere is not found, in any namespace."""
    found = store.namespaces_of(name, kind)
    if namespace is not None:
        if namespace not in found and found:
            raise NotFoundError(f"{kind} {namespace}/{name} not found; it is in namespace "
                                f"{', '.join(found)}: -n {found[0]}")
        return namespace
    if len(found) > 1:
        raise KatibError(f"{kind} {name} is in {len(found)} namespaces ({', '.join(found)}): choose one with -n, "
                         f"e.g. -n {found[0]}")
    if not found:
        raise NotFoundError(f"{kind} {name} not found in any namespace")
    return found[0]


def _hint(store: Any, db: str | None, words: list[str], name: str, namespace: str) -> str:
    """A command to print for the user, complete enough to work as printed: with ``-n``
    unless the experiment is the only one of its name in ``default``, with ``--db`` when
    one was given on the command line."""
    parts = ["katib", *words, name]
    if namespace != "default" or len(store.namespaces_of(name)) > 1:
        parts += ["-n", namespace]
    if db is not None and db != os.environ.get("KATIB_DB"):
        parts += ["--db", db]
    if words[:1] == ["resume"]:  # its trials' executor: another would run its running trials again
        parts += _executor_of(store, name, namespace)
    return shlex.join(parts)


def _executor_of(store: Any, name: str, namespace: str) -> list[str]:
    """``["--executor", X]`` when the experiment's trials ran under an executor other than
    the local one (the last one that ran any), else nothing."""
    try:
        rec = store.get_experiment(namespace, name)
    except KatibError:
        return []
    started = [t for t in store.list_trials(rec.id) if t.handle and t.start_time]
    if not started:
        return []
    last = max(started, key=lambda t: t.start_time or 0.0)
    executor = str((last.handle or {}).get("executor") or "local")
    return [] if executor == "local" else ["--executor", executor]


def _runs_root(store: Any) -> Path:
    from katib.names import runs_root

    return runs_root(store.url)


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


class UnreadableInput(KatibError):
    """An input file that cannot be read: invalid input, as a file that does not parse (exit 2)."""


def _read_experiments(path: Path) -> list[Any]:
    from katib.spec import experiment_documents

    try:
        text = path.read_text()
    except OSError as exc:
        raise UnreadableInput(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UnreadableInput(f"cannot read {path}: it is not UTF-8 text") from None
    docs = experiment_documents(text)
    if not docs:  # bad input, named: the kinds it holds (a misspelt kind), or none at all
        from katib.errors import FieldError
        from katib.spec import load_documents

        kinds = sorted({str(d.get("kind")) for d in load_documents(text) if isinstance(d, dict)})
        held = f"it holds kind {', '.join(map(repr, kinds))}" if kinds else "it holds no document"
        raise ValidationError([FieldError("kind", f"must be Experiment (or a Kubeflow Trainer OptimizationJob): "
                                                  f"{held}")], str(path))
    return docs


def _why(trial: Any) -> str:
    """Why a trial failed, in brief: its condition's reason and message (before the
    trial's last output, which `katib logs` shows whole); and why a ``Created`` trial that
    ran is waiting (a stop interrupted it: the next run runs it again)."""
    if trial.state == "Created":
        cond = next((c for c in reversed(trial.conditions) if c.type == "Running" and c.status == "False"), None)
        return f"{cond.reason}: {cond.message}" if cond is not None and cond.reason == "TrialInterrupted" else ""
    if trial.state not in ("Failed", "MetricsUnavailable", "Killed"):
        return ""
    from katib.controller import LAST_OUTPUT

    cond = next((c for c in reversed(trial.conditions) if c.type == trial.state), None)
    if cond is None:
        return ""
    message = (cond.message or "").split(LAST_OUTPUT, 1)[0]
    # Katib's wording around the job's own (TrialFailed. Job reason: R / Trial has failed.
    # Job message: M): the table has room for R and M.
    reason = (cond.reason or "").removeprefix("TrialFailed. Job reason: ")
    message = message.removeprefix("Trial has failed. Job message: ")
    return ": ".join(x for x in (reason, message) if x)


def _num(text: Any) -> str:
    """A number as a table shows it: six significant digits (0.0631860, 1.23457e+06);
    integers as they are, text up to 40 characters (a DARTS genotype is hundreds: it
    widened every row; `-o yaml` has it whole).

    >>> _num("0.063186012"), _num("12"), _num("Genotype(" + "x" * 60 + ")")[-3:]
    ('0.063186', '12', 'xx…')
    """
    value = str(text)
    try:
        number = float(value)
    except ValueError:
        return value if len(value) <= 40 else value[:39] + "…"
    if value.lstrip("-").isdigit() or number != number or number in (float("inf"), float("-inf")):
        return value
    return f"{number:.6g}"


def main() -> None:
    """Entry point: every error this project raises on purpose is a message, not a trace."""
    import warnings

    from katib.errors import KatibWarning

    shown = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
        if issubclass(category, KatibWarning):
            err.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False)
        else:
            shown(message, category, *args, **kwargs)  # type: ignore[arg-type]

    warnings.showwarning = show
    try:
        app()
    except ValidationError as exc:
        _print_errors(exc)
        sys.exit(EXIT_INVALID)
    except UnreadableInput as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_INVALID)
    except KatibError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_FAILED)
