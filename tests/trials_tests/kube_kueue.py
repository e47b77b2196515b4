"""Kueue's controller, played on the emulator's cluster (kube_cluster.py), as far as a
trial's job sees it: each job labelled ``kueue.x-k8s.io/queue-name`` and created suspended
gets a Workload (``kueue.x-k8s.io/v1beta1``, owned by the job) whose ``QuotaReserved`` is
False with Kueue's message for a GPU quota it cannot fit; admission (``admit``, or
``admit_after`` seconds after the job appeared; never when None) sets ``QuotaReserved`` and
``Admitted`` and un-suspends the job at its kind's field, after which the job controller
makes its pods; eviction (``evict``: preemption) sets ``Evicted`` and suspends it again,
which takes its pods. Deleting a job deletes its Workload (the owner's garbage collection)."""

from __future__ import annotations

import threading
import time
from typing import Any

from kubernetes import client, watch

from tests.trials_tests.kube_cluster import JOBS, FakeCluster

QUEUE_LABEL, PRIORITY_LABEL = "kueue.x-k8s.io/queue-name", "kueue.x-k8s.io/priority-class"
PENDING = ("couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor "
           "default-flavor, 1 more needed")


class FakeKueue:
    def __init__(self, cluster: FakeCluster, admit_after: float | None = None) -> None:
        self.cluster, self.admit_after = cluster, admit_after
        self.workloads: dict[str, str] = {}  # job name → its Workload's name
        self.appeared: dict[str, float] = {}  # job name → when its Workload was made
        self.admitted: dict[str, float] = {}  # job name → when it was admitted
        self.priorities: dict[str, str | None] = {}  # job name → its Workload's priority class
        self._jobs: dict[str, tuple[str, str, str, dict[str, Any]]] = {}
        self._stop = threading.Event()
        for group, version, plural in JOBS:
            threading.Thread(target=self._controller, args=(group, version, plural), daemon=True).start()

    def close(self) -> None:
        self._stop.set()

    def _controller(self, group: str, version: str, plural: str) -> None:
        custom = self.cluster.custom
        while not self._stop.is_set():
            try:
                for event in watch.Watch().stream(custom.list_cluster_custom_object, group, version, plural,
                                                  timeout_seconds=5):
                    if self._stop.is_set():
                        return
                    obj = event["object"]
                    name = obj["metadata"]["name"]
                    queue = (obj["metadata"].get("labels") or {}).get(QUEUE_LABEL)
                    if not queue:
                        continue
                    if event["type"] == "ADDED" and name not in self.workloads:
                        self._jobs[name] = (group, version, plural, obj)
                        self._workload(obj, queue)
                        if self.admit_after is not None:
                            threading.Timer(self.admit_after, self.admit, args=(name,)).start()
                    elif event["type"] == "DELETED" and name in self.workloads:
                        self._delete_workload(obj["metadata"]["namespace"], self.workloads[name])
            except Exception:  # noqa: BLE001 - reopen the watch
                time.sleep(0.2)

    def _workload(self, job: dict[str, Any], queue: str) -> None:
        meta = job["metadata"]
        name = f"{job['kind'].lower()}-{meta['name']}-{abs(hash(meta['name'])) % 100000:05d}"
        self.workloads[meta["name"]] = name
        self.appeared[meta["name"]] = time.time()
        self.priorities[meta["name"]] = (meta.get("labels") or {}).get(PRIORITY_LABEL)
        body = {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "Workload",
                "metadata": {"name": name, "namespace": meta["namespace"], "ownerReferences": [
                    {"apiVersion": job["apiVersion"], "kind": job["kind"], "name": meta["name"],
                     "uid": meta.get("uid", ""), "controller": True, "blockOwnerDeletion": True}]},
                "spec": {"queueName": queue, "podSets": [{"name": "main", "count": 1}]}}
        custom = self.cluster.custom
        custom.create_namespaced_custom_object("kueue.x-k8s.io", "v1beta1", meta["namespace"], "workloads", body)
        self._conditions(meta["namespace"], name, [
            {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": PENDING}])

    def _conditions(self, namespace: str, name: str, conditions: list[dict[str, Any]]) -> None:
        try:
            self.cluster.custom.patch_namespaced_custom_object_status(
                "kueue.x-k8s.io", "v1beta1", namespace, "workloads", name, {"status": {"conditions": conditions}})
        except client.exceptions.ApiException:
            pass  # deleted meanwhile

    def _delete_workload(self, namespace: str, name: str) -> None:
        try:
            self.cluster.custom.delete_namespaced_custom_object("kueue.x-k8s.io", "v1beta1", namespace, "workloads", name)
        except client.exceptions.ApiException:
            pass

    def evict(self, job_name: str) -> None:
        """Preempt an admitted job: its Workload ``Evicted``, the job suspended again."""
        group, version, plural, job = self._jobs[job_name]
        namespace = job["metadata"]["namespace"]
        self._conditions(namespace, self.workloads[job_name], [
            {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": PENDING},
            {"type": "Evicted", "status": "True", "reason": "Preempted",
             "message": "Preempted to accommodate a workload due to prioritization in the ClusterQueue"}])
        self._suspend(group, version, namespace, plural, job_name, True)

    def _suspend(self, group: str, version: str, namespace: str, plural: str, name: str, value: bool) -> bool:
        spec = {"runPolicy": {"suspend": value}} if group == "kubeflow.org" else {"suspend": value}
        try:
            self.cluster.custom.patch_namespaced_custom_object(group, version, namespace, plural, name, {"spec": spec})
        except client.exceptions.ApiException:
            return False  # deleted meanwhile
        return True

    def admit(self, job_name: str) -> None:
        """Admit a job's Workload and un-suspend the job (nothing if it is gone)."""
        if self._stop.is_set() or job_name not in self._jobs:
            return
        group, version, plural, job = self._jobs[job_name]
        namespace = job["metadata"]["namespace"]
        self._conditions(namespace, self.workloads[job_name], [
            {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved",
             "message": "Quota reserved in ClusterQueue cluster-queue"},
            {"type": "Admitted", "status": "True", "reason": "Admitted",
             "message": "The workload is admitted"}])
        if self._suspend(group, version, namespace, plural, job_name, False):
            self.admitted[job_name] = time.time()
