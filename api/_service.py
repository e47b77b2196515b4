"""The operations both API flavours offer (ours and the Kubernetes-style one)."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from katib import views
from katib.controller import admit, edit_again_while_stale, runnable_errors
from katib.errors import ConflictError, FieldError, NotFoundError, StaleEditError, ValidationError
from katib.names import RunLayout
from katib.optimizationjobs import source_annotation, stored_experiment
from katib.spec import update_errors
from katib.store import ExperimentRecord, TrialRecord

from . import _configmaps
from . import _jsonpatch as jsonpatch
from ._documents import dry_run_asked, merge_patch
from ._guard import BodyTooLarge
from ._state import ServerState


def create(state: ServerState, doc: Any, namespace: str, dry_run: bool = False) -> dict[str, Any]:
    """Admit and store a new experiment (409 when the name is taken, whatever the document:
    the client's apply then submits it again as an edit, which may carry the stored
    experiment's OptimizationJob annotation), then run it."""
    if isinstance(doc, dict):
        metadata = doc.setdefault("metadata", {}) if isinstance(doc.get("metadata", {}), dict) else None
        if metadata is not None:
            given = metadata.get("namespace")
            if given and given != namespace:
                raise ValidationError([FieldError("metadata.namespace", f"must be {namespace!r}, the namespace in the URL (got {given!r})")])
            metadata["namespace"] = namespace
            _generated_name(state, metadata, namespace)
    if stored_experiment(state.store, doc, namespace) is not None:  # before admission: an existing name is a 409
        raise ConflictError(f'experiments.kubeflow.org "{doc["metadata"]["name"]}" already exists')
    exp = admit(_configmaps.with_template(state, doc, namespace))
    errors = runnable_errors(exp, state.executor)
    if errors:
        raise ValidationError(errors)
    try:
        state.store.get_experiment(exp.namespace, exp.name)
        raise ConflictError(f'experiments.kubeflow.org "{exp.name}" already exists')
    except NotFoundError:
        pass
    if dry_run:
        obj = exp.to_dict()
        obj["status"] = {}
        return obj
    rec, _ = state.manager.submit(exp, state.workdir, create_only=True)  # made meanwhile elsewhere: a 409
    return views.experiment_object(rec)


def _generated_name(state: ServerState, metadata: dict[str, Any], namespace: str) -> None:
    """``metadata.generateName`` without a name, as the Kubernetes API server reads it: the
    prefix (cut to 58 characters) and 5 random characters of its alphabet, one not taken
    in the namespace (the Katib SDK's ``create_experiment`` reads the name back)."""
    prefix = metadata.get("generateName")
    if metadata.get("name") or not isinstance(prefix, str) or not prefix:
        return
    from katib.spec import generated_name

    for _ in range(16):
        name = generated_name(prefix)
        try:
            state.store.get_experiment(namespace, name)
        except NotFoundError:
            metadata["name"] = name
            return
    raise ConflictError(f"no free name for metadata.generateName {prefix!r} in namespace {namespace}")


# Edits of one experiment are made one at a time in a server (read, merge, admit, write):
# two label patches at once each kept only its own label. Striped: bounded, whatever the
# names. Between servers on one database, a write only lands on the spec it was made from
# (``StaleEditError`` otherwise), and the patch is made again from what is stored then.
_EDIT_LOCKS = tuple(threading.Lock() for _ in range(64))


def patch(state: ServerState, namespace: str, name: str, patch_doc: Any, dry_run: bool = False) -> views.ExperimentObject:
    """See ``_patch``; one edit of an experiment at a time in this server."""
    with _EDIT_LOCKS[hash((namespace, name)) % len(_EDIT_LOCKS)]:
        return edit_again_while_stale(lambda: _patch(state, namespace, name, patch_doc, dry_run),
                                      f"experiment {namespace}/{name}")


def _patch(state: ServerState, namespace: str, name: str, patch_doc: Any, dry_run: bool = False) -> views.ExperimentObject:
    """A merge patch (an object), or a JSON patch (a list of operations, RFC 6902); only the
    trial budget may change, as in Katib. A dry run checks the patched experiment as the
    edit would (admission, what may run here, Katib's update rules) and answers it as it
    would be stored, changing nothing."""
    if not isinstance(patch_doc, (dict, list)):
        raise ValidationError([FieldError("", f"a patch is an object (merge patch) or a list (JSON patch), "
                                              f"not {type(patch_doc).__name__}")], "request")
    rec = state.store.get_experiment(namespace, name)
    current = views.experiment_object(rec)
    current.pop("status", None)
    if isinstance(patch_doc, list):
        merged = jsonpatch.apply(current, patch_doc)
        if not isinstance(merged, dict):
            raise ValidationError([FieldError("", "the patched experiment is not an object")], "patch")
        merged.pop("status", None)
    else:
        merged = merge_patch(current, {k: v for k, v in patch_doc.items() if k != "status"})
    for key in ("uid", "creationTimestamp", "resourceVersion", "generation", "managedFields"):
        (merged.get("metadata") or {}).pop(key, None)
    exp = admit(merged, kept_source=source_annotation(rec))  # the OptimizationJob it came from, if it did, stays
    moved = [FieldError(f"metadata.{field}", f"cannot be changed (it is {was!r})")
             for field, now, was in (("namespace", exp.namespace, namespace), ("name", exp.name, name)) if now != was]
    if moved:
        raise ValidationError(moved)
    spec = exp.model_dump(by_alias=True, exclude_none=True, mode="json", exclude={"status"})
    if dry_run:
        errors = runnable_errors(exp, state.executor)
        errors += update_errors(rec.spec.get("spec") or {}, spec.get("spec") or {}, rec.status)
        if errors:
            raise ValidationError(errors)
        return views.experiment(replace(rec, spec=spec))
    if _metadata_only(patch_doc) and (spec.get("spec") or {}) == (rec.spec.get("spec") or {}):
        # kubectl label, kubectl annotate: stored as they are, and nothing is started (a
        # stopped experiment stays stopped). The whole object patched again (the client's
        # apply, katib --server run of the same file) is submitted again: it resumes.
        if spec.get("metadata") != rec.spec.get("metadata") \
                and not state.store.update_experiment(rec.id, if_spec=rec.spec, spec=spec):
            raise StaleEditError(f"experiment {namespace}/{name} was changed by another edit")
        return views.experiment(state.store.get_experiment(namespace, name))
    rec, _ = state.manager.submit(exp, Path(rec.workdir), based_on=rec.spec)
    return views.experiment(rec)


def delete(state: ServerState, namespace: str, name: str, options: dict[str, Any], dry_run: bool = False) -> None:
    """Delete an experiment, its trials and their files, as a Kubernetes delete with its
    ``DeleteOptions``: a dry run (``dryRun: [All]``, or ``dry_run``) only finds it, and a
    ``preconditions.uid`` that is not the experiment's is a 409."""
    dry = dry_run_asked(options) or dry_run
    preconditions = options.get("preconditions") or {}
    if not isinstance(preconditions, dict) or preconditions.get("resourceVersion"):
        raise ValidationError([FieldError("preconditions", "only a uid precondition is checked here: nothing was deleted")],
                              "request")
    # A dry run finds it (a 404, as the delete would be) and checks the uid; a delete checks
    # the uid again where the store deletes.
    state.manager.delete(namespace, name, str(preconditions.get("uid") or "") or None, dry_run=dry)


def _metadata_only(patch_doc: Any) -> bool:
    """Whether a patch touches the object's metadata alone (kubectl label and annotate)."""
    if isinstance(patch_doc, list):
        return all(isinstance(op, dict) and str(op.get("path", "")).startswith("/metadata/")
                   and str(op.get("from", "/metadata/")).startswith("/metadata/") for op in patch_doc)
    return isinstance(patch_doc, dict) and set(patch_doc) <= {"metadata", "apiVersion", "kind"}


def trial(state: ServerState, namespace: str, name: str) -> tuple[ExperimentRecord, TrialRecord]:
    return state.store.get_trial(namespace, name)


def push_metrics(state: ServerState, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Append a pushed record to the running trial's push file, which its controller tails."""
    from katib._push import append_pushed, metrics_record
    from katib._times import parse_time

    rec, t = trial(state, namespace, name)
    if t.state not in ("Created", "Running"):
        raise ConflictError(f"trial {namespace}/{name} is {t.state}: it takes no more metrics")
    values = {k: v for k, v in body.items() if k != "timestamp"}
    if not values:
        raise ValidationError([FieldError("body", "needs at least one metric: {\"loss\": 0.25}")])
    try:
        record = metrics_record(values)
    except ValueError as exc:
        raise ValidationError([FieldError("body", str(exc))]) from None
    if "timestamp" in body:
        if parse_time(body["timestamp"]) is None:
            raise ValidationError([FieldError("body.timestamp", "must be an RFC 3339 time or seconds since the epoch, "
                                              f"from the year 1 to 9999 (got {str(body['timestamp'])[:80]!r})")])
        record["timestamp"] = str(body["timestamp"])
    path = RunLayout(state.runs_root).push_file(rec.namespace, rec.name, t.name)
    line = (json.dumps(record) + "\n").encode()
    cap = state.limits.push_bytes
    held = append_pushed(path, line, cap)
    if held is not None:
        raise BodyTooLarge(cap,
            f"trial {namespace}/{name} has pushed {held} bytes of metrics, and this record ({len(line)} bytes) would "
            f"pass the server's limit of {cap} bytes of pushed metrics per trial (raise it with KATIB_MAX_PUSH_BYTES): "
            "it was not recorded")
    return {"accepted": len(values)}


def trial_log(state: ServerState, rec: ExperimentRecord, t: TrialRecord, tail: int | None = None) -> str:
    """The trial's log, or its last ``tail`` lines, at most ``limits.log_bytes`` of it, as
    the executor that ran it reads it (``Executor.logs``)."""
    from katib.controller import trial_log as executor_log

    return executor_log(state.runs_root, rec, t, tail, state.limits.log_bytes)


def trial_log_size(state: ServerState, rec: ExperimentRecord, t: TrialRecord) -> int:
    """How many bytes of output the trial has written so far (0 before there is a log)."""
    from katib.controller import trial_log_size as executor_log_size

    return executor_log_size(state.runs_root, rec, t) or 0


def trial_log_since(state: ServerState, rec: ExperimentRecord, t: TrialRecord, offset: int) -> tuple[bytes, int]:
    """What the trial wrote from byte ``offset`` on, at most ``limits.log_bytes`` of it, and
    the offset to read on from (``offset`` again when there is no log yet)."""
    from katib.controller import trial_log_since as executor_log_since

    return executor_log_since(state.runs_root, rec, t, offset, state.limits.log_bytes) or (b"", offset)
