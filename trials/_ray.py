"""The Ray executor: each trial runs on a Ray cluster, as an actor that starts the trial's
command on whichever node Ray picks and streams its output back.

The actor asks Ray for the trial's CPUs and GPUs (``num_cpus``, ``num_gpus`` from the
primary container's ``resources``), so Ray's scheduler places and packs trials and sets
``CUDA_VISIBLE_DEVICES``. The trial's output and its pushed metrics come back to this
machine, into the same files the local executor writes, so metrics collection, early
stopping and ``katib logs`` work unchanged. Stopping a trial ends its process group on
the node, then the actor. Distributed (multi-replica) jobs run with the local executor.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ._executor import Adoption, Deferred, Executor, LaunchError, RunState, TrialJob
from ._local import GRACE_SECONDS, deadline_of, replica_processes
from ._resources import Resources


def _runner_class() -> Any:
    import ray

    @ray.remote(max_concurrency=4)  # type: ignore[call-overload]
    class TrialRunner:
        """Runs one trial's command on its node; keeps its output for the driver."""

        def __init__(self) -> None:
            self.proc: Any = None
            self.buffers: dict[str, bytearray] = {"out": bytearray()}
            self.files: dict[str, str] = {}

        def start(self, argv: list[str], env: dict[str, str], cwd: str, files: dict[str, str]) -> dict[str, Any]:
            import os
            import socket
            import subprocess
            import tempfile
            import threading

            self.buffers = {"out": bytearray()}  # an actor is reused: forget the last trial
            self.files = {}
            gpus = [str(g) for g in ray.get_gpu_ids()]
            env = dict(env)
            if gpus or "CUDA_VISIBLE_DEVICES" in env:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
            # Files the trial writes (pushed metrics, a metrics file) live on this node.
            workdir = tempfile.mkdtemp(prefix="katib-trial-")
            for key, original in files.items():
                local = os.path.join(workdir, key)
                self.files[key] = local
                env = {k: v.replace(original, local) for k, v in env.items()}
                argv = [a.replace(original, local) for a in argv]
            if "HOME" in env and not os.path.isdir(env["HOME"]):
                env["HOME"] = workdir  # a clean environment's HOME (the trial dir) is on the driver
            self.proc = subprocess.Popen(argv, env=env, cwd=cwd if os.path.isdir(cwd) else workdir,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, start_new_session=True)

            def pump() -> None:
                for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
                    self.buffers["out"] += chunk

            threading.Thread(target=pump, daemon=True).start()
            return {"node": socket.gethostname(), "pid": self.proc.pid, "gpus": gpus}

        def read(self, offsets: dict[str, int]) -> tuple[dict[str, bytes], int | None]:
            """New bytes of the output and of each file since ``offsets``, and the exit code."""
            code = self.proc.poll()
            out = {"out": bytes(self.buffers["out"][offsets.get("out", 0):])}
            for key, path in self.files.items():
                try:
                    with open(path, "rb") as f:
                        f.seek(offsets.get(key, 0))
                        out[key] = f.read()
                except OSError:
                    out[key] = b""
            return out, code

        def wait(self) -> int:
            return int(self.proc.wait())

        def stop(self, grace: float) -> None:
            import os
            import signal

            if self.proc is None or self.proc.poll() is not None:
                return
            for sig, pause in ((signal.SIGTERM, grace), (signal.SIGKILL, 0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    return
                deadline = time.monotonic() + pause
                while time.monotonic() < deadline and self.proc.poll() is None:
                    time.sleep(0.05)

    return TrialRunner


UNREACHABLE_SECONDS = 60.0  # how long a trial's actor may stay out of reach before the trial is given up


class _RayTrial:
    def __init__(self, job: TrialJob, actor: Any, done: Any, files: dict[str, Path], deadline: float | None) -> None:
        self.job = job
        self.actor = actor
        self.done = done
        self.files = files  # key -> the local file that mirrors the remote one
        self.offsets: dict[str, int] = {}
        self.deadline = deadline
        self.deadline_at = time.monotonic() + deadline if deadline is not None else None
        self.stopped = False
        self.timed_out = False
        self.shape: tuple[float, int] = (1.0, 0)
        self.unreachable_since: float | None = None  # when the actor first failed to answer


class RayExecutor(Executor):
    """Runs trials on a Ray cluster (``address=None`` starts a local one).

    ``clean_env`` as for ``LocalExecutor``: a trial's environment holds its template's
    ``env``, katib's variables, ``PATH`` and the locale, nothing else of this process's.

    >>> ex = RayExecutor("ray://head:10001")  # doctest: +SKIP
    """

    name = "ray"
    # A trial's files come back one by one: an event-file directory does not.
    collector_kinds = ("StdOut", "File", "Push")
    unfenced_why = "Ray has no sandbox: a trial runs as the Ray workers' user, with their files and processes"

    def __init__(self, address: str | None = None, namespace: str = "katib", clean_env: bool = False) -> None:
        import ray

        self.clean_env = clean_env
        if not ray.is_initialized():
            host = (address or "127.0.0.1").split("://")[-1].rsplit(":", 1)[0]
            # A local cluster (or one on loopback) stays on loopback.
            local: dict[str, Any] = {"_node_ip_address": "127.0.0.1"} if host in ("127.0.0.1", "localhost") else {}
            ray.init(address=address, namespace=namespace, include_dashboard=False, log_to_driver=False,
                     ignore_reinit_error=True, **local)
        self._runner = _runner_class()
        self._trials: dict[str, _RayTrial] = {}
        # Finished trials' actors, by (CPUs, GPUs), for the next trials of the same shape:
        # an actor is a worker process, too slow to start anew for every short trial.
        self._idle: dict[tuple[float, int], list[Any]] = {}

    def launch(self, job: TrialJob) -> dict[str, Any]:
        import ray

        members = replica_processes(job, self.clean_env)
        if len(members) > 1:
            raise LaunchError("distributed (multi-replica) trials run with the local executor, not on Ray")
        m = members[0]
        need = Resources.of_container(m.container)
        job.trial_dir.mkdir(parents=True, exist_ok=True)
        files = {"push": Path(job.env.get("KATIB_PUSH_FILE", job.trial_dir / "push.jsonl"))}
        for i, target in enumerate(job.path_map.values()):
            files[f"file{i}"] = Path(target)
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        cpus = need.cpu or 1
        total, free = ray.cluster_resources(), ray.available_resources()
        if need.gpu > total.get("GPU", 0) or cpus > total.get("CPU", 0):
            raise LaunchError(f"the trial needs {cpus:g} CPUs and {need.gpu} GPUs; the Ray cluster has "
                              f"{total.get('CPU', 0):g} and {total.get('GPU', 0):g}")
        shape = (cpus, need.gpu)
        pool = self._idle.get(shape) or []
        if pool:
            actor = pool.pop()
        else:
            if need.gpu > free.get("GPU", 0) + 1e-9 or cpus > free.get("CPU", 0) + 1e-9:
                for other in [a for s, actors in self._idle.items() if s != shape for a in actors]:
                    ray.kill(other)  # idle actors of another shape give their room back
                self._idle = {shape: pool}
                raise Deferred()  # the cluster is full now: the trial waits, pending
            actor = self._runner.options(num_cpus=cpus, num_gpus=need.gpu).remote()
        try:
            # A TrainJob node that writes its own script (the SDK's CustomTrainer) has a folder of its own.
            cwd = str(m.container.get("workingDir") or job.workdir)
            info = ray.get(actor.start.remote(m.argv, m.env, cwd, {k: str(v) for k, v in files.items()}),
                           timeout=30)
        except ray.exceptions.GetTimeoutError:
            ray.kill(actor)  # not placed after all (another driver took the room): try later
            raise Deferred() from None
        except Exception as exc:  # Ray reports a bad command as a task error
            ray.kill(actor)
            raise LaunchError(f"cannot start the trial on Ray: {exc}") from None
        self._trials[job.name] = _RayTrial(job, actor, actor.wait.remote(), files, deadline_of(job.run_spec))
        self._trials[job.name].shape = shape
        return {"executor": self.name, "trial": job.name, "node": info["node"], "pid": info["pid"],
                "log": str(job.log_path), "devices": {"cpu": need.cpu or 1, "memory": need.memory, "gpus": info["gpus"]}}

    def owns(self, handle: dict[str, Any]) -> bool:
        return handle.get("executor") == self.name and handle.get("trial") in self._trials

    def _mirror(self, trial: _RayTrial) -> int | None:
        import ray

        chunks, code = ray.get(trial.actor.read.remote(trial.offsets), timeout=120)
        for key, data in chunks.items():
            if not data:
                continue
            path = trial.job.log_path if key == "out" else trial.files[key]
            with open(path, "ab") as f:
                f.write(data)
            trial.offsets[key] = trial.offsets.get(key, 0) + len(data)
        return code  # type: ignore[no-any-return]

    def poll(self, handle: dict[str, Any]) -> RunState:

        trial = self._trials.get(handle.get("trial", ""))
        if trial is None:
            return RunState(True, reason="Lost", message="the Ray actor of this trial belonged to an earlier controller")
        if trial.deadline_at is not None and time.monotonic() >= trial.deadline_at and not trial.timed_out:
            trial.timed_out = True
            trial.actor.stop.remote(GRACE_SECONDS)
        import ray

        try:
            code = self._mirror(trial)
        except ray.exceptions.ActorUnavailableError as exc:
            # Ray may lose contact with a busy node for a moment: ask again at the next tick,
            # and give the trial up only when its actor stays out of reach.
            trial.unreachable_since = trial.unreachable_since or time.monotonic()
            if time.monotonic() - trial.unreachable_since < UNREACHABLE_SECONDS:
                return RunState.running()
            return self._lost(trial, f"its Ray actor was out of reach for {UNREACHABLE_SECONDS:.0f} s ({exc})")
        except ray.exceptions.RayActorError as exc:
            return self._lost(trial, f"its Ray actor died ({exc})")
        trial.unreachable_since = None
        if code is None:
            return RunState.running()
        try:
            self._mirror(trial)  # the last bytes written before the exit
        except ray.exceptions.RayActorError:
            pass
        del self._trials[trial.job.name]
        self._idle.setdefault(trial.shape, []).append(trial.actor)
        return RunState.ended(code, trial.timed_out, trial.stopped, trial.deadline)

    def _lost(self, trial: _RayTrial, why: str) -> RunState:
        """The trial ended with its actor, which is not reused; the controller carries on."""
        self._trials.pop(trial.job.name, None)
        return RunState(True, reason="ActorDied", message=f"the trial ended with its Ray actor: {why}"[:2000])

    def stop(self, handle: dict[str, Any]) -> None:
        trial = self._trials.get(handle.get("trial", ""))
        if trial is not None and not trial.stopped:
            trial.stopped = True
            trial.actor.stop.remote(GRACE_SECONDS)

    def adopt(self, handle: dict[str, Any], job: TrialJob) -> Adoption:
        """Never: a trial's actor is neither named nor detached, so it belongs to the Ray job
        of the controller that started it and ended with it. The trial is run again."""
        return Adoption.refused("a Ray trial's actor is not detached: it ended with the controller that started it")

    def recover(self, handle: dict[str, Any], trial_dir: Path | None = None) -> None:
        """An earlier controller's actors died with its Ray job; nothing is left to kill."""

    def wait(self, timeout: float) -> None:
        import ray

        pending = [t.done for t in self._trials.values()]
        deadlines = [t.deadline_at - time.monotonic() for t in self._trials.values() if t.deadline_at is not None]
        timeout = max(0.0, min([timeout, *deadlines]))
        if pending:
            ray.wait(pending, num_returns=1, timeout=timeout)
        else:
            time.sleep(timeout)

    def settle(self, timeout: float = GRACE_SECONDS + 1) -> None:
        import ray

        stopping = [t.done for t in self._trials.values() if t.stopped]
        if stopping:
            ray.wait(stopping, num_returns=len(stopping), timeout=timeout)

    def close(self) -> None:
        import ray

        for t in self._trials.values():
            ray.kill(t.actor)
        for actors in self._idle.values():
            for actor in actors:
                ray.kill(actor)
        self._trials.clear()
        self._idle.clear()
