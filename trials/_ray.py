"""The Ray executor: each trial runs on a Ray cluster, as an actor that starts the trial's
command on whichever node Ray picks and streams its output back (``trials._ray_runner``).

The actor asks Ray for the trial's CPUs and GPUs (``num_cpus``, ``num_gpus`` from the
primary container's ``resources``), so Ray's scheduler places and packs trials and sets
``CUDA_VISIBLE_DEVICES``. What the trial leaves on its node for katib comes back to this
machine, into the same files the local executor writes, so every metrics collector, early
stopping and ``katib logs`` work unchanged: its output, its pushed metrics, a ``File``
collector's file, a ``TensorFlowEvent`` collector's event files (each file of the
directory, read here by TensorBoard's loader as they grow), the ``PrometheusMetric``
endpoint's scrapes (scraped on the node, where the trial's ``localhost`` is) and a
``Custom`` collector's output: its command runs beside the trial in the actor and reports
through Katib's DBManager gRPC API, at the controller's address, or the one given as
``db_manager_address`` (``--db-manager-address``) for nodes that cannot reach this
machine's loopback. Stopping a trial ends its process groups on the node, then the actor.
Distributed (multi-replica) jobs run with the local executor.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from ._executor import Adoption, Deferred, Executor, LaunchError, RunState, TrialJob
from ._group import GRACE_SECONDS
from ._members import deadline_of, replica_processes
from ._ray_runner import runner_class
from ._resources import Resources

LOOPBACK_HOSTS = ("localhost", "::1", "[::1]")
SCRAPE_SECONDS = 0.5  # how often a PrometheusMetric trial's endpoint is scraped on its node

UNREACHABLE_SECONDS = 60.0  # how long a trial's actor may stay out of reach before the trial is given up
READ_SECONDS = 0.5  # how long one poll waits for a trial's actor to answer a read
FINAL_READ_SECONDS = 10.0  # how long the last read of an ended trial's output may take


class _NotAnswering(Exception):
    """A trial's actor has not answered a read yet."""


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
        self.shape: tuple[float, int, int] = (1.0, 0, 0)
        self.unreachable_since: float | None = None  # when the actor first failed to answer
        self.partial: dict[str, bytes] = {}  # the pushed metrics' unterminated last line, held back
        self.workdir: str | None = None  # its folder on the node (removed once mirrored)
        self.reading: Any = None  # the read asked of its actor and not answered yet


