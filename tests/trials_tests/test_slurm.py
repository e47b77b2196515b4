"""The Slurm executor against a real one-node Slurm cluster (``.ci/slurm.sh``: slurmctld
and slurmd on localhost, a GPU gres on a fake device file): an experiment runs to its
end, early stopping cancelling one job; trials end out of memory, past their deadline, stopped, on a GPU, refused a GPU the
cluster lacks, as a two-task PyTorchJob, with their node taken down; a controller killed with SIGKILL is resumed and
adopts its queued and running jobs without submitting them again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from katib.controller import Controller, admit
from katib.store import Store
from tests.conftest import REPO, experiment, python_command
from trials import LaunchError, TrialJob
from trials._slurm import SlurmExecutor, check_cluster

CONF = os.environ.get("KATIB_TEST_SLURM_CONF")
pytestmark = pytest.mark.skipif(
    not CONF and not os.environ.get("CI"),
    reason="no Slurm cluster: start one with `bash .ci/slurm.sh` and export KATIB_TEST_SLURM_CONF=<the path it prints>")


@pytest.fixture(scope="module", autouse=True)
def cluster():
    assert CONF, "CI runs these tests against .ci/slurm.sh's cluster: KATIB_TEST_SLURM_CONF is not set"
    saved = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = CONF
    try:
        check_cluster()
        yield CONF
    finally:
        if saved is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved


def _job(tmp_path: Path, name: str, code: str, deadline: float | None = None, gpus: int = 0,
         memory: str | None = None) -> TrialJob:
    container: dict = {"name": "main", "image": "x", "command": [sys.executable, "-c", code]}
    limits = {**({"nvidia.com/gpu": gpus} if gpus else {}), **({"memory": memory} if memory else {})}
    if limits:
        container["resources"] = {"limits": limits}
    spec: dict = {"template": {"spec": {"containers": [container]}}}
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return TrialJob(name=name, experiment="e", namespace="default", run_spec={"spec": spec},
                    primary_container="main", workdir=tmp_path, trial_dir=tmp_path / "runs" / name)


def _pytorchjob(tmp_path: Path) -> TrialJob:
    code = ("import os; e = os.environ; print('rank', e['RANK'], 'of', e['WORLD_SIZE'], 'node', e['NODE_RANK'], "
            "'master', e['MASTER_ADDR'] + ':' + e['MASTER_PORT'], 'pet', e['PET_NNODES'], e['PET_NODE_RANK'])")
    replica = {"template": {"spec": {"containers": [{"name": "main", "image": "x", "command": [sys.executable, "-c", code]}]}}}
    spec = {"pytorchReplicaSpecs": {"Master": {"replicas": 1, **replica}, "Worker": {"replicas": 1, **replica}}}
    return TrialJob(name="torch", experiment="e", namespace="default", primary_container="main", workdir=tmp_path,
                    trial_dir=tmp_path / "runs" / "torch",
                    run_spec={"kind": "PyTorchJob", "metadata": {"annotations": {"slurm.katib.kubeflow.org/nodes": "1"}},
                              "spec": spec})


def _wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached in time"
        time.sleep(0.1)


def test_trials_end_out_of_memory_late_stopped_on_a_gpu_and_as_a_pytorchjob(tmp_path):
    ex = SlurmExecutor(interval=0.2)
    grow = ("import time\nblocks = []\nfor _ in range(40):\n    blocks.append(bytearray(16 << 20))\n"
            "    time.sleep(0.05)\ntime.sleep(30)")
    jobs = [_job(tmp_path, "ok", "print('loss=0.5')"),
            _job(tmp_path, "fails", "import sys; sys.exit(3)"),
            _job(tmp_path, "oom", grow, memory="64Mi"),
            _job(tmp_path, "late", "import time; time.sleep(60)", deadline=2),
            _job(tmp_path, "stopped", "import time; print('started', flush=True); time.sleep(60)"),
            _job(tmp_path, "gpu", "import os; print('gpus=' + os.environ.get('CUDA_VISIBLE_DEVICES', '?'))", gpus=1),
            _pytorchjob(tmp_path)]
    handles = {j.name: ex.launch(j) for j in jobs}
    assert ex.submitted == len(jobs) and len({h["job_id"] for h in handles.values()}) == len(jobs)
    assert "--mem=64M" in handles["oom"]["options"] and "--gres=gpu:1" in handles["gpu"]["options"]
    assert "--time=1" in handles["late"]["options"] and "--ntasks=2" in handles["torch"]["options"]
    # Another controller adopts a job only for its own trial (the job's comment says whose it
    # is), and finds a submitted job whose handle was never written down by its name and comment.
    other = SlurmExecutor(interval=0.2)
    refused = other.adopt(handles["stopped"], jobs[0])
    assert not refused and "is not this trial's" in refused.reason
    (tmp_path / "runs" / "stopped" / "handle.json").unlink()
    assert other.launched(jobs[4])["job_id"] == handles["stopped"]["job_id"]
    # More GPUs than the cluster has: sbatch refuses the job, and the launch says why.
    with pytest.raises(LaunchError, match="sbatch refused the trial: .*node configuration is not available"):
        ex.launch(_job(tmp_path, "greedy", "pass", gpus=2))
    # A job whose controller died is adopted, and its deadline still counts from its start.
    dead = SlurmExecutor()
    orphan = _job(tmp_path, "orphan", "import time; time.sleep(60)", deadline=3)
    orphan_handle = dead.launch(orphan)
    dead.close()
    assert other.adopt(orphan_handle, orphan)
    ended = {}
    stopped_log = tmp_path / "runs" / "stopped" / "trial.log"
    deadline = time.monotonic() + 45
    while len(ended) < len(jobs) + 1:
        assert time.monotonic() < deadline, f"still running: {set(handles) - set(ended)}"
        ex.wait(0.5)
        other.wait(0.5)
        if "orphan" not in ended and (state := other.poll(orphan_handle)).finished:
            ended["orphan"] = state
        if "stopped" not in ended and stopped_log.exists() and "started" in stopped_log.read_text():
            ex.stop(handles["stopped"])
        for name, handle in handles.items():
            if name not in ended and (state := ex.poll(handle)).finished:
                ended[name] = state
    assert ended["ok"].succeeded and ended["ok"].reason == "Completed"
    assert (tmp_path / "runs" / "ok" / "trial.log").read_text() == "loss=0.5\n"
    assert (ended["fails"].reason, ended["fails"].exit_code) == ("Error", 3)
    assert "exited with code 3" in ended["fails"].message and f"Slurm job {handles['fails']['job_id']}" in ended["fails"].message
    assert ended["oom"].reason == "OOMKilled" and "--mem=64M" in ended["oom"].message, ended["oom"]
    assert ended["late"].reason == "DeadlineExceeded" and "activeDeadlineSeconds (2s)" in ended["late"].message
    assert ended["stopped"].reason == "Killed"
    assert ended["orphan"].reason == "DeadlineExceeded" and "(3s)" in ended["orphan"].message
    assert ended["gpu"].succeeded and "gpus=0" in (tmp_path / "runs" / "gpu" / "trial.log").read_text()
    assert ended["torch"].succeeded, ended["torch"]
    master = (tmp_path / "runs" / "torch" / "trial.log").read_text()
    worker = (tmp_path / "runs" / "torch" / "worker-0.log").read_text()
    assert re.search(r"rank 0 of 2 node 0 master \S+:\d+ pet 2 0", master), master
    assert re.search(r"rank 1 of 2 node 0 master \S+:\d+ pet 2 1", worker), worker
    assert master.split("master ")[1].split()[0] == worker.split("master ")[1].split()[0]
    ex.close()


def test_an_experiment_runs_to_its_end_on_slurm_and_early_stopping_cancels_a_job(sqlite_store, tmp_path):
    code = ("import katib, time\nx = float('${trialParameters.x}')\nkatib.report_metrics({'accuracy': 0.5})\n"
            "for step in range(3 if x < 0.5 else 100):\n    print(f'loss={x}', flush=True)\n    time.sleep(0.3)")
    doc = experiment(command=python_command(code), maxTrialCount=3, parallelTrialCount=1,
                     algorithm={"algorithmName": "grid"},
                     parameters=[{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["0.1", "0.2", "0.9"]}}],
                     objective={"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["accuracy"]},
                     earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [
                         {"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "2"}]})
    # One at a time: medianstop's rule is fixed when a trial is created (as Katib's is), so 0.9 gets
    # one only if 0.1 and 0.2 have both succeeded by then; two in parallel made that a race.
    ex = SlurmExecutor(interval=0.2)
    ctl = Controller(sqlite_store, executor=ex, runs_root=tmp_path / "runs", tick=0.1)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    trials = {t.parameters()["x"]: t for t in sqlite_store.list_trials(rec.id)}
    assert [trials[x].state for x in ("0.1", "0.2", "0.9")] == ["Succeeded", "Succeeded", "EarlyStopped"]
    assert {t.handle["executor"] for t in trials.values()} == {"slurm"}
    assert len({t.handle["job_id"] for t in trials.values()}) == 3
    for x, t in trials.items():
        assert t.objective == float(x)  # from the job's output, read in the trial's folder
        assert t.observation["accuracy"]["latest"] == "0.5"  # pushed by the job into the trial's folder
    # The early stop cancelled the job (scancel): Slurm says so, long before its 100 steps.
    stopped = trials["0.9"].handle["job_id"]
    record = subprocess.run(["scontrol", "show", "job", "-o", stopped], capture_output=True, text=True).stdout
    assert "JobState=CANCELLED" in record, record
    assert (tmp_path / "runs" / "default" / "demo" / trials["0.9"].name / "trial.log").read_text().count("loss=") < 20


def _jobs_of(experiment_name: str) -> dict[str, str]:
    """Every job Slurm knows (MinJobAge keeps ended ones) of this experiment: id → state."""
    out = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i|%T|%k"], capture_output=True, text=True,
                         check=True).stdout
    return {i: s for i, s, c in (line.split("|", 2) for line in out.splitlines())
            if c.startswith(f"katib:default/{experiment_name}/")}


def _killed_run(tmp_path: Path, doc: dict, states: list[str]) -> tuple[Path, dict, Store]:
    """``katib run`` of ``doc`` on Slurm, killed with SIGKILL once its jobs stand in
    ``states`` and each is stored with its trial: (its database, the environment, the store)."""
    name = doc["metadata"]["name"]
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump(doc))
    db = tmp_path / "katib.db"
    env = {**os.environ, "SLURM_CONF": str(CONF)}
    first = subprocess.Popen([sys.executable, "-m", "katib", "run", str(spec), "--db", str(db), "--executor", "slurm",
                              "--tick", "0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_for(lambda: sorted(_jobs_of(name).values()) == sorted(states), timeout=30, what=f"jobs {states}")
        store = Store(str(db))
        _wait_for(lambda: sum(bool(t.handle) for t in store.list_trials(store.get_experiment("default", name).id))
                  == len(states), what="the trials stored with their jobs")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    return db, env, store


def test_a_controller_killed_with_sigkill_is_resumed_and_adopts_its_queued_and_running_jobs(tmp_path):
    node = subprocess.run(["scontrol", "show", "node", "-o"], capture_output=True, text=True, check=True).stdout
    memory = int(re.search(r"RealMemory=(\d+)", node).group(1)) * 2 // 5  # two fit on the node, the third waits
    name = f"adopt-{uuid.uuid4().hex[:6]}"
    code = "import time; time.sleep(4); print('loss=${trialParameters.x}')"
    doc = experiment(name=name, command=python_command(code), maxTrialCount=4, parallelTrialCount=3)
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"memory": f"{memory}Mi"}}
    db, env, store = _killed_run(tmp_path, doc, ["PENDING", "RUNNING", "RUNNING"])
    cli = [sys.executable, "-m", "katib"]
    rec = store.get_experiment("default", name)
    before = {t.name: t.handle["job_id"] for t in store.list_trials(rec.id) if t.handle}
    assert sorted(_jobs_of(name)) == sorted(before.values())

    again = subprocess.run([*cli, "resume", name, "--db", str(db), "--executor", "slurm", "--tick", "0.1"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    after = {t.name: t for t in store.list_trials(rec.id)}
    assert len(after) == 4 and {t.state for t in after.values()} == {"Succeeded"}
    for trial_name, job_id in before.items():  # adopted, not submitted again
        assert after[trial_name].handle["job_id"] == job_id and after[trial_name].attempt == 0
    assert len(_jobs_of(name)) == 4  # one sbatch per trial, over both controllers


def test_a_controller_killed_between_sbatch_and_storing_the_trial_adopts_the_job(tmp_path):
    name = f"launched-{uuid.uuid4().hex[:6]}"
    code = "import time; time.sleep(2); print('loss=${trialParameters.x}')"
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump(experiment(name=name, command=python_command(code), maxTrialCount=2,
                                              parallelTrialCount=2)))
    db = tmp_path / "katib.db"
    env = {**os.environ, "SLURM_CONF": str(CONF)}
    args = ["--db", str(db), "--executor", "slurm", "--tick", "0.1"]
    # It kills itself with SIGKILL just before storing a launched trial Running.
    first = subprocess.run([sys.executable, "-m", "tests._kill_at", "launched", "--", "run", str(spec), *args],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == -signal.SIGKILL, first.stdout + first.stderr
    submitted = set(_jobs_of(name))
    store = Store(str(db))
    rec = store.get_experiment("default", name)
    assert submitted and not any(t.handle for t in store.list_trials(rec.id))  # jobs that nothing stored
    again = subprocess.run([sys.executable, "-m", "katib", "resume", name, *args], capture_output=True, text=True,
                           env=env, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    after = store.list_trials(rec.id)
    assert [t.state for t in after] == ["Succeeded"] * 2 and {t.attempt for t in after} == {0}
    assert submitted <= {t.handle["job_id"] for t in after}  # found by their handle files and adopted
    assert len(_jobs_of(name)) == 2  # one sbatch per trial


def test_a_job_whose_node_fails_ends_the_trial_saying_so(tmp_path):
    """Last in this file: the node is taken down (killing its jobs) and brought back."""
    node = re.search(r"NodeName=(\S+)", subprocess.run(["scontrol", "show", "node", "-o"], capture_output=True,
                                                         text=True, check=True).stdout).group(1)
    ex = SlurmExecutor(interval=0.2)
    job = _job(tmp_path, "doomed", "import time; print('started', flush=True); time.sleep(60)")
    handle = ex.launch(job)
    _wait_for(lambda: "started" in (job.log_path.read_text() if job.log_path.exists() else ""), what="the job's start")
    subprocess.run(["scontrol", "update", f"nodename={node}", "state=down", "reason=katib-test"], check=True)
    try:
        state = None
        deadline = time.monotonic() + 20
        while state is None or not state.finished:
            assert time.monotonic() < deadline, "the trial did not end with its node"
            ex.wait(0.5)
            state = ex.poll(handle)
    finally:
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], capture_output=True)
        _wait_for(lambda: subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.strip()
                  == "idle", what="the node back")
    assert state.reason == "NodeFail" and f"Slurm job {handle['job_id']} ended because its node failed" in state.message


def test_a_queued_job_says_why_it_waits(tmp_path):
    """Issue 12: a PENDING job is not plainly Running: the trial's Running condition gives
    squeue's reason (%r). The cluster has one GPU: a second GPU job waits for Resources,
    and runs once the first is stopped."""
    ex = SlurmExecutor(interval=0.2)
    holder = _job(tmp_path, "holder", "import time; time.sleep(60)", gpus=1)
    queued = _job(tmp_path, "queued", "print('loss=0.1')", gpus=1)
    held, waiting = ex.launch(holder), ex.launch(queued)
    seen = []
    try:
        _wait_for(lambda: seen.append(ex.poll(waiting)) or seen[-1].reason == "WaitingInQueue",
                  what="a queued job's reason")
        assert not seen[-1].finished
        # Slurm says Priority until its scheduler has tried the job, then Resources.
        assert seen[-1].message in (
            f"Slurm job {waiting['job_id']} is pending (Resources): the resources it asks for are in use",
            f"Slurm job {waiting['job_id']} is pending (Priority): jobs of higher priority are ahead of it"), seen[-1]
        ex.stop(held)
        _wait_for(lambda: ex.poll(held).finished, what="the stopped job's end")
        _wait_for(lambda: seen.append(ex.poll(waiting)) or seen[-1].finished, what="the queued job's end")
        assert seen[-1].succeeded, seen[-1]
    finally:
        for handle in (held, waiting):
            subprocess.run(["scancel", str(handle["job_id"])], capture_output=True, check=False)
        ex.close()


def test_a_stop_after_a_kill_9_cancels_the_jobs_left_running(tmp_path):
    # katib stop (or delete) of an experiment whose controller was killed ended only local
    # trials: its Slurm jobs ran on, and its trials stayed Running.
    name = f"left-{uuid.uuid4().hex[:6]}"
    code = "import time; time.sleep(60); print('loss=${trialParameters.x}')"
    doc = experiment(name=name, command=python_command(code), maxTrialCount=2, parallelTrialCount=2)
    db, env, store = _killed_run(tmp_path, doc, ["RUNNING", "RUNNING"])
    cli = [sys.executable, "-m", "katib"]
    stopped = subprocess.run([*cli, "stop", name, "--db", str(db)], capture_output=True, text=True, env=env, timeout=60)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    _wait_for(lambda: all(s not in ("RUNNING", "PENDING") for s in _jobs_of(name).values()), timeout=30,
              what="the jobs cancelled")
    rec = store.get_experiment("default", name)
    assert {t.state for t in store.list_trials(rec.id)} == {"Created"}  # interrupted: the next run runs them again
    hint = subprocess.run([*cli, "get", "experiment", name, "--db", str(db)], capture_output=True, text=True, env=env)
    assert "--executor slurm" in hint.stdout + hint.stderr


# sbatch that submits the job and then says its answer was lost (a busy slurmctld).
_LOST_ANSWER = ('#!/bin/bash\n{sbatch} "$@" >/dev/null\n'
                'echo "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation" >&2\nexit 1\n')


def _which(tool: str) -> str:
    return subprocess.run(["which", tool], capture_output=True, text=True, check=True).stdout.strip()


def _fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **scripts: str) -> Path:
    """A folder of the given scripts, first on PATH; its path."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool, script in scripts.items():
        (fake / tool).write_text(script)
        (fake / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    return fake


def test_a_submission_whose_answer_is_lost_is_followed_not_failed(tmp_path, monkeypatch):
    # A busy slurmctld takes the job and sbatch reports "Socket timed out": the trial was
    # failed (LaunchFailed) while its job ran, unwatched, beside the next trial's.
    fake = _fake_tools(tmp_path, monkeypatch, sbatch=_LOST_ANSWER.format(sbatch=_which("sbatch")))
    ex = SlurmExecutor(interval=0.2)
    job = _job(tmp_path, f"lost-{uuid.uuid4().hex[:6]}", "print('loss=0.5')")
    handle = ex.launch(job)
    assert handle["job_id"].isdigit()
    states = []
    _wait_for(lambda: states.append(ex.poll(handle)) or states[-1].finished, timeout=60, what="the job's end")
    assert states[-1].succeeded, states[-1]
    # One that did not get through waits to be tried again, and is not failed.
    (fake / "sbatch").write_text('#!/bin/bash\necho "sbatch: error: Socket timed out on send/recv operation" >&2\nexit 1\n')
    from trials._executor import Deferred

    with pytest.raises(Deferred, match="trying again"):
        ex.launch(_job(tmp_path, f"never-{uuid.uuid4().hex[:6]}", "print('loss=0.5')"))


def test_a_lost_submission_is_looked_up_before_it_is_submitted_again(tmp_path, monkeypatch):
    # When squeue did not answer either (a busy slurmctld), the lost submission was taken for
    # one that did not get through, and the next try submitted the trial a second time.
    from trials._executor import Deferred

    _fake_tools(tmp_path, monkeypatch, sbatch=_LOST_ANSWER.format(sbatch=_which("sbatch")),
                squeue=f'#!/bin/bash\nif [ ! -e {tmp_path}/squeue-answered ]; then touch {tmp_path}/squeue-answered; '
                       f'echo "squeue: error: Socket timed out" >&2; exit 1; fi\nexec {_which("squeue")} "$@"\n')
    ex = SlurmExecutor(interval=0.2)
    job = _job(tmp_path, f"twice-{uuid.uuid4().hex[:6]}", "print('loss=0.5')")
    with pytest.raises(Deferred, match="squeue does not answer"):
        ex.launch(job)
    handle = ex.launch(job)  # squeue answers now: the job is found, not submitted again
    monkeypatch.setenv("PATH", os.environ["PATH"].split(":", 1)[1])
    assert list(_jobs_of("e").keys()).count(handle["job_id"]) == 1
    named = subprocess.run(["squeue", "-h", "--states=all", f"--name={job.name}", "-o", "%i"], capture_output=True,
                           text=True, check=True).stdout.split()
    assert named == [handle["job_id"]]
