"""kill -9 the controller mid-experiment; `katib resume` (or running the file again)
carries on with nothing lost and nothing duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from katib import views
from katib.store import Store
from tests.conftest import experiment, python_command
from trials._process import alive

SLOW = "import time, random; time.sleep(0.4 + random.random() * 0.4); print('loss=${trialParameters.x}')"
HANG = "import time; time.sleep(300); print('loss=${trialParameters.x}')"


def katib(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "katib", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.mark.parametrize("how", ["resume", "run-again"])
def test_kill_9_then_resume(tmp_path: Path, how: str):
    db = tmp_path / "katib.db"
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump(experiment(command=python_command(SLOW), maxTrialCount=12,
                                              parallelTrialCount=3, maxFailedTrialCount=0)))
    proc = katib("run", str(spec), "--db", str(db), "--tick", "0.05")
    store = Store(str(db))

    def progressed() -> bool:
        try:
            rec = store.get_experiment("default", "demo")
        except Exception:
            return False
        states = [t.state for t in store.list_trials(rec.id)]
        return states.count("Succeeded") >= 3 and states.count("Running") >= 2

    wait_for(progressed)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rec = store.get_experiment("default", "demo")
    before = {t.name: t for t in store.list_trials(rec.id)}
    lost = [t for t in before.values() if t.state == "Running"]
    assert lost and rec.owner  # the dead controller still holds it
    # What the Katib SDK and kubectl read says nothing runs it (the stored Running=True did).
    running = next(c for c in views.experiment_object(rec)["status"]["conditions"] if c["type"] == "Running")
    assert (running["status"], running["reason"]) == ("False", "ExperimentStopped"), running

    if how == "resume":
        again = katib("resume", "demo", "--db", str(db), "--tick", "0.05")
    else:
        again = katib("run", str(spec), "--db", str(db), "--tick", "0.05")
    output, _ = again.communicate(timeout=120)
    assert again.returncode == 0, output
    assert "ExperimentMaxTrialsReached" in output

    after = {t.name: t for t in store.list_trials(rec.id)}
    assert len(after) == 12  # exactly maxTrialCount, none duplicated
    assert {t.state for t in after.values()} == {"Succeeded"}
    for name, t in before.items():  # every trial keeps its name and parameters
        assert after[name].assignments == t.assignments
    for t in lost:  # the running ones were adopted (not run again), their metric stored once
        assert after[t.name].attempt == 0
        assert len(store.observations(after[t.name].id, "loss")) == 1
        assert not alive(t.handle["pid"], t.handle["start"])  # and followed to their end
    params = [tuple(a["value"] for a in t.assignments) for t in after.values()]
    assert len(set(params)) == 12
    status = store.get_experiment("default", "demo").status.to_dict()
    assert status["trials"] == status["trialsSucceeded"] == 12
    assert store.get_experiment("default", "demo").owner is None


def test_a_second_controller_is_refused(tmp_path: Path):
    db = tmp_path / "katib.db"
    spec = tmp_path / "exp.yaml"
    # Trials that outlast the test: the first run cannot end (and give the experiment up)
    # before the second has started, however loaded the machine is.
    spec.write_text(yaml.safe_dump(experiment(command=python_command(HANG), maxTrialCount=6)))
    first = katib("run", str(spec), "--db", str(db), "--tick", "0.05")
    store = Store(str(db))
    wait_for(lambda: bool(store.list_experiments()) and store.list_experiments()[0].owner)
    second = katib("resume", "demo", "--db", str(db))
    output, _ = second.communicate(timeout=60)
    assert second.returncode == 1
    assert "being run by another controller" in output and f"(process {first.pid} on " in output
    delete = katib("delete", "experiment", "demo", "--db", str(db))
    output, _ = delete.communicate(timeout=60)  # refused, in words (not the store's owner id)
    assert delete.returncode == 1 and f"is running (a katib run, resume or server, process {first.pid} on" in output
    first.send_signal(signal.SIGTERM)  # a polite stop: trials are stopped, resume carries on
    output, _ = first.communicate(timeout=60)
    assert first.returncode == 130 and "katib resume demo" in output
    rec = store.get_experiment("default", "demo")
    for t in store.list_trials(rec.id):
        if t.handle:
            wait_for(lambda t=t: not alive(t.handle["pid"], t.handle["start"]), timeout=10)
    assert os.path.exists(db)


@pytest.mark.parametrize("command", ["stop", "delete"])
def test_a_stop_or_delete_after_a_kill_9_ends_the_trials_left_running(tmp_path: Path, command: str):
    """`katib run` killed, its trials run on (as they must: a resume adopts them). Then
    `katib stop` said "not running" and left them running, and `katib delete` removed their
    records and left them running for good (a crash review: 3 of 3 each). Both now end
    what is left of them, as the controller's own stop would have."""
    db = tmp_path / "katib.db"
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump(experiment(command=python_command(HANG), maxTrialCount=2, parallelTrialCount=2)))
    proc = katib("run", str(spec), "--db", str(db), "--tick", "0.05")
    store = Store(str(db))

    def running() -> list:
        try:
            rec = store.get_experiment("default", "demo")
        except Exception:
            return []
        return [t for t in store.list_trials(rec.id) if t.state == "Running" and t.handle and alive(t.handle["pid"])]

    wait_for(lambda: len(running()) == 2)
    handles = [t.handle for t in running()]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.3)
    assert all(alive(h["pid"], h.get("start")) for h in handles)  # the trials outlive their controller
    args = ["stop", "demo"] if command == "stop" else ["delete", "experiment", "demo"]
    done = subprocess.run([sys.executable, "-m", "katib", *args, "--db", str(db)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: not any(alive(h["pid"], h.get("start")) for h in handles), timeout=10)
    if command == "stop":  # stored as the controller's own stop stores them: to run again, not lost
        rec = store.get_experiment("default", "demo")
        left = store.list_trials(rec.id)
        assert {t.state for t in left} == {"Created"}, [t.state for t in left]
        assert all(t.handle.get("interrupted") for t in left)
        assert all(any(c.reason == "TrialInterrupted" for c in t.conditions) for t in left)


def test_a_starting_server_gives_no_gpu_of_a_trial_it_has_not_adopted_yet(tmp_path: Path, monkeypatch):
    """Each experiment's controller starts on its own: one launched its waiting trial on
    the GPU of another's running trial that was not adopted yet, and both ran on GPU 0
    (a crash review, 3 of 9 restarts). What every running trial holds is counted first."""
    import trials._local as local
    from katib.controller import Controller, ExperimentManager, admit
    from trials import Inventory, Ledger, LocalExecutor

    gpu = "import os, time; print('start', time.time(), os.environ['CUDA_VISIBLE_DEVICES']); " \
          "time.sleep(float('${trialParameters.x}') * 0 + {s}); print('end', time.time()); print('loss=0.5')"

    def doc(name, seconds):
        d = experiment(name=name, command=python_command(gpu.replace("{s}", str(seconds))), maxTrialCount=1,
                       parallelTrialCount=1)
        d["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["resources"] = {
            "limits": {"nvidia.com/gpu": 1}}
        return d

    db = tmp_path / "katib.db"
    spec = tmp_path / "a.yaml"
    spec.write_text(yaml.safe_dump(doc("holder", 4)))
    proc = katib("run", str(spec), "--db", str(db), "--tick", "0.05", env={**os.environ, "KATIB_GPUS": "0"})
    store = Store(str(db))

    def running() -> bool:
        try:
            rec = store.get_experiment("default", "holder")
        except Exception:
            return False
        return [t.state for t in store.list_trials(rec.id)] == ["Running"]

    wait_for(running)
    proc.send_signal(signal.SIGKILL)  # its trial runs on, on GPU 0
    proc.wait()
    waiting = Controller(store, runs_root=tmp_path / "runs").submit(admit(doc("waiter", 0.1)), tmp_path)[0]

    monkeypatch.setattr(local, "_SHARED_LEDGER", Ledger(Inventory(cpus=8, memory=0, gpus=["0"])))
    adopt = LocalExecutor.adopt

    def slow_adopt(self, handle, job):  # the holder's controller is the slower to start
        if job.experiment == "holder":
            time.sleep(1.5)
        return adopt(self, handle, job)

    monkeypatch.setattr(LocalExecutor, "adopt", slow_adopt)
    manager = ExperimentManager(store, tmp_path / "runs", tick=0.05)
    assert sorted(manager.resume_all()) == ["default/holder", "default/waiter"]

    def ended() -> bool:
        return all(store.get_experiment("default", n).status.completion_time for n in ("holder", "waiter"))

    wait_for(ended, 60)
    manager.shutdown()
    spans = {}
    for name in ("holder", "waiter"):
        [t] = store.list_trials(store.get_experiment("default", name).id)
        assert t.state == "Succeeded", (name, t.conditions)
        log = (tmp_path / "runs" / "default" / name / t.name / "trial.log").read_text().split()
        spans[name] = (float(log[log.index("start") + 1]), float(log[log.index("end") + 1]))
    assert spans["waiter"][0] >= spans["holder"][1], spans  # it waited for GPU 0
    assert waiting.name == "waiter" and local._SHARED_LEDGER.held("default") == local.Resources()


def test_a_starting_server_ends_what_a_stop_cut_short_left_running(tmp_path: Path):
    """A user's stop is stored before its trials are stopped: a server killed in between
    left them running, uncounted and shown stopped, and the next start skipped the
    experiment. It now ends them, as `katib stop` of an experiment whose controller died does."""
    from katib.controller import ExperimentManager
    from katib.store import record_stop

    db = tmp_path / "katib.db"
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump(experiment(command=python_command(HANG), maxTrialCount=2, parallelTrialCount=1)))
    proc = katib("run", str(spec), "--db", str(db), "--tick", "0.05")
    store = Store(str(db))

    def running() -> bool:
        try:
            rec = store.get_experiment("default", "demo")
        except Exception:
            return False
        return [t.state for t in store.list_trials(rec.id)] == ["Running"]

    wait_for(running)
    proc.send_signal(signal.SIGKILL)  # killed just after the stop was stored, before it reached the trial
    proc.wait()
    rec = store.get_experiment("default", "demo")
    assert record_stop(store, rec.id, lambda owner: False)
    [t] = store.list_trials(rec.id)
    assert alive(t.handle["pid"], t.handle["start"])
    ExperimentManager(store, tmp_path / "runs", tick=0.05).resume_all()
    wait_for(lambda: not alive(t.handle["pid"], t.handle["start"]), 30)
    [t] = store.list_trials(rec.id)
    assert t.state == "Created" and t.conditions[-1].reason == "TrialInterrupted", t.conditions  # runs again on resume


