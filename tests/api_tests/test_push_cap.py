"""The cap on what one trial may push (POST …/trials/{trial}/metrics): a trial holding its
push token cannot fill the server's disk, and past the cap it is told so, nothing is kept."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import katib  # noqa: E402
from api import create_app  # noqa: E402
from api._state import ServerLimits  # noqa: E402
from katib.errors import KatibError  # noqa: E402
from tests.api_tests.conftest import LiveServer  # noqa: E402
from tests.api_tests.test_summary import _seed  # noqa: E402


def _running(store):
    rec = _seed(store, n=2, steps=1)
    running, other = store.list_trials(rec.id)
    for t in (running, other):
        t.state = "Running"
        store.save_trial(t)
    return rec, running, other


def test_the_cap_is_generous_and_set_from_the_environment():
    assert ServerLimits().push_bytes == 64 << 20
    assert ServerLimits.from_env({"KATIB_MAX_PUSH_BYTES": "4096"}).push_bytes == 4096
    with pytest.raises(ValueError, match="KATIB_MAX_PUSH_BYTES"):
        ServerLimits.from_env({"KATIB_MAX_PUSH_BYTES": "0"})


def test_a_push_past_the_cap_is_a_413_naming_the_limit_and_trial_and_nothing_is_appended(sqlite_store, tmp_path):
    rec, running, other = _running(sqlite_store)
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False, limits=ServerLimits(push_bytes=300))
    push = tmp_path / "runs" / rec.namespace / rec.name / running.name / "push.jsonl"
    with TestClient(app, base_url="http://localhost") as client:
        url = f"/api/v1/namespaces/{rec.namespace}/trials/{{}}/metrics"
        accepted = 0
        for _ in range(100):
            r = client.post(url.format(running.name), json={"loss": 0.25, "timestamp": "2026-01-01T00:00:00Z"})
            if r.status_code != 202:
                break
            accepted += 1
        assert 1 <= accepted < 100
        assert r.status_code == 413, r.text
        message = r.json()["message"]
        assert "KATIB_MAX_PUSH_BYTES" in message and "300 bytes" in message
        assert f"{rec.namespace}/{running.name}" in message and "not recorded" in message
        size = push.stat().st_size
        assert size <= 300
        assert len(push.read_text().splitlines()) == accepted
        assert all(json.loads(line)["loss"] == "0.25" for line in push.read_text().splitlines())
        # refused again, still nothing appended; a larger record too
        assert client.post(url.format(running.name), json={"loss": 0.5}).status_code == 413
        assert client.post(url.format(running.name), json={f"m{i}": 1 for i in range(50)}).status_code == 413
        assert push.stat().st_size == size
        # the cap is per trial: another trial of the experiment still pushes
        assert client.post(url.format(other.name), json={"loss": 0.1}).status_code == 202


def test_report_metrics_raises_a_clear_error_when_the_server_refuses(sqlite_store, tmp_path, monkeypatch):
    rec, running, _ = _running(sqlite_store)
    with LiveServer(sqlite_store, tmp_path, resume=False, limits=ServerLimits(push_bytes=200)) as server:
        monkeypatch.delenv("KATIB_PUSH_FILE", raising=False)
        monkeypatch.delenv("KATIB_API_TOKEN", raising=False)
        monkeypatch.setenv("KATIB_PUSH_URL", server.url)
        monkeypatch.setenv("KATIB_NAMESPACE", rec.namespace)
        monkeypatch.setenv("KATIB_TRIAL_NAME", running.name)
        katib.report_metrics({"loss": 0.25})  # under the cap: accepted
        with pytest.raises(KatibError) as refused:
            for _ in range(100):
                katib.report_metrics({"loss": 0.25})
        text = str(refused.value)
        assert "413" in text and "KATIB_MAX_PUSH_BYTES" in text and running.name in text and "not recorded" in text
        assert not text.lstrip().startswith("{")  # the server's message, not its JSON


def test_the_db_managers_report_observation_log_keeps_to_the_same_cap(sqlite_store, tmp_path, monkeypatch):
    """Katib's gRPC DBManager appends to the same push file: the cap holds there too."""
    import grpc

    from katib._dbmanager import DBManagerServicer
    from suggestion.grpc import api_pb2 as pb

    rec, running, _ = _running(sqlite_store)
    monkeypatch.setenv("KATIB_MAX_PUSH_BYTES", "300")
    servicer = DBManagerServicer(sqlite_store, tmp_path / "runs")

    class Aborted(Exception):
        pass

    class Context:
        def abort(self, code, details):
            self.code, self.details = code, details
            raise Aborted(details)

    def report(n: int) -> None:
        logs = [pb.MetricLog(time_stamp="2026-01-01T00:00:00Z", metric=pb.Metric(name="loss", value="0.5"))] * n
        servicer.ReportObservationLog(pb.ReportObservationLogRequest(
            trial_name=running.name, observation_log=pb.ObservationLog(metric_logs=logs)), context)

    context = Context()
    report(2)
    push = tmp_path / "runs" / rec.namespace / rec.name / running.name / "push.jsonl"
    kept = push.read_bytes()
    with pytest.raises(Aborted):
        report(10)
    assert context.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert running.name in context.details and "300 bytes" in context.details
    assert push.read_bytes() == kept  # nothing of the refused report was appended
