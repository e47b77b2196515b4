"""A trial that asks for N CPUs gets N threads in its numeric libraries (OMP, MKL,
OpenBLAS), unless its template sets them: parallel trials share the cores."""

from __future__ import annotations

from katib.controller import Controller, admit
from tests.conftest import experiment, python_command

CODE = ("import os; t = os.environ.get('OMP_NUM_THREADS', '0'); "
        "assert t == os.environ.get('OPENBLAS_NUM_THREADS', '0') == os.environ.get('MKL_NUM_THREADS', '0'); "
        "print('loss=' + t)")


def _threads(store, tmp_path, resources=None) -> float:
    doc = experiment(name="threads-" + tmp_path.name, maxTrialCount=1, parallelTrialCount=1, command=python_command(CODE))
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    if resources:
        container["resources"] = resources
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    (trial,) = store.list_trials(rec.id)
    assert trial.state == "Succeeded", trial.conditions
    return float(trial.observation["loss"]["latest"])


def test_threads_follow_the_cpu_request(sqlite_store, tmp_path, monkeypatch):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    assert _threads(sqlite_store, tmp_path / "a", {"limits": {"cpu": "2"}}) == 2
    assert _threads(sqlite_store, tmp_path / "b", {"requests": {"cpu": "500m"}}) == 1
    assert _threads(sqlite_store, tmp_path / "c") == 0  # no request: the libraries choose
