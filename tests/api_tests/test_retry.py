"""Retrying one trial (issue 15): an ended, unsuccessful trial's parameters run again as a
new trial, before the algorithm's next suggestion and within the budget; refused, with the
reason, when it cannot be. The viewer's button: tests/viewer_tests."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from katib.controller._retry import RETRY_LABEL, RETRY_OF_LABEL, accept, waiting
from katib.controller._status import counts_of
from katib.errors import ConflictError
from katib.spec import Experiment
from katib.store import TrialRecord
from suggestion import get_algorithm
from tests.api_tests.conftest import LiveServer
from tests.conftest import experiment, python_command

# Each x fails the first time it runs and succeeds the second: what a retry is for.
FLAKY = """
import os, sys, time
marker = os.path.join({folder!r}, '${{trialParameters.x}}')
time.sleep(1.2)
if not os.path.exists(marker):
    open(marker, 'w').close()
    sys.exit(3)
print('loss=${{trialParameters.x}}')
"""


def _trials(c, base: str, name: str) -> list[dict]:
    return c.get(f"{base}/experiments/{name}/trials").json()["items"]


def _wait(c, base: str, name: str, done, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = _trials(c, base, name)
        if done(items):
            return items
        time.sleep(0.05)
    raise AssertionError(f"timed out: {[(t['metadata']['name'], _state(t)) for t in _trials(c, base, name)]}")


def _state(t: dict) -> str:
    return t["status"]["conditions"][-1]["type"]


def test_a_failed_trial_runs_again_first_and_within_the_budget(sqlite_store, tmp_path):
    base = "/api/v1/namespaces/default"
    doc = experiment(name="flaky", maxTrialCount=3, parallelTrialCount=1, maxFailedTrialCount=3,
                     command=python_command(FLAKY.format(folder=str(tmp_path))))
    with LiveServer(sqlite_store, tmp_path) as live:
        c = live.client
        assert c.post(f"{base}/experiments", json=doc).status_code == 201
        # The first trial fails; while the second (the algorithm's) runs, retry the first.
        items = _wait(c, base, "flaky", lambda ts: any(_state(t) == "Failed" for t in ts))
        first = next(t for t in items if _state(t) == "Failed")["metadata"]["name"]
        r = c.post(f"{base}/trials/{first}/retry")
        assert r.status_code == 200, r.text
        again = c.post(f"{base}/trials/{first}/retry")
        assert again.status_code == 409 and "already retried" in again.json()["message"]

        # The retry is the next trial, with the same parameters; it succeeds.
        items = _wait(c, base, "flaky", lambda ts: any(t["metadata"]["labels"].get(RETRY_OF_LABEL) for t in ts))
        retry = next(t for t in items if t["metadata"]["labels"].get(RETRY_OF_LABEL))
        original = next(t for t in items if t["metadata"]["name"] == first)
        assert retry["metadata"]["labels"][RETRY_OF_LABEL] == first
        assert retry["spec"]["parameterAssignments"] == original["spec"]["parameterAssignments"]
        assert original["metadata"]["labels"][RETRY_LABEL] == retry["metadata"]["name"]
        assert "retry of trial" in retry["status"]["conditions"][0]["message"]

        # Now the budget (3) is all done or running: the second failure cannot be retried.
        second = next(t["metadata"]["name"] for t in items if t["metadata"]["name"] not in (first, retry["metadata"]["name"]))
        _wait(c, base, "flaky", lambda ts: any(t["metadata"]["name"] == second and _state(t) == "Failed" for t in ts))
        spent = c.post(f"{base}/trials/{second}/retry")
        assert spent.status_code == 409 and "budget is spent" in spent.json()["message"]
        assert "maxTrialCount" in spent.json()["message"]

        status = live.wait_for("default", "flaky")
        items = _trials(c, base, "flaky")
        assert len(items) == 3 and status["phase"] == "Succeeded"
        assert {t["metadata"]["name"]: _state(t) for t in items}[retry["metadata"]["name"]] == "Succeeded"
        assert {t["metadata"]["name"]: _state(t) for t in items}[first] == "Failed"  # its history stays
        # Ended: nothing runs it any more; a succeeded trial is never retried.
        ended = c.post(f"{base}/trials/{second}/retry")
        assert ended.status_code == 409 and "does not run experiment flaky" in ended.json()["message"]
        assert c.post(f"{base}/trials/nothing-1/retry").status_code == 404

    with LiveServer(sqlite_store, tmp_path, read_only=True) as ui:  # katib ui changes nothing
        assert ui.client.post(f"{base}/trials/{second}/retry").status_code == 405


def _run(algorithm: str, *trials: TrialRecord, max_trials: int = 10) -> SimpleNamespace:
    exp = Experiment.model_validate(experiment(maxTrialCount=max_trials))
    touched: list[str] = []
    by_name = {t.name: t for t in trials}
    tally = SimpleNamespace(counts=lambda budget=False: counts_of(by_name.values(), budget))  # what the run's tally counts
    return SimpleNamespace(exp=exp, algorithm=get_algorithm(algorithm), trials=by_name, tally=tally, _settle=lambda: None,
                           retry_queue=waiting(trials), _touch=lambda t: touched.append(t.name), touched=touched)


def _trial(name: str, state: str, done: float = 1.0, **labels: str) -> TrialRecord:
    return TrialRecord(id=0, experiment_id=1, name=name, state=state, assignments=[{"name": "x", "value": "0.5"}],
                       labels=dict(labels), completion_time=done)


def _answer(run: SimpleNamespace, name: str) -> str:
    from concurrent.futures import Future

    answer: Future[str] = Future()
    accept(run, name, answer)  # type: ignore[arg-type]
    return answer.result(0)


@pytest.mark.parametrize(("algorithm", "state", "refusal"), [
    ("random", "Running", "only a trial that ended without succeeding"),
    ("random", "Succeeded", "only a trial that ended without succeeding"),
    ("hyperband", "Failed", "the hyperband algorithm plans its trials by name"),
    ("pbt", "Failed", "the pbt algorithm plans its trials by name"),
])
def test_refusals_say_why(algorithm, state, refusal):
    run = _run(algorithm, _trial("t1", state))
    with pytest.raises(ConflictError, match=refusal):
        _answer(run, "t1")
    assert run.touched == [] and run.retry_queue == []


def test_a_request_is_kept_with_the_trial_and_queued_again_after_a_restart():
    run = _run("random", _trial("t1", "Failed", 2.0), _trial("t2", "Killed", 1.0), _trial("t3", "Running"))
    assert _answer(run, "t1") == "t1" and _answer(run, "t2") == "t2"
    assert run.retry_queue == ["t1", "t2"] and run.touched == ["t1", "t2"]
    assert run.trials["t1"].labels[RETRY_LABEL] == "requested"
    # A restarted controller reads the requests from the stored labels, oldest end first.
    assert waiting(run.trials.values()) == ["t2", "t1"]
    # Three ended, one running, two asked for: a seventh may be asked for, not an eighth.
    full = _run("random", *run.trials.values(), _trial("t4", "Failed"), max_trials=7)
    assert _answer(full, "t4") == "t4"
    full = _run("random", *full.trials.values(), _trial("t5", "Failed"), max_trials=7)
    with pytest.raises(ConflictError, match="budget is spent"):
        _answer(full, "t5")


def test_the_client_retries_and_stops_one_trial(tmp_path, sqlite_store):
    from katib import KatibClient

    doc = experiment(name="flaky", maxTrialCount=3, parallelTrialCount=1, maxFailedTrialCount=3,
                     command=python_command(FLAKY.format(folder=str(tmp_path))))
    with KatibClient(db=str(tmp_path / "embedded.db"), workdir=tmp_path, tick=0.05) as client:
        client.create_experiment(doc)
        deadline = time.monotonic() + 30
        failed: list[dict] = []
        while not failed and time.monotonic() < deadline:
            failed = [t for t in client.list_trials("flaky") if _state(t) == "Failed"]
            time.sleep(0.05)
        first = failed[0]["metadata"]["name"]
        client.retry_trial(first)
        with pytest.raises(ConflictError, match="already retried"):
            client.retry_trial(first)
        client.wait_for_experiment_condition("flaky", timeout=60)
        retried = [t for t in client.list_trials("flaky") if t["metadata"]["labels"].get(RETRY_OF_LABEL) == first]
        assert len(retried) == 1 and _state(retried[0]) == "Succeeded"
        with pytest.raises(ConflictError, match="only a running trial"):
            client.stop_trial(first)
        with pytest.raises(ConflictError, match="does not run experiment flaky"):
            client.retry_trial(first)
    with LiveServer(sqlite_store, tmp_path) as live, KatibClient(url=live.url) as remote:
        remote.create_experiment(experiment(name="done", maxTrialCount=1, parallelTrialCount=1))
        live.wait_for("default", "done")
        trial = remote.list_trials("done")[0]["metadata"]["name"]
        with pytest.raises(ConflictError, match="only a running trial"):
            remote.stop_trial(trial)
        with pytest.raises(ConflictError, match="does not run experiment done"):
            remote.retry_trial(trial)
