"""Runs a trial's command and records how it ended, so that a controller which did not
start the trial (one restarted after a crash) can still tell success from failure: only a
parent can wait for a process's exit status, and after a restart the controller is not
the parent any more.

    python -I -S _wrap.py EXIT_FILE STATUS_FD GO_FD -- COMMAND [ARG...]

The command runs as this process's child, in its process group, with the environment,
working directory and output it was given, once the launching controller writes its go on
``GO_FD`` (a pipe). It writes it after writing the trial's processes down: a controller
killed before that leaves nothing running (this process reads EOF and exits 127, no exit
status recorded), so a restarted one never finds a trial that runs unrecorded. Starting it
reports on ``STATUS_FD`` (a pipe to the launching controller): nothing when it started,
the error text when it could not (a missing program), and the fd is closed either way.
When the command ends its exit status is written, atomically, to ``EXIT_FILE`` as Popen
reports it (``-9`` for SIGKILL), and this process ends the same way, so its own parent
sees the same status too.

Stand-alone on purpose (the standard library only, no site packages): it runs under
``-I -S`` and must start in a few milliseconds whatever the trial's environment holds.
"""

import os
import signal
import sys


def main() -> None:
    exit_file, status_fd, go_fd, argv = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[5:]
    # The whole group is signalled to stop a trial: this process waits for the command to
    # end rather than dying first (a caught signal is reset to the default in the child).
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)
    os.set_inheritable(status_fd, False)  # closed by the command's exec: the launcher reads EOF then
    go = os.read(go_fd, 1)
    os.close(go_fd)
    if go != b"1":
        os._exit(127)  # the launcher died before writing the trial down: nothing runs
    try:
        # Python ignores SIGPIPE and SIGXFSZ; the command gets the defaults, as Popen gives.
        pid = os.posix_spawnp(argv[0], argv, os.environ,
                              setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
    except OSError as exc:
        os.write(status_fd, (exc.strerror or str(exc)).encode())
        os._exit(127)
    os.close(status_fd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    tmp = f"{exit_file}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{code}\n")
    os.replace(tmp, exit_file)
    if code >= 0:
        os._exit(code)
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))  # no core of ours
    if -code not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
    os._exit(128 - code)


if __name__ == "__main__":
    main()
