"""Local trials' wrappers are forked by one warm spawner (``trials._spawner``), not each
started as a Python program: the trial runs as before (its environment, folder, log,
session and exit status), the spawner comes back if it is killed, and it leaves with its
controller while the trials it forked run on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trials import Inventory, LaunchError, Ledger, LocalExecutor, TrialJob
from trials._group import start_error
from trials._process import WRAPPER, alive, read_exit
from trials._spawner import SPAWNER, Spawner


def _job(tmp_path: Path, code: str, env: dict[str, str] | None = None, name: str = "t-1") -> TrialJob:
    container = {"name": "main", "image": "x", "command": [sys.executable, "-c", code],
                 "env": [{"name": k, "value": v} for k, v in (env or {}).items()]}
    return TrialJob(name=name, experiment="e", namespace="default",
                    run_spec={"spec": {"template": {"spec": {"containers": [container]}}}},
                    primary_container="main", workdir=tmp_path, trial_dir=tmp_path / "runs" / name)


def _run(ex: LocalExecutor, job: TrialJob, timeout: float = 30):
    handle = ex.launch(job)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ex.wait(0.2)
        state = ex.poll(handle)
        if state.finished:
            return handle, state
    raise AssertionError("the trial did not end")


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_a_trial_runs_under_a_wrapper_the_spawner_forked(tmp_path):
    code = "import os; print('loss=1'); print('sid', os.getsid(0), 'pgid', os.getpgid(0), 'cwd', os.getcwd());" \
           "print('var', os.environ.get('ONLY_MINE')); open('ppid', 'w').write(str(os.getppid()));" \
           "print('fds', sorted(int(f) for f in os.listdir('/proc/self/fd')))"
    ex = LocalExecutor(ledger=Ledger(Inventory(cpus=8, memory=0, gpus=[])))
    handle, state = _run(ex, _job(tmp_path, code, env={"ONLY_MINE": "yes"}))
    assert state.succeeded, state
    wrapper = handle["pid"]
    assert SPAWNER._proc is not None and SPAWNER._proc.poll() is None
    out = (tmp_path / "runs" / "t-1" / "trial.log").read_text()
    assert f"sid {wrapper} pgid {wrapper} cwd {tmp_path}" in out  # its own session, led by its wrapper
    assert "var yes" in out
    assert "fds [0, 1, 2, 3]" in out  # nothing of the spawner's or the controller's (3: the listing itself)
    assert int((tmp_path / "ppid").read_text()) == wrapper  # the command is the wrapper's child
    assert read_exit(Path(handle["exit"])) == 0


def test_the_wrappers_parent_is_the_spawner_and_exit_statuses_are_exact(tmp_path):
    ex = LocalExecutor(ledger=Ledger(Inventory(cpus=8, memory=0, gpus=[])))
    handle = ex.launch(_job(tmp_path, "import time, sys; time.sleep(0.5); sys.exit(7)"))
    assert SPAWNER._proc is not None
    assert _ppid(handle["pid"]) == SPAWNER._proc.pid  # no Python start-up of its own per trial
    deadline = time.monotonic() + 30
    while not (state := ex.poll(handle)).finished:
        assert time.monotonic() < deadline
        ex.wait(0.2)
    assert (state.succeeded, state.exit_code) == (False, 7)
    _, state = _run(ex, _job(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGTERM)", name="t-2"))
    assert state.exit_code == -signal.SIGTERM


def test_a_large_environment_crosses_in_pieces(tmp_path):
    env = {f"BIG{i}": str(i) * 100_000 for i in range(3)}  # above a SOCK_SEQPACKET message's size
    ex = LocalExecutor(ledger=Ledger(Inventory(cpus=8, memory=0, gpus=[])))
    code = "import os; print('loss', sum(len(os.environ[f'BIG{i}']) for i in range(3)), os.environ['BIG2'][-3:])"
    _, state = _run(ex, _job(tmp_path, code, env=env))
    assert state.succeeded
    assert "loss 300000 222" in (tmp_path / "runs" / "t-1" / "trial.log").read_text()


def test_a_killed_spawner_is_started_again(tmp_path):
    ex = LocalExecutor(ledger=Ledger(Inventory(cpus=8, memory=0, gpus=[])))
    _run(ex, _job(tmp_path, "print('loss=1')"))
    assert SPAWNER._proc is not None
    old = SPAWNER._proc.pid
    os.kill(old, signal.SIGKILL)
    SPAWNER._proc.wait()
    _, state = _run(ex, _job(tmp_path, "print('loss=2')", name="t-2"))
    assert state.succeeded
    assert SPAWNER._proc.pid != old
    assert not SPAWNER.broken


def test_the_spawner_leaves_with_its_controller_and_the_trial_runs_on(tmp_path):
    # A controller killed with SIGKILL: its spawner sees the socket close and exits; the
    # trial it forked runs to its end and records its exit status for the next controller.
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from trials import Inventory, Ledger, LocalExecutor, TrialJob
        from trials._spawner import SPAWNER
        tmp = Path({str(tmp_path)!r})
        container = {{"name": "main", "image": "x", "command": [sys.executable, "-c", "import time; time.sleep(1.5)"]}}
        job = TrialJob(name="t-1", experiment="e", namespace="default",
                       run_spec={{"spec": {{"template": {{"spec": {{"containers": [container]}}}}}}}},
                       primary_container="main", workdir=tmp, trial_dir=tmp / "runs" / "t-1")
        handle = LocalExecutor(ledger=Ledger(Inventory(cpus=8, memory=0, gpus=[]))).launch(job)
        print(SPAWNER._proc.pid, handle["pid"], handle["start"], flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parents[2])
    assert proc.stdout is not None
    spawner, wrapper, ticks = map(int, proc.stdout.readline().split())
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while alive(spawner):
        assert time.monotonic() < deadline, "the spawner outlived its controller"
        time.sleep(0.05)
    assert alive(wrapper, ticks)  # the trial runs on
    while alive(wrapper, ticks):
        assert time.monotonic() < deadline + 10
        time.sleep(0.05)
    assert read_exit(tmp_path / "runs" / "t-1" / "trial.exit") == 0


def test_the_program_is_looked_up_on_the_trials_own_path(tmp_path):
    # The spawner's own PATH is the system default: the trial's is the one that counts,
    # in order, past folders that hold a same-named file that is not executable.
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "mytool").write_text("#!/bin/sh\necho from-first\n")  # not executable: skipped
    tool = second / "mytool"
    tool.write_text("#!/bin/sh\necho loss=1 from-second\n")
    tool.chmod(0o755)
    container = {"name": "main", "image": "x", "command": ["mytool"],
                 "env": [{"name": "PATH", "value": f"{tmp_path / 'none'}:{first}:{second}:/usr/bin:/bin"}]}
    job = TrialJob(name="t-1", experiment="e", namespace="default",
                   run_spec={"spec": {"template": {"spec": {"containers": [container]}}}},
                   primary_container="main", workdir=tmp_path, trial_dir=tmp_path / "runs" / "t-1")
    _, state = _run(LocalExecutor(ledger=Ledger(Inventory(cpus=8, memory=0, gpus=[]))), job)
    assert state.succeeded, state
    assert "from-second" in (tmp_path / "runs" / "t-1" / "trial.log").read_text()


def _request(spawner: Spawner, tmp_path: Path, argv: list[str], env: dict[str, str] | None = None):
    """Ask ``spawner`` for a wrapper of ``argv``: (its pid, its status fd, its go fd, its exit file)."""
    exit_file = tmp_path / f"w{time.monotonic_ns()}.exit"
    status_r, status_w = os.pipe()
    go_r, go_w = os.pipe()
    with open(tmp_path / "w.log", "ab") as log:
        try:
            pid = spawner.spawn(argv, env or {"PATH": os.defpath}, tmp_path, exit_file, log.fileno(), status_w, go_r)
        except BaseException:
            for fd in (status_r, go_w):
                os.close(fd)
            raise
        finally:
            os.close(status_w)
            os.close(go_r)
    return pid, status_r, go_w, exit_file


def _go_and_wait(status_r: int, go_w: int, exit_file: Path) -> tuple[str, int | None]:
    """Give the go; what the wrapper reported on its status fd, and its recorded exit status."""
    os.write(go_w, b"1")
    os.close(go_w)
    report = start_error(status_r, 10.0)
    os.close(status_r)
    deadline = time.monotonic() + 10
    while read_exit(exit_file) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return report, read_exit(exit_file)


def test_a_command_the_forked_wrapper_cannot_hand_over_is_recorded_as_not_started(tmp_path):
    # A NUL byte in an argument makes posix_spawn raise ValueError, not OSError: the
    # wrapper says so and records 127, where it used to die unrecorded (read as SIGKILL).
    pid, status_r, go_w, exit_file = _request(SPAWNER, tmp_path, [sys.executable, "-c", "pass", "a\0b"])
    assert pid is not None
    report, code = _go_and_wait(status_r, go_w, exit_file)
    assert "null byte" in report
    assert code == 127


def test_an_argument_or_variable_no_program_can_take_fails_the_launch_naming_it(tmp_path):
    ex = LocalExecutor(ledger=Ledger(Inventory(cpus=8, memory=0, gpus=[])))
    with pytest.raises(LaunchError, match=r"'A=B' is empty or holds '='"):
        ex.launch(_job(tmp_path, "print('loss=1')", env={"A=B": "1"}))
    container = {"name": "main", "image": "x", "command": [sys.executable, "-c", "pass", "x\0y"]}
    job = TrialJob(name="t-2", experiment="e", namespace="default",
                   run_spec={"spec": {"template": {"spec": {"containers": [container]}}}},
                   primary_container="main", workdir=tmp_path, trial_dir=tmp_path / "runs" / "t-2")
    with pytest.raises(LaunchError, match="argument 3 .* holds a NUL byte"):
        ex.launch(job)


def test_a_failed_fork_fails_one_launch_and_the_spawner_serves_the_next(tmp_path):
    # The spawner's first fork fails (as when the system is out of processes): that launch
    # fails with the reason, the spawner lives on and forks the next wrapper.
    driver = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(WRAPPER).parent)!r})
        import _wrap
        real, calls = os.fork, []
        def fork():
            calls.append(1)
            if len(calls) == 1:
                raise BlockingIOError(11, "Resource temporarily unavailable")
            return real()
        os.fork = fork
        _wrap.serve(int(sys.argv[1]))
    """)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", driver, str(theirs.fileno())],
                            pass_fds=(theirs.fileno(),))
    theirs.close()
    ours.settimeout(30.0)
    spawner = Spawner()
    spawner._sock, spawner._proc, spawner._owner = ours, proc, os.getpid()
    try:
        with pytest.raises(OSError, match="cannot fork a wrapper: Resource temporarily unavailable"):
            _request(spawner, tmp_path, [sys.executable, "-c", "pass"])
        assert proc.poll() is None  # the spawner lives on
        pid, status_r, go_w, exit_file = _request(spawner, tmp_path, [sys.executable, "-c", "import sys; sys.exit(3)"])
        assert pid is not None
        assert _go_and_wait(status_r, go_w, exit_file) == ("", 3)
    finally:
        spawner._stop()


