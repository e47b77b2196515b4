"""Runs a trial's command and records how it ended, so that a controller which did not
start the trial (one restarted after a crash) can still tell success from failure: only a
parent can wait for a process's exit status, and after a restart the controller is not
the parent any more.

    python -I -S _wrap.py EXIT_FILE STATUS_FD GO_FD -- COMMAND [ARG...]
    python -I -S _wrap.py --serve SOCKET_FD

The command runs as this process's child, in its process group, with the environment,
working directory and output it was given, once the launching controller writes its go on
``GO_FD`` (a pipe). It writes it after writing the trial's processes down: a controller
killed before that leaves nothing running (this process reads EOF, records ``not started``
in ``EXIT_FILE`` and exits 127), so a restarted one never finds a trial that runs
unrecorded, and knows that one cut short so never ran: it is no attempt. Starting it
reports on ``STATUS_FD`` (a pipe to the launching controller): nothing when it started,
the error text when it could not (a missing program; its exit status is then 127), and
the fd is closed either way. When the command ends its exit status is written,
atomically, to ``EXIT_FILE`` as Popen reports it (``-9`` for SIGKILL), and this process
ends the same way (a parent that waits for it, as ``Popen`` does, sees that status too).

``--serve`` is the same wrapper without a Python start-up per trial: a spawner that the
controller starts once (``trials._spawner``). Each request on the socket (a Unix
SOCK_SEQPACKET: a header with the payload's size and the trial's log, status and go fds,
then the payload, ``marshal`` ed ``(argv, env, cwd, exit_file)``) is answered with the pid
of a forked wrapper, which is a session leader with the log as stdout and stderr, exactly
as the first form started by ``Popen``. The spawner ignores SIGCHLD (its wrappers are
reaped by the kernel: the controller follows them by pid and exit file, as it follows
adopted ones) and SIGINT (a terminal's Ctrl-C is the controller's to handle), and exits
when the controller's end of the socket closes; running wrappers outlive it.

Stand-alone on purpose (the standard library only, no site packages): it runs under
``-I -S`` and must start in a few milliseconds whatever the trial's environment holds.
"""

import os
import signal
import sys

# Python ignores SIGPIPE and SIGXFSZ; the command gets the defaults, as Popen gives, and
# none of the handlers this process sets.
NOT_STARTED = "not started"  # in EXIT_FILE: the launcher never gave the go, nothing ran

_DEFAULTS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)


def _spawnp(argv: list, env: dict) -> int:
    """``posix_spawnp`` with the program looked up on ``env`` 's ``PATH``, as ``execvpe``
    does (``posix_spawnp`` reads this process's own ``PATH``; replacing this process's
    environment for each trial costs more than the lookup)."""
    program = argv[0]
    if "/" in program:
        return os.posix_spawn(program, argv, env, setsigdef=_DEFAULTS)
    denied = None
    for folder in env.get("PATH", os.defpath).split(os.pathsep):
        try:
            return os.posix_spawn(os.path.join(folder or ".", program), argv, env, setsigdef=_DEFAULTS)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError as exc:
            denied = exc
    raise denied or FileNotFoundError(2, os.strerror(2))


def run(argv: list, exit_file: str, status_fd: int, go_fd: int, cwd: str = "", env: dict | None = None) -> None:
    """Wait for the go, run ``argv`` (with ``env``, else this process's environment),
    record its exit status and end the same way."""
    # The whole group is signalled to stop a trial: this process waits for the command to
    # end rather than dying first (a caught signal is reset to the default in the child).
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)
    os.set_inheritable(status_fd, False)  # closed by the command's exec: the launcher reads EOF then
    go = os.read(go_fd, 1)
    os.close(go_fd)
    if go != b"1":  # the launcher died (or its launch failed) before writing the trial down
        try:
            _record(exit_file, NOT_STARTED)
        finally:
            os._exit(127)
    try:
        if cwd:
            os.chdir(cwd)
        pid = _spawnp(argv, env) if env is not None else os.posix_spawnp(argv[0], argv, os.environ, setsigdef=_DEFAULTS)
    except Exception as exc:  # OSError; ValueError for a NUL byte in an argument, an '=' in a name
        failed(exit_file, status_fd, _missing_interpreter(argv, env, exc) or exc)
    global _started
    _started = True  # from here on the command runs: its own status is the one to record
    os.close(status_fd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    _record(exit_file, code)
    if code >= 0:
        os._exit(code)
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))  # no core of ours
    if -code not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
    os._exit(128 - code)


