"""Executors and metrics collectors by name, imported on first use.

Both are registries of entry points, as algorithms are (``suggestion._registry``):

- ``katib.executors``: ``NAME = "package.module:target"``, where the target is an
  ``Executor`` subclass (made with no arguments for each experiment) or a function
  ``(ExecutorOptions) -> (() -> Executor)`` that checks what it needs now (its extra, a
  cluster to reach) and returns what makes each experiment's executor. ``katib run
  --executor NAME`` and ``katib server --executor NAME`` pick it.
- ``katib.collectors``: ``KIND = "package.module:Class"``, a ``Source`` subclass that
  reads one trial's samples (``metricsCollectorSpec.collector.kind: KIND``).

The built-in ones are listed in pyproject.toml under the same groups; the tables below
are the same list, so a source checkout (or an install whose metadata predates a new
built-in) finds them too. Nothing is imported until a name is used: ``katib validate``
loads none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import TYPE_CHECKING, Any

from katib._entry_points import entry_points_in
from katib.errors import KatibError

if TYPE_CHECKING:
    from ._executor import Executor

EXECUTORS_GROUP = "katib.executors"
COLLECTORS_GROUP = "katib.collectors"

# name → (its factory, the katib extra it needs)
BUILTIN_EXECUTORS: dict[str, tuple[str, str | None]] = {
    "local": ("trials._factories:local", None),
    "ray": ("trials._factories:ray", "ray"),
    "kubernetes": ("trials._factories:kubernetes", "kubernetes"),
    "slurm": ("trials._factories:slurm", None),
}
# name → its class, for what needs no live executor (``Executor.logs``)
_BUILTIN_CLASSES = {"local": "trials._local:LocalExecutor", "ray": "trials._ray:RayExecutor",
                    "kubernetes": "trials._kubernetes:KubernetesExecutor", "slurm": "trials._slurm:SlurmExecutor"}


@dataclass(frozen=True)
class ExecutorOptions:
    """What the command line (or a server) says about where trials run; each executor
    takes what concerns it. ``clean_env``: trials get none of this process's environment
    but ``PATH``, the locale and ``TZ``; ``sandbox``: local trials run in it; ``tenants``:
    people who do not trust each other share the server (``--auth``), so a trial's pods keep
    the baseline Pod Security rules; ``server_account``: the server's own Kubernetes service
    account (``NAMESPACE/NAME``), which trial pods may not use (found from the credentials
    when not given)."""

    ray_address: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    push_url: str | None = None
    push_tokens: Any = None
    clean_env: bool = False
    sandbox: Any = None
    tenants: bool = False
    server_account: str | None = None
    #: Katib's DBManager as pods reach it ("host:port"), for the File and TensorFlowEvent
    #: collectors' sidecar on Kubernetes, and the sidecar's image per collector kind.
    db_manager_address: str | None = None
    collector_images: dict[str, str] | None = None
    #: sbatch's --partition and --account for the Slurm executor's jobs.
    slurm_partition: str | None = None
    slurm_account: str | None = None
    #: Kueue's LocalQueue and WorkloadPriorityClass for the Kubernetes executor's jobs whose
    #: trial template names none (``kueue.x-k8s.io/queue-name``, ``…/priority-class``).
    kueue_queue: str | None = None
    kueue_priority_class: str | None = None
    #: What one namespace's local trials may request at once (``trials.Resources``; None: no bound).
    namespace_quota: Any = None


@dataclass(frozen=True)
class Plugin:
    """One registered name: where it lives, and what to install when that is missing."""

    name: str
    target: str
    extra: str | None = None  # a katib extra (built-ins)
    dist: str | None = None  # the distribution that registered it (third parties)

    @property
    def install(self) -> str:
        if self.extra:
            return f"pip install 'katib[{self.extra}]'"
        return f"pip install '{self.dist}'" if self.dist else f"install the package that provides {self.target}"


def _entry_points(group: str) -> dict[str, Plugin]:
    found: dict[str, Plugin] = {}
    for ep in entry_points_in(group):
        found[ep.name] = Plugin(ep.name, ep.value, _extra(ep), ep.dist.name if ep.dist else None)
    return found


def _extra(ep: EntryPoint) -> str | None:
    return ep.extras[0] if ep.extras else None


@cache
def _executor_plugins() -> dict[str, Plugin]:
    builtin = {n: Plugin(n, target, extra) for n, (target, extra) in BUILTIN_EXECUTORS.items()}
    # A built-in name keeps its built-in target: a package cannot take over "local".
    return {**_entry_points(EXECUTORS_GROUP), **builtin}


def executor_names() -> list[str]:
    """Every executor name this installation knows: the built-ins first (no imports happen)."""
    return [*BUILTIN_EXECUTORS, *sorted(set(_executor_plugins()) - set(BUILTIN_EXECUTORS))]


def _one_of(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def unknown_executor(name: str) -> str | None:
    """Why ``name`` names no executor of this installation (the names there are), or None."""
    if name in _executor_plugins():
        return None
    return (f"must be {_one_of(executor_names())} (got {name!r}); packages add executors through the "
            f"{EXECUTORS_GROUP} entry points")


def _load(plugin: Plugin, what: str) -> Any:
    module, _, attr = plugin.target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise KatibError(f"the {plugin.name} {what} needs what is not installed ({exc.name or exc}): "
                         f"{plugin.install}") from None
    except AttributeError:
        raise KatibError(f"the {plugin.name} {what}: {plugin.target} does not exist") from None


def executor_factory(name: str, options: ExecutorOptions | None = None) -> Callable[[], Executor]:
    """What makes each experiment's executor called ``name``, checked now: its extra is
    installed, the cluster it needs answers. ``KatibError`` says which extra is missing."""
    from ._executor import Executor

    plugin = _executor_plugins().get(name)
    if plugin is None:
        raise KatibError(f"--executor {unknown_executor(name)}")
    target = _load(plugin, "executor")
    if isinstance(target, type):
        if not issubclass(target, Executor):
            raise KatibError(f"the {name} executor: {plugin.target} is not a trials.Executor")
        return target
    try:
        factory = target(options or ExecutorOptions())
    except ImportError as exc:
        raise KatibError(f"the {name} executor needs what is not installed ({exc.name or exc}): "
                         f"{plugin.install}") from None
    if not callable(factory):
        raise KatibError(f"the {name} executor: {plugin.target} returned {type(factory).__name__}, "
                         "not a function that makes an Executor")
    return factory  # type: ignore[no-any-return]


def executor_class(name: str) -> type[Executor]:
    """The class of the executor called ``name``, for its class methods (``logs``): a
    plugin registered as a factory, or one that cannot be imported here (its extra is
    missing), reads as the base ``Executor`` does."""
    from ._executor import Executor

    target = _BUILTIN_CLASSES.get(name)
    if target is None:  # only then are the installed packages' entry points read
        plugin = _executor_plugins().get(name)
        if plugin is None:
            return Executor
        target = plugin.target
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return Executor
    return cls if isinstance(cls, type) and issubclass(cls, Executor) else Executor


def trial_logs(handle: dict[str, Any] | None, trial_dir: Path, tail: int | None = None,
               max_bytes: int = 1 << 20) -> str:
    """A trial's output as the executor that ran it (``handle["executor"]``) reads it."""
    return executor_class((handle or {}).get("executor") or "local").logs(handle or {}, trial_dir, tail, max_bytes)


