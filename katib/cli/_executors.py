"""The executor each experiment's trials run in, as ``--executor`` names it: any name in
the ``katib.executors`` entry-point group (``trials.executor_names()``)."""

from __future__ import annotations

from typing import Any

from katib.errors import KatibError


def _executor_factory(executor: str, ray_address: str | None, kubeconfig: str | None = None,
                      context: str | None = None, push_url: str | None = None, push_tokens: Any = None,
                      clean_env: bool = False, sandbox: Any = None, tenants: bool = False,
                      server_account: str | None = None, db_manager_address: str | None = None,
                      collector_images: dict[str, str] | None = None, slurm_partition: str | None = None,
                      slurm_account: str | None = None) -> Any:
    """What makes each experiment's executor. ``clean_env``: trials get none of this
    process's environment but ``PATH``, the locale and ``TZ`` (pods never get it);
    ``sandbox``: local trials run in it (``trials.Sandbox``); ``tenants`` and
    ``server_account``: how pods are fenced in; ``db_manager_address`` and ``collector_images``:
    the metrics-collector sidecar's DBManager and images; ``slurm_partition`` and
    ``slurm_account``: sbatch's for the Slurm executor (``trials.ExecutorOptions``). A missing extra or an
    unknown name is a ``KatibError`` that says what to install or which names exist."""
    from trials import ExecutorOptions, executor_factory

    return executor_factory(executor, ExecutorOptions(ray_address=ray_address, kubeconfig=kubeconfig, context=context,
                                                      push_url=push_url, push_tokens=push_tokens, clean_env=clean_env,
                                                      sandbox=sandbox, tenants=tenants, server_account=server_account,
                                                      db_manager_address=db_manager_address,
                                                      collector_images=collector_images,
                                                      slurm_partition=slurm_partition, slurm_account=slurm_account))


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
