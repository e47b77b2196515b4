"""The Slurm executor: each trial is one Slurm batch job, submitted with ``sbatch``.

The trial's processes are what the local executor would run (``replica_processes``), put
in a batch script in the trial's folder; the job writes its output to the trial's log
(``--output``), its pushed metrics and metrics files into the trial's folder, and its exit
status to ``trial.exit``: Slurm clusters share their filesystem, so the collectors and
``katib logs`` read them as they read a local trial's. The primary container's
``resources`` become ``--cpus-per-task``, ``--mem`` and ``--gres=gpu:N``;
``activeDeadlineSeconds`` becomes ``--time`` (whole minutes, as Slurm counts) and the
executor stops the job at the second itself with ``scancel``, as it does to stop a
trial. Partition and account come from the executor (``--slurm-partition``,
``--slurm-account``) or the trial template's ``slurm.katib.kubeflow.org/*`` annotations.
A PyTorchJob-style trial is one job of one ``srun`` task per replica, each given torchrun's
environment from Slurm's (``_slurmjob.task_script``).

Jobs are followed with one ``squeue`` call for all of them at each wake (a pending job's
reason, ``%r``, is its Running condition's: ``waiting_state``); a job's end is
read from ``sacct`` when the cluster keeps accounting, else from ``scontrol show job``
(ended jobs stay there ``MinJobAge`` seconds), and from the job's log, where slurmstepd
says that it killed the job for its memory. A restarted controller adopts its trials'
jobs by the id in their handles, checked against the job's ``--comment`` (the trial's
namespace, experiment and name), so it never adopts a stranger that reuses an id.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from katib.errors import KatibError

from ._executor import (
    ADOPTED,
    Adoption,
    Deferred,
    Executor,
    LaunchError,
    RunState,
    TrialJob,
    read_handle,
    write_handle,
)
from ._members import deadline_of, replica_processes
from ._sandbox import _tool
from ._slurmjob import (
    ENDED,
    EXIT_FILE,
    SCRIPT,
    JobRecord,
    batch_script,
    end_state,
    identity,
    memory_text,
    needs,
    parse_elapsed,
    parse_sacct,
    parse_scontrol,
    sbatch_options,
    submit_env,
    waiting_state,
)

COMMANDS = ("sbatch", "squeue", "scontrol", "scancel")
TIMEOUT = 60.0  # seconds for one Slurm command: a busy slurmctld answers slowly, a dead one never
# What sbatch says when slurmctld did not answer: the submission may be tried again.
TRANSIENT = ("Socket timed out", "Unable to contact slurm controller", "temporarily unable",
             "Resource temporarily unavailable", "Connection refused", "Connection timed out")


def slurm(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a Slurm command: ``args[0]`` is looked up on the *server's* ``PATH`` (``_tool``),
    never on ``env``'s, which is a trial's for ``sbatch``; exit code 127 when it is not there."""
    program = _tool(args[0])
    if program is None:
        return subprocess.CompletedProcess(args, 127, "", f"{args[0]} is not on the server's PATH "
                                                          "(a trial's PATH is never searched)")
    try:
        return subprocess.run([program, *args[1:]], capture_output=True, text=True, timeout=TIMEOUT, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", f"{args[0]} did not answer in {TIMEOUT:g} s")
    except OSError as exc:
        return subprocess.CompletedProcess(args, 127, "", f"cannot run {args[0]}: {exc.strerror or exc}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def check_cluster() -> None:
    """Fail now, saying why, when the Slurm commands are missing or no slurmctld answers."""
    missing = [c for c in COMMANDS if _tool(c) is None]
    if missing:
        raise KatibError(f"--executor slurm needs the Slurm commands on PATH ({', '.join(missing)} missing): "
                         "run katib on a Slurm login node, or install slurm-client")
    ping = slurm(["scontrol", "ping"])
    if ping.returncode != 0 or "UP" not in ping.stdout:
        raise KatibError("--executor slurm: no Slurm controller answers (scontrol ping: "
                         f"{_last_line(ping.stdout + ping.stderr) or ping.returncode})")


@dataclass
class _Job:
    """One trial's job, as this controller follows it."""

    job_id: str
    name: str
    log: Path
    exit_file: Path
    deadline: float | None
    memory: str = ""
    state: str = "PENDING"
    reason: str = ""  # squeue's reason (%r) while it is pending
    running_since: float | None = None  # monotonic, when it started running
    stopped: bool = False
    timed_out: bool = False
    gone: bool = False  # Slurm forgot it (after MinJobAge)
    record: JobRecord | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.gone or self.state in ENDED

    def deadline_at(self) -> float | None:
        if self.deadline is None or self.running_since is None:
            return None
        return self.running_since + self.deadline


class SlurmExecutor(Executor):
    """Runs each trial as a Slurm batch job.

    ``partition`` and ``account``: sbatch's ``--partition`` and ``--account`` for every
    trial (a trial template's annotations override them). ``clean_env`` as for
    ``LocalExecutor``. ``interval``: how often ``squeue`` is asked while trials run.

    >>> ex = SlurmExecutor(partition="gpu", account="ml")  # doctest: +SKIP
    """

    name = "slurm"
    # Custom runs a collector container beside the trial; PrometheusMetric scrapes the trial
    # on this machine: neither reaches a job on another node.
    collector_kinds = ("StdOut", "File", "TensorFlowEvent", "Push")
    unfenced_why = ("a Slurm job runs as the user who submits it (the server's), with that user's files and "
                    "processes: Slurm shares out CPUs, memory and GPUs, it does not sandbox a job")

    def __init__(self, partition: str | None = None, account: str | None = None, clean_env: bool = False,
                 interval: float = 0.5) -> None:
        self.partition = partition
        self.account = account
        self.clean_env = clean_env
        self.interval = interval
        self._jobs: dict[str, _Job] = {}
        self._checked = 0.0  # monotonic time of the last squeue
        self._sacct: bool | None = None  # whether sacct answers (None: not tried yet)
        self.submitted = 0  # jobs this executor submitted (tests count them)
        self._unsure: dict[str, float] = {}  # trial → when a submission whose answer was lost was made

    # -- launching ---------------------------------------------------------------------------

    def launch(self, job: TrialJob) -> dict[str, Any]:
        if isinstance((job.run_spec.get("spec") or {}).get("tfReplicaSpecs"), dict):
            raise LaunchError("TFJob trials need every task's host and port in TF_CONFIG before they start: run them "
                              "with the local or Kubernetes executor, not on Slurm")
        members = replica_processes(job, self.clean_env)
        needs(members)
        job.trial_dir.mkdir(parents=True, exist_ok=True)
        for target in job.path_map.values():
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        options = sbatch_options(job, members, self.partition, self.account)
        script = job.trial_dir / SCRIPT
        lost = self._unsure.get(job.name)
        found = self._lost_submission(job, lost) if lost is not None else None  # the last try's answer was lost
        if found is None:
            (job.trial_dir / EXIT_FILE).unlink(missing_ok=True)  # (a found job's own record stays)
            script.write_text(batch_script(job, members))
            submitted = time.time()
            done = slurm(["sbatch", *options, str(script)], env=submit_env(members[0].env))
            if done.returncode == 127:  # not on the server's PATH, or it cannot run
                raise LaunchError(f"cannot submit the trial: {_last_line(done.stderr) or 'sbatch cannot run'}")
            job_id = done.stdout.strip().split(";")[0]
            if done.returncode != 0 or not job_id.isdigit():
                why = (_last_line(done.stderr) or _last_line(done.stdout) or f"exit code {done.returncode}")
                why = why.removeprefix("sbatch: error: ")
                if not (done.returncode == 124 or any(w in why for w in TRANSIENT)):
                    raise LaunchError(f"sbatch refused the trial: {why}")
                # A busy slurmctld may take the job and lose the answer: looked up before any
                # new submission, now and (while squeue does not answer) at the next try.
                found = self._lost_submission(job, submitted)
                if found is None:
                    raise Deferred(f"sbatch did not get through ({why}); trying again")
        if found is not None:
            job_id = found
        self.submitted += 1
        handle = {"executor": self.name, "job_id": job_id, "trial": job.name, "comment": identity(job),
                  "log": str(job.log_path), "started_at": time.time(), "options": options}
        write_handle(job.trial_dir, handle)
        self._follow(handle, job)
        return handle

    def _lost_submission(self, job: TrialJob, since: float) -> str | None:
        """The job a submission whose answer was lost made, submitted since ``since`` (not an
        earlier run's job of the trial, which Slurm lists for MinJobAge); None when there is
        none, so it may be submitted. ``Deferred`` while squeue does not answer: submitting
        again then could run the trial twice."""
        self._unsure[job.name] = since  # kept while squeue does not answer
        jobs = self._named(job.name, identity(job))
        if jobs is None:
            raise Deferred("squeue does not answer: whether the last submission got through is not known yet")
        del self._unsure[job.name]
        newest = None
        for job_id, submit in jobs:
            try:  # slurmctld's local time; a minute's grace for the clocks
                if datetime.fromisoformat(submit).timestamp() < since - 60:
                    continue
            except ValueError:
                pass
            if job_id.isdigit() and (newest is None or int(job_id) > int(newest)):
                newest = job_id
        return newest

    def _follow(self, handle: dict[str, Any], job: TrialJob, elapsed: float | None = None) -> _Job:
        members = replica_processes(job, self.clean_env)
        needs(members)
        tracked = _Job(str(handle["job_id"]), job.name, job.log_path, job.trial_dir / EXIT_FILE,
                       deadline_of(job.run_spec), memory_text(members))
        if elapsed is not None:
            tracked.running_since = time.monotonic() - elapsed
        self._jobs[tracked.job_id] = tracked
        return tracked

    def owns(self, handle: dict[str, Any]) -> bool:
        return handle.get("executor") == self.name and str(handle.get("job_id")) in self._jobs

    # -- following ---------------------------------------------------------------------------

    def _queue(self, ids: list[str]) -> dict[str, tuple[str, str, str, str]] | None:
        """Each known job's (state, elapsed, pending reason, comment) from one squeue call;
        None when squeue fails (slurmctld busy or down: nothing is concluded from it)."""
        done = slurm(["squeue", "-h", "--states=all", "-j", ",".join(ids), "-o", "%i|%T|%M|%r|%k"])
        if done.returncode != 0:
            # One id that Slurm has forgotten fails the whole call.
            return {} if len(ids) == 1 and "Invalid job id" in done.stderr else None
        out: dict[str, tuple[str, str, str, str]] = {}
        for line in done.stdout.splitlines():
            parts = line.strip().split("|", 4)
            if len(parts) == 5:
                out[parts[0]] = (parts[1], parts[2], parts[3], parts[4])
        return out

    def _refresh(self, force: bool = False) -> bool:
        """Ask squeue about every job not known to have ended; True when one changed state."""
        live = [j for j in self._jobs.values() if not j.ended]
        now = time.monotonic()
        if not live or (not force and now - self._checked < self.interval):
            return False
        self._checked = now
        found = self._queue([j.job_id for j in live])
        if found is None:
            return False
        changed = False
        for j in live:
            if j.job_id not in found:
                j.gone = changed = True
                continue
            state, elapsed, j.reason, _ = found[j.job_id]
            state = state.split()[0]
            if state != j.state:
                changed = True
                j.state = state
            if state in ("RUNNING", "COMPLETING") and j.running_since is None:
                j.running_since = time.monotonic() - parse_elapsed(elapsed)
        return changed

    def _enforce(self) -> None:
        """Stop the jobs past their deadline (``scancel``), counted from their start."""
        now = time.monotonic()
        for j in self._jobs.values():
            at = j.deadline_at()
            if at is not None and now >= at and not j.ended and not j.timed_out and not j.stopped:
                j.timed_out = True
                self._cancel(j.job_id, j.name)

    def _record(self, job_id: str) -> JobRecord | None:
        """The ended job's record: sacct when the cluster keeps accounting, else scontrol."""
        if self._sacct is not False:
            done = slurm(["sacct", "-n", "-P", "-X", "-o", "State,ExitCode,NodeList", "-j", job_id])
            record = parse_sacct(done.stdout) if done.returncode == 0 else None
            if record is not None:
                self._sacct = True
                return record
            if done.returncode != 0 and self._sacct is None:
                self._sacct = False  # accounting is off here (or sacct is missing): scontrol from now on
            # (no line yet: slurmdbd has not recorded the end; scontrol still knows it)
        done = slurm(["scontrol", "show", "job", "-o", job_id])
        return parse_scontrol(done.stdout) if done.returncode == 0 else None

    def poll(self, handle: dict[str, Any]) -> RunState:
        j = self._jobs.get(str(handle.get("job_id")))
        if j is None:
            return RunState(True, reason="Lost", message="the Slurm job of this trial is not known to this controller")
        self._refresh()
        self._enforce()
        if not j.ended:  # a queued job says why it waits (squeue's reason)
            return (j.state == "PENDING" and waiting_state(j.job_id, j.reason)) or RunState.running()
        return self._end(j)

    def _end(self, j: _Job) -> RunState:
        del self._jobs[j.job_id]
        from ._process import read_exit

        code = read_exit(j.exit_file)
        record = j.record or (None if j.gone else self._record(j.job_id))
        if j.gone and code is None and not (j.stopped or j.timed_out):
            return RunState(True, reason="Lost", message=f"Slurm no longer knows job {j.job_id} and it left no "
                                                         "exit status (it ended longer ago than MinJobAge)")
        return end_state(j.job_id, record, code, j.log, stopped=j.stopped, timed_out=j.timed_out,
                         deadline=j.deadline, memory=j.memory)

    def wait(self, timeout: float) -> None:
        """Sleep until a job changes state or passes its deadline, asking squeue every
        ``interval`` seconds; at most ``timeout``."""
        end = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            deadlines = [at for j in self._jobs.values() if not j.ended and (at := j.deadline_at()) is not None]
            if now >= end or any(now >= at for at in deadlines):
                return
            if any(j.ended for j in self._jobs.values()):
                return
            time.sleep(max(0.0, min(end - now, self.interval - (now - self._checked), *[at - now for at in deadlines])))
            if self._refresh():
                return

    # -- stopping ----------------------------------------------------------------------------

    def _cancel(self, job_id: str, name: str) -> None:
        # --name: only if the job is still this trial's (an id is reused after a cluster reset).
        slurm(["scancel", f"--name={name}", job_id])

    def stop(self, handle: dict[str, Any]) -> None:
        j = self._jobs.get(str(handle.get("job_id")))
        if j is None:
            self.recover(handle)
            return
        if not j.stopped and not j.ended:
            j.stopped = True
            self._cancel(j.job_id, j.name)

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until the cancelled jobs have left the queue's running states."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and any(j.stopped and not j.ended for j in self._jobs.values()):
            time.sleep(self.interval)
            self._refresh(force=True)

    # -- after a restart ---------------------------------------------------------------------

    def _find(self, job: TrialJob) -> str | None:
        """The id of this trial's job, looked up by its name and comment (a controller that
        died between sbatch and writing the handle down)."""
        return self._find_by(job.name, identity(job))

    @classmethod
    def _find_by(cls, name: str, ident: str) -> str | None:
        jobs = cls._named(name, ident)
        return jobs[0][0] if jobs else None

    @staticmethod
    def _named(name: str, ident: str) -> list[tuple[str, str]] | None:
        """(id, submit time) of each job Slurm knows by ``name`` whose comment is ``ident``, in
        squeue's order; None when squeue does not answer."""
        done = slurm(["squeue", "-h", "--states=all", f"--name={name}", "-o", "%i|%V|%k"])
        if done.returncode != 0:
            return None
        out = []
        for line in done.stdout.splitlines():
            job_id, submit, comment = (line.strip().split("|", 2) + ["", ""])[:3]
            if ident and comment == ident:
                out.append((job_id, submit))
        return out

    def launched(self, job: TrialJob) -> dict[str, Any] | None:
        handle = read_handle(job.trial_dir)
        if handle is not None or not (job.trial_dir / SCRIPT).exists():
            return handle
        job_id = self._find(job)  # submitted, not written down
        if job_id is None:
            return None
        return {"executor": self.name, "job_id": job_id, "trial": job.name, "comment": identity(job),
                "log": str(job.log_path), "started_at": time.time()}

    def adopt(self, handle: dict[str, Any], job: TrialJob) -> Adoption:
        """Follow on a job an earlier controller submitted: queued or running, or ended
        while nobody watched (its record or its exit status says how)."""
        job_id = str(handle.get("job_id") or "")
        if not job_id.isdigit():
            return Adoption.refused("its handle names no Slurm job")
        found = self._queue([job_id])
        if found is None:
            return Adoption.refused("squeue did not answer")
        if job_id not in found:
            if not (job.trial_dir / EXIT_FILE).exists():
                return Adoption.refused(f"Slurm no longer knows job {job_id} and it left no exit status")
            self._follow(handle, job).gone = True
            return ADOPTED
        state, elapsed, reason, comment = found[job_id]
        if comment != identity(job):
            return Adoption.refused(f"Slurm job {job_id} is not this trial's (its comment is {comment!r})")
        tracked = self._follow(handle, job)
        tracked.state, tracked.reason = state.split()[0], reason
        if tracked.state in ("RUNNING", "COMPLETING") or tracked.ended:
            tracked.running_since = time.monotonic() - parse_elapsed(elapsed)
        return ADOPTED

    def left_job(self, handle: dict[str, Any]) -> bool | None:
        """Whether the job a trial's handle names is still queued or running as that trial's
        (no controller follows it); None when squeue does not answer (nothing concluded)."""
        job_id, name = str(handle.get("job_id") or ""), str(handle.get("trial") or "")
        if not (job_id.isdigit() and name):
            return False
        found = self._queue([job_id])
        if found is None:
            return None
        if job_id not in found:
            return False
        state, _, _, comment = found[job_id]
        same = comment == handle["comment"] if handle.get("comment") else f"/{name}@" in comment
        return same and state.split()[0] not in ENDED

    def recover(self, handle: dict[str, Any], trial_dir: Path | None = None) -> None:
        """Cancel what is left of a trial's job (the one its handle names, else the one
        its trial folder's script was submitted as)."""
        job_id = str(handle.get("job_id") or "")
        name = handle.get("trial")
        if not job_id and trial_dir is not None and (trial_dir / SCRIPT).exists():
            stored = read_handle(trial_dir) or {}
            job_id, name = str(stored.get("job_id") or ""), stored.get("trial")
            if not job_id:  # submitted, not written down: the script's header names the trial
                header = (trial_dir / SCRIPT).read_text().splitlines()[1:2]
                comment = header[0].removeprefix("# ").split(": ", 1)[0] if header else ""
                name = trial_dir.name
                job_id = self._find_by(name, comment) or ""
        if job_id.isdigit() and name:
            self._cancel(job_id, str(name))

    def close(self) -> None:
        self._jobs.clear()
