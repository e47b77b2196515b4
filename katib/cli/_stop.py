"""katib stop: end a running experiment's controller, here or through a katib server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import typer

from katib.cli import _api
from katib.cli._app import (
    DbOption,
    NamespaceOption,
    Remote,
    _hint,
    _locate,
    _remote,
    _store,
    app,
    out,
)
from katib.errors import KatibError


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
    """POST …/stop to a katib server, through the client; the namespace found there as
    ``_locate`` does here. Returns the namespace."""
    from katib.cli import _api

    remote = Remote(url.rstrip("/"), token, "--server", "stop")
    c = _api.client(remote)
    rec, _, _ = _api.experiment(c, remote, name, namespace)
    c.stop_experiment(name, rec.namespace)
    return str(rec.namespace)


def _stop_through(remote: Remote, name: str, namespace: str | None) -> None:
    """``katib --server URL stop NAME``: what ``katib stop`` says here, of the server's experiment."""
    from katib import views

    c = _api.client(remote)
    rec, active, _ = _api.experiment(c, remote, name, namespace)
    resume_hint = _api.hint(remote, ["resume"], name, rec.namespace)
    shown = views.shown_phase(rec, active)
    if shown in ("Succeeded", "Failed"):
        out.print(f"experiment {name} has ended ({shown}): nothing to stop", highlight=False)
        return
    if shown == "Stopped":
        c.stop_experiment(name, rec.namespace)  # interrupted, now stopped: the server keeps it so
        out.print(f"experiment {name} is not running (no controller runs it); `{resume_hint}` carries on",
                  highlight=False, markup=False)
        return
    answer = c.stop_experiment(name, rec.namespace)
    if answer.get("running"):
        raise KatibError(f"experiment {name} is still running on {remote.url} (run there by another controller "
                         "than the server's: a katib run on its machine); stop it there")
    out.print(f"experiment {name} stopped on {remote.url}: its running trials were ended; `{resume_hint}` carries on",
              highlight=False, markup=False)


@app.command()
def stop(
    name: str = typer.Argument(..., help="Experiment name."),
    namespace: str | None = NamespaceOption,
    db: str | None = DbOption,
    server_url: str | None = typer.Option(
        None, "--server", metavar="URL",
        help="A katib server that runs it (http://127.0.0.1:8080): stop it through the server's API (as "
             "`katib --server URL stop NAME`)."),
    token: str | None = typer.Option(None, "--token", envvar="KATIB_TOKEN", help="API token for --server under --auth."),
    timeout: float = typer.Option(60.0, help="Seconds to wait for its controller to stop."),
) -> None:
    """Stop a running experiment's controller and its running trials; `katib resume` carries on.

    The `katib run` (or `resume`) running it is stopped as Ctrl-C would; one that a
    `katib server` runs is stopped through that server's API (found from its command line
    on this machine, or given with --server)."""
    from katib import views

    remote = _remote()
    if server_url:
        remote = Remote(server_url.rstrip("/"), token or (remote.token if remote else None), "--server", "stop")
    if remote is not None:
        _stop_through(remote, name, namespace)
        return
    from katib.controller import mark_stopped

    store = _store(db)
    namespace = _locate(store, name, namespace)
    rec = store.get_experiment(namespace, name)
    resume_hint = _hint(store, db, ["resume"], name, namespace)
    from katib.store import UserStore

    if UserStore(store).list_users():  # a katib server --auth's: a resume here is refused (its fences)
        resume_hint = _api.hint(Remote("URL", None, "--server", "resume"), ["resume"], name, namespace)
    shown = views.shown_phase(rec)
    if shown in ("Succeeded", "Failed"):
        out.print(f"experiment {name} has ended ({shown}): nothing to stop", highlight=False)
        return
    if shown == "Stopped" or not rec.owner:
        mark_stopped(store, namespace, name)  # interrupted, now stopped: a server that starts leaves it so
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
        host_opt = _option(command, "--host", "127.0.0.1")
        tls = any(a == "--tls-cert" or a.startswith("--tls-cert=") for a in command)
        scheme = "https" if tls else "http"  # its own scheme, or the stop and the hint fail
        url = f"{scheme}://{f'[{host_opt}]' if ':' in host_opt else host_opt}:{_option(command, '--port', '8080')}"
        ns = _stop_on_server(url, token, name, namespace)
        # Through that server: a resume here would run its trials in this process, with none
        # of the server's fences (its sandbox and quota under --auth, its clean environment).
        through = _api.hint(Remote(url, None, "--server", "resume"), ["resume"], name, ns)
        out.print(f"experiment {name} stopped (by the katib server at {url}); `{through}` carries on",
                  highlight=False, markup=False)
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
    mark_stopped(store, namespace, name)  # a katib server started on this store leaves it stopped
    out.print(f"experiment {name} stopped: its running trials were ended; `{resume_hint}` carries on",
              highlight=False, markup=False)
