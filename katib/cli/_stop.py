"""katib stop: end a running experiment's controller, here or through a katib server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import typer

from katib.cli._app import (
    DbOption,
    NamespaceOption,
    _hint,
    _locate,
    _store,
    app,
    out,
)
from katib.errors import KatibError, NotFoundError


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
