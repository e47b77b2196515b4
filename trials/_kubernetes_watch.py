"""What the Kubernetes executor knows of each trial's job and pods, and how it learns it:
one watch of the jobs and one of the pods per experiment and namespace (not polling), one of
Kueue's Workloads per namespace where trials are queued, and the primary pod's log stream
copied into the trial's log (and, for the PrometheusMetric collector, its metrics endpoint
scraped through the API server's pod proxy: ``_kubernetes_scrape``)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from katib.spec import EXPERIMENT_LABEL, TRIAL_LABEL

from ._executor import RunState, TrialJob
from ._kubernetes_kueue import WORKLOADS, owner_of, queue_of, suspended
from ._manifest import deadline_of


@dataclass
class KubeTrial:
    """One followed trial: its job's API coordinates and template conditions, and what the
    watches have seen of it."""

    job: TrialJob
    group: str
    version: str
    plural: str
    success: str
    failure: str
    primary_labels: dict[str, str]
    retain: bool
    deadline: float | None
    started: float = field(default_factory=time.time)
    obj: dict[str, Any] | None = None
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished_at: float | None = None
    stopped: bool = False
    gone: bool = False
    log_started: bool = False
    log_done: threading.Event = field(default_factory=threading.Event)
    log_copied: int = 0  # bytes of the log streams already in the trial's log (adoption skips them)
    log_pod: str | None = None  # the pod whose log is (or was last) copied
    logged: list[str] = field(default_factory=list)  # the primary pods whose logs were copied, in order
    outcome: RunState | None = None
    queue: str | None = None  # the Kueue queue its job waits in (kueue.x-k8s.io/queue-name)
    workload: dict[str, Any] | None = None  # Kueue's Workload for its job, when it may be read
    # Since when its job has run (admitted, not suspended): activeDeadlineSeconds counts
    # from here, as the Job controller counts it; None while it waits in a queue.
    running_since: float | None = None

    def saw_job(self, obj: dict[str, Any]) -> None:
        """The job object as a watch (or a read) gave it."""
        self.obj = obj
        self.queue = queue_of(obj) or self.queue  # an adopted job's own label
        if self.queue and suspended(obj):
            self.running_since = None
        elif self.running_since is None:
            self.running_since = time.time()


def trial_of(job: TrialJob, manifest: dict[str, Any], group: str, version: str, plural: str) -> KubeTrial:
    queue = queue_of(manifest)
    trial = KubeTrial(
        job=job, group=group, version=version, plural=plural,
        success=job.success_condition or "", failure=job.failure_condition or "",
        primary_labels=dict(job.primary_pod_labels or {}), retain=bool(job.retain),
        deadline=deadline_of(manifest), queue=queue,
    )
    trial.running_since = None if queue else trial.started
    return trial


def created_at(obj: dict[str, Any]) -> float | None:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp() if stamp else None
    except ValueError:
        return None


def primary_pods(trial: KubeTrial) -> list[dict[str, Any]]:
    """The pods labelled with ``primaryPodLabels`` (any of the trial's pods when none are
    given), oldest first: a Job's retries, a job's parallel pods, a resumed job's new pod.
    Katib's webhook gives each of them its metrics collector."""
    pods = [(created_at(pod) or 0.0, n, pod) for n, pod in enumerate(trial.pods.values())
            if all(((pod["metadata"].get("labels") or {}).get(k) == v for k, v in trial.primary_labels.items()))]
    return [pod for _, _, pod in sorted(pods, key=lambda p: p[:2])]


def primary_pod(trial: KubeTrial) -> dict[str, Any] | None:
    """The newest primary pod (the one whose end the job's end follows), or None."""
    pods = primary_pods(trial)
    return pods[-1] if pods else None


def _phase(pod: dict[str, Any]) -> str | None:
    return (pod.get("status") or {}).get("phase")


def logs_to_come(trial: KubeTrial, before_any: bool) -> bool:
    """Whether log lines of the trial are still to be copied: a copy runs, a primary pod
    that ran has not been copied yet, or (``before_any``) no pod's log was copied at all (a
    job's end can be seen before its pod's start: the two watches are separate streams)."""
    if trial.log_started and not trial.log_done.is_set():
        return True
    if any(pod["metadata"]["name"] not in trial.logged and _phase(pod) not in (None, "Pending")
           for pod in primary_pods(trial)):
        return True
    return before_any and not trial.logged


