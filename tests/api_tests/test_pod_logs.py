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


def _running(live: LiveServer, trial: str) -> None:
    deadline = time.monotonic() + 60
    while live.client.get(f"{KUBE}/trials/{trial}").json()["status"]["conditions"][-1]["type"] != "Running":
        assert time.monotonic() < deadline, "the trial did not start"
        time.sleep(0.05)


def _printed(live: LiveServer, trial: str) -> None:
    """Until the running trial has printed something (a loaded machine starts Python slowly)."""
    _running(live, trial)
    deadline = time.monotonic() + 60
    while not live.client.get(f"{PODS}/{trial}/log").text:
        assert time.monotonic() < deadline, "the trial printed nothing"
        time.sleep(0.05)


def test_a_followed_log_streams_as_written_and_ends_with_the_trial(live):
    trial = _trial(live, "slow", SLOW)
    _running(live, trial)
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
        _printed(live, trial)
        started = time.monotonic()
        with live.client.stream("GET", f"{PODS}/{trial}/log", params={"follow": "true"}) as held:
            assert held.status_code == 200
            refused = live.client.get(f"{PODS}/{trial}/log", params={"follow": "true"})
            assert refused.status_code == 429 and refused.json()["kind"] == "Status"
            assert b"".join(held.iter_bytes()) == b"loss=0.5\n"
        assert time.monotonic() - started < 20  # it ended at its longest, though the trial still runs
        assert live.client.get(f"{PODS}/{trial}/log", params={"follow": "true", "tailLines": "5"}).status_code == 200
        live.client.delete(f"{KUBE}/experiments/long")


def test_a_followed_log_is_bounded_while_the_output_keeps_coming(sqlite_store, tmp_path, monkeypatch):
    """A trial that never stops printing: the stream still ends at its longest, and starts
    from the last log_bytes of the output (from a whole line), not from the first byte."""
    from api import _logfollow

    monkeypatch.setattr(_logfollow, "MAX_SECONDS", 3)
    with LiveServer(sqlite_store, tmp_path, limits=ServerLimits(log_bytes=4096)) as live:
        trial = _trial(live, "chatty", "import itertools, sys\nfor i in itertools.count(): print(f'line {i:09d}', flush=True)")
        _running(live, trial)
        while int((live.client.get(f"{PODS}/{trial}/log").text.splitlines() or ["line 0"])[-1].split()[1]) < 5000:
            time.sleep(0.1)  # well past 4096 bytes
        started = time.monotonic()
        with live.client.stream("GET", f"{PODS}/{trial}/log", params={"follow": "true"}) as r:
            lines = r.iter_lines()
            first = next(lines)
            rest = sum(1 for _ in lines)
        assert time.monotonic() - started < 15 and rest > 0
        assert first.startswith("line ") and int(first.split()[1]) > 1000  # near the end, a whole line
        tail = live.client.get(f"{PODS}/{trial}/log", params={"follow": "true", "tailLines": "2", "limitBytes": "30"}).text
        assert len(tail) == 30 and tail.startswith("line ")  # the last two lines, then cut by limitBytes
        live.client.delete(f"{KUBE}/experiments/chatty")


def test_a_followed_log_ends_when_its_trial_stops_and_a_trial_not_started_is_a_400(live):
    trial = _trial(live, "stopped", "import time; print('started', flush=True); time.sleep(120)")
    _printed(live, trial)
    started = time.monotonic()
    with live.client.stream("GET", f"{PODS}/{trial}/log", params={"follow": "true"}) as r:
        assert r.status_code == 200
        assert live.client.post("/api/v1/namespaces/default/experiments/stopped/stop").status_code == 200
        assert b"".join(r.iter_bytes()).startswith(b"started")
    assert time.monotonic() - started < 30  # not the stream's 1,800 s: its trial no longer runs
    # the stopped experiment's trial waits to run again: as a pod waiting to start, a 400
    last = live.client.get(f"{KUBE}/trials/{trial}").json()["status"]["conditions"][-1]
    assert (last["type"], last["status"], last["reason"]) == ("Running", "False", "TrialInterrupted")
    r = live.client.get(f"{PODS}/{trial}/log", params={"follow": "true"})
    assert r.status_code == 400 and "waiting to start" in r.json()["message"]
    assert live.client.get(f"{PODS}/{trial}/log").text.startswith("started")  # a plain read reads what it wrote
