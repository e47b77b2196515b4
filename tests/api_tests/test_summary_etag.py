"""A full summary carries an ETag: a 304 while nothing changed, the answer compressed
once per version (not per request), and a new version as soon as a trial is written."""

from __future__ import annotations

import gzip
import json

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from api import _summary, create_app  # noqa: E402
from tests.api_tests.test_summary import _seed  # noqa: E402


def test_the_summary_is_revalidated_by_etag_and_compressed_once(sqlite_store, tmp_path, monkeypatch):
    computed: list[int] = []
    real = _summary.experiment_summary
    monkeypatch.setattr(_summary, "experiment_summary", lambda *a, **k: computed.append(1) or real(*a, **k))
    rec = _seed(sqlite_store, n=12, steps=3)
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    url = f"/api/v1/namespaces/{rec.namespace}/experiments/{rec.name}/summary"
    with TestClient(app, base_url="http://localhost") as client:
        first = client.get(url, headers={"Accept-Encoding": "gzip"})
        etag = first.headers["etag"]
        assert first.status_code == 200 and first.headers["content-encoding"] == "gzip" and len(computed) == 1
        assert len(first.json()["columns"]["name"]) == 12 and first.json()["lastFailure"] is None
        again = client.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
        assert again.status_code == 304 and again.headers["etag"] == etag and not again.content
        # Another client without the ETag: the kept answer, not computed again; unpacked
        # for one that takes no gzip, and the same JSON.
        kept = client.get(url, headers={"Accept-Encoding": "gzip"})
        plain = client.get(url, headers={"Accept-Encoding": "identity"})
        assert len(computed) == 1 and kept.json() == first.json() == json.loads(plain.content)
        assert "content-encoding" not in plain.headers and gzip.decompress(_summary.kept_body(etag)) == plain.content

        # A trial written: a new version, computed afresh.
        t = sqlite_store.list_trials(rec.id)[0]
        t.observation = {"loss": {"min": "9.5", "max": "9.5", "latest": "9.5"}}
        sqlite_store.write_trials(save=[t])
        fresh = client.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
        assert fresh.status_code == 200 and fresh.headers["etag"] != etag and len(computed) == 2
        assert fresh.json()["columns"]["metrics"]["loss"][0] == 9.5
        # ?since= answers are never kept or tagged.
        since = client.get(url, params={"since": 0})
        assert since.status_code == 200 and "etag" not in since.headers and len(computed) == 3


def test_a_stop_that_writes_only_its_mark_is_a_new_version(sqlite_store, tmp_path):
    """``katib stop`` of an experiment whose controller is gone writes only its stop mark;
    the version left it out, so a viewer kept the cached answer that showed it running."""
    from katib.controller import mark_stopped

    rec = _seed(sqlite_store, n=3, steps=1)
    sqlite_store.update_experiment(rec.id, status={"conditions": [
        {"type": "Created", "status": "True", "reason": "ExperimentCreated", "message": "created"},
        {"type": "Running", "status": "True", "reason": "ExperimentRunning", "message": "running"}]})
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    url = f"/api/v1/namespaces/{rec.namespace}/experiments/{rec.name}/summary"
    with TestClient(app, base_url="http://localhost") as client:
        first = client.get(url)
        shown = first.json()["status"]["conditions"][-1]  # no controller runs it: not running, and why
        assert (shown["type"], shown["status"], shown["reason"]) == ("Running", "False", "ExperimentStopped")
        assert shown["message"].startswith("No controller runs the experiment")
        assert mark_stopped(sqlite_store, rec.namespace, rec.name, lambda _owner: False)
        again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 200, "the stop was answered 304: the page kept showing it running"
        shown = again.json()["status"]["conditions"][-1]
        assert (shown["type"], shown["status"], shown["reason"]) == ("Running", "False", "ExperimentStopped")
        assert shown["message"].startswith("Experiment was stopped by a user")
