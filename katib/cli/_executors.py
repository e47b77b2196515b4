"""The executor each experiment's trials run in, as ``--executor`` names it."""

from __future__ import annotations

from typing import Any

from katib.errors import KatibError


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
