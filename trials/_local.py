"""The local executor: each trial is a process group on this machine.

The trial template's primary container runs as ``command + args`` (the image is not
used locally), in the experiment's working directory (the folder of its YAML file), with
the container's ``env`` plus ``KATIB_TRIAL_NAME``, ``KATIB_TRIAL_DIR`` and
``KATIB_PUSH_FILE``; stdout and stderr go to ``<trial dir>/trial.log``. The Python running
katib comes first on ``PATH``, so ``python3`` in a command is the same environment.
A Job's ``activeDeadlineSeconds`` is enforced; ``stop`` ends the whole process group
(SIGTERM, then SIGKILL after a grace period), so nothing the trial started outlives it.
Each command runs under a small wrapper (``_wrap.py``) that writes its exit status to
``<trial dir>/trial.exit``: a restarted controller, not the trials' parent, adopts the
ones still running (pid *and* start time must match) and still learns how they ended.
The wrappers are forked by one warm process (``_spawner.py``), so a trial costs no Python
start-up besides its own.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from ._executor import (
    ADOPTED,
    HANDLE_FILE,
    Adoption,
    Deferred,
    Executor,
    LaunchError,
    RunState,
    TrialJob,
    write_handle,
)
from ._group import GRACE_SECONDS, ProcessGroup, exit_name
from ._members import (
    KEPT_VARIABLES,
    REPLICA_SPECS,
    THREAD_VARIABLES,
    Member,
    base_env,
    command_of,
    deadline_of,
    primary_container,
    replica_processes,
    trial_env,
)
from ._process import (
    Orphan,
    alive,
    kill_group,
    never_started,
    read_exit,
    start_ticks,
    unpassable,
    unstartable,
    wrapped,
)
from ._resources import Allocation, Ledger, NoCapacity, Resources
from ._sandbox import Sandbox, split_env
from ._spawner import SPAWNER, SpawnerLost

# The names other modules have imported from here, now in _members.py.
__all__ = [
    "GRACE_SECONDS", "KEPT_VARIABLES", "REPLICA_SPECS", "THREAD_VARIABLES", "LocalExecutor", "Member",
    "base_env", "command_of", "deadline_of", "kill_left", "left_running", "primary_container", "replica_processes", "shared_ledger",
    "trial_env",
]


def left_running(handle: dict[str, Any], trial_dir: Path | None = None) -> list[int]:
    """The pids of a local trial's processes (every replica's wrapper) that still run: the
    same processes, by pid and start time, never others that took their pids."""
    processes = [(r["pid"], r.get("start")) for r in handle.get("replicas", [])]
    if not processes and handle.get("pid"):
        processes = [(handle["pid"], handle.get("start"))]
    if not processes and trial_dir is not None:
        try:
            for line in (trial_dir / "pid").read_text().splitlines():
                pid_text, ticks_text = line.split()
                processes.append((int(pid_text), int(ticks_text) or None))
        except (OSError, ValueError):
            return []
    return [pid for pid, ticks in processes if pid and alive(pid, ticks)]


def kill_left(handle: dict[str, Any], trial_dir: Path | None = None) -> bool:
    """Kill what is left of a local trial no controller follows (every replica's process
    group); whether anything was."""
    pids = left_running(handle, trial_dir)
    for pid in pids:
        kill_group(pid)
    return bool(pids)


_SHARED_LEDGER: Ledger | None = None
LOST_SPAWNER_WAIT = 1.0  # seconds a launch cut short by a killed spawner waits for its stray wrapper's record


def reservation_key(namespace: str, experiment: str, trial: str) -> str:
    return f"{namespace}/{experiment}/{trial}"


def reserve_running(namespace: str, experiment: str, trials: list[tuple[str, dict[str, Any]]]) -> None:
    """Count, in this process's ledger, what the experiment's local trials that still run
    hold (``(name, handle)``), before any controller of a starting server launches:
    ``Ledger.reserve``. Its controller takes each over as it adopts it
    (``LocalExecutor.adopt``) and ends the rest (``release_reserved``)."""
    ledger = shared_ledger()
    for name, handle in trials:
        if handle.get("executor", "local") != "local" or not left_running(handle):
            continue
        ledger.reserve(reservation_key(namespace, experiment, name), held_by(handle, ledger, namespace))


def held_by(handle: dict[str, Any], ledger: Ledger, namespace: str) -> Allocation:
    """What a running trial's handle says it holds, of what ``ledger``'s machine has."""
    devices = handle.get("devices") or {}
    return Allocation.from_dict({**devices, "gpus": [g for g in devices.get("gpus") or [] if g in ledger.inventory.gpus]},
                                namespace)


def release_reserved(namespace: str, experiment: str) -> None:
    """End what ``reserve_running`` counted for the experiment and its controller did not
    take over (a trial it ran again, or stopped, or an experiment that failed to start)."""
    shared_ledger().release(reservation_key(namespace, experiment, ""))


def shared_ledger() -> Ledger:
    """One ledger per process: experiments run side by side never share a GPU."""
    global _SHARED_LEDGER
    if _SHARED_LEDGER is None:
        _SHARED_LEDGER = Ledger()
    return _SHARED_LEDGER


class LocalExecutor(Executor):
    """Runs trials as local process groups.

    Exits are noticed without a thread per trial: ``wait`` blocks on the processes'
    pidfds (Linux), so the controller wakes the moment a trial ends; elsewhere it polls
    every 50 ms. Deadlines and the SIGTERM → SIGKILL escalation are checked on each wake.

    ``clean_env``: a trial gets only its template's ``env``, katib's ``KATIB_*`` variables,
    ``PATH``, the locale and ``TZ`` (``HOME`` is its trial directory), none of this
    process's other variables; ``katib server`` runs trials so, ``katib run`` with
    ``--clean-env``. ``sandbox``: each process runs fenced in (``trials._sandbox``): it
    sees the system read-only, its experiment's folder read-only, its own trial folder,
    and nothing of the store, of other trials or of other tenants' processes; its memory
    limit is enforced. ``katib server --auth`` runs trials so. ``quota``: what one
    namespace's trials may request at once (``Ledger.take``).

    >>> ex = LocalExecutor(clean_env=True)
    >>> handle = ex.launch(job)  # doctest: +SKIP
    >>> ex.poll(handle).finished  # doctest: +SKIP
    False
    """

    name = "local"
    fences = "sandbox"

    def __init__(self, ledger: Ledger | None = None, clean_env: bool = False, sandbox: Sandbox | None = None,
                 quota: Resources | None = None) -> None:
        self._procs: dict[int, ProcessGroup] = {}
        self.ledger = ledger or shared_ledger()
        self.clean_env = clean_env
        self.sandbox = sandbox
        self.quota = quota  # what one namespace's trials may hold at once (katib server --namespace-quota)

    def launch(self, job: TrialJob) -> dict[str, Any]:
        members = replica_processes(job, self.clean_env)
        if job.custom_collector is not None:
            from ._custom import collector_member

            members.append(collector_member(job, self.clean_env))  # Katib's Custom collector, beside the trial
        need = Resources()
        try:
            for m in members:
                m.resources = Resources.of_container(m.container)
                need = need + m.resources
            allocation = self.ledger.take(need, job.namespace, self.quota)
        except NoCapacity as exc:
            raise Deferred(str(exc)) from None
        except ValueError as exc:
            raise LaunchError(str(exc)) from None
        gpus = list(allocation.gpus)
        for m in members:
            if self.ledger.inventory.gpus or need.gpu:
                mine, gpus = gpus[:m.resources.gpu], gpus[m.resources.gpu:]
                m.env["CUDA_VISIBLE_DEVICES"] = ",".join(mine)  # its own GPUs, and only those
        try:
            if self.sandbox is not None:
                self._fence(job, members)
            try:
                return self._start(job, members, allocation)
            except SpawnerLost:
                self._after_lost_spawner(job, members)
                return self._start(job, members, allocation)
        except BaseException:
            self.ledger.give_back(allocation)
            raise

    @staticmethod
    def _after_lost_spawner(job: TrialJob, members: list[Member]) -> None:
        """The spawner died (killed) with a launch's request in flight: nothing ran, so the
        launch goes again, once a wrapper it may have forked has seen its go pipe close and
        recorded ``not started`` in the exit file the next attempt's wrapper will write (at
        most ``LOST_SPAWNER_WAIT`` seconds: none may have been forked)."""
        exits = [job.trial_dir / exit_name(m.log_name) for m in members]
        deadline = time.monotonic() + LOST_SPAWNER_WAIT
        while not any(never_started(path) for path in exits) and time.monotonic() < deadline:
            time.sleep(0.01)

    def _fence(self, job: TrialJob, members: list[Member]) -> None:
        """Each member's command, run in the sandbox."""
        assert self.sandbox is not None
        logs = [m.log_name for m in members]
        # What the server reads and writes by name in the trial folder: the logs, the exit
        # records; and what the trial writes and the server reads: pushed and file metrics.
        protected = [*logs, *(f"{name.rsplit('.', 1)[0]}.exit{tmp}" for name in logs for tmp in ("", ".tmp")),
                     HANDLE_FILE]
        mapped = [Path(t) for t in job.path_map.values()]
        fsp = (job.collector_source or {}).get("fileSystemPath") or {}
        # A TensorFlowEvent collector reads a folder of event files (Katib's kind Directory).
        folders = fsp.get("kind") == "Directory" or (not fsp.get("kind") and job.collector == "TensorFlowEvent")
        writable = [Path(t) for t in [job.env.get("KATIB_PUSH_FILE")] if t] + ([] if folders else mapped)
        for m in members:
            working_dir = m.container.get("workingDir")
            # The wrapper, env and bwrap run outside with the trial's environment less what
            # the loader acts on (a trial's LD_PRELOAD would run there unfenced).
            m.env, inside = split_env(m.env)
            m.argv = self.sandbox.command(job, m.argv, memory=m.resources.memory,
                                          gpu=bool(m.resources.gpu),  # what it was given, not what its env says
                                          cwd=Path(str(working_dir)) if working_dir else None,
                                          writable_files=writable, protected=protected, inside_env=inside,
                                          writable_folders=mapped if folders else ())

    def _start(self, job: TrialJob, members: list[Member], allocation: Allocation) -> dict[str, Any]:
        job.trial_dir.mkdir(parents=True, exist_ok=True)
        for target in job.path_map.values():
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        started: list[subprocess.Popen[bytes] | Orphan] = []
        pipes: list[tuple[int, int]] = []  # per member: (its status to read, its go to write)
        try:
            try:
                for m in members:
                    started.append(self._spawn(job, m, pipes))
                # Each wrapper waits for its go: no command runs before the trial's
                # processes are written down. A controller that dies before that leaves
                # nothing running (the wrappers read EOF and exit); after it, a trial the
                # next controller adopts (``launched``).
                handle = self._record(job, members, started, allocation)
                for _, go in pipes:
                    os.write(go, b"1")
            except SpawnerLost:
                raise  # nothing ran: the launch goes again (launch)
            except OSError as exc:
                m = members[min(len(started), len(members) - 1)]
                raise LaunchError(f"cannot start {m.argv[0]!r}: {exc.strerror or exc}") from None
            finally:
                for _, go in pipes:
                    os.close(go)
        except BaseException:
            for status, _ in pipes:
                os.close(status)
            (job.trial_dir / HANDLE_FILE).unlink(missing_ok=True)
            for p in started:
                kill_group(p.pid)
            for p in started:
                p.wait()
            raise
        # The launch does not wait for the wrappers to report that their commands started:
        # the trial runs, and a program found above that still could not start (not
        # executable after all) ends it LaunchFailed at a later poll.
        statuses = [(status, m.argv[0]) for (status, _), m in zip(pipes, members, strict=True)]
        self._procs[started[0].pid] = ProcessGroup(started, deadline_of(job.run_spec), allocation, statuses=statuses)
        return handle

    @staticmethod
    def _spawn(job: TrialJob, m: Member, pipes: list[tuple[int, int]]) -> subprocess.Popen[bytes] | Orphan:
        """One member's wrapper, started and waiting for its go (``pipes`` gets its fds):
        forked by the spawner, followed by its pid and exit file; or, where no spawner
        runs, started here."""
        cwd = job.workdir
        working_dir = m.container.get("workingDir")
        if working_dir and Path(str(working_dir)).is_dir():
            cwd = Path(str(working_dir))
        error = unpassable(m.argv, m.env) or unstartable(m.argv[0], m.env, cwd)
        if error:
            raise LaunchError(f"cannot start {m.argv[0]!r}: {error}")
        exit_file = job.trial_dir / exit_name(m.log_name)
        exit_file.unlink(missing_ok=True)
        status_r, status_w = os.pipe()
        go_r, go_w = os.pipe()
        pipes.append((status_r, go_w))
        try:
            with open(job.trial_dir / m.log_name, "ab") as log:
                pid = SPAWNER.spawn(m.argv, m.env, cwd, exit_file, log.fileno(), status_w, go_r)
                if pid is not None:
                    return Orphan(pid, start_ticks(pid), exit_file)
                # Each replica leads a process group of its own: stopping the trial
                # signals every group, so nothing any replica started survives it.
                # The wrapper records the exit status, for a controller that adopts it.
                return subprocess.Popen(
                    wrapped(m.argv, exit_file, status_w, go_r), cwd=cwd, env=m.env, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(status_w, go_r),
                )
        finally:
            os.close(status_w)
            os.close(go_r)

    def _record(self, job: TrialJob, members: list[Member], started: list[subprocess.Popen[bytes] | Orphan],
                allocation: Allocation) -> dict[str, Any]:
        """Write down the trial's processes, for a controller that dies before it stores
        the trial's handle: their pids (``recover`` kills them) and the handle itself
        (``launched``: the trial is adopted)."""
        (job.trial_dir / "pid").write_text("".join(f"{p.pid} {start_ticks(p.pid) or 0}\n" for p in started))
        leader = started[0]
        handle = {"executor": self.name, "pid": leader.pid, "start": start_ticks(leader.pid), "log": str(job.log_path),
                  "devices": allocation.to_dict(), "started_at": time.time(),
                  "exit": str((job.trial_dir / exit_name(members[0].log_name)).absolute())}
        if len(members) > 1:
            handle["replicas"] = [{"name": m.replica, "pid": p.pid, "start": start_ticks(p.pid), "log": m.log_name,
                                   "exit": str((job.trial_dir / exit_name(m.log_name)).absolute())}
                                  for m, p in zip(members, started, strict=True)]
        write_handle(job.trial_dir, handle)
        return handle

    def _check(self, proc: ProcessGroup) -> None:
        if proc.check():
            self.ledger.give_back(proc.allocation)

    def owns(self, handle: dict[str, Any]) -> bool:
        return handle.get("pid") in self._procs

    def exited(self, handle: dict[str, Any]) -> bool:
        proc = self._procs.get(handle.get("pid", -1))
        if proc is None or proc.stopped or proc.launch_error:
            return False
        self._check(proc)
        return proc.code is not None and not proc.timed_out

    def adopt(self, handle: dict[str, Any], job: TrialJob) -> Adoption:
        """Follow on a trial an earlier controller started: its process groups, while
        they run (the same process: the pid *and* its start time), or its recorded exit."""
        if not handle.get("exit"):
            return Adoption.refused("it was started by a katib that did not record exit statuses")
        records = handle.get("replicas") or [{"pid": handle.get("pid"), "start": handle.get("start"),
                                              "exit": handle["exit"]}]
        if not all(r.get("pid") and r.get("start") and r.get("exit") for r in records):
            return Adoption.refused("its handle does not say which processes are its own")
        members = [Orphan(int(r["pid"]), int(r["start"]), Path(r["exit"])) for r in records]
        if not any(m.running() for m in members) and read_exit(members[0].exit_file) is None:
            if all(never_started(m.exit_file) for m in members):
                return Adoption.refused("its launch was cut short before its command started", ran=False)
            return Adoption.refused("its processes are gone and left no exit status")
        allocation = held_by(handle, self.ledger, job.namespace)
        self.ledger.hold(allocation, reservation_key(job.namespace, job.experiment, job.name))
        started_at = float(handle.get("started_at") or time.time())
        self._procs[members[0].pid] = ProcessGroup(members, deadline_of(job.run_spec), allocation,
                                                   elapsed=max(0.0, time.time() - started_at))
        return ADOPTED

    def started(self, trial_dir: Path) -> bool:
        """A launch cut short before its go started nothing, whatever else it left: the go
        is given only once the processes are written down (the pid file, the handle), and
        each wrapper spawned without it records that it never started its command."""
        if not (trial_dir / "pid").exists() and not (trial_dir / HANDLE_FILE).exists():
            return False
        exits = list(trial_dir.glob("*.exit"))
        if exits and all(never_started(p) for p in exits):
            return False
        return super().started(trial_dir)

    def poll(self, handle: dict[str, Any]) -> RunState:
        proc = self._procs.get(handle.get("pid", -1))
        if proc is None:
            return RunState(True, reason="Lost", message="the trial process is not known to this controller")
        self._check(proc)
        if proc.code is None:
            return RunState.running()
        del self._procs[proc.popen.pid]
        code = proc.code
        if proc.launch_error:
            return RunState(True, reason="LaunchFailed", message=proc.launch_error, exit_code=code)
        return RunState.ended(code, proc.timed_out, proc.stopped, proc.deadline)

    def stop(self, handle: dict[str, Any]) -> None:
        pid = handle.get("pid")
        proc = self._procs.get(pid or -1)
        if proc is not None:
            proc.stopped = True
            if proc.code is None and proc.kill_at is None:
                proc.terminate()
        else:
            self.recover(handle)

    def recover(self, handle: dict[str, Any], trial_dir: Path | None = None) -> None:
        """Kill what is left of a trial an earlier controller started (every replica)."""
        kill_left(handle, trial_dir)

    def wait(self, timeout: float) -> None:
        procs = [p for p in self._procs.values() if p.code is None]
        # A trial without pidfds (one that ended before they could be opened, or no
        # pidfds here) is looked at first: one that has ended wakes the caller at once.
        for p in procs:
            if not p.pidfds:
                self._check(p)
        if any(p.code is not None for p in procs):
            return
        now = time.monotonic()
        for p in procs:
            for at in (p.deadline_at, p.kill_at):
                if at is not None:
                    timeout = min(timeout, max(0.0, at - now))
        fds = [fd for p in procs for fd in p.pidfds]
        if fds and all(p.pidfds for p in procs):
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
