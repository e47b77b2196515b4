"""What the web viewer's experiment page needs, aggregated on the server in one response:
the trials as columns (one array per field, not one object per trial), a bounded sample of
learning curves, each down-sampled, and parameter importance (fANOVA) computed on request.

An experiment of 10,000 trials with 50 reports each is one query for the trials and one
for the sampled curves: never a query per trial, and the browser gets columns it can sort,
filter and plot without reshaping.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import threading
import time
from collections import OrderedDict
from typing import Any

from katib.controller import is_completed
from katib.store import ExperimentRecord, Store, parameter_names, summary_columns, trial_stamp
from katib.views import shown_status, strategies_of

_importance_cache: dict[tuple[str, int], dict[str, float]] = {}
_importance_lock = threading.Lock()
# The columns and curves of ended experiments, until one of their trials is written again
# (a budget raised restarts it): reopening a page of 100,000 trials reads nothing again.
_SUMMARY_CACHE_SIZE = 4
_summary_cache: OrderedDict[tuple[Any, ...], tuple[tuple[int, float | None], dict[str, Any], list[Any]]] = OrderedDict()
_summary_lock = threading.Lock()
# The kept columns and curves as JSON, encoded once: id(columns) -> (columns, text).
_encoded: dict[int, tuple[dict[str, Any], str]] = {}


def _number(text: Any) -> float | str | None:
    if text is None:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return str(text)
    return value if math.isfinite(value) else None


def _numbers(values: list[Any], blank: bool = False) -> list[Any]:
    """``_number`` of each value (with ``blank``, ``""`` and ``unavailable`` are None, as a
    metric never reported): all at once while every value is a number, one by one if not."""
    if blank:
        values = [None if v == "" or v == "unavailable" else v for v in values]
    try:
        out: list[Any] = list(map(float, values))  # every value a number: the common case, at C speed
        if math.isfinite(math.fsum(out)):
            return out
    except (TypeError, ValueError, OverflowError):
        pass
    try:
        out = [None if v is None else float(v) for v in values]
    except (TypeError, ValueError):  # some text (a categorical column): each distinct value once
        memo: dict[Any, Any] = {}
        try:
            return [memo[v] if v in memo else memo.setdefault(v, _number(v)) for v in values]
        except TypeError:  # an unhashable value (a JSON object where a value should be)
            return [_number(v) for v in values]
    finite = math.isfinite
    if not all(v is None or finite(v) for v in out):
        out = [v if v is None or finite(v) else None for v in out]
    return out


def objective_of(rec: ExperimentRecord) -> tuple[str, bool, list[str]]:
    obj = rec.spec.get("spec", {}).get("objective", {})
    name = obj.get("objectiveMetricName", "")
    extra = [a.get("metricName") for a in obj.get("additionalObjectives") or []]
    # An additional objective is an additional metric too (admission requires it): each name once,
    # or its column would get a value per listing, out of step with the trials.
    metrics = dict.fromkeys([name, *obj.get("additionalMetricNames", []), *[e for e in extra if e]])
    return name, obj.get("type") == "maximize", list(metrics)




def experiment_summary(store: Store, rec: ExperimentRecord, curves: int = 100, points: int = 50,
                       since: float | None = None) -> dict[str, Any]:
    """The summary; with ``since`` (a previous answer's ``now``), only the trials written
    after it and no curves: what a page that holds the rest needs to catch up."""
    now = time.time() - 1.0  # a second of overlap: a write in flight during the read is sent again
    objective, maximize, metrics = objective_of(rec)
    strategy = strategies_of(rec)
    spec = rec.spec.get("spec", {})
    parameters = [{"name": p["name"], "type": p.get("parameterType"), "feasibleSpace": p.get("feasibleSpace", {})}
                  for p in spec.get("parameters") or []]
    key, stamp = (rec.id, rec.uid, curves, points, objective, tuple(metrics)), None
    if since is None and is_completed(rec.status):  # not completionTime: a restarted experiment keeps its last end's
        stamp = trial_stamp(store, rec.id)
        with _summary_lock:
            held = _summary_cache.get(key)
            if held is not None and held[0] == stamp:
                _summary_cache.move_to_end(key)
                return _answer(rec, spec, objective, maximize, metrics, strategy, parameters, held[1], held[2], now, since)
    names = [p["name"] for p in parameters] or parameter_names(store, rec.id)
    # The shown values, picked out and aggregated into columns by the database (one query).
    raw = summary_columns(store, rec.id, names, {m: strategy.get(m) or "latest" for m in metrics},
                          updated_since=since)
    ids = raw["id"]
    columns: dict[str, Any] = {
        "name": raw["name"],
        "state": raw["state"],
        "created": raw["created"],
        "started": raw["started"],
        "duration": raw["duration"],
        "params": {n: _numbers(raw[f"param:{n}"]) for n in names},
        "metrics": {m: _numbers(raw[f"metric:{m}"], blank=True) for m in metrics},
    }
    # Learning curves: the best trials and the latest ones, never all of them.
    if since is not None:
        curves = 0
    scored = [(v, i) for i, v in enumerate(columns["metrics"].get(objective, [])) if isinstance(v, float)]
    chosen = [i for _, i in (heapq.nlargest if maximize else heapq.nsmallest)(curves // 2, scored)]
    taken = set(chosen)
    chosen += list(itertools.islice((i for i in range(len(ids) - 1, -1, -1) if i not in taken), curves - len(chosen)))
    chosen_ids = {ids[i]: i for i in chosen}
    series = store.metric_series(rec.id, objective, chosen_ids) if chosen_ids and objective else {}
    learning = []
    for trial_id, reported in series.items():
        numbers = [v for v in (_number(x) for x in reported) if isinstance(v, float)]
        if len(numbers) < 2:
            continue
        i = chosen_ids[trial_id]
        learning.append({"name": columns["name"][i], "state": columns["state"][i], "steps": len(numbers),
                         "points": _downsample(numbers, points)})
    if stamp is not None and stamp == trial_stamp(store, rec.id):  # nothing written meanwhile
        with _summary_lock:
            _summary_cache[key] = (stamp, columns, learning)
            while len(_summary_cache) > _SUMMARY_CACHE_SIZE:
                _encoded.pop(id(_summary_cache.popitem(last=False)[1][1]), None)
    return _answer(rec, spec, objective, maximize, metrics, strategy, parameters, columns, learning, now, since)


def _answer(rec: ExperimentRecord, spec: dict[str, Any], objective: str, maximize: bool, metrics: list[str],
            strategy: dict[str, str], parameters: list[dict[str, Any]], columns: dict[str, Any], learning: list[Any],
            now: float, since: float | None) -> dict[str, Any]:
    return {
        "name": rec.name, "namespace": rec.namespace, "status": shown_status(rec).to_dict(),
        "objective": {"name": objective, "maximize": maximize,
                      "goal": spec.get("objective", {}).get("goal"),
                      "additional": [a for a in spec.get("objective", {}).get("additionalObjectives") or []],
                      # What a trial must meet to be a result (plots.js, plotCounts).
                      "constraints": [c for c in spec.get("objective", {}).get("constraints") or []]},
        "metrics": metrics, "strategies": strategy, "parameters": parameters, "algorithm": spec.get("algorithm", {}),
        "budget": {k: spec.get(k) for k in ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount")},
        "resumePolicy": spec.get("resumePolicy") or "Never",  # whether an ended experiment's budget may be raised
        "columns": columns, "curves": learning, "now": now, "since": since,
    }


def _downsample(values: list[float], points: int) -> list[list[float]]:
    """At most ``points`` (step, value) pairs, evenly spread, first and last kept."""
    n = len(values)
    if n <= points:
        return [[i + 1, v] for i, v in enumerate(values)]
    idx = sorted({round(k * (n - 1) / (points - 1)) for k in range(points)})
    return [[i + 1, values[i]] for i in idx]


def importance(store: Store, rec: ExperimentRecord, sample: int = 1000) -> dict[str, float]:
    """fANOVA importance of each parameter for the objective (Optuna's evaluator), over at
    most ``sample`` finished trials; cached until more trials finish."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    objective, maximize, _ = objective_of(rec)
    strategies = strategies_of(rec)
    params = rec.spec.get("spec", {}).get("parameters") or []
    # Only the values it needs, aggregated by the database (not every trial's whole row).
    cols = summary_columns(store, rec.id, [p["name"] for p in params],
                           {objective: strategies.get(objective) or "latest"})
    done = [i for i, state in enumerate(cols["state"]) if state in ("Succeeded", "EarlyStopped")]
    # By uid, not id: another store's experiment (or one made after a delete) may share the id.
    key = (rec.uid, len(done))
    with _importance_lock:
        if key in _importance_cache:
            return _importance_cache[key]
    dists: dict[str, Any] = {}
    for p in params:
        fs = p.get("feasibleSpace", {})
        if p.get("parameterType") in ("double", "int") and fs.get("min") is not None:
            low, high = float(fs["min"]), float(fs["max"])
            log = fs.get("distribution") in ("logUniform", "logNormal") and low > 0
            dists[p["name"]] = FloatDistribution(low, high, log=log)
        else:
            dists[p["name"]] = CategoricalDistribution(list(fs.get("list") or []))
    frozen = []
    step = max(1, len(done) // sample)
    for i in done[::step]:
        value = _number(cols[f"metric:{objective}"][i])
        values = {n: cols[f"param:{n}"][i] for n in dists}
        if not isinstance(value, float) or any(v is None for v in values.values()):
            continue
        try:
            chosen = {n: float(values[n]) if isinstance(d, FloatDistribution) else values[n] for n, d in dists.items()}
            frozen.append(optuna.trial.create_trial(params=chosen, distributions=dists, value=value))
        except ValueError:
            continue
    result: dict[str, float] = {}
    if len(frozen) >= 2 and dists:
        result = _fanova(frozen, dists, maximize)
    with _importance_lock:
        _importance_cache[key] = result
    return result


def _fanova(frozen: list[Any], dists: dict[str, Any], maximize: bool) -> dict[str, float]:
    """fANOVA over two or more trials. An objective that never varies (or whose sampled
    trees see no variance, as a handful of trials can) is explained by no parameter: all
    zeros, not fANOVA's error."""
    import optuna

    zeros = dict.fromkeys(dists, 0.0)
    if len({t.value for t in frozen}) < 2:
        return zeros
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if maximize else "minimize")
    study.add_trials(frozen)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study, evaluator=evaluator).items()}
    except RuntimeError as exc:
        if "zero total variance" in str(exc):
            return zeros
        raise


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def encode(result: dict[str, Any]) -> bytes:
    """The summary as JSON. Kept columns and curves (an ended experiment's) are encoded
    once and spliced in: 13 MB of JSON at 100,000 trials need not be encoded per request."""
    columns = result.get("columns")
    with _summary_lock:
        kept = any(held[1] is columns for held in _summary_cache.values())
        text = _encoded.get(id(columns)) if kept else None
    if not kept or not isinstance(columns, dict):
        return _dumps(result).encode()
    if text is None or text[0] is not columns:
        text = (columns, _dumps({"columns": columns, "curves": result["curves"]}))
        with _summary_lock:
            _encoded[id(columns)] = text
    rest = _dumps({k: v for k, v in result.items() if k not in ("columns", "curves")})
    return (rest[:-1] + "," + text[1][1:]).encode() if rest != "{}" else text[1].encode()


