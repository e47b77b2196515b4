"""The executor each experiment's trials run in, as ``--executor`` names it: any name in
the ``katib.executors`` entry-point group (``trials.executor_names()``)."""

from __future__ import annotations

from typing import Any

import typer

from katib.errors import KatibError


def _executor_factory(executor: str, ray_address: str | None, kubeconfig: str | None = None,
                      context: str | None = None, push_url: str | None = None, push_tokens: Any = None,
                      clean_env: bool = False, sandbox: Any = None, tenants: bool = False,
                      server_account: str | None = None, db_manager_address: str | None = None,
                      collector_images: dict[str, str] | None = None, slurm_partition: str | None = None,
                      slurm_account: str | None = None, kueue_queue: str | None = None,
                      kueue_priority_class: str | None = None, namespace_quota: Any = None) -> Any:
    """What makes each experiment's executor. ``clean_env``: trials get none of this
    process's environment but ``PATH``, the locale and ``TZ`` (pods never get it);
    ``sandbox``: local trials run in it (``trials.Sandbox``); ``tenants`` and
    ``server_account``: how pods are fenced in; ``db_manager_address`` and ``collector_images``:
    the metrics-collector sidecar's DBManager and images; ``slurm_partition`` and
    ``slurm_account``: sbatch's for the Slurm executor; ``kueue_queue`` and ``kueue_priority_class``:
    Kueue's for the Kubernetes executor; ``namespace_quota``: what one namespace's local trials
    may hold (``trials.ExecutorOptions``). A missing extra or an
    unknown name is a ``KatibError`` that says what to install or which names exist."""
    from trials import ExecutorOptions, executor_factory

    for flag, value in (("--kueue-queue", kueue_queue), ("--kueue-priority-class", kueue_priority_class)):
        if value is not None and executor != "kubernetes":
            raise KatibError(f"{flag} is for --executor kubernetes (Kueue queues a cluster's jobs), not {executor}")

    return executor_factory(executor, ExecutorOptions(ray_address=ray_address, kubeconfig=kubeconfig, context=context,
                                                      push_url=push_url, push_tokens=push_tokens, clean_env=clean_env,
                                                      sandbox=sandbox, tenants=tenants, server_account=server_account,
                                                      db_manager_address=db_manager_address,
                                                      collector_images=collector_images,
                                                      slurm_partition=slurm_partition, slurm_account=slurm_account,
                                                      kueue_queue=kueue_queue,
                                                      kueue_priority_class=kueue_priority_class,
                                                      namespace_quota=namespace_quota))


def _start_executor(factory: Any, executor: str) -> Any:
    """Make the executor now, before the experiment is stored or driven: a Ray node that
    cannot start, or a cluster out of reach, is one sentence and leaves nothing behind."""
    try:
        return factory()
    except KatibError:
        raise
    except Exception as exc:  # executors' clients raise many kinds; the first line says why
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        why = (lines[0] if lines else type(exc).__name__)[:300]
        raise KatibError(f"--executor {executor} could not start: {why}") from None


def _db_manager_flags(address: str | None, grpc_port: int | None) -> tuple[str | None, str | None]:
    """``--db-manager-address HOST[:PORT]`` with ``--grpc-port``: the address pods are given
    now, or the ``HOST`` given alone, whose port is ``--grpc-port``'s once bound (0 picks one)."""
    if address is None:
        return None, None
    host, colon, port = address.rpartition(":")
    if not colon:
        if grpc_port is None or not address:
            raise KatibError(f"--db-manager-address: {address!r} needs a port (HOST:PORT), or --grpc-port to take "
                             "it from")
        return None, address
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise KatibError(f"--db-manager-address: {address!r} is not HOST:PORT (a port of 1-65535) or HOST")
    return address, None


def grpc_installed(what: str) -> None:
    """What serving Katib's gRPC API imports (the ``grpc`` extra), present; else a KatibError
    that names the extra, before anything starts."""
    try:
        import grpc  # noqa: F401
        from google import protobuf  # noqa: F401
        from grpc_health.v1 import health  # noqa: F401
    except ImportError as exc:
        raise KatibError(f"{what} needs what is not installed ({exc.name or exc}): pip install 'katib[grpc]'") from None


def _serve_db_manager(store: Any, runs_root: Any, host: str, port: int) -> Any:
    """Katib's gRPC API (DBManager, Suggestion, EarlyStopping) over ``store`` on
    ``host:port``, as ``katib server --grpc-port`` serves it; stop it with ``.stop(grace)``."""
    try:
        from katib._dbmanager import serve_grpc

        return serve_grpc(store, runs_root, None, host, port)
    except ImportError as exc:
        raise KatibError(f"--grpc-port needs what is not installed ({exc.name or exc}): "
                         "pip install 'katib[grpc]'") from None
    except RuntimeError as exc:  # grpc: the port is taken
        raise KatibError(f"--grpc-port: cannot serve on {host}:{port} ({exc})") from None


GrpcPortOption = typer.Option(
    None, "--grpc-port", min=0, max=65535,
    help="While the experiment runs, serve Katib's gRPC API on this port of --grpc-host (0 picks a free one): the "
         "DBManager the File and TensorFlowEvent collectors' sidecars report to (--executor kubernetes), and a "
         "Custom collector, as katib server --grpc-port does.")
GrpcHostOption = typer.Option(
    "127.0.0.1", "--grpc-host",
    help="The address --grpc-port listens on (0.0.0.0 for pods or Ray workers on other machines).")
AllowUnauthenticatedGrpcOption = typer.Option(
    False, "--allow-unauthenticated",
    help="Serve --grpc-port on a --grpc-host other than loopback: it has no authentication, and whoever reaches "
         "it reads, reports and deletes the metrics of every trial in this store.")


def grpc_bind_checked(host: str, port: int | None, allow_unauthenticated: bool) -> None:
    """Refuse a DBManager on an address other than loopback unless asked for by name: it
    answers anyone who reaches it, for the whole store (``katib server`` refuses the same)."""
    from katib._httpguard import is_loopback

    if port is not None and not is_loopback(host) and not allow_unauthenticated:
        raise KatibError(f"refusing to serve --grpc-port on {host} without authentication: whoever reaches it reads, "
                         "reports and deletes every trial's metrics in this store; keep --grpc-host on loopback, or "
                         "pass --allow-unauthenticated where only your pods or workers can reach it")


DbManagerOption = typer.Option(
    None, "--db-manager-address", metavar="HOST[:PORT]",
    help="With --executor kubernetes: --grpc-port as trial pods reach it, where the File and TensorFlowEvent "
         "collectors' sidecar reports; with --executor ray: as the Ray workers reach it, where a Custom collector "
         "reports (HOST alone: --grpc-port's port).")
CollectorImageOption = typer.Option(
    [], "--metrics-collector-image", metavar="KIND=IMAGE",
    help="With --executor kubernetes: the metrics-collector sidecar's image for File or TensorFlowEvent "
         "(default: Katib 0.19's).")


def _serve_grpc(store: Any, made: Any, host: str, port: int | None, host_only: str | None) -> Any:
    """The run's gRPC DBManager (``--grpc-port``), and the executor's DBManager address when
    ``--db-manager-address`` gave a host only (its port is the one bound now)."""
    if port is None:
        return None
    from katib.cli._app import _runs_root

    server = _serve_db_manager(store, _runs_root(store), host, port)
    if host_only is not None and hasattr(made, "db_manager_address"):
        made.db_manager_address = f"{host_only}:{server.bound_port}"
    return server
