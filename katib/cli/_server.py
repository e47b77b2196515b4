"""Commands that serve: katib server, katib ui, katib suggestion serve."""

from __future__ import annotations

import errno
import os
import signal
import socket
from pathlib import Path
from typing import Any

import typer

from katib._httpguard import HEADER_SECONDS, timely_h11
from katib.cli._app import (
    ContextOption,
    DbOption,
    ExecutorOption,
    KubeconfigOption,
    KueuePriorityOption,
    KueueQueueOption,
    RayAddressOption,
    SlurmAccountOption,
    SlurmPartitionOption,
    TickOption,
    _runs_root,
    _store,
    app,
    err,
    out,
    suggestion_app,
)
from katib.cli._executors import _executor_factory, grpc_installed
from katib.errors import KatibError

AllowedHostOption = typer.Option(
    [], "--allowed-host",
    help="A name the Host header may carry besides loopback names (without --auth, other names are refused: DNS rebinding).")
MaxBodyOption = typer.Option(1 << 20, "--max-body", help="The largest request body accepted, in bytes.")


UNFENCED = ("every editor of a namespace could run code as this server's user: read and change the store, "
            "other namespaces' trials and files, and the server's secrets")


def _check_shown_folder(workdir: Path) -> None:
    """Sandboxed trials see the working folder (read-only): one that is, or holds, a home
    folder would show them its keys (``~/.ssh``, ``~/.kube``), which the sandbox hides."""
    from trials import home_folder_problem

    problem = home_folder_problem(workdir)
    if problem:
        raise KatibError(f"--workdir: trials see the server's working folder (read-only), and {problem}; start the "
                         "server in a folder of its own (or give --workdir one)")


def _fence(executor: str, auth: bool, sandbox: bool | None, allow_unfenced: bool, store: Any,
           secrets: list[Path] | None = None, secret_files: list[Path] | None = None) -> Any:
    """The sandbox local trials run in (None: none), which hides the store's files and
    ``secrets`` (with their folder, katib's own), and ``secret_files`` each alone (a TLS key
    in the system's folders). With ``auth`` an executor that cannot fence trials in is refused unless
    ``allow_unfenced``: a tenant's trial would be code run as this server. Kubernetes pods
    are fenced in by their cluster."""
    from trials import executor_class

    fencing = executor_class(executor).fences  # what the executor says it does
    want = auth if sandbox is None else sandbox
    if fencing == "cluster":
        return None
    if fencing == "sandbox" and want:
        from trials import Sandbox, store_files
        from trials import sandbox_problem as problem

        why = problem()
        if why is None:
            sqlite = store.dialect == "sqlite" and store.url not in ("sqlite://", "sqlite:///:memory:")
            if store.lock_folder:  # made now: a trial never sees it appear, and it is hidden from each
                Path(store.lock_folder).mkdir(mode=0o700, exist_ok=True)
            hidden = [*(store_files(Path(store.url.split("///", 1)[1])) if sqlite else []), *(secrets or [])]
            return Sandbox(_runs_root(store), hidden=hidden, files=secret_files or ())
        if sandbox:
            raise KatibError(f"--sandbox: trials cannot be sandboxed on this machine: {why}")
        unfenced = f"local trials cannot be sandboxed on this machine ({why})"
    elif fencing == "sandbox":
        unfenced = f"--no-sandbox runs {executor} trials unfenced"
    else:
        unfenced = (executor_class(executor).unfenced_why
                    or f"the {executor} executor does not say that it fences trials in (Executor.fences)")
    if auth and not allow_unfenced:
        raise KatibError(f"refusing to run trials under --auth: {unfenced}, so {UNFENCED}. Install bubblewrap "
                         "(apt-get install bubblewrap) for the local executor, use --executor kubernetes, or pass "
                         "--allow-unfenced-trials if every editor may do that")
    if auth:
        err.print(f"[bold yellow]warning:[/] --allow-unfenced-trials: {unfenced}; {UNFENCED}", highlight=False)
    return None


def _collector_images(values: list[str]) -> dict[str, str]:
    """``--metrics-collector-image KIND=IMAGE`` values, by kind."""
    from trials import SIDECAR_KINDS

    images = {}
    for value in values:
        kind, _, image = value.partition("=")
        if kind not in SIDECAR_KINDS or not image:
            raise KatibError(f"--metrics-collector-image: {value!r} is not KIND=IMAGE with KIND one of "
                             f"{', '.join(SIDECAR_KINDS)}")
        images[kind] = image
    return images


