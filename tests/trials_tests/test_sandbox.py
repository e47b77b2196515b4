"""The local executor's sandbox: what a fenced-in trial can and cannot reach."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from katib.controller import Controller, admit
from tests.conftest import experiment, python_command
from trials import LocalExecutor, TrialJob
from trials._sandbox import Sandbox, problem, store_files

pytestmark = pytest.mark.skipif(problem() is not None, reason=f"no sandbox on this machine: {problem()}")


def _run(sqlite_store, tmp_path: Path, code: str, name: str = "demo", **spec):
    sandbox = Sandbox(tmp_path / "runs", hidden=store_files(tmp_path / "katib.db"))
    ctl = Controller(sqlite_store, LocalExecutor(clean_env=True, sandbox=sandbox), runs_root=tmp_path / "runs", tick=0.05)
    doc = experiment(name=name, command=python_command(code), maxTrialCount=1, parallelTrialCount=1, **spec)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    t = sqlite_store.list_trials(rec.id)[0]
    folder = tmp_path / "runs" / rec.namespace / rec.name / t.name
    return t, folder, (folder / "trial.log").read_text()


def test_a_trial_sees_its_own_folder_and_nothing_of_the_store_other_runs_or_processes(sqlite_store, tmp_path):
    other = tmp_path / "runs" / "ns-b" / "exp" / "exp-1"
    other.mkdir(parents=True)
    (other / "trial.log").write_text("ns-b's secret")
    code = f"""
import os, katib
def attempt(what, fn):
    try:
        fn()
        print(what, "ALLOWED")
    except OSError as exc:
        print(what, "refused", type(exc).__name__)
attempt("read-db", lambda: open({str(tmp_path / 'katib.db')!r}, 'rb').read())
attempt("read-wal", lambda: open({str(tmp_path / 'katib.db-wal')!r}, 'rb').read())
attempt("read-other", lambda: open({str(other / 'trial.log')!r}).read())
attempt("list-runs", lambda: os.listdir({str(other.parent)!r}))
attempt("write-workdir", lambda: open({str(tmp_path / 'planted.py')!r}, 'w').write('x'))
attempt("write-other", lambda: open({str(other / 'planted')!r}, 'w').write('x'))
attempt("link-log", lambda: os.replace(os.environ['KATIB_TRIAL_DIR'] + '/x', os.environ['KATIB_TRIAL_DIR'] + '/trial.log')
        if os.symlink({str(tmp_path / 'katib.db')!r}, os.environ['KATIB_TRIAL_DIR'] + '/x') is None else None)
attempt("link-pid", lambda: os.replace(os.environ['KATIB_TRIAL_DIR'] + '/x', os.environ['KATIB_TRIAL_DIR'] + '/pid'))
open(os.environ['KATIB_TRIAL_DIR'] + '/own', 'w').write('mine')
open('/tmp/scratch', 'w').write('private')
print("processes", sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))
print("locks", os.listdir({str(tmp_path / 'katib.db-locks')!r}))  # a lock a trial took would stall ask and tell
katib.report_metrics({{'loss': 0.25}})
"""
    with sqlite_store.locked("ask-tell/default/x"):  # its folder and a file in it, as a server's ask leaves them
        pass
    t, folder, log = _run(sqlite_store, tmp_path, code)
    assert "locks []" in log, log
    assert t.state == "Succeeded" and t.objective == 0.25, log
    for what in ("read-db", "read-wal", "read-other", "list-runs", "write-workdir", "write-other", "link-log", "link-pid"):
        assert f"{what} refused" in log, log
    assert (folder / "own").read_text() == "mine"
    assert not (tmp_path / "planted.py").exists() and not (other / "planted").exists()
    assert not (folder / "trial.log").is_symlink() and not (folder / "pid").is_symlink()
    assert "processes [1, 2]" in log  # bwrap's init and the trial: no one else's
    assert (folder / "pid").read_text().split()  # the server's record, whole


def test_memory_past_the_limit_fails_the_trial_not_the_machine(sqlite_store, tmp_path):
    big = "b = bytearray(1 << 30); print('loss=1')"
    doc_limits = {"resources": {"limits": {"memory": "200Mi"}}}
    sandbox = Sandbox(tmp_path / "runs", hidden=store_files(tmp_path / "katib.db"))
    ctl = Controller(sqlite_store, LocalExecutor(clean_env=True, sandbox=sandbox), runs_root=tmp_path / "runs", tick=0.05)
    for name, code in (("big", big), ("small", "b = bytearray(50 << 20); print('loss=1')")):
        doc = experiment(name=name, command=python_command(code), maxTrialCount=1, parallelTrialCount=1)
        doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0].update(doc_limits)
        rec, _ = ctl.submit(admit(doc), tmp_path)
        ctl.run(rec.namespace, rec.name)
        t = sqlite_store.list_trials(rec.id)[0]
        log = (tmp_path / "runs" / "default" / name / t.name / "trial.log").read_text()
        if name == "big":
            assert t.state == "Failed" and "MemoryError" in log, log
        else:
            assert t.state == "Succeeded", log


def test_stop_gives_the_grace_period_then_ends_everything_the_trial_started(tmp_path):
    code = """