class JobWatching:
    """The KubernetesExecutor's watches and log copies (a mixin: the attributes below are
    the executor's)."""

    core: Any
    custom: Any
    watch_timeout: int
    _trials: dict[str, KubeTrial]
    _lock: threading.Lock
    _changed: threading.Condition
    _watching: set[tuple[str, ...]]
    _closed: threading.Event

    def _watch(self, namespace: str, group: str, version: str, plural: str, experiment: str) -> None:
        key = (namespace, group, version, plural, experiment)
        with self._lock:
            if key in self._watching:
                return
            self._watching.add(key)
        threading.Thread(target=self._follow, args=key, daemon=True, name=f"watch-{plural}").start()

    def _follow(self, namespace: str, group: str, version: str, plural: str, experiment: str) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        # Kueue labels its Workloads with none of the trial's labels: they are told by owner.
        selector = f"{EXPERIMENT_LABEL}={experiment}" if experiment else None
        while not self._closed.is_set():
            w = watch.Watch()
            try:
                if plural == "pods":
                    stream = w.stream(self.core.list_namespaced_pod, namespace, label_selector=selector,
                                      timeout_seconds=self.watch_timeout)
                else:
                    stream = w.stream(self.custom.list_namespaced_custom_object, group, version, namespace, plural,
                                      label_selector=selector, timeout_seconds=self.watch_timeout)
                for event in stream:
                    if self._closed.is_set():
                        w.stop()
                        return
                    obj = event.get("object")
                    if isinstance(obj, dict):
                        self._observe(plural, event.get("type", ""), obj)
                    elif obj is not None:  # a typed V1Pod
                        self._observe(plural, event.get("type", ""), self.core.api_client.sanitize_for_serialization(obj))
            except ApiException as exc:
                if (group, plural) == WORKLOADS[::2] and exc.status in (403, 404):
                    return  # no Kueue here, or no right to read its Workloads: the jobs' suspend field tells
                time.sleep(0.5)
            except Exception:  # noqa: BLE001 - a dropped watch is reopened
                time.sleep(0.5)

    def _observe(self, plural: str, kind: str, obj: dict[str, Any]) -> None:
        if plural == WORKLOADS[2]:
            return self._observe_workload(kind, obj)
        labels = (obj.get("metadata") or {}).get("labels") or {}
        name = labels.get(TRIAL_LABEL)
        with self._changed:
            trial = self._trials.get(name or "")
            if trial is None:
                return
            if plural == "pods":
                pod_name = obj["metadata"]["name"]
                if kind == "DELETED":
                    trial.pods.pop(pod_name, None)
                else:
                    trial.pods[pod_name] = obj
                self._maybe_follow_log(trial)
            elif obj["metadata"].get("name") == trial.job.name:
                trial.saw_job(obj)  # a deletion's object is the job's last state: an end it holds counts
                if kind == "DELETED":
                    trial.gone = True
            self._changed.notify_all()
        return None

    def _observe_workload(self, kind: str, obj: dict[str, Any]) -> None:
        owner = owner_of(obj)
        with self._changed:
            trial = self._trials.get(owner[1]) if owner else None
            if trial is None or not trial.queue or owner is None or owner[0] != (trial.obj or {}).get("kind", owner[0]):
                return
            trial.workload = None if kind == "DELETED" else obj
            self._changed.notify_all()

    def _maybe_follow_log(self, trial: KubeTrial) -> None:
        """Copy each primary pod's log once it runs, one after another, oldest first: a
        Job's retry after a failed pod, a job's parallel pods, a pod made again after Kueue
        evicted its job each have their log appended once the last one's has ended (Katib
        gives every primary pod a collector, and merges what they report)."""
        if trial.log_started and not trial.log_done.is_set():
            return  # one copy at a time: the next starts when this one ends
        pod = next((p for p in primary_pods(trial)
                    if p["metadata"]["name"] not in trial.logged and _phase(p) not in (None, "Pending")), None)
        if pod is None:
            return
        name = pod["metadata"]["name"]
        trial.log_done.clear()
        trial.logged.append(name)
        trial.log_started, trial.log_pod = True, name
        threading.Thread(target=self._copy_log, args=(trial, name), daemon=True, name=f"log-{trial.job.name}").start()
        if trial.job.collector == "PrometheusMetric":
            threading.Thread(target=self._scrape, args=(trial, name), daemon=True, name=f"scrape-{trial.job.name}").start()

    def _scrape(self, trial: KubeTrial, pod: str) -> None:
        """The primary pod's metrics endpoint, scraped while it runs (``_kubernetes_scrape``)."""
        from ._kubernetes_scrape import proxy_path, scrape
        from ._prometheus import SCRAPES

        job = trial.job

        def running() -> bool:
            with self._lock:
                phase = ((trial.pods.get(pod) or {}).get("status") or {}).get("phase")
                return phase == "Running" and trial.outcome is None and not trial.stopped and not self._closed.is_set()

        try:
            path = proxy_path(job.namespace, pod, (job.collector_source or {}).get("httpGet"))
        except ValueError:
            return  # not an HTTP(S) endpoint (admission refuses one): nothing is fetched
        scrape(self.core.api_client, path, job.trial_dir / SCRAPES, running, self._closed.wait)

    def _copy_log(self, trial: KubeTrial, pod: str) -> None:
        """The primary container's log, followed to its end, into the trial's log file."""
        job = trial.job
        skip = trial.log_copied  # an adopted trial's log: what the earlier controller copied
        try:
            response = self.core.read_namespaced_pod_log(pod, job.namespace, container=job.primary_container,
                                                         follow=True, _preload_content=False)
            with job.log_path.open("ab") as out:
                for chunk in response.stream(4096):
                    if skip:
                        chunk, skip = chunk[skip:], max(0, skip - len(chunk))
                    out.write(chunk)
                    out.flush()
        except Exception as exc:  # noqa: BLE001 - the trial's state says what happened to it
            with job.log_path.open("a") as out:
                out.write(f"\n[katib] the log of pod {pod} could not be read: {exc}\n")
        finally:
            with self._changed:
                trial.log_copied = skip  # what is left to skip is in the next pod's log
                trial.log_done.set()
                self._maybe_follow_log(trial)  # a newer primary pod that started meanwhile
                self._changed.notify_all()
