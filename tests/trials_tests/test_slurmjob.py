"""The Slurm executor's parts that need no cluster: the sbatch options a trial's resources
and annotations make, how Slurm's records of a finished job read as a trial's end, and
what it says when there is no Slurm (tests/trials_tests/test_slurm.py runs it on one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from katib.errors import KatibError
from trials import LaunchError, TrialJob, executor_class, executor_factory
from trials._members import replica_processes
from trials._slurm import SlurmExecutor
from trials._slurmjob import (
    JobRecord,
    end_state,
    needs,
    parse_elapsed,
    parse_sacct,
    parse_scontrol,
    sbatch_options,
)


def _job(tmp_path: Path, limits: dict | None = None, deadline: float | None = None,
         annotations: dict | None = None) -> TrialJob:
    container: dict = {"name": "main", "image": "x", "command": ["true"]}
    if limits:
        container["resources"] = {"limits": limits}
    spec: dict = {"template": {"spec": {"containers": [container]}}}
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    run_spec = {"metadata": {"annotations": annotations or {}}, "spec": spec}
    return TrialJob(name="t-1", experiment="e", namespace="ns", run_spec=run_spec, primary_container="main",
                    workdir=tmp_path, trial_dir=tmp_path / "t-1")


def _options(job: TrialJob, partition: str | None = None, account: str | None = None) -> list[str]:
    members = replica_processes(job)
    needs(members)
    return sbatch_options(job, members, partition, account)


def test_resources_deadline_partition_and_account_become_sbatch_options(tmp_path):
    opts = _options(_job(tmp_path, {"cpu": "1500m", "memory": "1Gi", "nvidia.com/gpu": 2}, deadline=90),
                    partition="cpu", account="ml")
    assert {"--cpus-per-task=2", "--mem=1024M", "--gres=gpu:2", "--time=2", "--partition=cpu", "--account=ml",
            "--job-name=t-1", f"--output={tmp_path / 't-1' / 'trial.log'}", "--no-requeue"} <= set(opts)
    comment = next(o for o in opts if o.startswith("--comment="))
    assert comment.startswith("--comment=katib:ns/e/t-1@")  # and a digest of the trial's folder
    # The trial template's annotations win over the executor's flags.
    opts = _options(_job(tmp_path, annotations={"slurm.katib.kubeflow.org/partition": "gpu",
                                                "slurm.katib.kubeflow.org/qos": "high"}), partition="cpu")
    assert "--partition=gpu" in opts and "--qos=high" in opts and "--partition=cpu" not in opts
    assert not any(o.startswith(("--mem=", "--gres", "--time", "--cpus")) for o in _options(_job(tmp_path)))
    with pytest.raises(LaunchError, match="annotation slurm.katib.kubeflow.org/queue: the Slurm executor knows "
                                          "slurm.katib.kubeflow.org/partition, "):
        _options(_job(tmp_path, annotations={"slurm.katib.kubeflow.org/queue": "x"}))


def test_slurm_records_are_read():
    line = ("JobId=7 JobName=t-1 JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 "
            "NodeList=node1")
    assert parse_scontrol(line) == JobRecord("FAILED", 3, "NonZeroExitCode", "node1")
    assert parse_scontrol("JobState=CANCELLED Reason=None ExitCode=0:15").exit_code == -15
    assert parse_scontrol("slurm_load_jobs error: Invalid job id specified") is None
    assert parse_sacct("CANCELLED by 0|0:15|node[1-2]\n") == JobRecord("CANCELLED", -15, "", "node[1-2]")
    assert parse_sacct("") is None
    assert [parse_elapsed(t) for t in ("0:07", "1:02:03", "2-00:00:01", "INVALID")] == [7, 3723, 172801, 0]


@pytest.mark.parametrize(("record", "log", "reason", "words"), [
    (JobRecord("TIMEOUT", -15), "", "DeadlineExceeded", "ran past its Slurm time limit"),
    (JobRecord("NODE_FAIL", None, nodes="node7"), "", "NodeFail", "its node failed (node7)"),
    (JobRecord("NODE_FAIL", None, nodes="(null)"), "", "NodeFail", "ended because its node failed"),
    (JobRecord("CANCELLED", -15), "", "Cancelled", "cancelled outside katib"),
    (JobRecord("OUT_OF_MEMORY", -9), "", "OOMKilled", "more memory than it asked for (--mem=64M)"),
    # Without cgroups (OverMemoryKill) Slurm says FAILED; slurmstepd says why in the job's log.
    (JobRecord("FAILED", -9, "JobLaunchFailure"),
     "slurmstepd-node1: error: Exceeded job memory limit\n", "OOMKilled", "more memory than it asked for"),
    (JobRecord("FAILED", 3, "NonZeroExitCode"), "", "Error",
     "exited with code 3 (Slurm job 7; Slurm's reason: NonZeroExitCode)"),
    (JobRecord("PREEMPTED", -15), "", "Preempted", "ended PREEMPTED by Slurm"),
])
def test_how_a_job_ended_is_a_clear_condition(tmp_path, record, log, reason, words):
    (tmp_path / "trial.log").write_text("loss=1\n" + log)
    state = end_state("7", record, None, tmp_path / "trial.log", stopped=False, timed_out=False, deadline=None,
                      memory="--mem=64M")
    assert state.finished and not state.succeeded
    assert state.reason == reason and words in state.message and "Slurm job 7" in state.message


def test_katibs_own_stop_and_deadline_come_first(tmp_path):
    log = tmp_path / "trial.log"
    stopped = end_state("7", JobRecord("CANCELLED", -15), None, log, stopped=True, timed_out=False, deadline=None)
    late = end_state("7", JobRecord("CANCELLED", -15), None, log, stopped=False, timed_out=True, deadline=5)
    done = end_state("7", JobRecord("COMPLETED", 0), 0, log, stopped=False, timed_out=False, deadline=None)
    assert stopped.reason == "Killed" and late.reason == "DeadlineExceeded" and "(5s)" in late.message
    assert done.succeeded and done.reason == "Completed"


def test_without_slurm_the_executor_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(KatibError, match=r"--executor slurm needs the Slurm commands on PATH \(sbatch, squeue, "
                                         r"scontrol, scancel missing\)"):
        executor_factory("slurm")


def test_a_slurm_job_is_unfenced_so_auth_refuses_it_unless_allowed():
    from katib.cli._server import _fence

    assert executor_class("slurm") is SlurmExecutor and SlurmExecutor.fences is None
    with pytest.raises(KatibError, match="refusing to run trials under --auth: a Slurm job runs as the user who "
                                         "submits it"):
        _fence("slurm", True, None, False, None)
    assert _fence("slurm", True, None, True, None) is None  # --allow-unfenced-trials


def test_tfjob_and_mpijob_trials_are_refused_on_slurm(tmp_path):
    job = _job(tmp_path)
    container = job.run_spec["spec"].pop("template")
    for field, words in (("tfReplicaSpecs", "TFJob trials need every task's host"), ("mpiReplicaSpecs", "MPIJob")):
        job.run_spec["spec"] = {field: {"Worker": {"replicas": 2, "template": container}}}
        with pytest.raises(LaunchError, match=words):
            SlurmExecutor().launch(job)


def test_a_job_killed_for_its_memory_says_so_even_when_a_deadline_or_stop_came_after(tmp_path):
    # slurmstepd kills a job over its memory, and Slurm takes seconds (KillWait) to end it: a
    # deadline that fell in between was reported as the cause.
    log = tmp_path / "trial.log"
    log.write_text("loss=1\nslurmstepd-node1: error: Exceeded job memory limit\n")
    for stopped, timed_out in ((False, True), (True, False)):
        state = end_state("7", JobRecord("CANCELLED", -15), None, log, stopped=stopped, timed_out=timed_out,
                          deadline=6, memory="--mem=300M")
        assert state.reason == "OOMKilled" and "(--mem=300M)" in state.message


def test_a_code_past_128_names_the_signal_bash_reports_it_for(tmp_path):
    # The batch script runs the command as bash's child: a SIGSEGV reads as exit code 139,
    # which said nothing of the signal (the local and Ray executors say "killed by SIGSEGV").
    state = end_state("7", JobRecord("FAILED", 139), None, tmp_path / "trial.log", stopped=False, timed_out=False,
                      deadline=None)
    assert "exited with code 139 (128 + 11: how bash reports a process killed by SIGSEGV" in state.message
