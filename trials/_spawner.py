"""One warm process that forks the trials' wrappers, so that a local trial costs no Python
start-up besides its own.

Every local trial runs under ``_wrap.py``, which records its exit status for a controller
that adopts it after a crash. Started as a program, that wrapper is a second Python
start-up per trial (about 15 ms of CPU, two thirds of a trivial trial's own), on the same
cores as the trials. The spawner is that wrapper started once, under ``--serve``: each
launch sends it the command, environment, working directory and the trial's log, status
and go fds, and it answers with the pid of a forked wrapper, which runs the command as one
started by ``Popen`` does (its own session, its go awaited, its exit recorded).

The wrappers are the spawner's children, not the controller's: the controller follows them
as it follows adopted trials (``Orphan``: the pid with its start time, and the exit file),
which is what makes a restart able to adopt them too. One spawner serves the whole process
(every executor, every thread); it is started on first use, and it exits when this process
does. A spawner found dead before a request is sent is started again at once; one that
dies with a request in flight fails that launch attempt (``SpawnerLost``), and the launcher
goes again with fresh pipes, through a new spawner.
Where it cannot run (no ``fork``; or it would not start, or died on its first request:
then for ``RETRY_SECONDS``), ``spawn`` returns None and the launcher starts the wrapper
itself, as before. A forked copy of this process starts a
spawner of its own.
"""

from __future__ import annotations

import marshal
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from ._process import WRAPPER

_CHUNK = 65536
RETRY_SECONDS = 30.0  # after a spawner that would not start, launches start their own wrappers this long


class SpawnerLost(OSError):
    """The spawner died with a request in flight: the launch did not start its command (a
    wrapper it may have forked waits for a go that never comes, records ``not started`` in
    its exit file, and exits) and may go again (``LocalExecutor._start_again``)."""


class Spawner:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner = 0  # the pid that started it: a forked copy of this process starts its own
        self._retry_at = 0.0  # a spawner that would not start is not tried again before this
        self.broken = not (hasattr(os, "fork") and hasattr(socket, "send_fds") and hasattr(os, "pidfd_open"))

    def after_fork(self) -> None:
        """In a forked copy of this process: a lock another thread held at the fork would
        never be released here, and the socket is the parent's spawner's."""
        self._lock = threading.Lock()
        if self._sock is not None:
            self._sock.close()
        self._sock, self._proc = None, None

    def spawn(self, argv: list[str], env: dict[str, str], cwd: Path, exit_file: Path,
              log_fd: int, status_fd: int, go_fd: int) -> int | None:
        """The pid of a wrapper for ``argv``, waiting for its go; None where no spawner runs."""
        payload = marshal.dumps(([str(a) for a in argv], dict(env), os.path.abspath(cwd), str(exit_file.absolute())))
        with self._lock:
            for _ in range(2):  # a spawner that died (killed by hand, say) is started again once
                fresh = self._sock is None or self._owner != os.getpid()
                sock = self._ensure()
                if sock is None:
                    return None
                try:
                    socket.send_fds(sock, [str(len(payload)).encode()], [log_fd, status_fd, go_fd])
                except OSError:
                    self._stop()  # nothing was sent: a new spawner may take the request
                    continue
                try:
                    for at in range(0, len(payload), _CHUNK):
                        sock.send(payload[at:at + _CHUNK])
                    reply = sock.recv(256)
                except OSError:
                    reply = b""
                if not reply:
                    # It may have forked a wrapper already: never send the same fds twice.
                    # The launch fails; its go pipe closes and any such wrapper exits.
                    self._stop()
                    if fresh:  # one just started died on its first request: it cannot run here
                        self._back_off()
                    raise SpawnerLost("the trial spawner did not answer")
                if reply.isdigit():
                    return int(reply)
                raise OSError(reply.decode(errors="replace"))
            self._back_off()  # two spawners in a row died at once
            return None

    def _back_off(self) -> None:
        """Launches start their own wrappers for ``RETRY_SECONDS``."""
        self._retry_at = time.monotonic() + RETRY_SECONDS

    def _ensure(self) -> socket.socket | None:
        if self.broken or time.monotonic() < self._retry_at:
            return None
        if self._sock is not None and self._owner == os.getpid():
            return self._sock
        self._sock = None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", WRAPPER, "--serve", str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL, cwd="/", env={"PATH": os.defpath},
            )
        except OSError:
            ours.close()
            self._back_off()
            return None
        finally:
            theirs.close()
        ours.settimeout(30.0)  # a spawner that hangs fails the launch rather than the controller
        self._sock, self._owner = ours, os.getpid()
        return ours

    def _stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None and self._owner == os.getpid():
            self._proc.kill()
            self._proc.wait()
        self._proc = None


SPAWNER = Spawner()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=SPAWNER.after_fork)