def test_a_spawner_that_will_not_start_is_tried_again_later_not_never(tmp_path, monkeypatch):
    spawner = Spawner()
    real = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: (_ for _ in ()).throw(OSError(11, "no")))
    assert _request(spawner, tmp_path, [sys.executable, "-c", "pass"])[0] is None  # the launcher starts its own
    monkeypatch.setattr(subprocess, "Popen", real)
    assert _request(spawner, tmp_path, [sys.executable, "-c", "pass"])[0] is None  # not at once
    monkeypatch.setattr(spawner, "_retry_at", time.monotonic() - 1, raising=False)  # the back-off is over
    try:
        pid, status_r, go_w, exit_file = _request(spawner, tmp_path, [sys.executable, "-c", "pass"])
        assert pid is not None
        assert _go_and_wait(status_r, go_w, exit_file) == ("", 0)
    finally:
        spawner._stop()


def test_a_forked_copy_of_the_controller_does_not_inherit_a_held_spawner_lock(tmp_path):
    _request(SPAWNER, tmp_path, [sys.executable, "-c", "pass"])  # a spawner runs: its socket is ours
    with SPAWNER._lock:  # another thread is launching at the moment of the fork
        pid = os.fork()
        if pid == 0:
            ok = SPAWNER._lock.acquire(timeout=5) and SPAWNER._sock is None
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_trial_that_ended_before_its_pidfd_opened_wakes_the_controller_at_once(tmp_path, monkeypatch):
    ex = LocalExecutor(ledger=Ledger(Inventory(cpus=8, memory=0, gpus=[])))
    handle = ex.launch(_job(tmp_path, "print('loss=1')"))
    group = ex._procs[handle["pid"]]
    group.popen.wait()
    for fd in group.pidfds:  # as when it ended before the launch could open them
        os.close(fd)
    group.pidfds = []
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail(f"slept {s} s for a trial that had ended"))
    ex.wait(5.0)
    assert ex.poll(handle).succeeded