def _with_trial(tmp_path: Path, name: str, state: str, **fields):
    """A one-trial experiment ``demo`` with its trial ``name`` stored ``state`` (as a killed
    controller left it): (the store, a controller on it, the experiment's record)."""
    from katib.controller import Controller, admit
    from katib.spec import EXPERIMENT_LABEL
    from katib.store import TrialRecord

    store = Store(str(tmp_path / "katib.db"))
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(experiment(maxTrialCount=1, parallelTrialCount=1)), tmp_path)
    store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name=name, state=state,
                                  assignments=[{"name": "x", "value": "0.5"}], labels={EXPERIMENT_LABEL: "demo"},
                                  created_at=time.time(), **fields)])
    return store, ctl, rec


def test_a_resume_under_another_executor_is_refused_before_it_touches_a_trial(tmp_path: Path):
    # A Slurm experiment whose controller was killed, resumed by the hint katib printed
    # (no --executor): the local executor took the Slurm handle for a lost local trial and
    # ran the trial again here while its job ran on in the cluster.
    from katib.errors import KatibError

    handle = {"executor": "slurm", "job_id": "4242", "trial": "demo-on-slurm", "comment": "x", "started_at": time.time()}
    store, ctl, rec = _with_trial(tmp_path, "demo-on-slurm", "Running", start_time=time.time(), handle=handle)
    with pytest.raises(KatibError, match="resume it with --executor slurm"):
        ctl.run("default", "demo")
    (t,) = store.list_trials(rec.id)
    assert (t.state, t.attempt, t.handle) == ("Running", 0, handle)  # untouched
    store.close()
    # The hint katib prints to resume it names the executor.
    from katib.cli._app import _hint

    store = Store(str(tmp_path / "katib.db"))
    assert _hint(store, None, ["resume"], "demo", "default").endswith("--executor slurm")
    store.close()


