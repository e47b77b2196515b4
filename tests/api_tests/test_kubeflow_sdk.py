"""The unmodified Kubeflow SDK (``kubeflow==0.5.0``, kubernetes < 36), installed in its own
environment by .ci/run, drives our server (issue 13): ``OptimizerClient.optimize`` of a
``TrainJobTemplate`` whose ``CustomTrainer`` function runs as local TrainJob trials (uniform,
loguniform and choice parameters, ``RandomSearch(random_state=…)``), then
``wait_for_job_status``, ``get_job``, ``list_jobs``, ``get_best_results``, ``get_job_logs``,
``get_job_events`` and ``delete_job``, each checked against the trials that ran."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from tests.api_tests.conftest import LiveServer

KF_PYTHON = os.environ.get("KATIB_KF_PYTHON")
SCRIPT = Path(__file__).with_name("sdk") / "drive_kubeflow_sdk.py"


@pytest.fixture
def kf_python() -> str:
    if not KF_PYTHON:
        if os.environ.get("CI"):
            pytest.fail("CI must provide the Kubeflow SDK's Python in KATIB_KF_PYTHON (.ci/run makes it)")
        pytest.skip("KATIB_KF_PYTHON is not set: run .ci/run, or make a venv with kubeflow==0.5.0 'kubernetes<36'")
    return KF_PYTHON


def loss(p: dict[str, str]) -> float:
    return (math.log10(float(p["lr"])) + 2) ** 2 + (float(p["momentum"]) - 0.7) ** 2 + (0.1 if p["optimizer"] == "sgd" else 0.0)


def test_the_kubeflow_sdk_optimizes_trainjobs_on_the_server(kf_python, sqlite_store, tmp_path):
    with LiveServer(sqlite_store, tmp_path, tick=0.1) as server:
        result = subprocess.run([kf_python, str(SCRIPT), server.url], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        found = json.loads(result.stdout.strip().splitlines()[-1])
        # The experiment is gone from the store too, not only from the SDK's list.
        assert [r.name for r in sqlite_store.list_experiments("default")] == []
    name = found["name"]
    assert len(name) == 12 and name[0].isalpha()
    assert found["status"] == "Complete" and found["get_job"]["status"] == "Complete"
    assert found["get_job"] == {"name": name, "status": "Complete", "num_trials": 3, "algorithm": "RandomSearch",
                                "objectives": ["loss"], "search_space": ["lr", "momentum", "optimizer"]}
    assert found["list_jobs"] == [name] and found["after_delete"] == []
    trials = found["trials"]
    assert len(trials) == 3
    for trial in trials.values():
        p = trial["parameters"]
        assert 0.001 <= float(p["lr"]) <= 0.1 and 0.5 <= float(p["momentum"]) <= 0.9 and p["optimizer"] in ("sgd", "adam")
        assert float(trial["metrics"]["loss"]) == pytest.approx(loss(p))  # the function's printed metric, collected
        assert trial["trainjob_status"] == "Complete" and trial["runtime"] == "torch-distributed"
        assert trial["steps"] == [["node-0", "Succeeded"]] and trial["num_nodes"] == 1
    best_name = min(trials, key=lambda n: float(trials[n]["metrics"]["loss"]))
    assert found["best"]["parameters"] == trials[best_name]["parameters"]
    [low, high, latest] = found["best"]["metrics"]["loss"]
    assert float(low) == float(high) == float(latest) == pytest.approx(loss(trials[best_name]["parameters"]))
    # get_job_logs: the best trial's node-0 log; with trial_name, that trial's.
    best_p = trials[best_name]["parameters"]
    assert f"optimizer {best_p['optimizer']} lr {best_p['lr']} momentum {best_p['momentum']}" in found["logs"]
    [(first, lines)] = found["trial_logs"].items()
    assert found["followed_logs"] == lines  # followed, the same log, and the stream ends with the trial
    assert any(line.startswith("loss=") and float(line[5:]) == pytest.approx(loss(trials[first]["parameters"])) for line in lines)
    # get_job_events: each trial's, as Katib's trial controller records them.
    events = found["events"]
    for trial_name in trials:
        reasons = [e[2] for e in events if e[:2] == ["Trial", trial_name]]
        assert reasons == ["JobCreated", "JobRunning", "JobSucceeded"]
    assert {e[1] for e in events} == set(trials)
