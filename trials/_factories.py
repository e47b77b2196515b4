"""The built-in executors' factories (entry points of the ``katib.executors`` group).

Each takes the ``ExecutorOptions`` and returns what makes an experiment's executor,
after checking what can be checked before anything is stored: the extra is installed
(an ``ImportError`` here is turned into "pip install 'katib[EXTRA]'"), the cluster answers.
"""

from __future__ import annotations

from collections.abc import Callable

from katib.errors import KatibError

from ._executor import Executor
from ._registry import ExecutorOptions


def local(options: ExecutorOptions) -> Callable[[], Executor]:
    from ._local import LocalExecutor

    return lambda: LocalExecutor(clean_env=options.clean_env, sandbox=options.sandbox, quota=options.namespace_quota)


def ray(options: ExecutorOptions) -> Callable[[], Executor]:
    import ray  # noqa: F401  (the extra is checked here, before anything is stored)

    from ._ray import RayExecutor

    if options.ray_address:
        _check_answers(options.ray_address)

    def make() -> Executor:
        try:
            return RayExecutor(options.ray_address, clean_env=options.clean_env,
                               db_manager_address=options.db_manager_address, tenants=options.tenants)
        except Exception as exc:  # Ray raises many kinds; the first line says why
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            why = (lines[0] if lines else type(exc).__name__)[:300]
            raise KatibError(f"--executor ray: Ray could not start a node here or reach its cluster ({why}); "
                             "give the address of a running one with --ray-address (or $RAY_ADDRESS)") from None

    return make


def _check_answers(address: str, timeout: float = 5.0) -> None:
    """Refuse a Ray address where nothing answers: Ray's own connection waits minutes,
    printing warnings, before it gives up. ``auto`` and ``local`` name no host."""
    import socket

    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].split("/", 1)[0]
    host, sep, port = hostport.rpartition(":")
    if not (sep and host and port.isdigit()):
        return  # a form Ray reads its own way: it says what is wrong with it
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        why = f"no answer in {timeout:.0f} s" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise KatibError(f"--ray-address {address}: nothing answers at {host}:{port} ({why}); start the cluster "
                         "(ray start --head) or give the address it printed") from None


def kubernetes(options: ExecutorOptions) -> Callable[[], Executor]:
    import kubernetes  # noqa: F401

    from ._kubernetes import KubernetesExecutor
    from ._kubernetes_kueue import label_value_problem
    from ._podfence import parse_account

    if options.server_account:
        try:
            parse_account(options.server_account)
        except ValueError as exc:
            raise KatibError(f"--server-service-account: {exc}") from None
    for flag, value in (("--kueue-queue", options.kueue_queue), ("--kueue-priority-class", options.kueue_priority_class)):
        problem = label_value_problem(value) if value is not None else None
        if problem:
            raise KatibError(f"{flag}: {problem}")
    api = KubernetesExecutor.connect(options.kubeconfig, options.context)  # fail now, with the reason
    return lambda: KubernetesExecutor(api_client=api, push_url=options.push_url, push_tokens=options.push_tokens,
                                      tenants=options.tenants, server_account=options.server_account,
                                      db_manager_address=options.db_manager_address,
                                      collector_images=options.collector_images, kueue_queue=options.kueue_queue,
                                      kueue_priority_class=options.kueue_priority_class)


def slurm(options: ExecutorOptions) -> Callable[[], Executor]:
    from ._slurm import SlurmExecutor, check_cluster

    check_cluster()  # the Slurm commands are here and a slurmctld answers
    return lambda: SlurmExecutor(partition=options.slurm_partition, account=options.slurm_account,
                                 clean_env=options.clean_env)