# The other address family's twin of each address a server listens on: a client that
# reaches "localhost" over ::1 (where that name resolves there first) must find this server,
# not a program that took [::1]:PORT first (a tenant's trial shares the host's network).
_TWINS = {"127.0.0.1": "::1", "localhost": "::1", "::1": "127.0.0.1", "0.0.0.0": "::"}


def _bound(host: str, port: int, twin: bool = False) -> socket.socket:
    """A listening socket on ``host``; IPv6 only for a twin (``::`` beside ``0.0.0.0``
    would otherwise overlap it, and fail), and for ``::1``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and (twin or host != "::"):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(2048)  # held from now: a program cannot take it between here and uvicorn's start
    except BaseException:
        sock.close()
        raise
    return sock


def listening_sockets(host: str, port: int) -> list[socket.socket]:
    """The sockets a server answers on: ``host``'s, and its twin in the other family
    (``_TWINS``) where the machine has one. A twin another program holds is refused, saying
    so: clients that resolve the name to it would talk to that program."""
    first = "127.0.0.1" if host == "localhost" else host
    try:
        socks = [_bound(first, port)]
    except OSError as exc:
        raise KatibError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    port = socks[0].getsockname()[1]
    twin = _TWINS.get(host)
    if twin is not None:
        try:
            socks.append(_bound(twin, port, twin=True))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                for sock in socks:
                    sock.close()
                shown = f"[{twin}]" if ":" in twin else twin
                raise KatibError(f"{shown}:{port} is held by another program: a client that reaches {host} there "
                                 f"would talk to it, not to katib; stop it or choose another --port") from None
            # EADDRNOTAVAIL, EAFNOSUPPORT: no such family here, so nothing can hold it either
    return socks


def _timely_h11() -> type:
    """uvicorn's h11 protocol with a deadline for a request's head (``HEADER_SECONDS``, read
    when called: the tests shorten it here); the body's is ``api._guard.BODY_SECONDS``."""
    return timely_h11(HEADER_SECONDS)


def _serve(application: Any, host: str, port: int, log_level: str, announce: str | None = None,
           tls: tuple[str, str] | None = None) -> None:
    """Serve ``application``; ``announce`` is printed once the port is held, ``{port}`` in it
    the port held (``--port 0`` takes a free one; a busy port is an error, not an address to
    open). ``tls``: the certificate and key files HTTPS is served with."""
    import uvicorn

    socks = listening_sockets(host, port)
    bound = socks[0].getsockname()[1]
    if announce is not None:
        out.print(announce.format(port=bound), highlight=False)
    cert, key = tls if tls is not None else (None, None)
    uvicorn.Server(uvicorn.Config(application, host=host, port=bound, log_level=log_level,
                                  http=_timely_h11(), ws="none",  # no WebSocket here
                                  ssl_certfile=cert, ssl_keyfile=key)).run(sockets=socks)


