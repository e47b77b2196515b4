"""``katib --server URL …``: what the commands read and change through a katib server's API.

The renderers of ``_read`` and ``_run`` take store records; here the server's Katib objects
become records of the same shape (``experiment_record``, ``trial_record``), so a table
through a server is the table here. Whether a controller runs an experiment is the
server's word (``active``), not a look at this machine's processes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from katib.cli._app import Remote
from katib.errors import KatibError, NotFoundError

# What the server's list adds to each Katib object, for its viewer; not Katib's.
_EXTRAS = ("active", "stoppable", "resumable", "lastFailure", "readOnly")
_FINAL = ("Succeeded", "Failed", "Killed", "EarlyStopped", "MetricsUnavailable")


def client(remote: Remote) -> Any:
    from katib.client import KatibClient

    return KatibClient(url=remote.url, token=remote.token)


def _time(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def katib_object(obj: dict[str, Any]) -> dict[str, Any]:
    """The Katib object, without what the server's list adds for its viewer."""
    return {k: v for k, v in obj.items() if k not in _EXTRAS}


def experiment_record(obj: dict[str, Any]) -> Any:
    """A store record from the server's ``Experiment`` (``owner`` is never set: whether
    a controller runs it is the server's ``active``)."""
    from katib.spec import ExperimentStatus
    from katib.store import ExperimentRecord

    meta = obj.get("metadata") or {}
    created = _time(meta.get("creationTimestamp")) or 0.0
    spec = {k: v for k, v in katib_object(obj).items() if k != "status"}
    return ExperimentRecord(id=0, namespace=meta.get("namespace", "default"), name=meta.get("name", ""),
                            uid=meta.get("uid", ""), spec=spec, status=ExperimentStatus.model_validate(obj.get("status") or {}), workdir="",
                            owner=None, created_at=created, updated_at=created)


def trial_state(conditions: list[dict[str, Any]]) -> str:
    """The trial's state from its conditions: a final one, else Running, else Created."""
    true = {c.get("type") for c in conditions if c.get("status") == "True"}
    return next((s for s in (*_FINAL, "Running") if s in true), "Created")


def trial_record(obj: dict[str, Any], index: int = 0) -> Any:
    from katib.spec import Condition
    from katib.store import TrialRecord

    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    conditions = status.get("conditions") or []
    metrics = (status.get("observation") or {}).get("metrics") or []
    observation = {m["name"]: {k: v for k, v in m.items() if k != "name"} for m in metrics} or None
    attempt = (meta.get("annotations") or {}).get("katib.kubeflow.org/attempt", "0")
    return TrialRecord(
        id=index, experiment_id=0, name=meta.get("name", ""), state=trial_state(conditions),
        assignments=spec.get("parameterAssignments") or [], labels=meta.get("labels") or {},
        conditions=[Condition.model_validate(c) for c in conditions], observation=observation, attempt=int(attempt) if attempt.isdigit() else 0,
        created_at=_time(meta.get("creationTimestamp")) or 0.0, start_time=_time(status.get("startTime")),
        completion_time=_time(status.get("completionTime")),
        early_stopping_rules=spec.get("earlyStoppingRules"))


def _choose(kind: str, name: str, namespace: str | None, found: list[str], url: str) -> str:
    """The namespace, by the rules of ``_app._locate``, from what the server holds."""
    if namespace is not None:
        if namespace not in found and found:
            raise NotFoundError(f"{kind} {namespace}/{name} not found on {url}; it is in namespace "
                                f"{', '.join(found)}: -n {found[0]}")
        return namespace
    if len(found) > 1:
        raise KatibError(f"{kind} {name} is in {len(found)} namespaces ({', '.join(found)}): choose one with -n, "
                         f"e.g. -n {found[0]}")
    if not found:
        raise NotFoundError(f"{kind} {name} not found on {url}")
    return found[0]


def experiment(c: Any, remote: Remote, name: str, namespace: str | None) -> tuple[Any, bool, dict[str, Any]]:
    """The experiment as a record, whether a controller runs it, and the server's object."""
    items = [o for o in c.list_experiments(all_namespaces=True) if (o.get("metadata") or {}).get("name") == name]
    found = sorted({o["metadata"]["namespace"] for o in items})
    ns = _choose("experiment", name, namespace, found, remote.url)
    obj = next((o for o in items if o["metadata"]["namespace"] == ns), None)
    if obj is None:  # not listed to this caller: the server says why (404, 403)
        obj = c.get_experiment(name, ns)
    return experiment_record(obj), bool(obj.get("active")), obj


def trials(c: Any, rec: Any) -> list[Any]:
    return [trial_record(o, i) for i, o in enumerate(c.list_trials(rec.name, rec.namespace))]


def trial(c: Any, remote: Remote, name: str, namespace: str | None) -> tuple[Any, Any, dict[str, Any]]:
    """The trial's experiment and the trial, as records, and the server's trial object."""
    if namespace is None:
        spaces = sorted({o["metadata"]["namespace"] for o in c.list_experiments(all_namespaces=True)})
        found: dict[str, dict[str, Any]] = {}
        for ns in spaces:
            try:
                found[ns] = c.get_trial(name, ns)
            except NotFoundError:
                pass
        ns = _choose("trial", name, None, sorted(found), remote.url)
        obj = found[ns]
    else:
        ns, obj = namespace, c.get_trial(name, namespace)
    owner = next((r["name"] for r in (obj.get("metadata") or {}).get("ownerReferences") or []
                  if r.get("kind") == "Experiment"), "")
    rec = experiment_record(c.get_experiment(owner, ns))
    return rec, trial_record(obj), obj


def hint(remote: Remote, words: list[str], name: str, namespace: str) -> str:
    """A command that works as printed: through the same server, with ``-n`` unless default."""
    import shlex

    parts = ["katib", *(["--server", remote.url] if remote.given == "--server" else []), *words, name]
    if namespace != "default":
        parts += ["-n", namespace]
    return shlex.join(parts)
