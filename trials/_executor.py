"""The executor seam: where and how a trial's job runs.

``launch`` starts a rendered trial and returns a *handle*, a JSON-able dict the controller
persists before relying on it, so a restarted controller can find (and stop) what an
earlier one started. ``poll`` says whether it is still running and how it ended;
``stop`` ends it and everything it started; ``wait`` blocks until some trial may have
changed state (or the timeout passes) so the controller reacts to events, not to a timer.
``adopt`` lets a restarted controller follow on what its predecessor started instead of
killing it and running it again.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrialJob:
    """Everything an executor needs to run one trial."""

    name: str
    experiment: str
    namespace: str
    run_spec: dict[str, Any]
    primary_container: str
    workdir: Path
    trial_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    path_map: dict[str, str] = field(default_factory=dict)
    # What a cluster executor needs of the trial template (GJSON conditions over the job
    # object, the labels of the pod whose log holds the metrics, whether to keep the job).
    success_condition: str | None = None
    failure_condition: str | None = None
    primary_pod_labels: dict[str, str] | None = None
    retain: bool = False
    collector: str = "StdOut"  # the metrics collector's kind
    # A Custom collector: its container (Katib's customCollector), and the DBManager address
    # ("host:port") it reports to in place of Katib's katib-db-manager service.
    custom_collector: dict[str, Any] | None = None
    db_manager: str | None = None
    # What a metrics-collector sidecar is given (Kubernetes): the metric names (the
    # objective first), the objective's type and the collector spec's source (Katib's JSON).
    metric_names: list[str] = field(default_factory=list)
    objective_type: str = ""
    collector_source: dict[str, Any] | None = None

    @property
    def log_path(self) -> Path:
        return self.trial_dir / "trial.log"


@dataclass(frozen=True)
class RunState:
    """How a trial's job stands: running, or finished with an outcome."""

    finished: bool
    succeeded: bool = False
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    #: The job's own reason for its end, where it has one (a Kubernetes Job's failed
    #: condition: ``BackoffLimitExceeded``); None: ``reason`` is it. Katib names a failed
    #: trial's reason after it (``TrialFailed. Job reason: …``).
    job_reason: str | None = None

    @classmethod
    def running(cls) -> RunState:
        return cls(False)

    @classmethod
    def ended(cls, code: int, timed_out: bool, stopped: bool, deadline: float | None) -> RunState:
        """How a job that exited with ``code`` ended, whoever ran it."""
        from ._process import describe_exit

        if timed_out:
            return cls(True, reason="DeadlineExceeded", exit_code=code,
                       message=f"the trial ran past activeDeadlineSeconds ({deadline:g}s) and was stopped")
        if stopped:
            return cls(True, reason="Killed", exit_code=code, message="the trial was stopped")
        if code == 0:
            return cls(True, succeeded=True, reason="Completed", exit_code=0)
        reason, message = describe_exit(code)
        return cls(True, reason=reason, message=message, exit_code=code)


@dataclass(frozen=True)
class Adoption:
    """Whether an executor follows on a trial an earlier controller started (truthy when
    it does) and, when it does not, why: the trial is run again and the reason says so.
    ``ran`` is False when the executor knows the job never started the trial's command
    (its launch was cut short first): running it then is its first attempt, not another."""

    adopted: bool
    reason: str = ""
    ran: bool = True

    def __bool__(self) -> bool:
        return self.adopted

    @classmethod
    def refused(cls, reason: str, ran: bool = True) -> Adoption:
        return cls(False, reason, ran)


ADOPTED = Adoption(True)


