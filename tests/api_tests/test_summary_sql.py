"""The viewer's summary aggregated by the database (``summary_columns``) gives the values
the old Python path gave (every trial decoded, ``shown_value`` under each metric's
strategy, ``_number``), on SQLite and PostgreSQL, including the awkward cases."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from api import _summary  # noqa: E402
from katib.store import TrialRecord, summary_rows  # noqa: E402
from katib.views import shown_value, strategies_of  # noqa: E402

SPEC = {"spec": {
    "objective": {"type": "minimize", "objectiveMetricName": "loss",
                  "additionalMetricNames": ["acc", "val.acc", 'q"m', "text", "other"],
                  "metricStrategies": [{"name": "loss", "value": "min"}, {"name": "acc", "value": "max"},
                                       {"name": "val.acc", "value": "latest"}, {"name": 'q"m', "value": "max"}]},
    "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
                   {"name": "c", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}},
                   {"name": 'od"d.name', "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}}],
}}


def _obs(**metrics):
    return {k.replace("__", "."): v for k, v in metrics.items()}


def _m(mn, mx, latest):
    return {"min": mn, "max": mx, "latest": latest}


CASES = [  # (assignments, observation)
    ([("x", "0.25"), ("c", "a"), ('od"d.name', "3")],
     _obs(loss=_m("0.1", "0.9", "0.2"), acc=_m("0.5", "0.75", "0.6"), val__acc=_m("1", "2", "3"))),
    ([("c", "b"), ('od"d.name', "4"), ("x", ".5")],  # out of order; a number float() reads but JSON would not
     {"loss": _m("unavailable", "unavailable", "unavailable"), 'q"m': _m("1", "7", "2")}),
    ([("x", 0.75)], {"loss": _m("nan", "1", "inf"), "acc": _m("", "", "")}),  # a JSON number; c missing
    ([("x", "inf"), ("c", "1e5"), ('od"d.name', " 2 ")],
     {"text": _m("Genotype(normal=[('sep', 0)])", "g", "g"), "loss": _m("-Infinity", "3", "3")}),
    ([("x", "1.0000000000000002"), ("c", "a")], None),  # no observation at all
    ([("x", "0.1"), ("c", "b"), ('od"d.name', "7"), ("x", "0.2")],  # a name twice: the last one counts
     {"loss": _m("1e-320", "1e308", "12345678901234567890"), "other": {"min": "5"}}),
]


def _old_columns(store, rec, since=None):
    """The summary's columns as the Python path computed them before."""
    objective, maximize, metrics = _summary.objective_of(rec)
    strategy = strategies_of(rec)
    names = [p["name"] for p in rec.spec["spec"]["parameters"]]
    trials = summary_rows(store, rec.id, updated_since=since)
    params = {n: [] for n in names}
    values_of = {m: [] for m in metrics}
    for t in trials:
        values = {a["name"]: a["value"] for a in t.assignments}
        for n in names:
            params[n].append(_summary._number(values.get(n)))
        for m in metrics:
            text = shown_value(t.observation or {}, m, strategy)
            values_of[m].append(_summary._number(text) if text not in ("", "unavailable") else None)
    return {"name": [t.name for t in trials], "state": [t.state for t in trials],
            "created": [round(t.created_at, 3) for t in trials],
            "started": [round(t.start_time, 3) if t.start_time else None for t in trials],
            "duration": [round(t.completion_time - t.start_time, 3) if t.completion_time and t.start_time else None
                         for t in trials],
            "params": params, "metrics": values_of}


def test_the_sql_summary_gives_the_python_paths_values(store):
    rec = store.create_experiment("ns", "e", SPEC, {}, "/w")
    store.add_trials([
        TrialRecord(id=0, experiment_id=rec.id, name=f"e-{i}", state="Succeeded" if i % 3 else "Failed",
                    assignments=[{"name": n, "value": v} for n, v in assign], observation=obs,
                    created_at=1795999904.9563098 + i * 1.2345671, start_time=None if i == 4 else 1795999905.3141592 + i,
                    completion_time=1795999965.2718281 + i * 0.77)  # the database rounds them as Python does
        for i, (assign, obs) in enumerate(CASES)])
    rec = store.get_experiment("ns", "e")
    new = _summary.experiment_summary(store, rec, curves=0)["columns"]
    old = _old_columns(store, rec)
    assert new == old
    assert new["params"]["x"][:3] == [0.25, 0.5, 0.75] and new["params"]["c"][3] == 100000.0
    assert new["metrics"]["loss"][:4] == [0.1, None, None, None] and new["metrics"]["acc"][0] == 0.75
    assert new["metrics"]["val.acc"][0] == 3.0 and new["metrics"]['q"m'][1] == 7.0
    assert new["metrics"]["text"][3] == "Genotype(normal=[('sep', 0)])" and new["params"]["x"][5] == 0.2

    # Only what was written since: the same rows as the Python path picks.
    later = store.list_trials(rec.id)[2]
    later.observation = {"loss": _m("0.01", "0.01", "0.01")}
    store.write_trials(save=[later])
    since = later.updated_at - 0.001 if later.updated_at else 0.0
    assert _summary.experiment_summary(store, rec, since=since)["columns"] == _old_columns(store, rec, since)


def test_importance_reads_the_columns_not_every_trial(sqlite_store, monkeypatch):
    from tests.api_tests.test_summary import _seed

    rec = _seed(sqlite_store, n=10, steps=2)
    expected = {(t.assignments[0]["value"], t.assignments[1]["value"], float(t.observation["loss"]["min"]))
                for t in sqlite_store.list_trials(rec.id)}
    monkeypatch.setattr(sqlite_store, "list_trials", lambda *a, **k: pytest.fail("read every trial's row"))
    seen = []
    monkeypatch.setattr(_summary, "_fanova", lambda frozen, dists, maximize: seen.extend(frozen) or {"x": 1.0})
    assert _summary.importance(sqlite_store, rec) == {"x": 1.0}
    assert {(str(t.params["x"]), t.params["c"], t.value) for t in seen} == expected  # every trial, as stored


def test_importance_is_kept_per_experiment_not_per_id(sqlite_store, tmp_path, monkeypatch):
    from katib.store import Store
    from tests.api_tests.test_summary import _seed

    other = Store(str(tmp_path / "other.db"))
    try:
        first, second = _seed(sqlite_store, n=10, steps=2), _seed(other, n=10, steps=2)
        assert first.id == second.id  # two stores: the same id, two experiments
        monkeypatch.setattr(_summary, "_fanova", lambda frozen, dists, maximize: {"x": 1.0})
        assert _summary.importance(sqlite_store, first) == {"x": 1.0}
        monkeypatch.setattr(_summary, "_fanova", lambda frozen, dists, maximize: {"c": 1.0})
        assert _summary.importance(other, second) == {"c": 1.0}  # not the first one's, kept under its id
    finally:
        other.close()
