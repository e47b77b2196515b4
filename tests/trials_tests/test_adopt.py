"""A restarted controller's local executor adopts the trials an earlier one started: it
follows them on while they run (the same process, never a recycled pid), learns how they
ended though it is not their parent, enforces their deadline from their start, stops
them, and holds their GPUs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trials import Inventory, LaunchError, Ledger, LocalExecutor, Resources, TrialJob
from trials._process import alive, read_exit, unstartable


def _job(tmp_path: Path, code: str, deadline: float | None = None, gpus: int = 0, name: str = "t-1") -> TrialJob:
    container = {"name": "main", "image": "x", "command": [sys.executable, "-c", code]}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    spec: dict = {"template": {"spec": {"containers": [container]}}}
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return TrialJob(name=name, experiment="e", namespace="default", run_spec={"spec": spec},
                    primary_container="main", workdir=tmp_path, trial_dir=tmp_path / "runs" / name)


def _ledger(gpus=()) -> Ledger:
    return Ledger(Inventory(cpus=8, memory=0, gpus=list(gpus)))


def _until_finished(ex: LocalExecutor, handle: dict, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ex.wait(0.2)
        state = ex.poll(handle)
        if state.finished:
            return state
    raise AssertionError("the trial did not end")


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@pytest.mark.parametrize(("code", "succeeded", "reason", "exit_code"), [
    ("import time; time.sleep(0.8); print('loss=1')", True, "Completed", 0),
    ("import sys, time; time.sleep(0.8); sys.exit(3)", False, "Error", 3),
    ("import os, signal, time; time.sleep(0.8); os.kill(os.getpid(), signal.SIGKILL)", False, "Signaled", -9),
])
def test_an_adopted_trial_is_followed_to_its_end_and_its_exit_status_known(tmp_path, code, succeeded, reason, exit_code):
    job = _job(tmp_path, code)
    first = LocalExecutor(ledger=_ledger())
    handle = first.launch(job)  # then its controller "dies": nobody waits for the process
    second = LocalExecutor(ledger=_ledger())
    assert second.adopt(handle, job)
    assert second.owns(handle) and not second.poll(handle).finished
    state = _until_finished(second, handle)
    assert (state.succeeded, state.reason, state.exit_code) == (succeeded, reason, exit_code)
    assert not alive(handle["pid"], handle["start"])


def test_a_trial_that_ended_while_no_controller_watched_is_adopted_with_its_end(tmp_path):
    job = _job(tmp_path, "import sys; sys.exit(5)")
    first = LocalExecutor(ledger=_ledger())
    handle = first.launch(job)
    # Ended: its wrapper recorded the exit and is gone (it records, then exits: a poll in
    # between rightly sees it still running, which raced here once in CI).
    _wait_for(lambda: (job.trial_dir / "trial.exit").exists() and not alive(handle["pid"], handle["start"]))
    second = LocalExecutor(ledger=_ledger())
    assert second.adopt(handle, job)
    state = second.poll(handle)
    assert state.finished and state.exit_code == 5 and "exited with code 5" in state.message


def test_what_is_gone_or_is_somebody_else_is_refused(tmp_path):
    job = _job(tmp_path, "import time; time.sleep(30)")
    first = LocalExecutor(ledger=_ledger())
    handle = first.launch(job)
    second = LocalExecutor(ledger=_ledger())
    # The same pid with another start time is a recycled pid: never adopted.
    refusal = second.adopt({**handle, "start": handle["start"] + 1}, job)
    assert not refusal and "gone" in refusal.reason
    # A handle of a katib that did not record exit statuses cannot be followed.
    assert not second.adopt({k: v for k, v in handle.items() if k != "exit"}, job)
    first.stop(handle)
    first.settle()
    first.poll(handle)
    (job.trial_dir / "trial.exit").unlink()  # killed with its wrapper: no record of its end
    refusal = second.adopt(handle, job)
    assert not refusal and refusal.reason == "its processes are gone and left no exit status"


# A controller that dies inside a launch: before it writes the trial's processes down, or
# after (the handle is left in the trial's folder) but before it gives them their go.
_DIE_IN_LAUNCH = """
import os, sys
from pathlib import Path
from tests.trials_tests.test_adopt import _job, _ledger
from trials import LocalExecutor