import os, signal, subprocess, sys, time
folder = os.environ['KATIB_TRIAL_DIR']
# A child that leaves the trial's process group and session, beating every 50 ms.
subprocess.Popen([sys.executable, '-c', 'import time\\nwhile True:\\n    open(%r, "w").write(str(time.time())); time.sleep(0.05)'
                  % (folder + '/beat')], start_new_session=True)
def term(*_):
    open(folder + '/graceful', 'w').write('yes')
    sys.exit(3)
signal.signal(signal.SIGTERM, term)
open(folder + '/ready', 'w').write('yes')
time.sleep(60)
"""
    executor = LocalExecutor(clean_env=True, sandbox=Sandbox(tmp_path / "runs"))
    job = TrialJob(name="demo-x", experiment="demo", namespace="default",
                   run_spec=experiment(command=python_command(code))["spec"]["trialTemplate"]["trialSpec"],
                   primary_container="main", workdir=tmp_path, trial_dir=tmp_path / "runs" / "default" / "demo" / "demo-x",
                   env={"KATIB_TRIAL_DIR": str(tmp_path / "runs" / "default" / "demo" / "demo-x")})
    folder = job.trial_dir
    handle = executor.launch(job)
    deadline = time.monotonic() + 30
    while not ((folder / "ready").exists() and (folder / "beat").exists()):
        assert time.monotonic() < deadline, (folder / "trial.log").read_text()
        time.sleep(0.05)
    executor.stop(handle)
    while not executor.poll(handle).finished:
        executor.wait(0.1)
    assert (folder / "graceful").read_text() == "yes"
    last = (folder / "beat").stat().st_mtime
    time.sleep(0.5)
    assert (folder / "beat").stat().st_mtime == last, "the child that left the group outlived the trial"
    assert not any(os.path.exists(f"/proc/{line.split()[0]}") and _not_zombie(int(line.split()[0]))
                   for line in (folder / "pid").read_text().splitlines())


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_without_bwrap_the_sandbox_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "bubblewrap" in (problem("bwrap-missing") or "")


def test_a_link_in_a_checkpoint_is_copied_as_a_link_not_as_what_it_points_to(sqlite_store, tmp_path):
    # PBT hands a trial's checkpoint folder down to the next generation: the server copies
    # it, outside the sandbox, so a link planted there must not be followed.
    code = (f"import os, pathlib\nd = pathlib.Path(os.environ['KATIB_CHECKPOINT_DIR'])\nleak = d / 'leak'\n"
            f"if leak.exists() and not leak.is_symlink() and leak.read_bytes().startswith(b'SQLite'):\n"
            f"    print('LEAKED')\n"
            f"if not leak.is_symlink():\n    leak.unlink(missing_ok=True)\n"
            f"    os.symlink({str(tmp_path / 'katib.db')!r}, leak)\nprint('loss=${{trialParameters.x}}')")
    doc = experiment(algorithm={"algorithmName": "pbt", "algorithmSettings": [
        {"name": "n_population", "value": "5"}, {"name": "truncation_threshold", "value": "0.2"},
        {"name": "random_state", "value": "1"}, {"name": "suggestion_trial_dir", "value": "/var/log/katib/checkpoints/"}]},
        command=python_command(code), maxTrialCount=10, parallelTrialCount=5)
    sandbox = Sandbox(tmp_path / "runs", hidden=store_files(tmp_path / "katib.db"))
    ctl = Controller(sqlite_store, LocalExecutor(clean_env=True, sandbox=sandbox), runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    trials = sqlite_store.list_trials(rec.id)
    assert len(trials) == 10 and all(t.state == "Succeeded" for t in trials)
    for t in trials:
        assert "LEAKED" not in (tmp_path / "runs" / "default" / "demo" / t.name / "trial.log").read_text()


def test_the_trials_environment_cannot_choose_what_runs_outside_the_sandbox(sqlite_store, tmp_path):
    """An ``env`` and a ``prlimit`` planted on the PATH a trial sets, and a loader variable:
    none may act before the fence is up (the sandbox's own programs come from the server's
    PATH, the loader's variables are set only inside), yet the trial sees its environment."""
    planted = tmp_path / "work" / "bin"  # e.g. what an earlier trial of the tenant left
    planted.mkdir(parents=True)
    escaped = tmp_path / "escaped"
    for tool in ("env", "prlimit", "bwrap"):
        (planted / tool).write_text(f"#!/bin/sh\necho {tool} >> {escaped}\n")
        (planted / tool).chmod(0o755)
    code = ("import os; print('inside', os.environ['LD_LIBRARY_PATH'], os.environ['TMPDIR'], os.environ['PATH'])\n"
            "print('loss=1')")
    sandbox = Sandbox(tmp_path / "runs", hidden=store_files(tmp_path / "katib.db"))
    ctl = Controller(sqlite_store, LocalExecutor(clean_env=True, sandbox=sandbox), runs_root=tmp_path / "runs", tick=0.05)
    doc = experiment(name="envy", command=python_command(code), maxTrialCount=1, parallelTrialCount=1)
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "PATH", "value": f"{planted}:/usr/bin:/bin"},
        {"name": "LD_LIBRARY_PATH", "value": "/nowhere/lib"}, {"name": "TMPDIR", "value": "/tmp/mine"}]
    rec, _ = ctl.submit(admit(doc), tmp_path / "work")
    ctl.run(rec.namespace, rec.name)
    t = sqlite_store.list_trials(rec.id)[0]
    log = (tmp_path / "runs" / rec.namespace / rec.name / t.name / "trial.log").read_text()
    assert not escaped.exists(), f"ran outside the sandbox: {escaped.read_text()}"
    assert t.state == "Succeeded", log
    assert f"inside /nowhere/lib /tmp/mine {planted}:/usr/bin:/bin" in log


