"""What the Kubernetes lists of ``kube.py`` share with their watches: the list and watch
query parameters (and a write's dryRun), the objects a watch covers, and the resource
version of a list."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import Query, Request
from fastapi.responses import JSONResponse

from katib.errors import FieldError, NotFoundError, ValidationError
from katib.spec import EXPERIMENT_LABEL
from katib.store import ExperimentRecord, TrialRecord, experiment_page

from .. import _paging, _watch
from .. import _selectors as selectors
from .._guard import kube_status
from .._listmemory import KEPT_LISTS
from .._state import ServerState
from .._tables import wants_table

FIELD_SELECTOR = Query(None, alias="fieldSelector")
WATCH = Query(False, description="a stream of changes (kubectl get -w, kubectl wait), not a list: api/_watch.py")
TIMEOUT = Query(None, alias="timeoutSeconds", ge=0, description="how long a watch lasts (at most 1,800 s)")
# Declared by the routes that honour it (for the schema and ``refuse_unapplied``), read with
# every value it is given by ``dry_run_all``.
DRY_RUN = Query(None, alias="dryRun", description="All: checked and answered as it would be, nothing changed")


def dry_run_all(request: Request) -> bool:
    """``dryRun`` as Kubernetes reads it: ``All`` (each time it is given), or none; anything
    else is refused (read as no dry run, ``dryRun=true`` or ``dryRun=All&dryRun=`` would
    make the change)."""
    values = request.query_params.getlist("dryRun")
    if not values:
        return False
    wrong = next((v for v in values if v != "All"), None)
    if wrong is not None:
        raise ValidationError([FieldError("dryRun", f"must be All (got {wrong[:40]!r})")], "request")
    return True


def of_experiment(selector: dict[str, str | frozenset[str]]) -> frozenset[str] | None:
    """The experiments a selector's ``katib.kubeflow.org/experiment`` (``=`` or ``in``)
    names (None: it names none, so every experiment)."""
    wanted = selector.get(EXPERIMENT_LABEL)
    if wanted is None:
        return None
    return wanted if isinstance(wanted, frozenset) else frozenset([wanted])


def or_none(get: Any, namespace: str, name: str) -> Any:
    try:
        return get(namespace, name)
    except NotFoundError:
        return None


def name_asked(fields: selectors.Fields) -> str | None:
    """The one name a field selector asks for (``metadata.name=x``), if it does."""
    return next((v for f, v, equal in fields if f == "metadata.name" and equal), None)


async def watch_of(request: Request, state: ServerState, namespace: str, kind: str, read: Any,
                    fields: selectors.Fields, key: tuple[str, ...], timeout_seconds: int | None) -> Any:
    def objects() -> list[dict[str, Any]]:
        return [o for o in read() if selectors.fields_match(o, fields)]

    version = request.query_params.get("resourceVersion") or ""
    since = state.lists.recall(version, key)
    if since is None and version not in ("", "0"):
        # Kubernetes' answer to a version it no longer holds: the client lists again.
        return JSONResponse(kube_status(410, f"too old resource version: {version} (this server remembers its last "
                                             f"{KEPT_LISTS} small lists; list again and watch from the list's)")
                            | {"reason": "Expired"}, status_code=410)
    return await _watch.watch(request, state, namespace, kind, objects, since, timeout_seconds,
                              wants_table(request.headers.get("accept", "")))


# Experiments a watch looks through for those its selectors match, at most.
WATCH_SCAN = 10 * _watch.MAX_OBJECTS


def scan_cap(keep: Callable[[TrialRecord], bool] | None = None) -> Callable[[TrialRecord], bool]:
    """A walk's ``keep`` for one reading of a watch: ``keep`` (or every trial), and
    ``too_many`` once it has looked at ``WATCH_SCAN`` trials, however few a selector keeps
    (each looked at is made into objects, or read, before a selector can drop it)."""
    seen = 0

    def counting(t: TrialRecord) -> bool:
        nonlocal seen
        seen += 1
        if seen > WATCH_SCAN:
            raise _watch.too_many()
        return keep is None or keep(t)

    return counting


def whole_reading(walk: Iterator[_paging.Entry]) -> list[dict[str, Any]]:
    """A watch's reading of what ``walk`` makes of its trials: at most ``MAX_OBJECTS``
    objects (``too_many`` past them)."""
    items, spot = _paging.fill(walk, _watch.MAX_OBJECTS)
    if spot is not None:
        raise _watch.too_many()
    return _paging.built(items)


def _labels(rec: ExperimentRecord) -> dict[str, str]:
    return (rec.spec.get("metadata") or {}).get("labels") or {}


def watched_experiments(state: ServerState, namespace: str, labels: selectors.Labels,
                         fields: selectors.Fields) -> list[ExperimentRecord]:
    """The experiments a watch covers: the one a field selector names, or those the label
    selector matches, looking through at most ``WATCH_SCAN`` experiments (and pages of the
    list's bytes) for at most ``_watch.MAX_OBJECTS`` (``too_many`` past either)."""
    name = name_asked(fields)
    if name is not None:
        found = or_none(state.store.get_experiment, namespace, name)
        return [found] if found is not None and selectors.labels_match(_labels(found), labels) else []
    kept: list[ExperimentRecord] = []
    start: int | None = 0
    scanned = 0
    while start is not None:
        if scanned >= WATCH_SCAN:
            raise _watch.too_many()
        recs, start = experiment_page(state.store, min(_watch.MAX_OBJECTS, WATCH_SCAN - scanned), state.limits.list_bytes,
                                      start, namespace)
        scanned += len(recs)
        kept += [r for r in recs if selectors.labels_match(_labels(r), labels)]
        if len(kept) > _watch.MAX_OBJECTS:
            raise _watch.too_many()
    return kept


def list_version(state: ServerState, key: tuple[str, ...], items: list[dict[str, Any]], more: bool) -> str:
    """The list's resource version: one a watch can start from (``ListMemory``) for a whole
    list a watch could cover, else ""."""
    return state.lists.remember(key, items) if not more and len(items) <= _watch.MAX_OBJECTS else ""


def list_key(resource: str, namespace: str, label_selector: str | None, field_selector: str | None) -> tuple[str, ...]:
    return (resource, namespace, selectors.paging_key(label_selector, field_selector) or "")