def trial_log_since(handle: dict[str, Any] | None, trial_dir: Path, offset: int,
                    max_bytes: int = 1 << 20) -> tuple[bytes, int] | None:
    """What the trial wrote since ``offset``, at most ``max_bytes`` (``Executor.log_since``), to follow it.
    A plugin's ``log_since`` written before ``max_bytes`` existed is called without it, and cut."""
    cls = executor_class((handle or {}).get("executor") or "local")
    if _takes(cls.log_since, "max_bytes"):
        return cls.log_since(handle or {}, trial_dir, offset, max_bytes=max_bytes)
    got = cls.log_since(handle or {}, trial_dir, offset)
    if got is None or len(got[0]) <= max_bytes:
        return got
    return got[0][:max_bytes], offset + max_bytes


def trial_log_size(handle: dict[str, Any] | None, trial_dir: Path) -> int | None:
    """How much the trial has written so far (``Executor.log_size``); None: no log yet."""
    return executor_class((handle or {}).get("executor") or "local").log_size(handle or {}, trial_dir)


def _takes(method: Any, name: str) -> bool:
    import inspect

    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


__all__ = ["COLLECTORS_GROUP", "EXECUTORS_GROUP", "ExecutorOptions", "Plugin", "executor_class", "executor_factory", "executor_names",
           "trial_log_since", "trial_log_size", "trial_logs"]