_started = False  # whether ``run`` started the command (in this process)


def _missing_interpreter(argv: list, env: dict | None, exc: BaseException) -> str:
    """Why a program that exists did not start with ENOENT: the interpreter its ``#!`` line
    names is missing (the kernel's ENOENT reads as if the program itself were). "" otherwise."""
    if not isinstance(exc, FileNotFoundError):
        return ""
    program = argv[0]
    folders = ["."] if "/" in program else (env or os.environ).get("PATH", os.defpath).split(os.pathsep)
    for folder in folders:
        path = program if "/" in program else os.path.join(folder or ".", program)
        try:
            with open(path, "rb") as f:
                first = f.read(256).split(b"\n", 1)[0]
        except OSError:
            continue
        if not first.startswith(b"#!"):
            return ""
        if first.endswith(b"\r"):
            return f"its '#!' line ends with a carriage return (Windows line endings in {path!r}): convert it to Unix's"
        words = first[2:].split()
        name = words[0].decode(errors="replace") if words else ""
        return f"its interpreter {name!r} (the '#!' line of {path!r}) was not found"
    return ""


def failed(exit_file: str, status_fd: int, exc: BaseException | str) -> None:
    """The command could not start: say why on ``status_fd``, record 127 and exit so."""
    try:
        if isinstance(exc, str):
            text = exc
        else:
            text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        os.write(status_fd, text.encode(errors="replace")[:4096])
    except OSError:
        pass
    try:
        _record(exit_file, 127)
    finally:
        os._exit(127)


def _record(exit_file: str, code: int | str) -> None:
    tmp = f"{exit_file}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{code}\n")
    os.replace(tmp, exit_file)


def serve(sock_fd: int) -> None:
    """Fork a wrapper per request on ``sock_fd`` until the controller closes its end."""
    import fcntl
    import marshal
    import socket

    # No fd of ours may sit on 0, 1 or 2 (a controller with its output closed starts us
    # so): a forked wrapper puts the log there, and would close it again.
    if sock_fd <= 2:  # the socket itself on 0-2 (passed so): moved up, /dev/null in its place below
        moved = fcntl.fcntl(sock_fd, fcntl.F_DUPFD_CLOEXEC, 3)
        os.close(sock_fd)
        sock_fd = moved
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free fd: this one
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps our wrappers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=sock_fd)
    while True:
        try:
            header, fds, _, _ = socket.recv_fds(sock, 32, 3, socket.MSG_CMSG_CLOEXEC)
            if not header:
                return
            size, parts = int(header), []
            while size > 0:
                part = sock.recv(65536)
                if not part:
                    return
                parts.append(part)
                size -= len(part)
        except (OSError, ValueError):
            return
        try:
            argv, env, cwd, exit_file = marshal.loads(b"".join(parts))
            log, status_fd, go_fd = fds
        except (ValueError, TypeError, EOFError):
            for fd in fds:
                os.close(fd)
            sock.send(b"error: a malformed request")
            continue
        try:
            pid = os.fork()
        except OSError as exc:  # out of processes or memory: this launch fails, not the spawner
            pid, reply = -1, f"error: cannot fork a wrapper: {exc.strerror or exc}".encode()
        if pid == 0:
            try:
                sock.close()
                os.setsid()
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(log, 1)
                os.dup2(log, 2)
                os.close(null)
                os.close(log)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                run(argv, exit_file, status_fd, go_fd, cwd, env)
            except BaseException as exc:  # whatever it was, the trial records that it never ran
                if not _started:
                    failed(exit_file, status_fd, exc)
            finally:
                os._exit(127)
        for fd in fds:
            os.close(fd)
        try:
            sock.send(str(pid).encode() if pid > 0 else reply)
        except OSError:
            return


def main() -> None:
    if sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
        return
    run(sys.argv[5:], sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))


if __name__ == "__main__":
    main()
