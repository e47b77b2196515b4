"""A trial's "pod" log as kubectl reads it: ``kubectl logs -f`` follows the output as it is
written and ends when the trial ends; ``--tail`` and ``--limit-bytes`` bound it; what a
trial's log does not keep (times per line, a previous container) is refused by name,
never answered with the whole log as if it were the answer."""

from __future__ import annotations

import time

import pytest

from api._state import ServerLimits
from tests.api_tests.conftest import LiveServer
from tests.conftest import experiment, python_command

KUBE = "/apis/kubeflow.org/v1beta1/namespaces/default"
PODS = "/api/v1/namespaces/default/pods"

SLOW = ("import time\n"
        "print('first', flush=True)\n"
        "time.sleep(3)\n"
        "print('second', flush=True)\n"
        "print('loss=0.5', flush=True)\n")


def _trial(live: LiveServer, name: str, code: str) -> str:
    doc = experiment(name=name, maxTrialCount=1, parallelTrialCount=1, command=python_command(code))
    assert live.client.post(f"{KUBE}/experiments", json=doc).status_code == 201
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        items = live.client.get(f"{KUBE}/trials", params={"labelSelector": f"katib.kubeflow.org/experiment={name}"}).json()["items"]
        if items:
            return items[0]["metadata"]["name"]
        time.sleep(0.05)
    raise AssertionError("no trial was created")


def test_a_followed_log_streams_as_written_and_ends_with_the_trial(live):
    trial = _trial(live, "slow", SLOW)
    started = time.monotonic()
    arrivals: list[tuple[float, bytes]] = []
    with live.client.stream("GET", f"{PODS}/{trial}/log", params={"follow": "true"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        for chunk in r.iter_bytes():
            arrivals.append((time.monotonic() - started, chunk))
    text = b"".join(c for _, c in arrivals).decode()
    assert text.splitlines() == ["first", "second", "loss=0.5"]
    first_at = next(at for at, c in arrivals if b"first" in c)
    # the first line came while the trial still ran, and the stream ended with the trial
    assert arrivals[-1][0] - first_at > 2, arrivals
    assert live.client.get(f"{KUBE}/trials/{trial}").json()["status"]["conditions"][-1]["type"] == "Succeeded"

    # once it has ended, a followed log is the whole log, and ends at once
    again = live.client.get(f"{PODS}/{trial}/log", params={"follow": "true"})
    assert again.text == text
    assert live.client.get(f"{PODS}/{trial}/log", params={"follow": "true", "tailLines": "1"}).text == "loss=0.5\n"
    assert live.client.get(f"{PODS}/{trial}/log", params={"follow": "true", "tailLines": "0"}).text == ""
    assert live.client.get(f"{PODS}/{trial}/log", params={"follow": "true", "limitBytes": "7"}).text == "first\ns"
    assert live.client.get(f"{PODS}/{trial}/log", params={"limitBytes": "3"}).text == "fir"
    assert live.client.get(f"{PODS}/{trial}/log", params={"tailLines": "2"}).text == "second\nloss=0.5\n"


@pytest.mark.parametrize(("param", "value"), [("timestamps", "true"), ("previous", "true"), ("sinceSeconds", "10"),
                                              ("sinceTime", "2026-01-01T00:00:00Z"), ("container", "sidecar"),
                                              ("limitBytes", "0")])
def test_what_a_trial_log_does_not_keep_is_refused_by_name(live, param, value):
    trial = _trial(live, "quick", "print('loss=0.5')")
    r = live.client.get(f"{PODS}/{trial}/log", params={param: value})
    assert r.status_code == 422, r.text
    assert r.json()["kind"] == "Status" and param in r.text
    pod = live.client.get(f"{PODS}/{trial}").json()
    container = pod["spec"]["containers"][0]["name"]
    assert live.client.get(f"{PODS}/{trial}/log", params={"container": container, "timestamps": "false"}).status_code == 200


def test_the_collector_sidecar_shows_the_output_where_katib_s_would(live):
    """With the StdOut collector, Katib's metrics-logger-and-collector sidecar prints the
    trial's output, and the Katib SDK's get_job_logs reads it there; with a File collector
    it would print its own work, which does not exist here."""
    trial = _trial(live, "stdout", "print('loss=0.5')")
    live.wait_for("default", "stdout")
    r = live.client.get(f"{PODS}/{trial}/log", params={"container": "metrics-logger-and-collector"})
    assert r.status_code == 200 and "loss=0.5" in r.text
    doc = experiment(name="filed", maxTrialCount=1, parallelTrialCount=1, command=python_command("print('hello')"))
    doc["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "File"},
                                           "source": {"fileSystemPath": {"path": "/tmp/m.log", "kind": "File"}}}
    assert live.client.post(f"{KUBE}/experiments", json=doc).status_code == 201
    filed = live.client.get(f"{KUBE}/trials", params={"labelSelector": "katib.kubeflow.org/experiment=filed"}).json()["items"]
    while not filed:
        time.sleep(0.05)
        filed = live.client.get(f"{KUBE}/trials", params={"labelSelector": "katib.kubeflow.org/experiment=filed"}).json()["items"]
    r = live.client.get(f"{PODS}/{filed[0]['metadata']['name']}/log", params={"container": "metrics-logger-and-collector"})
    assert r.status_code == 422 and "container" in r.text


def test_a_followed_log_takes_a_stream_slot_and_ends_when_told(sqlite_store, tmp_path, monkeypatch):
    from api import _logfollow

    monkeypatch.setattr(_logfollow, "MAX_SECONDS", 2)
    with LiveServer(sqlite_store, tmp_path, limits=ServerLimits(streams_per_client=1)) as live:
        trial = _trial(live, "long", "import time; print('loss=0.5', flush=True); time.sleep(60)")
        started = time.monotonic()
        with live.client.stream("GET", f"{PODS}/{trial}/log", params={"follow": "true"}) as held:
            assert held.status_code == 200
            refused = live.client.get(f"{PODS}/{trial}/log", params={"follow": "true"})
            assert refused.status_code == 429 and refused.json()["kind"] == "Status"
            assert b"".join(held.iter_bytes()) == b"loss=0.5\n"
        assert time.monotonic() - started < 20  # it ended at its longest, though the trial still runs
        assert live.client.get(f"{PODS}/{trial}/log", params={"follow": "true", "tailLines": "5"}).status_code == 200
        live.client.delete(f"{KUBE}/experiments/long")
