"""The resource model and GPU-aware local scheduling, with a configured GPU inventory."""

from __future__ import annotations

import re

import pytest

from katib.controller import Controller, admit
from tests.conftest import experiment, python_command
from trials import Inventory, Ledger, LocalExecutor, Resources, discover_gpus
from trials._resources import NoCapacity, parse_cpu, parse_memory


@pytest.mark.parametrize(("text", "cpus"), [("500m", 0.5), ("2", 2.0), (1, 1.0), ("1.5", 1.5), (0.25, 0.25), ("1e1", 10.0)])
def test_cpu_quantities(text, cpus):
    assert parse_cpu(text) == cpus


@pytest.mark.parametrize(("text", "size"), [("1Gi", 2**30), ("512Mi", 512 * 2**20), ("1G", 10**9), ("1000", 1000),
                                            # every quantity validation admits works at launch too
                                            ("129e6", 129 * 10**6), ("2Pi", 2**51), ("1.5Gi", 3 * 2**29), ("1E", 10**18),
                                            ("100k", 10**5), ("500m", 1)])
def test_memory_quantities(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["lots", "1Gb", "-", ""])
def test_bad_quantities_are_refused(text):
    with pytest.raises(ValueError):
        parse_memory(text)


def test_container_resources_limits_win_over_requests():
    container = {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "nvidia.com/gpu": 2}}}
    assert Resources.of_container(container) == Resources(cpu=2.0, memory=2**30, gpu=2)
    assert Resources.of_container({}) == Resources()


def test_ledger_never_gives_a_gpu_twice():
    ledger = Ledger(Inventory(cpus=4, memory=0, gpus=["0", "1", "2"]))
    a = ledger.take(Resources(gpu=2))
    assert a.gpus == ["0", "1"]
    with pytest.raises(NoCapacity):
        ledger.take(Resources(gpu=2))
    b = ledger.take(Resources(gpu=1))
    assert b.gpus == ["2"]
    ledger.give_back(a)
    assert ledger.take(Resources(gpu=2)).gpus == ["0", "1"]
    with pytest.raises(ValueError, match="needs 4 GPU"):
        ledger.take(Resources(gpu=4))
    ledger.take(Resources(cpu=3))
    with pytest.raises(NoCapacity):
        ledger.take(Resources(cpu=2))
    with pytest.raises(ValueError, match="needs 5 CPUs and this machine has 4"):
        ledger.take(Resources(cpu=5))


def test_gpu_discovery_honours_configuration(monkeypatch):
    monkeypatch.setenv("KATIB_GPUS", "2,3")
    assert discover_gpus() == ["2", "3"]
    monkeypatch.setenv("KATIB_GPUS", "none")
    assert discover_gpus() == []
    monkeypatch.delenv("KATIB_GPUS")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,5")
    assert discover_gpus() == ["1", "5"]


CODE = ("import os, time; print(f'start={time.time()} gpus=[{os.environ.get(\"CUDA_VISIBLE_DEVICES\")}]', flush=True); "
        "time.sleep(0.4); print(f'end={time.time()}'); print('loss=${trialParameters.x}')")


def gpu_experiment(gpus_per_trial: int, parallel: int = 4, trials: int = 6):
    doc = experiment(command=python_command(CODE), maxTrialCount=trials, parallelTrialCount=parallel)
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"nvidia.com/gpu": gpus_per_trial, "cpu": "1"}}
    return admit(doc)


def run(store, tmp_path, exp, gpus):
    executor = LocalExecutor(Ledger(Inventory(cpus=16, memory=0, gpus=gpus)))
    ctl = Controller(store, executor=executor, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(exp, tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    out = []
    for t in store.list_trials(rec.id):
        log = (tmp_path / "runs" / "default" / "demo" / t.name / "trial.log").read_text()
        start, end = (float(re.search(rf"{k}=([0-9.]+)", log).group(1)) for k in ("start", "end"))
        out.append((t, start, end, re.search(r"gpus=\[(.*?)\]", log).group(1)))
    return status, out


def overlapping(a, b) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def test_each_trial_gets_its_own_gpu_and_the_rest_wait(sqlite_store, tmp_path):
    status, runs = run(sqlite_store, tmp_path, gpu_experiment(1), gpus=["0", "1"])
    assert status["trialsSucceeded"] == 6
    for t, _, _, visible in runs:
        assert visible in ("0", "1") and t.handle["devices"]["gpus"] == [visible]
    # Never more trials at once than GPUs (parallelTrialCount is 4): at each trial's start,
    # count the trials running then. (Counting every trial that overlaps one trial's window
    # is not that: on a loaded machine a long trial on one GPU overlaps two that ran one
    # after the other on the other.)
    for a in runs:
        assert sum(1 for b in runs if b[1] <= a[1] < b[2]) <= 2
        assert all(b[3] != a[3] for b in runs if b is not a and overlapping(a, b))  # and never the same GPU


def test_two_gpu_trials_take_turns(sqlite_store, tmp_path):
    status, runs = run(sqlite_store, tmp_path, gpu_experiment(2, parallel=3, trials=3), gpus=["0", "1", "2"])
    assert status["trialsSucceeded"] == 3
    assert not any(overlapping(a, b) for a in runs for b in runs if a is not b)
    assert all(len(v.split(",")) == 2 for _, _, _, v in runs)


def test_a_trial_that_can_never_fit_fails_saying_why(sqlite_store, tmp_path):
    exp = gpu_experiment(4, parallel=1, trials=1)
    executor = LocalExecutor(Ledger(Inventory(cpus=16, memory=0, gpus=["0", "1"])))
    ctl = Controller(sqlite_store, executor=executor, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(exp, tmp_path)
    ctl.run(rec.namespace, rec.name)
    t = sqlite_store.list_trials(rec.id)[0]
    assert t.state == "Failed" and "needs 4 GPU(s) and this machine has 2" in t.conditions[-1].message


def test_cpu_only_trials_see_no_gpu(sqlite_store, tmp_path):
    doc = experiment(command=python_command(CODE), maxTrialCount=1, parallelTrialCount=1)
    status, runs = run(sqlite_store, tmp_path, admit(doc), gpus=["0"])
    assert runs[0][3] == ""  # CUDA_VISIBLE_DEVICES is empty: no GPU for a trial that asked for none
    assert runs[0][0].handle["devices"] == {"cpu": 0.0, "memory": 0, "gpus": []}