# -- whole answers, compressed once ------------------------------------------------------------
#
# A full summary's answer depends only on the experiment (its row: spec, status, owner, a
# user's stop), on
# its trials (``trial_stamp``: how many, and when one was last written), on the request's
# ``curves`` and ``points`` and on what the route adds (controls, read-only, last failure).
# Those make its version: the ETag the page revalidates with (304 while nothing changed),
# and the key under which the gzipped answer is kept, so 13 MB of JSON at 100,000 trials is
# neither encoded nor compressed again per request. Its ``now`` is the first answer's: a
# page that asks ``since`` it gets what was written after, which includes all that is new.

_BODY_CACHE_SIZE = 4
_bodies: OrderedDict[str, bytes] = OrderedDict()  # ETag -> gzip of the answer


def summary_etag(store: Store, rec: ExperimentRecord, curves: int, points: int, extra: dict[str, Any]) -> str:
    """The version of the experiment's full summary, as a quoted (strong) ETag."""
    import hashlib

    version = _dumps([rec.id, rec.uid, rec.updated_at, list(trial_stamp(store, rec.id)), curves, points,
                      rec.owner, rec.stopped_at, extra])  # a stop writes only stopped_at: shown_status
    return '"s-' + hashlib.sha256(version.encode()).hexdigest()[:32] + '"'


def kept_body(etag: str) -> bytes | None:
    """The gzipped answer of this version, if kept."""
    with _summary_lock:
        body = _bodies.get(etag)
        if body is not None:
            _bodies.move_to_end(etag)
        return body


def keep_body(etag: str, raw: bytes) -> bytes:
    """Compress an answer once and keep it under its version; returns the gzip."""
    import gzip

    body = gzip.compress(raw, compresslevel=5, mtime=0)  # as the middleware: 4 % larger than 9, ~10x faster
    with _summary_lock:
        _bodies[etag] = body
        while len(_bodies) > _BODY_CACHE_SIZE:
            _bodies.popitem(last=False)
    return body
