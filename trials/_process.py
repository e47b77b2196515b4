"""Process-group helpers shared by the local executors."""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path

from ._wrap import NOT_STARTED


def _stat(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from field 3 (the state) on, or None (no such process, not Linux)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode()
    except OSError:
        return None
    # Counted after the parenthesised command name (which may hold spaces).
    return data.rsplit(")", 1)[1].split()


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks (Linux), to tell a reused pid apart."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None  # field 22


def alive(pid: int, ticks: int | None = None) -> bool:
    """Whether ``pid`` runs and, when ``ticks`` is known, is the same process. A zombie
    has ended: one whose parent is not us may stay unreaped for a long time."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat(pid)
    if fields is None:
        return True  # no /proc: what kill said
    if fields[0] in ("Z", "X"):
        return False
    return ticks is None or int(fields[19]) == ticks


WRAPPER = str(Path(__file__).with_name("_wrap.py"))


def wrapped(argv: list[str], exit_file: Path, status_fd: int, go_fd: int) -> list[str]:
    """``argv`` run through the wrapper that records its exit status in ``exit_file``,
    once the launcher writes its go on ``go_fd``."""
    return [sys.executable, "-I", "-S", WRAPPER, str(exit_file.absolute()), str(status_fd), str(go_fd), "--", *argv]


def unstartable(program: str, env: dict[str, str], cwd: Path) -> str:
    """Why ``posix_spawnp`` would not find ``program`` (as the wrapper runs it, with ``env``
    in ``cwd``), or "" when it finds an executable file: checked before the wrapper starts,
    so a missing program fails the launch without waiting for the wrapper's report."""
    if "/" in program:
        candidates = [os.path.join(cwd, program)]
    else:
        candidates = [os.path.join(cwd, d or ".", program) for d in env.get("PATH", os.defpath).split(os.pathsep)]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return ""
    missing = "/" in program and not os.path.exists(candidates[0])
    return os.strerror(errno.ENOENT if missing or "/" not in program else errno.EACCES)


def unpassable(argv: list[str], env: dict[str, str]) -> str:
    """Why ``argv`` and ``env`` cannot be handed to a program (a NUL byte, a variable name
    that is empty or holds ``=``), or "": checked before the launch, so the trial fails
    saying which, not as a wrapper that could not start."""
    for i, arg in enumerate(argv):
        if "\0" in arg:
            return f"argument {i} ({arg[:40]!r}) holds a NUL byte"
    for name, value in env.items():
        if not name or "=" in name or "\0" in name:
            return f"environment variable name {name[:40]!r} is empty or holds '=' or a NUL byte"
        if "\0" in value:
            return f"environment variable {name} holds a NUL byte"
    return ""


def never_started(path: Path) -> bool:
    """Whether the wrapper recorded in ``path`` that its launcher never gave the go: its
    command never ran (the launching controller died, or its launch failed, first)."""
    try:
        return path.read_text().strip() == NOT_STARTED
    except OSError:
        return False


def read_exit(path: Path) -> int | None:
    """The exit status the wrapper recorded, or None if there is none (yet)."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class Orphan:
    """A trial's wrapper followed by a controller that is not its parent (one the spawner
    forked, or one an earlier controller started and this one adopted): the same
    ``pid``/``poll()`` face as ``Popen``. Its end is the pid vanishing (or turning
    zombie); its status is what the wrapper recorded, else SIGKILL's: a started wrapper
    records every end but a SIGKILL of its own (the only other unrecorded end, a launch
    that never gave the go, ran nothing)."""

    def __init__(self, pid: int, ticks: int | None, exit_file: Path) -> None:
        self.pid, self.ticks, self.exit_file = pid, ticks, exit_file
        self.returncode: int | None = None

    def running(self) -> bool:
        return alive(self.pid, self.ticks)

    def wait(self) -> int:
        """Block until it has ended (a pidfd where there is one, else polling)."""
        while self.poll() is None:
            try:
                fd = os.pidfd_open(self.pid)
            except (AttributeError, OSError):
                time.sleep(0.01)
                continue
            try:
                select.select([fd], [], [], 1.0)
            finally:
                os.close(fd)
        assert self.returncode is not None
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None and not self.running():
            code = read_exit(self.exit_file)
            self.returncode = -signal.SIGKILL if code is None else code
        return self.returncode


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a whole process group; False when it is already gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def owner_id() -> str:
    """This process as a controller owner: ``host:pid:start``."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{start_ticks(pid) or 0}"


def owner_alive(owner: str) -> bool:
    """Whether the controller that wrote ``owner`` still runs (other hosts: assume so)."""
    try:
        host, pid, ticks = owner.rsplit(":", 2)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True
    return alive(int(pid), int(ticks) or None)


def owner_text(owner: str) -> str:
    """An owner id (``host:pid:ticks``, ``owner_id``) as words: "process PID on HOST"."""
    host, _, rest = owner.rpartition(":")[0].rpartition(":")
    return f"process {rest} on {host}" if host and rest.isdigit() else owner


def describe_exit(code: int) -> tuple[str, str]:
    """(reason, message) for a non-zero exit status as Popen reports it."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (the out-of-memory killer sends SIGKILL)" if -code == signal.SIGKILL else ""
        return "Signaled", f"the trial process was killed by {name}{hint}"
    return "Error", f"the trial process exited with code {code}"