def test_a_trial_launched_under_another_executor_and_not_stored_running_is_refused_too(tmp_path: Path):
    # A Slurm controller killed between writing the job's handle file and storing the trial
    # Running: a resume under the local executor took the handle file for its own launch.
    import json

    from katib.errors import KatibError
    from katib.names import RunLayout

    store, ctl, rec = _with_trial(tmp_path, "demo-sbatched", "Created")
    folder = RunLayout(tmp_path / "runs").trial("default", "demo", "demo-sbatched")
    folder.mkdir(parents=True)
    (folder / "handle.json").write_text(json.dumps({"executor": "slurm", "job_id": "77", "trial": "demo-sbatched"}))
    with pytest.raises(KatibError, match="--executor slurm"):
        ctl.run("default", "demo")
    (t,) = store.list_trials(rec.id)
    assert (t.state, t.attempt) == ("Created", 0)
    store.close()


def test_an_owner_judged_by_its_replicas_lease_is_not_shown_stopped(tmp_path: Path):
    """A server sharing PostgreSQL with others judges an owner by its replica's heartbeat:
    replicas under one host name in other PID namespaces (docker compose) looked dead by
    pid, and their running experiments were served Running=False to the Katib SDK."""
    from katib import views
    from katib.controller import Controller, admit

    store = Store(str(tmp_path / "k.db"))
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(experiment()), tmp_path)
    store.update_experiment(rec.id, status={"conditions": [
        {"type": "Created", "status": "True", "reason": "ExperimentCreated", "message": "created"},
        {"type": "Running", "status": "True", "reason": "ExperimentRunning", "message": "running"}]})
    import socket

    # a replica's id: this host, a pid that is not running here
    store.claim_experiment(rec.id, f"{socket.gethostname()}:1:999999999", lambda owner: False)
    rec = store.get_experiment(rec.namespace, rec.name)

    def running() -> str:
        return next(c for c in views.experiment_object(rec)["status"]["conditions"] if c["type"] == "Running")["status"]

    assert running() == "False"  # by its pid: gone
    views.use_owner_check(lambda owner: True)  # its lease is fresh
    try:
        assert running() == "True"
    finally:
        views.use_owner_check(None)
