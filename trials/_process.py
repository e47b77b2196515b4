"""Process-group helpers shared by the local executors."""

from __future__ import annotations

import os
import signal
import socket


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode()
    except OSError:
        return None
    # Field 22, counted after the parenthesised command name (which may hold spaces).
    fields = data.rsplit(")", 1)[1].split()
    return int(fields[19])


def alive(pid: int, ticks: int | None = None) -> bool:
    """Whether ``pid`` runs and, when ``ticks`` is known, is the same process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if ticks is not None:
        current = start_ticks(pid)
        return current is None or current == ticks
    return True


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