record = LocalExecutor._record
def die(self, *args):
    if sys.argv[2] == "after":
        record(self, *args)
    os._exit(9)
if sys.argv[2] == "spawning":  # the log is open, no wrapper forked yet
    import trials._local
    trials._local.SPAWNER.spawn = lambda *args: os._exit(9)
else:
    LocalExecutor._record = die
LocalExecutor(ledger=_ledger()).launch(_job(Path(sys.argv[1]), "open('ran', 'w').close()"))
"""


@pytest.mark.parametrize("point", ["spawning", "before", "after"])
def test_a_launch_cut_short_before_its_go_ran_nothing_and_is_no_attempt(tmp_path, point):
    repo = Path(__file__).resolve().parents[2]
    died = subprocess.run([sys.executable, "-c", _DIE_IN_LAUNCH, str(tmp_path), point], cwd=repo, timeout=60)
    assert died.returncode == 9
    job = _job(tmp_path, "open('ran', 'w').close()")
    if point != "spawning":  # a wrapper was forked: it read EOF, and says so
        _wait_for(lambda: (job.trial_dir / "trial.exit").exists())
    assert (job.trial_dir / "trial.log").exists()  # the launch left files, but started nothing
    ex = LocalExecutor(ledger=_ledger())
    assert not ex.started(job.trial_dir)
    handle = ex.launched(job)
    if point == "after":
        assert handle is not None
        refusal = ex.adopt(handle, job)
        assert not refusal and not refusal.ran and refusal.reason == "its launch was cut short before its command started"
    else:
        assert handle is None
    assert not (tmp_path / "ran").exists()
    # Once its command started, a launch is an attempt, whatever its end.
    handle = ex.launch(job)
    _until_finished(ex, handle)
    assert (tmp_path / "ran").exists() and ex.started(job.trial_dir)


def test_an_adopted_trial_is_stopped_with_everything_it_started(tmp_path):
    # The trial starts a grandchild in its group; stopping the adopted trial ends both.
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "open('child', 'w').write(str(p.pid)); time.sleep(60)")
    job = _job(tmp_path, code)
    handle = LocalExecutor(ledger=_ledger()).launch(job)
    _wait_for(lambda: (tmp_path / "child").exists() and (tmp_path / "child").read_text())
    child = int((tmp_path / "child").read_text())
    second = LocalExecutor(ledger=_ledger())
    assert second.adopt(handle, job)
    second.stop(handle)
    state = _until_finished(second, handle)
    assert state.reason == "Killed"
    assert not alive(handle["pid"], handle["start"])
    _wait_for(lambda: not alive(child))


def test_an_adopted_trial_keeps_its_deadline_counted_from_its_start(tmp_path):
    job = _job(tmp_path, "import time; time.sleep(60)", deadline=2)
    handle = LocalExecutor(ledger=_ledger()).launch(job)
    time.sleep(1.2)
    second = LocalExecutor(ledger=_ledger())
    assert second.adopt(handle, job)
    adopted_at = time.monotonic()
    state = _until_finished(second, handle)
    assert state.reason == "DeadlineExceeded" and state.exit_code == -signal.SIGTERM
    assert time.monotonic() - adopted_at < 1.8  # 2 s from its start, not from adoption


def test_a_trial_stopped_at_its_deadline_and_adopted_after_it_ended_still_exceeded_it(tmp_path):
    """The deadline's SIGTERM sent, the controller dies; the trial handles the signal and
    exits 0; the next controller adopted that recorded exit as a success (a crash review:
    10 of 10), where the uninterrupted run fails it DeadlineExceeded."""
    code = ("import signal, sys, time\n"
            "def done(*_):\n"
            "    time.sleep(0.4); print('loss=1'); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, done)\n"
            "time.sleep(60)\n")
    job = _job(tmp_path, code, deadline=1)
    first = LocalExecutor(ledger=_ledger())
    handle = first.launch(job)
    deadline = time.monotonic() + 20
    while not first._procs[handle["pid"]].timed_out:  # the deadline's stop is sent: then the controller is gone
        assert time.monotonic() < deadline
        first.wait(0.1)
        first.poll(handle)
    time.sleep(1.5)  # the trial wraps up and exits 0 with no controller
    assert read_exit(Path(handle["exit"])) == 0
    second = LocalExecutor(ledger=_ledger())
    assert second.adopt(handle, job)
    state = _until_finished(second, handle)
    assert state.reason == "DeadlineExceeded" and not state.succeeded, state


def test_an_adopted_trial_keeps_its_gpus(tmp_path):
    job = _job(tmp_path, "import time; time.sleep(1)", gpus=1)
    handle = LocalExecutor(ledger=_ledger(["0", "1"])).launch(job)
    assert handle["devices"]["gpus"] == ["0"]
    ledger = _ledger(["0", "1"])
    second = LocalExecutor(ledger=ledger)
    assert second.adopt(handle, job)
    other = second.launch(_job(tmp_path, "pass", gpus=1, name="t-2"))
    assert other["devices"]["gpus"] == ["1"]  # not the adopted trial's GPU
    _until_finished(second, handle)
    _until_finished(second, other)
    assert ledger.take(Resources(gpu=2)).gpus == ["0", "1"]  # both given back at the end


def test_a_missing_program_still_fails_the_launch(tmp_path):
    job = _job(tmp_path, "")
    job.run_spec["spec"]["template"]["spec"]["containers"][0]["command"] = ["no-such-program-katib"]
    with pytest.raises(LaunchError, match="cannot start 'no-such-program-katib': No such file or directory"):
        LocalExecutor(ledger=_ledger()).launch(job)


def test_a_program_found_that_cannot_run_fails_the_trial_at_its_poll(tmp_path):
    # The launch does not wait for the wrapper's report that the command started: a file
    # that is executable but no program is found by the check before the spawn, and its
    # start fails in the wrapper; the poll after its end says so, as the launch used to.
    program = tmp_path / "not-a-program"
    program.write_bytes(b"\x00\x01garbage, no #! line\n")
    program.chmod(0o755)
    job = _job(tmp_path, "")
    job.run_spec["spec"]["template"]["spec"]["containers"][0]["command"] = [str(program)]
    ex = LocalExecutor(ledger=_ledger())
    handle = ex.launch(job)
    state = _until_finished(ex, handle)
    assert (state.finished, state.succeeded, state.reason) == (True, False, "LaunchFailed")
    assert state.message == f"cannot start {str(program)!r}: Exec format error"
    assert not ex._procs  # its pipes and pidfds are closed with it


def test_a_missing_program_is_found_missing_before_anything_starts(tmp_path):
    (tmp_path / "plain-file").write_text("x")
    env = {"PATH": f"{tmp_path}:/no/such/dir"}
    assert unstartable(sys.executable, env, tmp_path) == ""
    assert unstartable("python3", {"PATH": str(Path(sys.executable).parent)}, tmp_path) == ""
    assert unstartable("./plain-file", env, tmp_path) == "Permission denied"
    assert unstartable("plain-file", env, tmp_path) == "No such file or directory"
    assert unstartable("./nothing", env, tmp_path) == "No such file or directory"
    job = _job(tmp_path, "")
    job.run_spec["spec"]["template"]["spec"]["containers"][0]["command"] = ["./plain-file"]
    with pytest.raises(LaunchError, match="cannot start './plain-file': Permission denied"):
        LocalExecutor(ledger=_ledger()).launch(job)
    assert not (job.trial_dir / "trial.log").exists()  # nothing was started