class Executor(ABC):
    """Runs trials; one instance per controller."""

    name: str = ""
    #: The metrics collector kinds it can serve (None: every registered kind, read from the
    #: trial's folder on this machine); admission refuses the others, naming these.
    collector_kinds: tuple[str, ...] | None = None
    #: How it keeps a trial away from the server's files, store and other tenants, which
    #: ``katib server --auth`` needs: "sandbox" (it runs trials in the ``trials.Sandbox``
    #: it is given), "cluster" (its pods are fenced in by their cluster), or None: it does
    #: not, and ``--auth`` refuses it unless ``--allow-unfenced-trials`` (``unfenced_why``
    #: says why; a plugin that says nothing is taken as unfenced).
    fences: str | None = None
    unfenced_why: str = ""
    #: Whether its trials run with this machine's Python environment (a ``KatibClient.tune``
    #: function travels pickled); False: in another image (a pod), where only its source can.
    shares_environment: bool = True

    @abstractmethod
    def launch(self, job: TrialJob) -> dict[str, Any]:
        """Start the job; return its handle. Raise ``LaunchError`` if it cannot start."""

    @abstractmethod
    def poll(self, handle: dict[str, Any]) -> RunState:
        """The job's state. A handle this executor does not know is reported lost."""

    @abstractmethod
    def stop(self, handle: dict[str, Any]) -> None:
        """End the job and everything it started; idempotent."""

    def owns(self, handle: dict[str, Any]) -> bool:
        """Whether this executor instance started (and so can follow) the job."""
        return False

    def exited(self, handle: dict[str, Any]) -> bool:
        """Whether the job, one of this executor's own, has ended on its own (not stopped),
        before ``poll`` has said so: the controller, stopping, leaves it to be collected by
        the next one rather than stopping it and running it again. False when unknown."""
        return False

    def adopt(self, handle: dict[str, Any], job: TrialJob) -> Adoption:
        """Follow on a job an earlier controller started and stored ``handle`` for (this
        controller restarted, that one died): from now on ``poll``, ``stop`` and ``wait``
        treat it as one of this executor's own. Adopt a job that still runs, or one that
        ended while nobody watched when how it ended is known; refuse (saying why) one that
        is gone, which is then run again. Never adopt a stranger: a recycled pid, a job of
        the same name that is not this trial's. ``handle["started_at"]`` (seconds since the
        epoch) is when the job started, for its deadline."""
        return Adoption.refused(f"the {self.name or type(self).__name__} executor cannot follow a trial "
                                "an earlier controller started")

    def launched(self, job: TrialJob) -> dict[str, Any] | None:
        """The handle of a job ``launch`` started for ``job`` that the controller never
        stored (it died between launching the trial and storing it ``Running``), as the
        launch left it in the trial's directory (``write_handle``); None when there is
        none. The trial is then adopted, or run again, as any trial left running."""
        return read_handle(job.trial_dir)

    def started(self, trial_dir: Path) -> bool:
        """Whether a launch that left no handle (its controller died inside it) may have
        started anything: by default, whether it left anything in the trial's folder but
        the empty folders it makes first. One that did not is no attempt."""
        return trial_dir.exists() and any(not p.is_dir() for p in trial_dir.rglob("*"))

    def release(self, handle: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """The trial's end is stored: let go of what its job leaves behind (a Kubernetes
        executor deletes the finished job). Called only after the store write, so a
        controller that dies before it leaves the next one the job to learn the end from."""

    def recover(self, handle: dict[str, Any], trial_dir: Path | None = None) -> None:
        """Clean up after a job an earlier controller started (kill what is left);
        ``handle`` may be empty when that controller died before storing it."""
        if handle:
            self.stop(handle)

    def wait(self, timeout: float) -> None:
        """Block until a job may have changed state, at most ``timeout`` seconds."""
        time.sleep(timeout)

    def settle(self, timeout: float = 5.0) -> None:  # noqa: B027 - optional hook
        """Let stopped jobs finish stopping (escalating as needed) before returning."""

    def close(self) -> None:  # noqa: B027 - optional hook, most executors hold nothing
        """Release resources; running jobs are not stopped."""

    # -- logs: class methods, as reading a trial's output needs no live executor ------------

    @classmethod
    def logs(cls, handle: dict[str, Any], trial_dir: Path, tail: int | None = None,
             max_bytes: int = 1 << 20) -> str:
        """The trial's output (stdout and stderr), or its last ``tail`` lines, at most its
        last ``max_bytes`` bytes; ``""`` before there is any. The built-in executors all
        keep it in ``trial_dir/trial.log`` (local processes write it, Ray mirrors the
        actor's, Kubernetes copies the primary pod's log stream), so they read it there; an
        executor that keeps it elsewhere says so here."""
        from katib.logtail import read_log

        return read_log(trial_dir / "trial.log", tail, max_bytes)

    @classmethod
    def log_size(cls, handle: dict[str, Any], trial_dir: Path) -> int | None:
        """How many bytes of output there are so far, the offsets ``log_since`` counts in
        (``kubectl logs -f`` starts near the end); None when the trial has no log."""
        try:
            return (trial_dir / "trial.log").stat().st_size
        except FileNotFoundError:
            return None

    @classmethod
    def log_since(cls, handle: dict[str, Any], trial_dir: Path, offset: int,
                  max_bytes: int = 1 << 20) -> tuple[bytes, int] | None:
        """The output written since byte ``offset``, at most ``max_bytes`` of it, and the
        offset to read on from (``katib logs -f``); None when the trial has no log (it has
        not started here)."""
        try:
            if offset >= (trial_dir / "trial.log").stat().st_size:  # nothing new (a seek past what a file system holds fails)
                return b"", offset
            with open(trial_dir / "trial.log", "rb") as f:
                f.seek(offset)
                data = f.read(max_bytes)
        except FileNotFoundError:
            return None
        return data, offset + len(data)


HANDLE_FILE = "handle.json"


def write_handle(trial_dir: Path, handle: dict[str, Any]) -> None:
    """Leave a launch's handle in the trial's directory, for a controller that dies before
    it stores it (``Executor.launched``). Written in place: under the sandbox the trial
    sees the name pinned to an empty read-only file, which a rename would unpin."""
    with open(trial_dir / HANDLE_FILE, "w") as f:
        f.write(json.dumps(handle))


def read_handle(trial_dir: Path) -> dict[str, Any] | None:
    """The handle ``write_handle`` left, or None (none, or cut short by a kill)."""
    try:
        handle = json.loads((trial_dir / HANDLE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return handle if isinstance(handle, dict) and handle else None


class LaunchError(Exception):
    """The trial could not be started (bad command, missing program, …)."""


class Deferred(Exception):  # noqa: N818 - a signal, not a failure
    """Not now: the trial waits (pending) until running trials free what it needs."""