class RayExecutor(Executor):
    """Runs trials on a Ray cluster (``address=None`` starts a local one).

    ``clean_env`` as for ``LocalExecutor``: a trial's environment holds its template's
    ``env``, katib's variables, ``PATH`` and the locale, nothing else of this process's.

    >>> ex = RayExecutor("ray://head:10001")  # doctest: +SKIP
    """

    name = "ray"
    # Every built-in kind: what the collectors read comes back into the trial's folder here.
    collector_kinds = ("StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Push", "Custom")
    unfenced_why = "Ray has no sandbox: a trial runs as the Ray workers' user, with their files and processes"

    def __init__(self, address: str | None = None, namespace: str = "katib", clean_env: bool = False,
                 db_manager_address: str | None = None, tenants: bool = False) -> None:
        import ray

        self.clean_env = clean_env
        self.address = address
        #: Trials of several tenants (katib server --auth): no Custom collector, whose
        #: DBManager gRPC API carries no credentials (the controller refuses it).
        self.tenants = tenants
        #: Where a Custom collector reports ("host:port" of Katib's gRPC API as the Ray
        #: workers reach it); None: the controller's own address (a loopback one on one machine).
        self.db_manager_address = db_manager_address
        if not ray.is_initialized():
            host = (address or "127.0.0.1").split("://")[-1].rsplit(":", 1)[0]
            # A local cluster (or one on loopback) stays on loopback.
            local: dict[str, Any] = {"_node_ip_address": "127.0.0.1"} if host in ("127.0.0.1", "localhost") else {}
            ray.init(address=address, namespace=namespace, include_dashboard=False, log_to_driver=False,
                     ignore_reinit_error=True, **local)
        self._runner = runner_class()
        self._trials: dict[str, _RayTrial] = {}
        # Finished trials' actors, by (CPUs, GPUs, memory), for the next trials of the same shape:
        # an actor is a worker process, too slow to start anew for every short trial.
        self._idle: dict[tuple[float, int, int], list[Any]] = {}
        self._cleanups: dict[int, Any] = {}  # each actor's last folder removal, by id of its handle

    def _processes(self, job: TrialJob) -> tuple[list[dict[str, Any]], dict[str, Path], Resources, Resources]:
        """What the actor starts (the trial's command, and a Custom collector's beside it),
        the local file each output mirrors to, what the trial needs and what the actor does."""
        members = replica_processes(job, self.clean_env)
        if len(members) > 1:
            raise LaunchError("distributed (multi-replica) trials run with the local executor, not on Ray")
        if job.custom_collector is not None:
            from ._custom import collector_member

            if self.db_manager_address:
                job = dataclasses.replace(job, db_manager=self.db_manager_address)
            members.append(collector_member(job, self.clean_env))  # Katib's Custom collector, beside the trial
        procs: list[dict[str, Any]] = []
        logs: dict[str, Path] = {}
        need = Resources()
        for i, m in enumerate(members):
            m.resources = Resources.of_container(m.container)
            need = need + m.resources
            key = "out" if i == 0 else "collector"
            logs[key] = job.trial_dir / m.log_name
            # A TrainJob node that writes its own script (the SDK's CustomTrainer) has a folder of its own.
            procs.append({"log": key, "argv": m.argv, "env": m.env, "gpus": m.resources.gpu,
                          "cwd": str(m.container.get("workingDir") or job.workdir)})
        return procs, logs, members[0].resources, need

    def launch(self, job: TrialJob) -> dict[str, Any]:
        import ray

        procs, logs, trial_need, need = self._processes(job)
        job.trial_dir.mkdir(parents=True, exist_ok=True)
        files = {"push": Path(job.env.get("KATIB_PUSH_FILE", job.trial_dir / "push.jsonl"))}
        # Katib's paths, each a folder on the node: the collector's file, or its event-file
        # directory, whose every file comes back (a path with and without its slash: once).
        fsp = (job.collector_source or {}).get("fileSystemPath") or {}
        events = job.path_map.get(str(fsp.get("path") or "").rstrip("/")) if job.collector == "TensorFlowEvent" else None
        trees = []
        for i, target in enumerate(dict.fromkeys(t.rstrip("/") or t for t in job.path_map.values())):
            files[f"file{i}"] = Path(target)
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            if target == events:
                trees.append(f"file{i}")
        scrape = self._scrape(job)
        if scrape is not None:
            from ._prometheus import SCRAPES

            logs["scrape"] = job.trial_dir / SCRAPES
            logs["scrape"].write_bytes(b"")  # the collector reads the scrapes from here, not the endpoint
        loopback, driver_node = self._loopback(procs, job)
        cpus = need.cpu or 1
        total, free = ray.cluster_resources(), ray.available_resources()
        # Ray places by memory as by CPUs (a logical reservation: Ray's memory monitor, not a
        # limit, acts on a node short of memory).
        memory = need.memory if 0 < need.memory < float("inf") else 0
        if need.gpu > total.get("GPU", 0) or cpus > total.get("CPU", 0) or memory > total.get("memory", 0):
            asked = f"{cpus:g} CPUs, {need.gpu} GPUs" + (f" and {memory / 2**30:.1f} GiB of memory" if memory else "")
            has = f"{total.get('CPU', 0):g}, {total.get('GPU', 0):g}" + (f" and {total.get('memory', 0) / 2**30:.1f} GiB"
                                                                         if memory else "")
            raise LaunchError(f"the trial needs {asked}; the Ray cluster has {has}")
        shape = (cpus, need.gpu, memory)
        pool = self._idle.get(shape) or []
        if pool:
            actor = pool.pop()
        else:
            if need.gpu > free.get("GPU", 0) + 1e-9 or cpus > free.get("CPU", 0) + 1e-9 or memory > free.get("memory", 0):
                for other in [a for s, actors in self._idle.items() if s != shape for a in actors]:
                    ray.kill(other)  # idle actors of another shape give their room back
                self._idle = {shape: pool}
                raise Deferred()  # the cluster is full now: the trial waits, pending
            actor = self._runner.options(num_cpus=cpus, num_gpus=need.gpu, memory=memory or None).remote()
        try:
            info = ray.get(actor.start.remote(procs, {k: str(v) for k, v in files.items()}, trees, scrape, loopback,
                                              driver_node, GRACE_SECONDS), timeout=30)
        except ray.exceptions.GetTimeoutError:
            ray.kill(actor)  # not placed after all (another driver took the room): try later
            raise Deferred() from None
        except Exception as exc:  # Ray's own failures
            ray.kill(actor)
            raise LaunchError(f"cannot start the trial on Ray: {exc}") from None
        if info.get("error"):
            self._idle.setdefault(shape, []).append(actor)  # the actor is sound: the next trial takes it
            raise LaunchError(f"cannot start the trial on Ray: {info['error']}")
        trial = _RayTrial(job, actor, actor.wait.remote(), {**files, **logs}, deadline_of(job.run_spec))
        trial.shape = shape
        trial.workdir = info.get("workdir")
        self._trials[job.name] = trial
        return {"executor": self.name, "trial": job.name, "node": info["node"], "pid": info["pid"],
                "log": str(job.log_path),
                "devices": {"cpu": trial_need.cpu or 1, "memory": trial_need.memory, "gpus": info["gpus"]}}

    @staticmethod
    def _scrape(job: TrialJob) -> dict[str, Any] | None:
        """A PrometheusMetric trial's endpoint, scraped on its node (``localhost`` is the trial's)."""
        if job.collector != "PrometheusMetric":
            return None
        from ._prometheus import endpoint_url

        try:
            url = endpoint_url((job.collector_source or {}).get("httpGet"))
        except ValueError:
            return None  # not an HTTP(S) endpoint (admission refuses one): nothing is fetched
        return {"url": url, "every": SCRAPE_SECONDS}

    def _loopback(self, procs: list[dict[str, Any]], job: TrialJob) -> tuple[str | None, str | None]:
        """A Custom collector's DBManager address when it is this machine's loopback, which
        only a trial on this machine's Ray node reaches; and that node (None: none is, the
        driver is a Ray client)."""
        import ray

        if len(procs) < 2:
            return None, None
        address = self.db_manager_address or job.db_manager or ""
        host = address.rpartition(":")[0]
        if not (host.startswith("127.") or host in LOOPBACK_HOSTS):
            return None, None
        client = (self.address or "").startswith("ray://")
        return address, None if client else ray.get_runtime_context().get_node_id()

    def owns(self, handle: dict[str, Any]) -> bool:
        return handle.get("executor") == self.name and handle.get("trial") in self._trials

    def _mirror(self, trial: _RayTrial, final: bool = False) -> int | None:
        """Append what the actor's outputs and files gained to their files here; the exit code.
        ``final``: until nothing is left (one read brings at most ``CHUNK`` of each)."""
        import ray

        code = None
        while True:
            if trial.reading is None:
                trial.reading = trial.actor.read.remote(trial.offsets)
            # Never blocked on one actor: a read not answered in a moment is waited for again at
            # the next poll (an actor that never answers is given up, as one out of reach).
            ready, _ = ray.wait([trial.reading], num_returns=1, timeout=FINAL_READ_SECONDS if final else READ_SECONDS)
            if not ready:
                if final:
                    break  # what it wrote last stays on its node: its exit code is known
                raise _NotAnswering()
            reading, trial.reading = trial.reading, None
            chunks, code = ray.get(reading)
            got = False
            for key, data in chunks.items():
                if not data:
                    continue
                got = True
                trial.offsets[key] = trial.offsets.get(key, 0) + len(data)
                self._append(trial, key, data)
            if not final or not got:
                break
        if final:
            for key in list(trial.partial):
                self._append(trial, key, b"", final=True)
        return code  # type: ignore[no-any-return]

    @staticmethod
    def _append(trial: _RayTrial, key: str, data: bytes, final: bool = False) -> None:
        base, _, sub = key.partition("/")
        path = trial.files[base]
        if sub:  # a file under a directory the trial writes
            parts = Path(sub).parts
            if Path(sub).is_absolute() or ".." in parts:
                return
            path = path.joinpath(*parts)
            path.parent.mkdir(parents=True, exist_ok=True)
        if key == "push":
            # Whole lines only: the DBManager appends a Custom collector's reports here too.
            data = trial.partial.pop(key, b"") + data
            if not final:
                end = data.rfind(b"\n") + 1
                data, rest = data[:end], data[end:]
                if rest:
                    trial.partial[key] = rest
        if data:
            with open(path, "ab") as f:
                f.write(data)

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
        except (ray.exceptions.ActorUnavailableError, _NotAnswering) as exc:
            # Ray may lose contact with a busy node for a moment: ask again at the next tick,
            # and give the trial up only when its actor stays out of reach (or, reachable,
            # does not answer: a hung or stopped worker), killing what is left of it.
            trial.unreachable_since = trial.unreachable_since or time.monotonic()
            if time.monotonic() - trial.unreachable_since < UNREACHABLE_SECONDS:
                return RunState.running()
            try:
                ray.kill(trial.actor)
            except Exception:  # noqa: BLE001 - gone already, or Ray itself out of reach: the trial ends either way
                pass
            why = "did not answer" if isinstance(exc, _NotAnswering) else f"was out of reach ({exc})"
            return self._lost(trial, f"its Ray actor {why} for {UNREACHABLE_SECONDS:.0f} s")
        except ray.exceptions.RayActorError as exc:
            return self._lost(trial, f"its Ray actor died ({exc})")
        trial.unreachable_since = None
        if code is None:
            return RunState.running()
        try:
            self._mirror(trial, final=True)  # the last bytes written before the exit
        except ray.exceptions.RayActorError:
            pass
        del self._trials[trial.job.name]
        if trial.workdir:  # everything is mirrored here: the node's copy goes (close waits for it)
            self._cleanups[id(trial.actor)] = trial.actor.cleanup.remote(trial.workdir)
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

        if self._cleanups:  # killing an actor drops what it has not run yet
            ray.wait(list(self._cleanups.values()), num_returns=len(self._cleanups), timeout=10)
            self._cleanups.clear()
        for t in self._trials.values():
            ray.kill(t.actor)
        for actors in self._idle.values():
            for actor in actors:
                ray.kill(actor)
        self._trials.clear()
        self._idle.clear()
