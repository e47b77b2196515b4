"""The Ray executor against a real local Ray cluster that the tests start (2 CPUs and 2
declared GPUs, so GPU assignment can be checked on a machine without GPUs)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray  # noqa: E402

from katib.controller import Controller, admit  # noqa: E402
from tests.conftest import experiment, python_command  # noqa: E402
from trials._ray import RayExecutor  # noqa: E402

RAY = str(Path(sys.executable).with_name("ray"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node of this machine, for this test module alone."""
    port = _port()
    temp = tmp_path_factory.mktemp("ray")
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    # The driver may have imported Ray already, too late to read a token from the
    # environment: this throw-away cluster runs without token authentication.
    os.environ["RAY_AUTH_MODE"] = "disabled"
    subprocess.run([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                    "--num-gpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                   check=True, capture_output=True, timeout=120, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    try:
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(store, tmp_path, doc, address, tick=0.1):
    ctl = Controller(store, executor=RayExecutor(address), runs_root=tmp_path / "runs", tick=tick)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    return status, store.list_trials(rec.id)


def test_an_experiment_runs_on_the_cluster(cluster, sqlite_store, tmp_path):
    code = ("import time, katib\nfor i in range(3):\n    print(f'loss={float(\"${trialParameters.x}\") + i}', flush=True)\n"
            "    time.sleep(0.1)\nkatib.report_metrics({'accuracy': 0.5})")
    doc = experiment(command=python_command(code), maxTrialCount=4, parallelTrialCount=2,
                     objective={"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["accuracy"]})
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsSucceeded"] == 4
    for t in trials:
        assert t.handle["executor"] == "ray" and t.handle["node"]
        assert t.objective == float(t.parameters()["x"])  # min over the streamed stdout values
        assert t.observation["accuracy"]["latest"] == "0.5"  # pushed on the node, mirrored here
        log = (tmp_path / "runs" / "default" / "demo" / t.name / "trial.log").read_text()
        assert log.count("loss=") == 3


def test_gpus_come_from_ray(cluster, sqlite_store, tmp_path):
    code = ("import os, time; print('gpus=[' + os.environ.get('CUDA_VISIBLE_DEVICES', '?') + ']', flush=True); "
            "time.sleep(0.5); print('loss=${trialParameters.x}')")
    doc = experiment(command=python_command(code), maxTrialCount=4, parallelTrialCount=4)
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"nvidia.com/gpu": 1, "cpu": "0.5"}}
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsSucceeded"] == 4
    for t in trials:
        log = (tmp_path / "runs" / "default" / "demo" / t.name / "trial.log").read_text()
        visible = re.search(r"gpus=\[(.*?)\]", log).group(1)
        assert visible in ("0", "1") and t.handle["devices"]["gpus"] == [visible]


def test_stopping_kills_the_trial_on_its_node(cluster, sqlite_store, tmp_path):
    code = "import time; time.sleep(60); print('loss=${trialParameters.x}')"
    doc = experiment(command=python_command(code), maxTrialCount=1, parallelTrialCount=1,
                     objective={"type": "minimize", "objectiveMetricName": "loss", "goal": 0.5})
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = 1
    started = time.monotonic()
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert time.monotonic() - started < 30
    assert trials[0].state == "Failed" and "activeDeadlineSeconds" in trials[0].conditions[-1].message


def test_a_tuned_function_travels_to_ray_with_its_surroundings(cluster, sqlite_store, tmp_path):
    """KatibClient.tune's trials on Ray: the function, pickled with what it closes over,
    runs in the actor's process with typed parameters, and what it returns is the result."""
    import math

    from katib import search
    from katib._tune import experiment_doc

    offset = 0.25

    def objective(x, n):
        assert isinstance(x, float) and isinstance(n, int)
        return math.fabs(x - offset) + n

    doc, _ = experiment_doc("tuned", objective, {"x": search.double(0, 1), "n": search.int(1, 2)}, "loss", "StdOut",
                            None, objective_type="minimize", objective_goal=None, additional_metric_names=None,
                            algorithm_name="random", algorithm_settings=None, max_trial_count=2,
                            parallel_trial_count=2, max_failed_trial_count=None, resources_per_trial=None,
                            env_per_trial=None, base_image=None)
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsSucceeded"] == 2
    for t in trials:
        params = {a["name"]: a["value"] for a in t.assignments}
        assert float(t.observation["loss"]["latest"]) == pytest.approx(abs(float(params["x"]) - 0.25) + int(params["n"]))


def test_a_trainjob_trial_runs_on_the_cluster(cluster, sqlite_store, tmp_path):
    """A one-node TrainJob of the Kubeflow SDK's CustomTrainer shape (issue 13): the script it
    writes stays in the trial's own folder, torchrun's environment comes along."""
    from tests.trials_tests.test_trainjob import SDK_SCRIPT, trainjob

    doc = experiment(maxTrialCount=2, parallelTrialCount=2, maxFailedTrialCount=1,
                     parameters=[{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.2"}}])
    doc["spec"]["trialTemplate"] = {"primaryContainerName": "node", "trialParameters": [{"name": "lr", "reference": "lr"}],
                                    "trialSpec": trainjob({"command": ["bash", "-c", SDK_SCRIPT]})}
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsSucceeded"] == 2, [t.conditions for t in trials]
    for t in trials:
        assert t.handle["executor"] == "ray"
        assert t.objective == pytest.approx(float(t.parameters()["lr"]) * 2)
        assert "node 0 of 1 in node-0" in (tmp_path / "runs" / "default" / "demo" / t.name / "trial.log").read_text()


def test_a_trial_whose_actor_dies_fails_and_the_controller_carries_on(cluster, sqlite_store, tmp_path):
    """Ray's errors about a trial's actor (dead, or out of reach for good) end that trial as
    Failed with the reason; they used to escape poll() and end the whole controller."""
    code = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)  # the actor's process: the trial's parent"
    doc = experiment(command=python_command(code), maxTrialCount=2, parallelTrialCount=1, maxFailedTrialCount=2)
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsFailed"] == 2 and len(trials) == 2
    for t in trials:  # ended with its actor; on a loaded machine Ray's memory monitor may kill one at launch
        assert t.state == "Failed" and "actor" in t.conditions[-1].message.lower(), t.conditions[-1]
