"""The local executor: each trial is a process group on this machine.

The trial template's primary container runs as ``command + args`` (the image is not
used locally), in the experiment's working directory (the folder of its YAML file), with
the container's ``env`` plus ``KATIB_TRIAL_NAME``, ``KATIB_TRIAL_DIR`` and
``KATIB_PUSH_FILE``; stdout and stderr go to ``<trial dir>/trial.log``. The Python running
katib comes first on ``PATH``, so ``python3`` in a command is the same environment.
A Job's ``activeDeadlineSeconds`` is enforced; ``stop`` ends the whole process group
(SIGTERM, then SIGKILL after a grace period), so nothing the trial started outlives it.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from katib.spec import find_containers

from ._executor import Deferred, Executor, LaunchError, RunState, TrialJob
from ._process import alive, describe_exit, kill_group, start_ticks
from ._resources import Allocation, Ledger, NoCapacity, Resources

_SHARED_LEDGER: Ledger | None = None


def shared_ledger() -> Ledger:
    """One ledger per process: experiments run side by side never share a GPU."""
    global _SHARED_LEDGER
    if _SHARED_LEDGER is None:
        _SHARED_LEDGER = Ledger()
    return _SHARED_LEDGER

GRACE_SECONDS = 3.0


def primary_container(run_spec: dict[str, Any], name: str) -> dict[str, Any]:
    for container in find_containers(run_spec):
        if container.get("name") == name:
            return container
    raise LaunchError(f"no container named {name!r} in the trial's job")


def command_of(container: dict[str, Any], path_map: dict[str, str]) -> list[str]:
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    if not argv:
        raise LaunchError(
            f"container {container.get('name')!r} has no command or args: the local executor "
            "runs the container's command and args on this machine (the image is not used)"
        )
    return [_remap(a, path_map) for a in argv]


def _remap(text: str, path_map: dict[str, str]) -> str:
    for old in sorted(path_map, key=len, reverse=True):  # the longest path first
        text = text.replace(old, path_map[old])
    return text


def deadline_of(run_spec: dict[str, Any]) -> float | None:
    value = (run_spec.get("spec") or {}).get("activeDeadlineSeconds")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def trial_env(job: TrialJob, container: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    python_bin = str(Path(sys.executable).parent)
    env["PATH"] = python_bin + os.pathsep + env.get("PATH", "")
    for item in container.get("env") or []:
        if isinstance(item, dict) and item.get("name") and "value" in item:
            env[str(item["name"])] = _remap(str(item["value"]), job.path_map)
    env.update(job.env)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class _Proc:
    def __init__(self, popen: subprocess.Popen[bytes], deadline: float | None, allocation: Allocation) -> None:
        self.popen = popen
        self.allocation = allocation
        self.deadline = deadline
        self.deadline_at = time.monotonic() + deadline if deadline is not None else None
        self.kill_at: float | None = None
        self.stopped = False
        self.timed_out = False
        self.code: int | None = None
        self.pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            try:
                self.pidfd = os.pidfd_open(popen.pid)
            except OSError:
                self.pidfd = None

    def close_fd(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


class LocalExecutor(Executor):
    """Runs trials as local process groups.

    Exits are noticed without a thread per trial: ``wait`` blocks on the processes'
    pidfds (Linux), so the controller wakes the moment a trial ends; elsewhere it polls
    every 50 ms. Deadlines and the SIGTERM → SIGKILL escalation are checked on each wake.

    >>> ex = LocalExecutor()
    >>> handle = ex.launch(job)  # doctest: +SKIP
    >>> ex.poll(handle).finished  # doctest: +SKIP
    False
    """

    name = "local"

    def __init__(self, ledger: Ledger | None = None) -> None:
        self._procs: dict[int, _Proc] = {}
        self.ledger = ledger or shared_ledger()

    def launch(self, job: TrialJob) -> dict[str, Any]:
        container = primary_container(job.run_spec, job.primary_container)
        argv = command_of(container, job.path_map)
        env = trial_env(job, container)
        try:
            need = Resources.of_container(container)
            allocation = self.ledger.take(need)
        except NoCapacity:
            raise Deferred() from None
        except ValueError as exc:
            raise LaunchError(str(exc)) from None
        if self.ledger.inventory.gpus or need.gpu:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(allocation.gpus)  # its own GPUs, and only those
        try:
            return self._start(job, container, argv, env, allocation)
        except BaseException:
            self.ledger.give_back(allocation)
            raise

    def _start(self, job: TrialJob, container: dict[str, Any], argv: list[str], env: dict[str, str],
               allocation: Allocation) -> dict[str, Any]:
        job.trial_dir.mkdir(parents=True, exist_ok=True)
        for target in job.path_map.values():
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        cwd = job.workdir
        working_dir = container.get("workingDir")
        if working_dir and Path(str(working_dir)).is_dir():
            cwd = Path(str(working_dir))
        log = open(job.log_path, "ab")
        try:
            popen = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError as exc:
            raise LaunchError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
        finally:
            log.close()
        ticks = start_ticks(popen.pid)
        # Written at once, so a controller that dies before storing the handle can still
        # find (and kill) this process group when it recovers.
        (job.trial_dir / "pid").write_text(f"{popen.pid} {ticks or 0}\n")
        self._procs[popen.pid] = _Proc(popen, deadline_of(job.run_spec), allocation)
        return {"executor": self.name, "pid": popen.pid, "start": ticks, "log": str(job.log_path),
                "devices": allocation.to_dict()}

    def _check(self, proc: _Proc) -> None:
        """Reap an exited process, enforce its deadline, escalate a stop to SIGKILL."""
        if proc.code is not None:
            return
        code = proc.popen.poll()
        now = time.monotonic()
        if code is not None:
            proc.code = code
            proc.close_fd()
            kill_group(proc.popen.pid)  # the leader is gone; nothing it started may linger
            self.ledger.give_back(proc.allocation)
            return
        if proc.deadline_at is not None and now >= proc.deadline_at and not proc.timed_out:
            proc.timed_out = True
            self._terminate(proc)
        if proc.kill_at is not None and now >= proc.kill_at:
            kill_group(proc.popen.pid)
            proc.kill_at = None

    def _terminate(self, proc: _Proc) -> None:
        kill_group(proc.popen.pid, signal.SIGTERM)
        proc.kill_at = time.monotonic() + GRACE_SECONDS

    def owns(self, handle: dict[str, Any]) -> bool:
        return handle.get("pid") in self._procs

    def poll(self, handle: dict[str, Any]) -> RunState:
        proc = self._procs.get(handle.get("pid", -1))
        if proc is None:
            return RunState(True, reason="Lost", message="the trial process is not known to this controller")
        self._check(proc)
        if proc.code is None:
            return RunState.running()
        del self._procs[proc.popen.pid]
        code = proc.code
        if proc.timed_out:
            return RunState(True, reason="DeadlineExceeded", exit_code=code,
                            message=f"the trial ran past activeDeadlineSeconds ({proc.deadline:g}s) and was stopped")
        if proc.stopped:
            return RunState(True, reason="Killed", exit_code=code, message="the trial was stopped")
        if code == 0:
            return RunState(True, succeeded=True, reason="Completed", exit_code=0)
        reason, message = describe_exit(code)
        return RunState(True, reason=reason, message=message, exit_code=code)

    def stop(self, handle: dict[str, Any]) -> None:
        pid = handle.get("pid")
        proc = self._procs.get(pid or -1)
        if proc is not None:
            proc.stopped = True
            if proc.code is None and proc.kill_at is None:
                self._terminate(proc)
        elif pid and alive(pid, handle.get("start")):
            kill_group(pid)

    def recover(self, handle: dict[str, Any], trial_dir: Path | None = None) -> None:
        pid, ticks = handle.get("pid"), handle.get("start")
        if not pid and trial_dir is not None:
            try:
                pid_text, ticks_text = (trial_dir / "pid").read_text().split()
                pid, ticks = int(pid_text), int(ticks_text) or None
            except (OSError, ValueError):
                return
        if pid and alive(pid, ticks):
            kill_group(pid)

    def wait(self, timeout: float) -> None:
        procs = [p for p in self._procs.values() if p.code is None]
        now = time.monotonic()
        for p in procs:
            for at in (p.deadline_at, p.kill_at):
                if at is not None:
                    timeout = min(timeout, max(0.0, at - now))
        fds = [p.pidfd for p in procs if p.pidfd is not None]
        if len(fds) == len(procs) and fds:
            select.select(fds, [], [], timeout)
        elif procs:
            time.sleep(min(timeout, 0.05))
        else:
            time.sleep(timeout)
        for p in procs:
            self._check(p)

    def settle(self, timeout: float = GRACE_SECONDS + 1) -> None:
        """Wait for stopped trials to exit, killing any that outlive their grace period."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = [p for p in self._procs.values() if p.stopped and p.code is None]
            if not pending:
                return
            self.wait(0.05)
        for p in self._procs.values():
            if p.stopped and p.code is None:
                kill_group(p.popen.pid)

    def close(self) -> None:
        for p in self._procs.values():
            p.close_fd()
            if p.code is None:
                self.ledger.give_back(p.allocation)
        self._procs.clear()
