"""A Kubernetes cluster for the tests: kmock's stateful API emulator, played by a fake job
controller, kubelet and GPU device plugin.

The emulator keeps the objects and serves lists, watches, creates, patches and deletes as
the API server does. The players, in threads, talk to it with the official client, as a
cluster's controllers would:

- the job controller creates the pods of each new job (one for a batch/v1 Job; one per
  replica for Kubeflow's jobs, labelled ``training.kubeflow.org/job-role``) and sets the
  job's conditions from its pods (``Complete``/``Succeeded`` or ``Failed``);
- the kubelet runs the primary pod's container command as a process (the job's other
  replicas succeed at once), with the devices the device plugin gave it in
  ``NVIDIA_VISIBLE_DEVICES``, writes its output as the pod's log (served, and followed, at
  ``…/pods/{name}/log``) and its end as the pod's status;
- a container's ``FAKE_KUBELET`` env var makes its pod misbehave: ``oom`` (killed,
  ``OOMKilled``, exit 137), ``evict`` (the pod is evicted for memory pressure), ``hang``
  (runs forever);
- with ``containers=True``, a pod's process is started as a container runtime would start
  it (``_container``): the image's environment and the pod's only, a filesystem of its own,
  its own PID namespace, its memory limit enforced;
- deleting a job deletes its pods and kills their processes (the garbage collector).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import kmock
from kubernetes import client, watch

JOBS = [("batch", "v1", "jobs"), ("kubeflow.org", "v1", "pytorchjobs"), ("kubeflow.org", "v1", "tfjobs"),
        ("trainer.kubeflow.org", "v1alpha1", "trainjobs")]
JOBSET_NAME = "jobset.sigs.k8s.io/jobset-name"
ROLE_LABEL = "training.kubeflow.org/job-role"


class _Emulator(kmock.KubernetesEmulator):
    async def __call__(self, raw_request: Any) -> Any:
        # The official client sends ?watch=True, which the API server reads as true.
        if raw_request.query.get("watch") == "True":
            query = dict(raw_request.query)
            query["watch"] = "true"
            raw_request = raw_request.clone(rel_url=raw_request.rel_url.with_query(query))
        return await super().__call__(raw_request)


class FakeCluster:
    def __init__(self, workdir: Path, logdir: Path, gpus: int = 0, containers: bool = False) -> None:
        self.workdir, self.logdir = workdir, logdir
        self.containers = containers  # run each pod as a container would (``_container``)
        self.free_gpus = list(range(gpus))
        self.gpu_log: list[tuple[str, list[int], float, float]] = []  # (pod, devices, start, end)
        self.created: list[dict[str, Any]] = []  # every job object as it was created
        self.logs: dict[str, Path] = {}
        self.done: set[str] = set()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve(ready)), daemon=True)
        self._thread.start()
        ready.wait(10)
        cfg = client.Configuration()
        cfg.host = self.url
        self.api = client.ApiClient(cfg)
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        for group, version, plural in JOBS:
            threading.Thread(target=self._job_controller, args=(group, version, plural), daemon=True).start()

    # -- the API server -------------------------------------------------------------

    async def _serve(self, ready: threading.Event) -> None:
        async with _Emulator() as k, kmock.Server(k) as server:
            for group, version, plural in JOBS:
                k.resources[f"{group}/{version}/{plural}"] = kmock.ResourceInfo(namespaced=True)
            k.resources["v1/pods"] = kmock.ResourceInfo(kind="Pod", namespaced=True)
            k["get", re.compile(r"/api/v1/namespaces/[^/]+/pods/[^/]+/log")] << self._pod_log
            self.emulator = k
            self.url = str(server.url).rstrip("/")
            ready.set()
            while not self._stop.is_set():
                await asyncio.sleep(0.05)

    async def _pod_log(self, request: Any) -> Any:
        pod = request.url.path.split("/")[-2]
        follow = request.params.get("follow", "").lower() == "true"
        position = 0
        yield b""
        while True:
            path = self.logs.get(pod)
            finished = pod in self.done
            if path is not None and path.exists():
                with path.open("rb") as f:
                    f.seek(position)
                    data = f.read()
                position += len(data)
                if data:
                    yield data
            if finished or not follow or self._stop.is_set():
                return
            await asyncio.sleep(0.05)

    def objects(self, plural: str) -> list[dict[str, Any]]:
        """The live objects of a resource, as the emulator holds them."""
        out = []
        for (resource, _, _), obj in list(self.emulator.objects.items()):
            if resource.plural == plural and not obj.deleted:
                out.append(obj.raw)
        return out

    def close(self) -> None:
        self._stop.set()
        for proc in list(self.procs.values()):
            _kill(proc)

    # -- the job controller ---------------------------------------------------------

    def _job_controller(self, group: str, version: str, plural: str) -> None:
        while not self._stop.is_set():
            try:
                for event in watch.Watch().stream(self.custom.list_cluster_custom_object, group, version, plural,
                                                  timeout_seconds=5):
                    obj = event["object"]
                    if event["type"] == "ADDED" and obj["metadata"]["name"] not in {
                            j["metadata"]["name"] for j in self.created}:
                        self.created.append(obj)
                        self._start_job(group, version, plural, obj)
                    elif event["type"] == "DELETED":
                        self._collect_garbage(obj)
                    if self._stop.is_set():
                        return
            except Exception:  # noqa: BLE001 - reopen the watch
                time.sleep(0.2)

    def _start_job(self, group: str, version: str, plural: str, job: dict[str, Any]) -> None:
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        pods = []
        if plural == "jobs":
            pods.append((f"{name}-{abs(hash(name)) % 100000:05d}", job["spec"]["template"], {"job-name": name}, True))
        elif plural == "trainjobs":  # Trainer: the runtime's node pods, with the runtimePatches' pod labels
            from katib.runtimes import resolve

            resolved = resolve(job, ns)
            labels: dict[str, str] = {}
            for patch in job["spec"].get("runtimePatches") or []:
                for rjob in patch["trainingRuntimeSpec"]["template"]["spec"].get("replicatedJobs") or []:
                    if rjob.get("name") == "node":
                        labels.update(rjob["template"]["spec"]["template"]["metadata"].get("labels") or {})
            for i in range(resolved.num_nodes):
                template = {"metadata": {"labels": labels}, "spec": {"containers": [resolved.container]}}
                pods.append((f"{name}-node-0-{i}", template, {JOBSET_NAME: name, "jobset.sigs.k8s.io/replicatedjob-name": "node",
                                                              "batch.kubernetes.io/job-completion-index": str(i)}, i == 0))
        else:
            specs = next(v for k, v in job["spec"].items() if k.endswith("ReplicaSpecs"))
            for role, replica in specs.items():
                for i in range(int(replica.get("replicas", 1))):
                    primary = role.lower() in ("master", "chief") or (len(specs) == 1 and i == 0)
                    pods.append((f"{name}-{role.lower()}-{i}", replica["template"],
                                 {ROLE_LABEL: role.lower(), "training.kubeflow.org/job-name": name}, primary))
        for pod_name, template, extra, primary in pods:
            labels = {**(template.get("metadata", {}).get("labels") or {}), **extra}
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": pod_name, "namespace": ns, "labels": labels},
                   "spec": template["spec"], "status": {"phase": "Pending"}}
            self.core.create_namespaced_pod(ns, pod, _preload_content=False)
            threading.Thread(target=self._kubelet, args=(group, version, plural, job, pod, primary), daemon=True).start()

    def _collect_garbage(self, job: dict[str, Any]) -> None:
        name, ns = job["metadata"]["name"], job["metadata"]["namespace"]
        for pod in self.objects("pods"):
            labels = pod["metadata"].get("labels") or {}
            if name in (labels.get("job-name"), labels.get("training.kubeflow.org/job-name"), labels.get(JOBSET_NAME)):
                proc = self.procs.pop(pod["metadata"]["name"], None)
                if proc is not None:
                    _kill(proc)
                try:
                    self.core.delete_namespaced_pod(pod["metadata"]["name"], ns)
                except client.exceptions.ApiException:
                    pass

    # -- the kubelet ----------------------------------------------------------------

    def _pod_status(self, ns: str, pod: str, status: dict[str, Any]) -> None:
        try:
            self.core.patch_namespaced_pod_status(pod, ns, {"status": status}, _preload_content=False)
        except client.exceptions.ApiException:
            pass  # deleted meanwhile

    def _job_status(self, group: str, version: str, plural: str, job: dict[str, Any], ok: bool, reason: str) -> None:
        kind_ok = "Complete" if plural in ("jobs", "trainjobs") else "Succeeded"
        cond = {"type": kind_ok if ok else "Failed", "status": "True", "reason": reason,
                "message": "" if ok else f"Job has reached the specified backoff limit ({reason})"}
        try:
            self.custom.patch_namespaced_custom_object_status(
                group, version, job["metadata"]["namespace"], plural, job["metadata"]["name"],
                {"status": {"conditions": [{"type": "Created", "status": "True"}, cond]}})
        except client.exceptions.ApiException:
            pass

    def _kubelet(self, group: str, version: str, plural: str, job: dict[str, Any], pod: dict[str, Any],
                 primary: bool) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e.get("value", "") for e in container.get("env") or []}
        behaviour = env.get("FAKE_KUBELET", "")
        want = int(((container.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu", 0))
        devices: list[int] = []
        while True:  # the scheduler: a pod waits, Pending, until its GPUs are free
            with self._lock:
                if len(self.free_gpus) >= want:
                    devices, self.free_gpus = self.free_gpus[:want], self.free_gpus[want:]
                    break
            time.sleep(0.05)
        started = time.time()
        running = _container_status(container, {"running": {"startedAt": "2026-01-01T00:00:00Z"}}, ready=True)
        self._pod_status(ns, name, {"phase": "Running", "containerStatuses": [running]})
        log = self.logdir / f"{name}.log"
        self.logs[name] = log
        code, reason = 0, "Completed"
        try:
            if not primary:
                return self._end(ns, name, container, 0, "Completed")
            if behaviour == "evict":
                time.sleep(0.3)
                self.done.add(name)
                self._pod_status(ns, name, {"phase": "Failed", "reason": "Evicted",
                                            "message": "The node was low on resource: memory."})
                self._job_status(group, version, plural, job, False, "BackoffLimitExceeded")
                return None
            argv = [*(container.get("command") or []), *(container.get("args") or [])]
            if behaviour == "hang":
                argv = ["sleep", "3600"]
            if behaviour == "oom":
                argv = ["sh", "-c", "echo allocating; kill -9 $$"]
            argv = [sys.executable if a in ("python", "python3") else a for a in argv]
            proc_env = {**os.environ, **env, "NVIDIA_VISIBLE_DEVICES": ",".join(map(str, devices))}
            if self.containers:
                argv, proc_env = _container(pod["spec"], container, argv, env, self.workdir)
            with log.open("wb") as out:
                proc = subprocess.Popen(argv, cwd=self.workdir, env=proc_env, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
                self.procs[name] = proc
                code = proc.wait()
            if self.procs.pop(name, None) is None:
                return None  # deleted: the garbage collector killed it
            if code == -signal.SIGKILL and behaviour == "oom":
                code, reason = 137, "OOMKilled"
            elif code != 0:
                reason = "Error"
            self._end(ns, name, container, code, reason)
            self._job_status(group, version, plural, job, code == 0, "JobSucceeded" if code == 0 else "BackoffLimitExceeded")
            return None
        finally:
            with self._lock:
                self.free_gpus += devices
                if want:
                    self.gpu_log.append((name, devices, started, time.time()))

    def _end(self, ns: str, name: str, container: dict[str, Any], code: int, reason: str) -> None:
        self.done.add(name)
        terminated = _container_status(container, {"terminated": {"exitCode": code, "reason": reason}})
        self._pod_status(ns, name, {"phase": "Succeeded" if code == 0 else "Failed", "containerStatuses": [terminated]})


def _container(spec: dict[str, Any], container: dict[str, Any], argv: list[str], env: dict[str, str],
               workdir: Path) -> tuple[list[str], dict[str, str]]:
    """A pod's process as a container runtime would start it: the image's environment (its
    PATH, katib importable) and the pod's ``env``, nothing of this process's; a filesystem of
    its own (the host's system read-only, but none of its ``/tmp``, ``/home``, ``/root`` or
    ``/run``; ``hostPath`` volumes mounted where the pod says), its own PID namespace
    unless ``hostPID``, and its memory limit enforced (as an address-space limit)."""
    from trials._resources import parse_memory
    from trials._sandbox import _probe

    repo = Path(__file__).resolve().parents[2]
    image = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(repo),
             "HOME": "/tmp", "LANG": "C.UTF-8"}
    memory = parse_memory(((container.get("resources") or {}).get("limits") or {}).get("memory") or 0)
    limit = ["prlimit", f"--as={memory}", "--"] if memory else []
    flags, _ = _probe("bwrap")
    if flags is None:
        return [*limit, *argv], {**image, **env}
    out = ["bwrap", *flags, "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    out += [a for hidden in ("/tmp", "/home", "/root", "/run") if os.path.isdir(hidden) for a in ("--tmpfs", hidden)]
    for shown in sorted({repo, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), workdir.resolve()}):
        out += ["--ro-bind", str(shown), str(shown)]
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        host = (volumes.get(mount.get("name")) or {}).get("hostPath")
        if host:
            out += ["--bind", host["path"], mount["mountPath"]]
    if not spec.get("hostPID"):
        out.append("--unshare-pid")
    return [*out, "--chdir", str(workdir), "--", *limit, *argv], {**image, **env}


def _container_status(container: dict[str, Any], state: dict[str, Any], ready: bool = False) -> dict[str, Any]:
    return {"name": container["name"], "image": container.get("image", ""), "imageID": "", "ready": ready,
            "restartCount": 0, "state": state}


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