def _tls_files(cert: Path | None, key: Path | None) -> tuple[str, str] | None:
    """``--tls-cert`` and ``--tls-key``, checked before anything starts: both or neither,
    a certificate and its key that load together."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise KatibError("--tls-cert and --tls-key go together: the certificate (PEM) and its private key")
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise KatibError(f"--tls-cert {cert} and --tls-key {key} do not load as a certificate and its key: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    return str(cert), str(key)


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
    port: int = typer.Option(8080, min=0, max=65535, help="Port."),
    db: str | None = DbOption,
    workdir: Path = typer.Option(Path("."), help="Folder that relative trial commands run in."),
    tick: float = TickOption,
    executor: str = ExecutorOption,
    ray_address: str | None = RayAddressOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
    slurm_partition: str | None = SlurmPartitionOption,
    slurm_account: str | None = SlurmAccountOption,
    kueue_queue: str | None = KueueQueueOption,
    kueue_priority_class: str | None = KueuePriorityOption,
    push_url: str | None = typer.Option(
        None, "--push-url", help="This server's address as pods reach it, for the Push collector with --executor kubernetes."),
    server_service_account: str | None = typer.Option(
        None, "--server-service-account", metavar="NAMESPACE/NAME",
        help="With --executor kubernetes: the service account this server runs as, which trial pods may not use "
             "(found from the server's own token when not given)."),
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
    grpc_port: int | None = typer.Option(
        None, "--grpc-port", min=0, max=65535,
        help="Also serve Katib's gRPC API on this port of the same address: Suggestion, EarlyStopping and "
             "DBManager (the SDK's get_trial_metrics and report_metrics; a Katib control plane's "
             "katib-db-manager). It carries no credentials: not with --auth."),
    db_manager_address: str | None = typer.Option(
        None, "--db-manager-address", metavar="HOST:PORT",
        help="With --executor kubernetes: this server's --grpc-port as trial pods reach it (a Service in front of "
             "it), where the File and TensorFlowEvent collectors' sidecar reports, as to Katib's katib-db-manager; "
             "with --executor ray: as the Ray workers reach it, where a Custom collector reports. Not with --auth."),
    collector_image: list[str] = typer.Option(
        [], "--metrics-collector-image", metavar="KIND=IMAGE",
        help="With --executor kubernetes: the metrics-collector sidecar's image for File or TensorFlowEvent "
             "(default: Katib 0.19's)."),
    namespace_quota: str | None = typer.Option(
        None, "--namespace-quota", metavar="QUOTA",
        help="What one namespace's local trials may request at once: cpu=2,memory=8Gi,gpu=1 (a resource not named is "
             "not bounded), half (of this machine), or none. Default: half with --auth (so no tenant's trials can "
             "hold the machine and keep every other's pending), else none. A trial that asks more fails."),
    tls_cert: Path | None = typer.Option(
        None, "--tls-cert", metavar="PEM",
        help="Serve HTTPS with this certificate (and --tls-key): bearer tokens then never cross the network in the "
             "clear, and kubectl sends its kubeconfig's token (it sends none over plain HTTP)."),
    tls_key: Path | None = typer.Option(None, "--tls-key", metavar="PEM", help="The private key of --tls-cert."),
    lease_seconds: float = typer.Option(
        5.0, "--lease-seconds", min=1.0, max=300.0,
        help="On PostgreSQL, several servers share one database: each holds its experiments by a lease it renews "
             "every fifth of this time; another server adopts them, with their running trials, once it lapses. "
             "docs/scaling.md"),
) -> None:
    """Serve the REST API and the Kubernetes-style endpoints, and run every experiment.

    Unfinished experiments carry on when the server starts; stopping it stops their
    running trials, which the next start runs again. Several servers may share one
    PostgreSQL database: they share the experiments out, and stopping one (or losing it)
    hands its experiments, running trials included, to the others (docs/scaling.md)."""
    if not _loopback(host) and not (auth or allow_unauthenticated):
        raise KatibError(f"refusing to listen on {host} without authentication: pass --auth "
                         "(and create users with `katib user add`), or --allow-unauthenticated")
    images = _collector_images(collector_image)
    tls = _tls_files(tls_cert, tls_key)
    if auth and os.geteuid() == 0:
        err.print("[bold yellow]warning:[/] katib server --auth runs as root: tenants' trials are root outside their "
                  "sandbox too (no capabilities, but every root-only file the system shows them read-only is theirs to "
                  "read); run it as a user of its own (docs/security.md)", highlight=False)
    from trials import parse_quota

    try:
        quota = parse_quota(namespace_quota if namespace_quota is not None else "half" if auth else "none")
    except ValueError as exc:
        raise KatibError(f"--namespace-quota: {exc}") from None
    if db_manager_address is not None:
        host_part, _, port_part = db_manager_address.rpartition(":")
        if not host_part or not port_part.isdigit() or not 0 < int(port_part) < 65536:
            raise KatibError(f"--db-manager-address: {db_manager_address!r} is not HOST:PORT (a port of 1-65535)")
        if auth:
            raise KatibError("--db-manager-address cannot be used with --auth: the metrics collectors' sidecar reports "
                             "through Katib's gRPC API, which carries no credentials, so a tenant's pod could report "
                             "metrics for another's trials")
        if grpc_port is None:
            err.print("[bold yellow]warning:[/] --db-manager-address without --grpc-port: the File and TensorFlowEvent "
                      "collectors' sidecars report to a DBManager this server does not serve", highlight=False)
    if grpc_port is not None and auth:
        raise KatibError("--grpc-port cannot be used with --auth: Katib's gRPC API carries no credentials, so any "
                         "caller could read, write and delete every trial's metrics")
    if grpc_port is not None:
        grpc_installed("--grpc-port")
    try:
        import uvicorn  # noqa: F401 - the extra is checked here; _serve runs it

        from api import create_app
    except ImportError as exc:
        raise KatibError(f"katib server needs its extra: pip install 'katib[server]' ({exc.name} is missing)") from None
    if push_token:
        err.print("[bold yellow]warning:[/] --push-token (KATIB_PUSH_TOKEN) is no longer used: each pod gets a "
                  "token that pushes its own trial's metrics and nothing else", highlight=False)
    store = _store(db)
    from katib._pushtoken import PushTokens
    from katib.names import private_dirs

    # Beside the runs folder, so tokens given to pods stay good when the server restarts.
    private_dirs(_runs_root(store))  # 0700 when new: specs' files, trials' logs and pushes are the server's
    secret = _runs_root(store).parent / "push-secret"
    push_tokens = PushTokens.load(secret)
    # The TLS key is the server's: a trial that read it could pose as the server to every client.
    fence = _fence(executor, auth, sandbox, allow_unfenced_trials, store, secrets=[secret],
                   secret_files=[Path(tls[1])] if tls else None)
    if fence is not None:
        _check_shown_folder(workdir.resolve())
    # A server's trials never see its environment: its tokens, keys and store URL stay its own.
    factory = _executor_factory(executor, ray_address, kubeconfig, context, push_url, push_tokens, clean_env=True,
                                sandbox=fence, tenants=auth, server_account=server_service_account,
                                db_manager_address=db_manager_address, collector_images=images,
                                slurm_partition=slurm_partition, slurm_account=slurm_account,
                                kueue_queue=kueue_queue, kueue_priority_class=kueue_priority_class,
                                namespace_quota=quota)
    application = create_app(store, _runs_root(store), workdir.resolve(), tick=tick, auth=auth, executor_factory=factory,
                             executor=executor, allowed_hosts=[*allowed_host, host], max_body=max_body,
                             push_tokens=push_tokens, grpc_address=None if grpc_port is None else (host, grpc_port),
                             lease_seconds=lease_seconds if store.dialect == "postgresql" else None)
    scheme = "https" if tls is not None else "http"
    _serve(application, host, port, "info", tls=tls,
           announce=f"katib server: {scheme}://{host}:{{port}}/ (the viewer; the API under /api/v1 and /apis)")


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, min=0, max=65535, help="Port."),
    db: str | None = DbOption,
    allowed_host: list[str] = AllowedHostOption,
) -> None:
    """Open the web viewer on a store (after `katib run`, say), read-only.

    It runs, changes and deletes nothing."""
    try:
        import uvicorn  # noqa: F401 - the extra is checked here; _serve runs it

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
    _serve(application, host, port, "warning", announce=f"the viewer: http://{host}:{{port}}/")


@suggestion_app.command("serve")
def suggestion_serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 inside a pod)."),
    port: int = typer.Option(6789, min=0, max=65535, help="Port (Katib's suggestion port is 6789)."),
    namespace: str | None = typer.Option(
        None, "--namespace", help="Where SetTrialStatus finds the Trials it early-stops (default: this pod's "
        "namespace, as Katib's service assumes; out of a cluster, default)."),
) -> None:
    """Serve every algorithm over Katib's gRPC Suggestion API, with the gRPC health check.
    EarlyStopping's SetTrialStatus marks the Trial EarlyStopped through the Kubernetes API,
    as Katib's medianstop service does."""
    grpc_installed("katib suggestion serve")
    from suggestion import kube_trial_stopper, serve

    # SIGTERM and Ctrl-C are held from before the server starts and taken by sigwait: one that
    # arrives at any moment (even before the service prints its port) ends it cleanly, with no
    # handler that could run while the main thread holds a lock it needs.
    ending = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, ending)
    server = serve(host, port, set_trial_status=kube_trial_stopper(namespace))
    err.print(f"suggestion service on {host}:{server.bound_port} (api.v1.beta1.Suggestion, api.v1.beta1.EarlyStopping, grpc.health.v1)", highlight=False)
    signal.sigwait(ending)
    server.stop(grace=2).wait()
