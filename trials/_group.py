"""One local trial's processes, followed: reaped when they exit, stopped at the deadline,
escalated from SIGTERM to SIGKILL. The members are ``Orphan`` s: the wrappers this
controller's spawner forked (``_spawner.py``) and those an earlier controller started and
this one adopted, followed by pid, start time and exit file; or, where no spawner runs,
the ``Popen`` objects of the wrappers started here. All answer ``pid`` and ``poll()``, so
all are followed the same way."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Sequence

from ._process import Orphan, kill_group
from ._resources import Allocation

GRACE_SECONDS = 3.0


def exit_name(log_name: str) -> str:
    """Where a member's exit status is recorded: ``trial.exit`` beside ``trial.log``."""
    return log_name.rsplit(".", 1)[0] + ".exit"


def start_error(status_fd: int, timeout: float = 30.0) -> str:
    """What the wrapper says on ``status_fd``: nothing when the command started, else why not."""
    chunks = []
    while select.select([status_fd], [], [], timeout)[0]:
        chunk = os.read(status_fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


class ProcessGroup:
    """One trial: its process groups, led by the primary replica (the only member for a
    plain Job; master and workers for a distributed job). ``elapsed`` is how long it has
    run already (an adopted trial's deadline counts from its start, not from adoption)."""

    def __init__(self, members: Sequence[subprocess.Popen[bytes] | Orphan], deadline: float | None,
                 allocation: Allocation, elapsed: float = 0.0, statuses: Sequence[tuple[int, str]] = ()) -> None:
        self.members = members
        # Per member this controller started: the wrapper's status pipe and the program it
        # starts. Read once the trial has ended (the launch does not wait for the report):
        # ``launch_error`` says why a program could not start.
        self.statuses = list(statuses)
        self.launch_error = ""
        self.popen = members[0]
        self.allocation = allocation
        self.deadline = deadline
        self.deadline_at = time.monotonic() + deadline - elapsed if deadline is not None else None
        self.kill_at: float | None = None
        self.stopped = False
        self.timed_out = False
        self.code: int | None = None
        self.first_failure: int | None = None
        self.pidfds: list[int] = []
        if hasattr(os, "pidfd_open"):  # a pidfd is readable once its process exits, child or not
            try:
                for m in members:
                    self.pidfds.append(os.pidfd_open(m.pid))
            except OSError:  # one has ended already: the executor polls this trial instead
                self.close_pidfds()

    def close_pidfds(self) -> None:
        for fd in self.pidfds:
            os.close(fd)
        self.pidfds = []

    def close_fd(self) -> None:
        self.close_pidfds()
        self.close_fd_statuses()

    def _read_statuses(self, timeout: float) -> None:
        """What the wrappers reported, waiting up to ``timeout`` for each (``start_error``)."""
        for fd, program in self.statuses:
            error = start_error(fd, timeout)
            if error and not self.launch_error:
                self.launch_error = f"cannot start {program!r}: {error}"
        self.close_fd_statuses()

    def close_fd_statuses(self) -> None:
        for fd, _ in self.statuses:
            os.close(fd)
        self.statuses = []

    def check(self) -> bool:
        """Reap exited members, enforce the deadline, escalate a stop to SIGKILL; True
        when the trial has just ended (every member is gone)."""
        if self.code is not None:
            return False
        codes = [m.poll() for m in self.members]
        now = time.monotonic()
        if self.first_failure is None:
            self.first_failure = next((c for c in codes if c), None)
        if all(c is not None for c in codes):
            if not self.timed_out and self._ended_past_deadline():
                # It ran past its deadline, and ended before a check saw that: stopped at the
                # deadline by a controller that died before it ended (the SIGTERM handled, the
                # exit 0), or ending between two checks. It ran past activeDeadlineSeconds.
                self.timed_out = True
            # The replica that failed first says why, not the ones stopped because of it.
            self.code = self.first_failure if self.first_failure is not None else next((c for c in codes if c), 0)
            self._read_statuses(0)  # every wrapper has ended: nothing is left to wait for
            self.close_fd()
            for m in self.members:  # every replica is gone; nothing they started may linger
                kill_group(m.pid)
            return True
        if any(c for c in codes) and self.kill_at is None:
            self.terminate()  # one replica failed: the distributed job cannot go on
        if self.deadline_at is not None and now >= self.deadline_at and not self.timed_out:
            self.timed_out = True
            self.terminate()
        if self.kill_at is not None and now >= self.kill_at:
            for m in self.members:
                kill_group(m.pid)
            self.kill_at = None
        return False

    def _ended_past_deadline(self) -> bool:
        """Whether the primary's recorded end (its exit file's time: the wrapper writes it
        as the command ends) came after the deadline. Only a wrapper followed by its exit
        file (forked by the spawner, or adopted) says when it ended."""
        exit_file = getattr(self.popen, "exit_file", None)
        if self.deadline_at is None or exit_file is None:
            return False
        try:
            ended = os.stat(exit_file).st_mtime
        except OSError:
            return False
        return time.monotonic() - (time.time() - ended) > self.deadline_at

    def terminate(self) -> None:
        # A stop just after the launch waits for the commands to start: a wrapper ignores
        # SIGTERM only once it runs, and the signal must reach the command it starts.
        self._read_statuses(30.0)
        for m in self.members:
            kill_group(m.pid, signal.SIGTERM)
        self.kill_at = time.monotonic() + GRACE_SECONDS