def test_a_controller_with_its_output_closed_still_gets_its_trials_logs(tmp_path):
    # The spawner inherits closed fds 1 and 2: a log fd it receives must not land there.
    script = textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        from trials import Inventory, Ledger, LocalExecutor, TrialJob
        os.close(1); os.close(2)
        tmp = Path({str(tmp_path)!r})
        container = {{"name": "main", "image": "x", "command": [sys.executable, "-c", "print('loss=0.5')"]}}
        job = TrialJob(name="t-1", experiment="e", namespace="default",
                       run_spec={{"spec": {{"template": {{"spec": {{"containers": [container]}}}}}}}},
                       primary_container="main", workdir=tmp, trial_dir=tmp / "runs" / "t-1")
        ex = LocalExecutor(ledger=Ledger(Inventory(cpus=8, memory=0, gpus=[])))
        handle = ex.launch(job)
        while not (state := ex.poll(handle)).finished:
            ex.wait(0.2)
        (tmp / "done").write_text(repr((state.succeeded, state.exit_code)))
    """)
    subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], timeout=60, check=True)
    assert (tmp_path / "done").read_text() == "(True, 0)"
    assert "loss=0.5" in (tmp_path / "runs" / "t-1" / "trial.log").read_text()


def test_a_spawner_that_dies_on_its_first_request_fails_one_launch_then_steps_aside(tmp_path, monkeypatch):
    # An interpreter that cannot run the spawner: it starts, then dies without answering.
    # One launch fails (its request may have been taken); the next ones start their own
    # wrappers, where every one used to fail.
    dead = tmp_path / "dead.py"
    dead.write_text("import sys; sys.exit(3)\n")
    monkeypatch.setattr("trials._spawner.WRAPPER", str(dead))
    spawner = Spawner()
    with pytest.raises(OSError, match="did not answer"):
        _request(spawner, tmp_path, [sys.executable, "-c", "pass"])
    assert _request(spawner, tmp_path, [sys.executable, "-c", "pass"])[0] is None


def test_a_spawner_whose_socket_is_on_fd_1_still_gives_trials_their_output(tmp_path):
    # A controller with fd 1 closed hands the spawner its socket there: a forked wrapper
    # used to put the log on fd 1 and close it again.
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([sys.executable, "-I", "-S", WRAPPER, "--serve", "1"], stdout=theirs.fileno())
    theirs.close()
    ours.settimeout(30.0)
    spawner = Spawner()
    spawner._sock, spawner._proc, spawner._owner = ours, proc, os.getpid()
    try:
        pid, status_r, go_w, exit_file = _request(spawner, tmp_path, ["/bin/sh", "-c", "echo to-out; echo to-err >&2"])
        assert pid is not None
        assert _go_and_wait(status_r, go_w, exit_file) == ("", 0)
    finally:
        spawner._stop()
    log = (tmp_path / "w.log").read_text()
    assert "to-out" in log and "to-err" in log


def test_a_spawner_killed_with_a_launch_in_flight_costs_no_attempt(tmp_path, monkeypatch):
    """The spawner forks the trial's wrapper, then dies (SIGKILL) before it answers: the
    trial failed LaunchFailed ("the trial spawner did not answer") though its command never
    ran. The wrapper it forked sees its go pipe close and records "not started"; the launch
    then goes again (here, with the spawner stepping aside, started by the launcher) and
    the command runs once."""
    dying = tmp_path / "dying_spawner.py"
    dying.write_text(textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(WRAPPER).parent)!r})
        import _wrap
        real = os.fork
        def fork():
            pid = real()
            if pid:  # the spawner, with the wrapper forked: killed before it answers
                os._exit(9)
            return pid
        os.fork = fork
        _wrap.serve(int(sys.argv[2]))
    """))
    monkeypatch.setattr("trials._spawner.WRAPPER", str(dying))
    monkeypatch.setattr("trials._local.SPAWNER", Spawner())
    marks = tmp_path / "marks"
    ex = LocalExecutor(ledger=Ledger(Inventory(cpus=8, memory=0, gpus=[])))
    handle, state = _run(ex, _job(tmp_path, f"open({str(marks)!r}, 'a').write('ran\\n'); print('loss=1')"))
    assert state.succeeded, state
    assert marks.read_text() == "ran\n"
    assert read_exit(Path(handle["exit"])) == 0


