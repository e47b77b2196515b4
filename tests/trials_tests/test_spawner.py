"""Local trials' wrappers are forked by one warm spawner (``trials._spawner``), not each
started as a Python program: the trial runs as before (its environment, folder, log,
session and exit status), the spawner comes back if it is killed, and it leaves with its
controller while the trials it forked run on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from trials import Inventory, Ledger, LocalExecutor, TrialJob
from trials._process import alive, read_exit
from trials._spawner import SPAWNER


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
