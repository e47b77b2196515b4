"""A Kubernetes cluster for the tests: kmock's stateful API emulator, played by a fake job
controller, kubelet and GPU device plugin.

The emulator keeps the objects and serves lists, watches, creates, patches and deletes as
the API server does. The players, in threads, talk to it with the official client, as a
cluster's controllers would:

- the job controller creates the pods of each new job (one for a batch/v1 Job; one per
  replica for Kubeflow's jobs, labelled ``training.kubeflow.org/job-role``) and sets the
  job's conditions from its pods (``Complete``/``Succeeded`` or ``Failed``); a job created
  suspended (``spec.suspend``, Kubeflow's ``spec.runPolicy.suspend``) gets a ``Suspended``
  condition and no pods until it is un-suspended (Kueue's admission: kube_kueue.py); a job
  suspended again (Kueue's eviction) loses its pods, and gets new ones when resumed;
- the scheduler keeps a pod Pending while the GPUs it asks for are taken, with the
  ``PodScheduled`` condition the real one sets (``Unschedulable``: ``Insufficient
  nvidia.com/gpu``);
- the kubelet runs the primary pod's container command as a process (the job's other
  replicas succeed at once), with the devices the device plugin gave it in
  ``NVIDIA_VISIBLE_DEVICES``, writes its output as the pod's log (served, and followed, at
  ``…/pods/{name}/log``) and its end as the pod's status;
- a container's ``FAKE_KUBELET`` env var makes its pod misbehave: ``oom`` (killed,
  ``OOMKilled``, exit 137), ``evict`` (the pod is evicted for memory pressure), ``hang``
  (runs forever), ``job-first`` (the command runs while the pod still shows Pending, and
  the job is marked Complete a second before the pod shows Running: the job and pod
  watches are separate streams, so a controller can see a job's end before its pod's start);
- a batch Job with ``backoffLimit`` set has a failed pod made again, under a new name, up
  to that many times before it fails (Kubernetes' default is 6; here a Job without the
  field fails at its first failed pod, as the tests expect);
- with ``containers=True``, a pod's process is started as a container runtime would start
  it (``_container``): the image's environment and the pod's only, a filesystem of its own,
  its own PID namespace, its memory limit enforced;
- a primary pod's other containers (Katib's metrics-collector sidecar) run beside its
  first one, each from its ``command`` or else its image's entrypoint in ``images``; the pod
  ends when all have, Succeeded when each exited 0. Each ``emptyDir`` volume is a folder of
  the pod's own, which the containers that mount it find at their ``mountPath`` (the path
  is rewritten in their argv and env, as no mount namespace is made). ``command`` and
  ``args`` are expanded as Kubernetes does: ``$(VAR)`` from the container's env, ``$$`` → ``$``;
- the API server's pod proxy (``…/pods/NAME:PORT/proxy/PATH``) forwards to the running
  pod's port on loopback (``_pod_proxy``);
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

from tests.trials_tests.kube_pods import (
    _argv,
    _container,
    _container_status,
    _expand,
    _kill,
    _remap_env,
)

__all__ = ["FakeCluster", "_expand"]

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
    def __init__(self, workdir: Path, logdir: Path, gpus: int = 0, containers: bool = False,
                 images: dict[str, list[str]] | None = None) -> None:
        self.workdir, self.logdir = workdir, logdir
        self.images = dict(images or {})  # image → its entrypoint, for containers with no command
        self.containers = containers  # run each pod as a container would (``_container``)
        self.free_gpus = list(range(gpus))
        self.gpu_log: list[tuple[str, list[int], float, float]] = []  # (pod, devices, start, end)
        self.created: list[dict[str, Any]] = []  # every job object as it was created
        self.started: set[tuple[str, str]] = set()  # (namespace, name) of the jobs whose pods were made
        self.restarted: dict[str, list[float]] = {}  # job name → when it was suspended again, its pods deleted
        self.logs: dict[str, Path] = {}
        self.retries: dict[tuple[str, str], int] = {}  # (namespace, job) → pods made again after a failure
        self.done: set[str] = set()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.sidecar_procs: dict[str, list[subprocess.Popen[bytes]]] = {}
        self.proxied: list[str] = []  # the pod proxy's requests answered (``_pod_proxy``)
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
            k.resources["kueue.x-k8s.io/v1beta1/workloads"] = kmock.ResourceInfo(kind="Workload", namespaced=True)
            # A Katib control plane's Trials, for the EarlyStopping service's SetTrialStatus.
            k.resources["kubeflow.org/v1beta1/trials"] = kmock.ResourceInfo(kind="Trial", namespaced=True)
            k["get", re.compile(r"/api/v1/namespaces/[^/]+/pods/[^/]+/log")] << self._pod_log
            k["get", re.compile(r"/api/v1/namespaces/[^/]+/pods/[^/]+/proxy(/.*)?")] << self._pod_proxy
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

    async def _pod_proxy(self, request: Any) -> Any:
        """The API server's pod proxy (``…/pods/[SCHEME:]NAME:PORT/proxy/PATH``): the pod's
        port, on loopback here (its processes are this machine's), while the pod runs."""
        import urllib.request

        parts = request.url.path.split("/")
        target, rest = parts[6].split(":"), "/" + "/".join(parts[8:])
        scheme, pod, port = ("http", *target) if len(target) == 2 else target
        if not any(p["metadata"]["name"] == pod and (p.get("status") or {}).get("phase") == "Running"
                   for p in self.objects("pods")):
            return kmock.Response(status=503, payload={"kind": "Status", "message": f"pod {pod} is not running"})
        self.proxied.append(request.url.path)

        def fetch() -> bytes:
            with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}{rest}", timeout=2) as reply:  # noqa: S310
                return reply.read()

        try:  # a status of its own each time: kmock keeps the last one returned on the route
            return kmock.Response(status=200, payload=await asyncio.to_thread(fetch))
        except OSError as exc:
            return kmock.Response(status=503, payload={"kind": "Status", "message": f"error trying to reach service: {exc}"})

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
                    key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
                    # A watch reopened lists every object again as ADDED: a job is new when it
                    # lacks the mark this controller puts on each it has seen (a job deleted and
                    # created again under the same name is new).
                    if event["type"] == "ADDED" and not (obj["metadata"].get("annotations") or {}).get(_SEEN):
                        self._mark_seen(group, version, plural, obj)
                        self.created.append(obj)
                        if _suspended(obj):
                            self._suspended_status(group, version, plural, obj)
                        else:
                            self.started.add(key)
                            self._start_job(group, version, plural, obj)
                    elif event["type"] == "MODIFIED" and key in self.started and _suspended(obj):
                        self.started.discard(key)  # suspended again (evicted): its pods go
                        self.restarted.setdefault(key[1], []).append(time.time())
                        self._collect_garbage(obj)
                        self._suspended_status(group, version, plural, obj)
                    elif event["type"] == "MODIFIED" and key not in self.started and not _suspended(obj) \
                            and obj["metadata"]["name"] in {j["metadata"]["name"] for j in self.created}:
                        self.started.add(key)  # resumed: admitted by Kueue
                        self._start_job(group, version, plural, obj)
                    elif event["type"] == "DELETED":
                        self._collect_garbage(obj)
                    if self._stop.is_set():
                        return
            except Exception:  # noqa: BLE001 - reopen the watch
                time.sleep(0.2)

    def _mark_seen(self, group: str, version: str, plural: str, job: dict[str, Any]) -> None:
        try:
            self.custom.patch_namespaced_custom_object(group, version, job["metadata"]["namespace"], plural,
                                                       job["metadata"]["name"], {"metadata": {"annotations": {_SEEN: "1"}}})
        except client.exceptions.ApiException:
            pass  # deleted meanwhile

    def _start_job(self, group: str, version: str, plural: str, job: dict[str, Any]) -> None:
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        pods = []
        if plural == "jobs":
            # A resumed job's pod is a new one, and so is a job's made again under its name.
            starts = (len(self.restarted.get(name, [])), sum(j["metadata"]["name"] == name for j in self.created))
            pods.append((f"{name}-{abs(hash((name, starts))) % 100000:05d}", job["spec"]["template"], {"job-name": name},
                         True))
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

    def _suspended_status(self, group: str, version: str, plural: str, job: dict[str, Any]) -> None:
        cond = {"type": "Suspended", "status": "True", "reason": "JobSuspended", "message": "Job suspended"}
        try:
            self.custom.patch_namespaced_custom_object_status(
                group, version, job["metadata"]["namespace"], plural, job["metadata"]["name"],
                {"status": {"conditions": [cond]}})
        except client.exceptions.ApiException:
            pass

    def _collect_garbage(self, job: dict[str, Any]) -> None:
        name, ns = job["metadata"]["name"], job["metadata"]["namespace"]
        for pod in self.objects("pods"):
            labels = pod["metadata"].get("labels") or {}
            if name in (labels.get("job-name"), labels.get("training.kubeflow.org/job-name"), labels.get(JOBSET_NAME)):
                proc = self.procs.pop(pod["metadata"]["name"], None)
                if proc is not None:
                    _kill(proc)
                self.done.add(pod["metadata"]["name"])  # its log stream ends
                for side in self.sidecar_procs.pop(pod["metadata"]["name"], []):
                    _kill(side)
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
        said = False
        while True:  # the scheduler: a pod waits, Pending, until its GPUs are free
            with self._lock:
                if len(self.free_gpus) >= want:
                    devices, self.free_gpus = self.free_gpus[:want], self.free_gpus[want:]
                    break
            if not said:
                said = True
                self._pod_status(ns, name, {"phase": "Pending", "conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are "
                               "available: 1 No preemption victims found for incoming pod."}]})
            if self._stop.is_set() or not any(p["metadata"]["name"] == name for p in self.objects("pods")):
                return None  # deleted while it waited
            time.sleep(0.05)
        started = time.time()
        running = _container_status(container, {"running": {"startedAt": "2026-01-01T00:00:00Z"}}, ready=True)
        scheduled = {"type": "PodScheduled", "status": "True"}
        log = self.logdir / f"{name}.log"
        if behaviour == "job-first" and primary:
            argv = [sys.executable if a in ("python", "python3") else a for a in _argv(container, env, {}, self.images)]
            with log.open("wb") as out:
                code = subprocess.run(argv, cwd=self.workdir, env={**os.environ, **env}, stdout=out,
                                      stderr=subprocess.STDOUT).returncode
            self._job_status(group, version, plural, job, code == 0, "JobSucceeded")
            time.sleep(1.0)
            self.logs[name] = log
            self._pod_status(ns, name, {"phase": "Running", "conditions": [scheduled], "containerStatuses": [running]})
            time.sleep(0.2)
            self._end(ns, name, container, code, "Completed" if code == 0 else "Error")
            with self._lock:
                self.free_gpus += devices
            return None
        self._pod_status(ns, name, {"phase": "Running", "conditions": [scheduled], "containerStatuses": [running]})
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
            dirs = self._empty_dirs(pod)
            argv = _argv(container, env, dirs, self.images)
            env = _remap_env(container, env, dirs)
            sidecars = self._start_sidecars(pod, dirs)
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
            side_codes = [(c, p.wait()) for c, p in sidecars]
            if self.procs.pop(name, None) is None:
                return None  # deleted: the garbage collector killed it
            self.sidecar_procs.pop(name, None)
            if code == -signal.SIGKILL and behaviour == "oom":
                code, reason = 137, "OOMKilled"
            elif code != 0:
                reason = "Error"
            ok = code == 0 and all(c == 0 for _, c in side_codes)
            self._end(ns, name, container, code, reason, side_codes)
            key = (ns, job["metadata"]["name"])
            if not ok and plural == "jobs" and self.retries.get(key, 0) < int(job["spec"].get("backoffLimit", 0)):
                self.retries[key] = self.retries.get(key, 0) + 1  # the Job controller makes a new pod
                retry = {**pod, "metadata": {**pod["metadata"], "name": f"{name.split('-r')[0]}-r{self.retries[key]}"},
                         "status": {"phase": "Pending"}}
                self.core.create_namespaced_pod(ns, retry, _preload_content=False)
                threading.Thread(target=self._kubelet, args=(group, version, plural, job, retry, primary),
                                 daemon=True).start()
                return None
            self._job_status(group, version, plural, job, ok, "JobSucceeded" if ok else "BackoffLimitExceeded")
            return None
        finally:
            with self._lock:
                self.free_gpus += devices
                if want:
                    self.gpu_log.append((name, devices, started, time.time()))

    def _end(self, ns: str, name: str, container: dict[str, Any], code: int, reason: str,
             sidecars: list[tuple[dict[str, Any], int]] | None = None) -> None:
        sidecars = sidecars or []
        self.done.add(name)
        statuses = [_container_status(container, {"terminated": {"exitCode": code, "reason": reason}})]
        statuses += [_container_status(c, {"terminated": {"exitCode": rc, "reason": "Completed" if rc == 0 else "Error"}})
                     for c, rc in sidecars]
        ok = code == 0 and all(rc == 0 for _, rc in sidecars)
        self._pod_status(ns, name, {"phase": "Succeeded" if ok else "Failed", "containerStatuses": statuses})

    def _empty_dirs(self, pod: dict[str, Any]) -> dict[str, Path]:
        """The pod's ``emptyDir`` volumes: a fresh folder each, by volume name."""
        out = {}
        for volume in pod["spec"].get("volumes") or []:
            if "emptyDir" in volume:
                out[volume["name"]] = self.logdir / "volumes" / pod["metadata"]["name"] / volume["name"]
                out[volume["name"]].mkdir(parents=True, exist_ok=True)
        return out

    def _start_sidecars(self, pod: dict[str, Any], dirs: dict[str, Path]) -> list[tuple[dict[str, Any], Any]]:
        """The primary pod's other containers, started beside its first one."""
        name, started = pod["metadata"]["name"], []
        for container in pod["spec"]["containers"][1:]:
            env = {e["name"]: e.get("value", "") for e in container.get("env") or []}
            argv = _argv(container, env, dirs, self.images)
            out = (self.logdir / f"{name}-{container['name']}.log").open("wb")
            proc = subprocess.Popen(argv, cwd=self.workdir, env={**os.environ, **_remap_env(container, env, dirs)},
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            out.close()
            self.sidecar_procs.setdefault(name, []).append(proc)
            started.append((container, proc))
        return started


_SEEN = "fake-cluster.test/seen"  # the fake job controller's mark on each job it has seen


def _suspended(job: dict[str, Any]) -> bool:
    spec = job.get("spec") or {}
    return bool(spec.get("suspend") or (spec.get("runPolicy") or {}).get("suspend"))
