"""POST …/trials/{trial}/metrics: the Push collector for trials that run in pods."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from api import create_app  # noqa: E402
from tests.api_tests.test_summary import _seed  # noqa: E402


def test_pushed_metrics_land_in_the_trials_push_file(sqlite_store, tmp_path):
    rec = _seed(sqlite_store, n=2)
    running, done = sqlite_store.list_trials(rec.id)
    running.state = "Running"
    sqlite_store.save_trial(running)
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as client:
        url = f"/api/v1/namespaces/{rec.namespace}/trials/{{}}/metrics"
        ok = client.post(url.format(running.name), json={"loss": 0.25, "timestamp": "2026-01-01T00:00:00Z"})
        assert ok.status_code == 202 and ok.json() == {"accepted": 1}
        lines = (tmp_path / "runs" / rec.namespace / rec.name / running.name / "push.jsonl").read_text().splitlines()
        assert json.loads(lines[0]) == {"timestamp": "2026-01-01T00:00:00Z", "loss": "0.25"}
        bad = client.post(url.format(running.name), json={"loss": "fast"})
        assert bad.status_code == 422 and "metric 'loss' must be a number" in bad.text
        assert client.post(url.format(running.name), json={}).status_code == 422
        late = client.post(url.format(done.name), json={"loss": 0.1})
        assert late.status_code == 409 and "takes no more metrics" in late.text
        assert client.post(url.format("nope"), json={"loss": 0.1}).status_code == 404


@pytest.mark.parametrize("stamp", ["nan", "NaN", "Infinity", 1e300, -1e18, "0001-01-01T00:00:00+14:00", "soon"])
def test_a_pushed_time_rfc3339_cannot_write_is_refused(sqlite_store, tmp_path, stamp):
    """Such a time went into the push file (202), then failed the controller's every write
    (NaN: stored as NULL) or every read of the trial's observations (past the year 9999)."""
    rec = _seed(sqlite_store, n=1)
    [running] = sqlite_store.list_trials(rec.id)
    running.state = "Running"
    sqlite_store.save_trial(running)
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as client:
        reply = client.post(f"/api/v1/namespaces/{rec.namespace}/trials/{running.name}/metrics",
                            content=json.dumps({"loss": 0.25, "timestamp": stamp}),
                            headers={"Content-Type": "application/json"})
        assert reply.status_code == 422 and "body.timestamp" in reply.text and "RFC 3339" in reply.text, reply.text
        assert not (tmp_path / "runs" / rec.namespace / rec.name / running.name / "push.jsonl").exists()