def test_a_script_whose_interpreter_is_missing_says_so_not_that_it_is(tmp_path):
    # The kernel answers ENOENT for a '#!' interpreter that does not exist, which read as
    # if the script itself were missing ("No such file or directory" for a file that is
    # there). The trial's failure names the interpreter.
    script, state = _run_script(tmp_path, b"#!/nonexistent/python3\nprint('loss=1')\n")
    assert not state.succeeded
    assert "interpreter '/nonexistent/python3'" in state.message, state.message
    assert str(script) in state.message


def test_a_script_with_windows_line_endings_is_told_so(tmp_path):
    _, state = _run_script(tmp_path, b"#!/bin/sh\r\necho loss=1\r\n")
    assert not state.succeeded and "Windows line endings" in state.message, state.message


def _run_script(tmp_path: Path, content: bytes):
    """A trial whose command is an executable script of ``content``: (the script, how it ended)."""
    script = tmp_path / "train.sh"
    script.write_bytes(content)
    script.chmod(0o755)
    container = {"name": "main", "image": "x", "command": [str(script)]}
    job = TrialJob(name="t-1", experiment="e", namespace="default",
                   run_spec={"spec": {"template": {"spec": {"containers": [container]}}}},
                   primary_container="main", workdir=tmp_path, trial_dir=tmp_path / "runs" / "t-1")
    _, state = _run(LocalExecutor(ledger=Ledger(Inventory(cpus=8, memory=0, gpus=[]))), job)
    return script, state