def test_the_loader_variables_are_set_only_inside():
    from trials._sandbox import split_env

    outside, inside = split_env({"PATH": "/bin", "LD_PRELOAD": "/x.so", "LD_AUDIT": "/a.so", "GLIBC_TUNABLES": "t",
                                 "MALLOC_ARENA_MAX": "2", "GCONV_PATH": "/g", "HOME": "/h", "OLD_LD": "kept"})
    assert outside == {"PATH": "/bin", "HOME": "/h", "OLD_LD": "kept"}
    assert inside == {"LD_PRELOAD": "/x.so", "LD_AUDIT": "/a.so", "GLIBC_TUNABLES": "t", "MALLOC_ARENA_MAX": "2",
                      "GCONV_PATH": "/g"}


def _fenced_trial(sqlite_store, tmp_path: Path, code: str, name: str = "fenced", **container) -> tuple[str, str]:
    sandbox = Sandbox(tmp_path / "runs", hidden=store_files(tmp_path / "katib.db"))
    ctl = Controller(sqlite_store, LocalExecutor(clean_env=True, sandbox=sandbox), runs_root=tmp_path / "runs", tick=0.05)
    doc = experiment(name=name, command=python_command(code), maxTrialCount=1, parallelTrialCount=1)
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0].update(container)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    t = sqlite_store.list_trials(rec.id)[0]
    return t.state, (tmp_path / "runs" / rec.namespace / rec.name / t.name / "trial.log").read_text()


def test_a_trials_own_cuda_visible_devices_does_not_lift_its_memory_limit(sqlite_store, tmp_path):
    """GPU access (the device nodes, and no address-space limit, which CUDA cannot live
    under) follows the GPUs the trial was given, not a CUDA_VISIBLE_DEVICES of its own."""
    code = "import resource; print('as', resource.getrlimit(resource.RLIMIT_AS)[0]); print('loss=1')"
    state, log = _fenced_trial(sqlite_store, tmp_path, code, resources={"limits": {"memory": "200Mi"}},
                               env=[{"name": "CUDA_VISIBLE_DEVICES", "value": "0"}])
    assert state == "Succeeded" and f"as {200 << 20}" in log, log


