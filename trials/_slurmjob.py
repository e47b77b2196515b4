"""What the Slurm executor submits and how it reads what Slurm says back.

``batch_script`` turns a trial's processes (``replica_processes``) into a batch script and
the ``sbatch`` options for its resources; ``end_state`` turns the job's final record
(``sacct`` or ``scontrol show job``) and its log into the trial's ``RunState``.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._executor import LaunchError, RunState, TrialJob
from ._members import Member, deadline_of
from ._process import describe_exit
from ._resources import Resources
from ._sandbox import split_env

#: Trial-template annotations (on the Job or its pod template) that become sbatch options.
ANNOTATION_PREFIX = "slurm.katib.kubeflow.org/"
ANNOTATIONS = ("partition", "account", "qos", "nodes", "constraint", "reservation")
SCRIPT = "slurm.sh"
TASK_SCRIPT = "slurm-task.sh"
EXIT_FILE = "trial.exit"
# What the training operator sets per replica; under Slurm each task reads it from SLURM_*.
DISTRIBUTED_VARIABLES = frozenset({"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "PET_MASTER_ADDR",
                                   "PET_MASTER_PORT", "PET_NNODES", "PET_NODE_RANK"})
# States in which a job has ended (``squeue --states=all`` and ``sacct`` name them so).
ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
                   "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"})
# What slurmstepd writes to the job's output when it kills a job over its --mem
# (JobAcctGatherParams=OverMemoryKill) or when the cgroup's OOM killer struck.
_OOM = re.compile(r"slurmstepd[^:\n]*: error: (.*exceeded (job )?memory limit|.*oom[-_]kill event)", re.IGNORECASE)


def identity(job: TrialJob) -> str:
    """The job's ``--comment``: which trial it is (its namespace, experiment and name, and
    a digest of its folder, which tells apart two katib installations, or two runs roots,
    that share a cluster), so that a restarted controller adopts its own jobs and never a
    stranger that reuses a job id or a name."""
    where = hashlib.sha256(str(job.trial_dir.absolute()).encode()).hexdigest()[:12]
    return f"katib:{job.namespace}/{job.experiment}/{job.name}@{where}"


def slurm_annotations(run_spec: dict[str, Any]) -> dict[str, str]:
    """The ``slurm.katib.kubeflow.org/*`` annotations of the trial's Job and its pod template."""
    found: dict[str, str] = {}
    template = ((run_spec.get("spec") or {}).get("template") or {}).get("metadata") or {}
    for meta in (run_spec.get("metadata") or {}, template):
        for key, value in (meta.get("annotations") or {}).items():
            if str(key).startswith(ANNOTATION_PREFIX):
                name = str(key)[len(ANNOTATION_PREFIX):]
                if name not in ANNOTATIONS:
                    raise LaunchError(f"annotation {key}: the Slurm executor knows "
                                      f"{', '.join(ANNOTATION_PREFIX + a for a in ANNOTATIONS)}")
                found[name] = str(value)
    return found


def _mib(memory: int) -> int:
    return max(1, math.ceil(memory / (1 << 20)))


def sbatch_options(job: TrialJob, members: list[Member], partition: str | None, account: str | None) -> list[str]:
    """The ``sbatch`` options for the trial: its name and identity, its output (the trial's
    log), its resources, its time limit, and where it runs (the annotations win over the
    executor's ``partition`` and ``account``)."""
    cwd = job.workdir
    working_dir = members[0].container.get("workingDir")
    if working_dir and Path(str(working_dir)).is_dir():
        cwd = Path(str(working_dir))
    opts = [f"--job-name={job.name}", f"--comment={identity(job)}", f"--output={job.log_path}",
            "--open-mode=append", f"--chdir={cwd}", "--export=ALL", "--no-requeue", "--parsable"]
    need = [m.resources for m in members]
    cpu = max(r.cpu for r in need)
    gpu = max(r.gpu for r in need)
    memory = max(r.memory for r in need)
    if len(members) == 1:
        if cpu:
            opts.append(f"--cpus-per-task={math.ceil(cpu)}")
        if memory:
            opts.append(f"--mem={_mib(memory)}M")
        if gpu:
            opts.append(f"--gres=gpu:{gpu}")
    else:  # one task per replica, each with what its replica asks for
        opts.append(f"--ntasks={len(members)}")
        cpus = max(1, math.ceil(cpu))
        opts.append(f"--cpus-per-task={cpus}")
        if memory:
            opts.append(f"--mem-per-cpu={math.ceil(_mib(memory) / cpus)}M")
        if gpu:
            opts.append(f"--gpus-per-task={gpu}")
    deadline = deadline_of(job.run_spec)
    if deadline is not None:
        # Slurm counts whole minutes and checks them now and then; the executor stops the
        # job at the second itself, this limit ends it when no controller watches.
        opts.append(f"--time={max(1, math.ceil(deadline / 60))}")
    where = {"partition": partition, "account": account, **slurm_annotations(job.run_spec)}
    for name in ANNOTATIONS:
        if where.get(name):
            opts.append(f"--{name}={where[name]}")
    return opts


def _exports(env: dict[str, str], base: dict[str, str]) -> str:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items())
                   if base.get(k) != v and k not in DISTRIBUTED_VARIABLES and k.isidentifier())


def _record_exit(exit_file: Path) -> str:
    tmp = shlex.quote(f"{exit_file}.tmp")
    return f'code=$?\nprintf "%s\\n" "$code" > {tmp} && mv -f {tmp} {shlex.quote(str(exit_file))}\nexit "$code"\n'


def batch_script(job: TrialJob, members: list[Member]) -> str:
    """The job's batch script (written to ``<trial dir>/slurm.sh``). It runs the command and
    records its exit status in ``trial.exit``, as the local executor's wrapper does, so a
    job Slurm has forgotten (after ``MinJobAge``) still says how it ended. A distributed
    trial runs one ``srun`` task per replica (``slurm-task.sh``). It first sets what of the
    trial's environment ``sbatch`` ran without (``job_env``)."""
    head = f"#!/bin/bash\n# {identity(job)}: written by katib's Slurm executor\n" + job_env(members[0].env)
    exit_file = job.trial_dir / EXIT_FILE
    if len(members) == 1:
        return head + shlex.join(members[0].argv) + "\n" + _record_exit(exit_file)
    task = job.trial_dir / TASK_SCRIPT
    task.write_text(task_script(job, members))
    return head + f"srun --kill-on-bad-exit=1 --ntasks={len(members)} bash {shlex.quote(str(task))}\n" + \
        _record_exit(exit_file)


def task_script(job: TrialJob, members: list[Member]) -> str:
    """One ``srun`` task per replica, in rank order (the primary first): each gets the
    environment a training operator gives its pod, from Slurm's: ``MASTER_ADDR`` (the
    first node of the job), ``MASTER_PORT`` (from the job id), ``WORLD_SIZE``, ``RANK``,
    ``LOCAL_RANK``, ``NODE_RANK`` and torchrun's ``PET_*``. Rank 0 writes to the trial's log;
    the others to their replica's log."""
    lines = ["#!/bin/bash", f"# {identity(job)}: one task of a distributed trial",
             'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
             "export MASTER_ADDR MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))",
             "export WORLD_SIZE=$SLURM_NTASKS RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID NODE_RANK=$SLURM_NODEID",
             "export PET_MASTER_ADDR=$MASTER_ADDR PET_MASTER_PORT=$MASTER_PORT PET_NNODES=$SLURM_NTASKS "
             "PET_NODE_RANK=$SLURM_PROCID",
             'case "$SLURM_PROCID" in']
    for rank, m in enumerate(members):
        body = _exports(m.env, members[0].env)
        if rank:
            body += f"exec >>{shlex.quote(str(job.trial_dir / m.log_name))} 2>&1\n"
        body += "exec " + shlex.join(m.argv) + "\n"
        lines.append(f"{rank})\n{body};;")
    lines.append("esac")
    return "\n".join(lines) + "\n"


def _acting(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``env`` as (what does not act on ``sbatch``, what does): the variables glibc's
    loader and libc read before a program's own code runs (``split_env``), ``PATH`` (where
    sbatch and what it runs are found) and sbatch's own input variables (``SBATCH_*``,
    options no trial template is given). Names a shell cannot set are left out of both
    (neither glibc nor sbatch reads one)."""
    rest, acting = split_env(dict(env))
    for name in [k for k in rest if k == "PATH" or k.startswith("SBATCH_")]:
        acting[name] = rest.pop(name)
    return rest, {k: v for k, v in acting.items() if k.isidentifier()}


def _trial(env: dict[str, str]) -> dict[str, str]:
    """The trial's environment less any ``SLURM_*`` of an allocation this controller runs in."""
    return {k: v for k, v in env.items() if not k.startswith(("SLURM_", "SRUN_"))}


def submit_env(env: dict[str, str]) -> dict[str, str]:
    """The environment ``sbatch`` runs with (``--export=ALL`` hands it to the job): the
    trial's (``_trial``), but for what acts on sbatch itself (``_acting``), which is the
    server's, as for every Slurm command it runs: a trial's ``PATH`` would choose the
    program, its ``LD_PRELOAD`` load code into it, as the server's user. The batch script
    sets the trial's own (``job_env``). Plus what the Slurm commands need to find the
    cluster (``SLURM_CONF``)."""
    rest, _ = _acting(_trial(env))
    _, server = _acting(os.environ)
    out = {**rest, **server}
    if "SLURM_CONF" in os.environ:
        out["SLURM_CONF"] = os.environ["SLURM_CONF"]
    return out


def job_env(env: dict[str, str]) -> str:
    """The batch script's lines that give the job the trial's own values of what ``sbatch``
    ran with the server's (``submit_env``): each set, quoted, and each the trial lacks
    removed where it still holds the server's value (one the node's prolog set stays)."""
    _, trial = _acting(_trial(env))
    _, server = _acting(os.environ)
    lines = [f"export {k}={shlex.quote(v)}\n" for k, v in sorted(trial.items())]
    lines += [f'[ "${{{k}-}}" != {shlex.quote(v)} ] || unset {k}\n' for k, v in sorted(server.items())
              if k not in trial]
    return "".join(lines)


@dataclass(frozen=True)
class JobRecord:
    """A finished job as ``sacct`` or ``scontrol`` describe it."""

    state: str  # COMPLETED, FAILED, OUT_OF_MEMORY, ... ("CANCELLED by 0" is CANCELLED)
    exit_code: int | None = None  # the command's status as Popen says it (-9: SIGKILL)
    reason: str = ""  # Slurm's Reason (scontrol)
    nodes: str = ""


def parse_scontrol(text: str) -> JobRecord | None:
    """``scontrol show job -o ID``'s one line."""
    fields = dict(re.findall(r"(\w+)=(\S*)", text))
    if "JobState" not in fields:
        return None
    return JobRecord(fields["JobState"], _exit(fields.get("ExitCode", "")), fields.get("Reason", ""),
                     fields.get("NodeList", ""))


def parse_sacct(text: str) -> JobRecord | None:
    """``sacct -n -P -X -o State,ExitCode,NodeList -j ID``'s line."""
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) >= 3 and parts[0]:
            return JobRecord(parts[0].split()[0], _exit(parts[1]), "", parts[2])
    return None


def _exit(text: str) -> int | None:
    """Slurm's ``CODE:SIGNAL``, as Popen would say it."""
    code, _, sig = text.partition(":")
    try:
        return -int(sig) if sig and int(sig) else int(code)
    except ValueError:
        return None


def out_of_memory(log: Path) -> bool:
    """Whether slurmstepd wrote, at the end of the job's log, that it killed the job for
    its memory (the state says FAILED or CANCELLED without cgroups)."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 65536))
            tail = f.read().decode(errors="replace")
    except OSError:
        return False
    return bool(_OOM.search(tail))


def end_state(job_id: str, record: JobRecord | None, exit_code: int | None, log: Path, *, stopped: bool,
              timed_out: bool, deadline: float | None, memory: str = "") -> RunState:
    """How the trial ended: killed for its memory first (Slurm may take seconds to end such a
    job, in which katib's deadline or stop can fall), then katib's own stop or deadline, then
    what Slurm says, each a condition message naming the job."""
    code = exit_code if exit_code is not None else (record.exit_code if record else None)
    job = f"Slurm job {job_id}"
    if (record is not None and record.state == "OUT_OF_MEMORY") or out_of_memory(log):
        asked = f" ({memory})" if memory else ""
        return RunState(True, reason="OOMKilled", exit_code=code,
                        message=f"{job} was killed for using more memory than it asked for{asked}")
    if timed_out or stopped:
        return RunState.ended(-15 if code is None else code, timed_out, stopped, deadline)
    state = record.state if record else ("COMPLETED" if code == 0 else "FAILED")
    if state == "TIMEOUT":
        return RunState(True, reason="DeadlineExceeded", exit_code=code,
                        message=f"{job} ran past its Slurm time limit and was ended by Slurm")
    if state == "NODE_FAIL":
        nodes = record.nodes if record and record.nodes not in ("", "(null)", "None assigned") else ""
        return RunState(True, reason="NodeFail", exit_code=code,
                        message=f"{job} ended because its node failed" + (f" ({nodes})" if nodes else ""))
    if state == "CANCELLED":
        return RunState(True, reason="Cancelled", exit_code=code,
                        message=f"{job} was cancelled outside katib (scancel, or the cluster's administrator)")
    if state in ("PREEMPTED", "BOOT_FAIL", "DEADLINE", "REVOKED"):
        return RunState(True, reason=state.title().replace("_", ""), exit_code=code,
                        message=f"{job} ended {state} by Slurm")
    if state == "COMPLETED" and (code or 0) == 0:
        return RunState.ended(0, False, False, deadline)
    reason, message = describe_exit(1 if code is None or code == 0 else code)
    if code is not None and 128 < code < 128 + 65:  # the batch script's bash reports a killed child so
        import signal

        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        message += f" (128 + {code - 128}: how bash reports a process killed by {name}, or one that exited so)"
    why = f"; Slurm's reason: {record.reason}" if record and record.reason not in ("", "None") else ""
    return RunState(True, reason=reason, exit_code=code, message=f"{message} ({job}{why})")


# What squeue's pending reasons (%r) mean, for the common ones (Slurm's squeue(1), "JOB
# REASON CODES"); any other is shown as Slurm words it.
PENDING_REASONS = {
    "Resources": "the resources it asks for are in use",
    "Priority": "jobs of higher priority are ahead of it",
    "Dependency": "it waits for a job it depends on",
    "BeginTime": "its start time has not come",
    "JobHeldUser": "it is held by its user",
    "JobHeldAdmin": "it is held by an administrator",
    "ReqNodeNotAvail": "a node it needs is not available",
    "PartitionDown": "its partition is down",
    "PartitionInactive": "its partition is inactive",
    "Licenses": "the licenses it asks for are in use",
}


def waiting_state(job_id: str, reason: str) -> RunState | None:
    """A pending job's wait as the Running condition shows it (reason ``WaitingInQueue``,
    squeue's reason in the message), or None when Slurm gives no reason.

    >>> waiting_state("7", "Resources").message
    'Slurm job 7 is pending (Resources): the resources it asks for are in use'
    >>> waiting_state("7", "QOSMaxJobsPerUserLimit").message
    'Slurm job 7 is pending (QOSMaxJobsPerUserLimit): a limit of its QOS is reached'
    >>> waiting_state("7", "None") is None
    True
    """
    reason = reason.strip()
    if not reason or reason == "None":
        return None
    why = PENDING_REASONS.get(reason) or ("a limit of its QOS is reached" if reason.startswith("QOS")
                                          else "a limit of its association is reached" if reason.startswith("Assoc")
                                          else "")
    return RunState(False, reason="WaitingInQueue",
                    message=f"Slurm job {job_id} is pending ({reason})" + (f": {why}" if why else ""))


def parse_elapsed(text: str) -> float:
    """``squeue``'s ``%M`` (``M:SS``, ``H:MM:SS``, ``D-HH:MM:SS``) in seconds; 0 when unknown."""
    days, _, clock = text.rpartition("-")
    try:
        seconds = 0.0
        for part in clock.split(":"):
            seconds = seconds * 60 + int(part)
        return seconds + int(days or 0) * 86400
    except ValueError:
        return 0.0


def memory_text(members: list[Member]) -> str:
    memory = max(m.resources.memory for m in members)
    if not memory:
        return ""
    return f"--mem={_mib(memory)}M" if len(members) == 1 else f"{_mib(memory)} MiB per task"


def needs(members: list[Member]) -> None:
    for m in members:
        m.resources = Resources.of_container(m.container)