def test_whether_a_working_folder_exists_outside_the_fence_is_not_told(sqlite_store, tmp_path):
    """workingDir is looked up inside the sandbox: an existing folder of another namespace's
    runs and a missing one behave alike, the experiment's folder (it used to fail the trial
    for the one and fall back for the other)."""
    other = tmp_path / "runs" / "ns-b" / "victim"
    other.mkdir(parents=True)
    outcomes = []
    for name, folder in (("one", other), ("two", tmp_path / "runs" / "ns-b" / "nothing-here")):
        state, log = _fenced_trial(sqlite_store, tmp_path, "import os; print(os.getcwd()); print('loss=1')",
                                   name=name, workingDir=str(folder))
        outcomes.append((state, log))
    assert outcomes[0] == outcomes[1] == ("Succeeded", f"{tmp_path}\nloss=1\n"), outcomes
    visible = tmp_path / "visible"  # a folder the trial may see is its working folder
    visible.mkdir()
    state, log = _fenced_trial(sqlite_store, tmp_path, "import os; print(os.getcwd()); print('loss=1')",
                               name="three", workingDir=str(visible))
    assert (state, log) == ("Succeeded", f"{visible}\nloss=1\n")


def test_a_trial_cannot_write_the_kernels_settings_or_read_its_keys(sqlite_store, tmp_path):
    """A fresh /proc is writable where a file checks only its writer's uid: a server run as
    root (the trial's root is root outside too) let a trial write kernel.core_pattern (a
    command the host runs as root on any crash) and /proc/sysrq-trigger. Fenced as container
    runtimes fence it: /proc/sys read-only, /proc/keys and the like masked."""
    code = """
import os
for path in ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/pid_max", "/proc/sysrq-trigger"):
    if os.path.exists(path):
        try:
            open(path, "w").close()
            print(path, "ALLOWED")
        except OSError as exc:
            print(path, "refused", exc.errno)
try:
    print("keys", repr(open("/proc/keys").read()))
except OSError as exc:
    print("keys refused", exc.errno)
print("loss=0.5")
"""
    t, _, log = _run(sqlite_store, tmp_path, code)
    assert t.state == "Succeeded", log
    assert "/proc/sys/kernel/core_pattern refused" in log and "ALLOWED" not in log, log
    assert "keys refused" in log or "keys ''" in log, log


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "aarch64"), reason="the keyring calls' numbers are known for two")
def test_a_trial_cannot_use_the_kernels_keyrings(sqlite_store, tmp_path):
    """Keyrings are not files, and no namespace replaces them: every trial inherited the
    server's session keyring (a systemd service has one), where one tenant's trial read,
    planted and deleted another's keys, or filled the user's key quota so that every
    other trial's launch failed. As Docker's default profile does, the sandbox's seccomp
    filter refuses add_key, request_key and keyctl (EPERM)."""
    add_key, keyctl = {"x86_64": (248, 250), "aarch64": (217, 219)}[os.uname().machine]
    code = f"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
L = ctypes.c_long
r = libc.syscall(L({keyctl}), L(0), L(-3), L(1))  # KEYCTL_GET_KEYRING_ID of the session keyring
print("keyctl", r, ctypes.get_errno())
r = libc.syscall(L({add_key}), b"user", b"planted", b"x", ctypes.c_size_t(1), L(-3))
print("add_key", r, ctypes.get_errno())
print("loss=0.5")
"""
    t, _, log = _run(sqlite_store, tmp_path, code)
    assert t.state == "Succeeded", log
    assert "keyctl -1 1" in log and "add_key -1 1" in log, log  # EPERM


def test_a_trial_whose_working_folder_is_a_home_folder_is_not_launched(tmp_path):
    """A `katib run` started in ~ stores ~ as the experiment's folder; a server that resumed
    it bound ~ into each sandboxed trial, keys and all. The launch is refused, saying why."""
    from trials import LaunchError

    sandbox = Sandbox(tmp_path / "runs")
    job = TrialJob(name="demo-x", experiment="demo", namespace="default",
                   run_spec=experiment()["spec"]["trialTemplate"]["trialSpec"], primary_container="main",
                   workdir=Path.home(), trial_dir=tmp_path / "runs" / "default" / "demo" / "demo-x")
    with pytest.raises(LaunchError, match="working folder .* with its keys, which trials would see"):
        sandbox.command(job, ["true"])
