"""The Kubernetes executor: each trial is the trial template's job (a batch/v1 Job, a
PyTorchJob, TFJob, XGBoostJob, MPIJob, or any other kind) created in a cluster through the
official ``kubernetes`` client, as Katib's trial controller would.

- The manifest is the rendered template with the trial's name and namespace, and the labels
  ``katib.kubeflow.org/experiment`` and ``katib.kubeflow.org/trial`` on the job and on every
  pod template in it; resources (GPU limits included) are left as written. It is validated
  against the official Kubernetes schemas (``kubernetes-validate``) before it is sent: a
  built-in kind whole, a custom resource through each of its pod templates.
- Jobs and pods are followed with watches (one of each per experiment), not polled; the
  trial's state is the template's ``successCondition`` / ``failureCondition`` (GJSON) over
  the latest job object. A failure names what the pods saw: ``OOMKilled``, an eviction, an
  exit code.
- Metrics come from the primary pod's log stream (the pod labelled with the trial and with
  ``primaryPodLabels``, container ``primaryContainerName``): it is copied into the trial's
  log, where the StdOut collector reads it as for a local trial; no sidecar is needed. With
  the File and TensorFlowEvent collectors the primary pod gets Katib's metrics-collector
  sidecar (``_sidecar``), with Custom the user's collector container as Katib injects it;
  they report to the DBManager at ``db_manager_address``. With PrometheusMetric the primary
  pod's endpoint is scraped through the API server's pod proxy (``_kubernetes_scrape``). With
  the Push collector, ``katib.report_metrics`` in the pod posts to the katib server at
  ``push_url`` (``KATIB_PUSH_URL`` in the container's env), with a token good for pushing
  that trial's metrics and nothing else (``KATIB_API_TOKEN``, from ``push_tokens``).
- Its pods stay inside the cluster's fence (``_podfence``): never the server's own service
  account, no service account token unless the template asks, no other namespace, and
  under ``--auth`` (``tenants``) no host namespaces, host paths or privileges.
- Trials may be queued by Kueue (``_kubernetes_kueue``): the ``kueue.x-k8s.io/queue-name``
  label (the template's, else ``kueue_queue``) and priority class, the job created
  suspended; while it waits for admission (or a pod waits for a GPU) the trial runs on and
  says so in its Running condition, and its deadline does not count.
- When a trial ends its job is deleted (with its pods, ``propagationPolicy: Background``),
  unless the template says ``retain: true``, once the controller has stored the end
  (``release``); a stopped trial's job is deleted at once.
  ``activeDeadlineSeconds`` is enforced here too, should the cluster not do it.
- A restarted controller adopts the jobs its predecessor created (``adopt``): it finds
  each trial's job by name and labels and watches it on; only a job that is gone is run again.

Point it at a cluster with a kubeconfig (``--kubeconfig``/``--context``, or
``$KUBECONFIG``), or run it in a pod with a service account (in-cluster config). The
RBAC it needs is in docs/kubernetes.md.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from katib._pushtoken import PushTokens
from katib.errors import KatibError
from katib.runtimes import is_trainjob
from katib.spec import EXPERIMENT_LABEL, TRIAL_LABEL

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
from ._kubernetes_kueue import SUSPEND_PATHS, WORKLOADS, label_value_problem, suspend
from ._kubernetes_manifest import trial_manifest
from ._kubernetes_status import judge, waiting
from ._kubernetes_watch import JobWatching, KubeTrial, created_at, logs_to_come, trial_of
from ._manifest import group_version, manifest_errors, plural_of
from ._podfence import identity_of_client, parse_account, problems
from ._sidecar import INJECTED_KINDS
from ._trainjob import trainjob_escapes

_LOG_GRACE = 10.0  # seconds a finished job waits for its log stream to drain


#: What a tenant's trial may be (katib server --auth): kinds whose controllers make pods from
#: the pod templates the fence checks (``_podfence``); (API group, kind).
TENANT_KINDS = frozenset({
    ("batch", "Job"), ("jobset.x-k8s.io", "JobSet"),
    *(("kubeflow.org", k) for k in ("PyTorchJob", "TFJob", "XGBoostJob", "MPIJob", "PaddleJob", "MXJob", "JAXJob")),
})


class KubernetesExecutor(JobWatching, Executor):
    """Runs trials as jobs in a Kubernetes cluster; see the module docstring.

    >>> ex = KubernetesExecutor(kubeconfig="~/.kube/config", context="gpu-cluster")  # doctest: +SKIP
    """

    name = "kubernetes"
    # The metrics come from the primary pod's log stream (no sidecar), are pushed to the
    # katib server (its --push-url), or are reported by Katib's collector sidecar (File,
    # TensorFlowEvent; Custom: the user's container) to the DBManager at db_manager_address
    # (katib server --grpc-port).
    # PrometheusMetric: the primary pod's endpoint, scraped through the API server's pod
    # proxy (_kubernetes_scrape).
    collector_kinds = ("StdOut", "Push", "File", "TensorFlowEvent", "Custom", "PrometheusMetric")
    fences = "cluster"
    shares_environment = False

    def __init__(self, api_client: Any = None, kubeconfig: str | None = None, context: str | None = None,
                 validate: bool = True, watch_timeout: int = 60, push_url: str | None = None,
                 push_tokens: PushTokens | None = None, server_account: str | None = None,
                 tenants: bool = False, db_manager_address: str | None = None,
                 collector_images: dict[str, str] | None = None, kueue_queue: str | None = None,
                 kueue_priority_class: str | None = None) -> None:
        from kubernetes import client

        for what, value in (("kueue_queue", kueue_queue), ("kueue_priority_class", kueue_priority_class)):
            problem = label_value_problem(value) if value is not None else None
            if problem:
                raise KatibError(f"{what}: {problem}")

        if api_client is None:
            api_client = self.connect(kubeconfig, context)
        # The service account trial pods may not use (_podfence): given, else (serving
        # tenants) the one we run as; one user's own pods may run as that user's account.
        self.server_account = (parse_account(server_account) if server_account
                               else identity_of_client(api_client) if tenants else None)
        self.tenants = tenants  # under --auth: the baseline Pod Security rules too
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.validate = validate
        self.watch_timeout = watch_timeout
        self.push_url, self.push_tokens = push_url, push_tokens
        self.db_manager_address, self.collector_images = db_manager_address, dict(collector_images or {})
        # Kueue's LocalQueue and WorkloadPriorityClass for trials whose template names none.
        self.kueue_queue, self.kueue_priority_class = kueue_queue, kueue_priority_class
        self._trials: dict[str, KubeTrial] = {}
        self._ended: dict[str, KubeTrial] = {}  # finished, their jobs kept until ``release``
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._watching: set[tuple[str, ...]] = set()
        self._closed = threading.Event()

    @staticmethod
    def connect(kubeconfig: str | None = None, context: str | None = None) -> Any:
        """An API client for the cluster: in-cluster (a pod's service account) when running
        in one, else the kubeconfig (``kubeconfig``, ``$KUBECONFIG`` or ``~/.kube/config``)."""
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            try:
                config.load_kube_config(config_file=kubeconfig, context=context)
            except (config.ConfigException, OSError, TypeError) as exc:
                raise KatibError(f"no Kubernetes cluster to use: {exc} "
                                 "(give --kubeconfig and --context, or run katib in a pod)") from None
        return client.ApiClient()

    # -- launching ----------------------------------------------------------------------

    def manifest(self, job: TrialJob) -> dict[str, Any]:
        """The object created for ``job``: the rendered template, named and labelled
        (``_kubernetes_manifest.trial_manifest``)."""
        return trial_manifest(job, push_url=self.push_url, push_tokens=self.push_tokens,
                              db_manager_address=self.db_manager_address, tenants=self.tenants,
                              collector_images=self.collector_images, queue=self.kueue_queue,
                              priority_class=self.kueue_priority_class)

    def launch(self, job: TrialJob) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        if job.collector == "Push" and not self.push_url:
            raise LaunchError("the Push collector in a cluster needs the address of a katib server the pods can reach: "
                              "katib server --executor kubernetes --push-url http://<address>:<port>")
        if job.collector in INJECTED_KINDS and self.tenants:
            # As the Custom collector under --auth: Katib's gRPC API carries no credentials,
            # so a tenant's pod could report metrics for another tenant's trials.
            raise LaunchError(f"the {job.collector} metrics collector's sidecar reports through Katib's DBManager gRPC "
                              "API, which carries no credentials: it is not run for tenants (katib server --auth); "
                              "use StdOut or Push")
        if job.collector in INJECTED_KINDS and not self.db_manager_address:
            raise LaunchError(f"the {job.collector} metrics collector's sidecar in a cluster reports to Katib's "
                              "DBManager at an address its pods can reach: katib run (or katib server) --executor kubernetes "
                              "--grpc-port PORT --db-manager-address <address>[:PORT]")
        manifest = self.manifest(job)
        kind, api_version = str(manifest.get("kind", "")), str(manifest.get("apiVersion", ""))
        escapes = problems(manifest, job.namespace, self.server_account, self.tenants)
        if self.tenants and is_trainjob(manifest):
            escapes += trainjob_escapes(manifest)
        elif self.tenants and (group_version(api_version)[0], kind) not in TENANT_KINDS:
            # An Argo Workflow or a Tekton PipelineRun keeps its pods' fields where the fence
            # does not look (spec.templates[].container, spec.volumes, podSpecPatch…); a
            # decoy pod template in one (any field holding {spec: {containers: []}}) is not
            # where its controller reads, so kinds are allowed by name, not by their fields.
            escapes.append(f"a {kind or 'trial'}'s pods are made by its own controller from fields the fence cannot "
                           f"check; a tenant's trial is a Job, a Kubeflow training job, a JobSet or a TrainJob")
        if escapes:
            raise LaunchError(f"the {kind} for trial {job.name} would leave its fence: " + "; ".join(escapes))
        if self.validate:
            errors = manifest_errors(manifest)
            if errors:
                raise LaunchError(f"the {kind} for trial {job.name} is not valid Kubernetes: " + "; ".join(errors))
        group, version = group_version(api_version)
        if not group:
            raise LaunchError(f"a trial must be a job of an API group (batch/v1 Job, kubeflow.org/v1 PyTorchJob…), "
                              f"not a core {api_version} {kind}")
        plural = plural_of(kind)
        trial = trial_of(job, manifest, group, version, plural)
        job.trial_dir.mkdir(parents=True, exist_ok=True)
        job.log_path.touch()
        _expect_scrapes(job)
        with self._lock:
            self._trials[job.name] = trial
        self._watch(job.namespace, group, version, plural, job.experiment)
        self._watch(job.namespace, "", "v1", "pods", job.experiment)
        if trial.queue:
            self._watch(job.namespace, *WORKLOADS, "")
        handle = {"executor": self.name, "apiVersion": api_version, "kind": kind, "plural": plural,
                  "namespace": job.namespace, "name": job.name, "started_at": trial.started}
        write_handle(job.trial_dir, handle)  # before the job exists: a controller dying now leaves it findable
        try:
            created = self._create(group, version, job.namespace, plural, manifest)
        except ApiException as exc:
            with self._lock:
                self._trials.pop(job.name, None)
            (job.trial_dir / HANDLE_FILE).unlink(missing_ok=True)
            if exc.status == 409:
                raise Deferred() from None  # the last attempt's job is still being deleted
            raise LaunchError(f"the cluster refused the {kind} for trial {job.name}: {_status_message(exc)}") from None
        with self._lock:
            if trial.obj is None:
                trial.saw_job(created)
        return handle

    def adopt(self, handle: dict[str, Any], job: TrialJob) -> Adoption:
        """Follow on a trial's job an earlier controller created: the job named in the
        handle, labelled with this trial and experiment and not being deleted, is watched
        on (a job that ended meanwhile ends the trial as it ended). The pod's log is copied
        on from where the earlier controller's copy stopped."""
        from kubernetes.client.exceptions import ApiException

        group, version = group_version(str(handle.get("apiVersion", "")))
        namespace, name, plural = str(handle.get("namespace")), str(handle.get("name")), str(handle.get("plural"))
        if not (group and name == job.name and plural):
            return Adoption.refused("its handle does not name its job")
        try:
            obj = self.custom.get_namespaced_custom_object(group, version, namespace, plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return Adoption.refused(f"its {handle.get('kind', 'job')} {namespace}/{name} is gone")
            raise
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get(TRIAL_LABEL) != job.name or labels.get(EXPERIMENT_LABEL) != job.experiment:
            return Adoption.refused(f"{namespace}/{name} is not this trial's {handle.get('kind', 'job')}")
        if meta.get("deletionTimestamp"):
            return Adoption.refused(f"its {handle.get('kind', 'job')} {namespace}/{name} is being deleted")
        trial = trial_of(job, self.manifest(job), group, version, plural)
        trial.started = float(handle.get("started_at") or created_at(obj) or time.time())
        # A running job's clock: its own startTime (the Job controller restarts it on each
        # resume from Kueue's suspension), else when the trial started.
        start = created_at({"metadata": {"creationTimestamp": (obj.get("status") or {}).get("startTime")}})
        trial.running_since = start or trial.started
        trial.saw_job(obj)
        job.trial_dir.mkdir(parents=True, exist_ok=True)
        job.log_path.touch()
        _expect_scrapes(job)
        trial.log_copied = job.log_path.stat().st_size  # the log stream's first bytes are there already
        # Its pods now, not when the watch gets to them: a job that ended meanwhile is
        # judged at the first poll, and its log must be copying by then to be waited for.
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"{TRIAL_LABEL}={job.name}")
        with self._lock:
            for pod in pods.items:
                data = self.core.api_client.sanitize_for_serialization(pod)
                if (data["metadata"].get("labels") or {}).get(TRIAL_LABEL) == job.name:
                    trial.pods[data["metadata"]["name"]] = data
            self._trials[job.name] = trial
            self._maybe_follow_log(trial)
        self._watch(namespace, group, version, plural, job.experiment)
        self._watch(namespace, "", "v1", "pods", job.experiment)
        if trial.queue:
            self._watch(namespace, *WORKLOADS, "")
        return ADOPTED

    def _create(self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(group, version, namespace, plural, body)

    # -- the executor seam --------------------------------------------------------------

    def poll(self, handle: dict[str, Any]) -> RunState:
        with self._lock:
            trial = self._trials.get(handle.get("name", ""))
            if trial is None:
                return RunState(True, reason="Lost", message="the trial's job is not followed by this controller")
            if trial.outcome is None:
                trial.outcome = judge(trial)
            outcome = trial.outcome
        if outcome is not None and outcome.reason == "Lost":  # its job deleted outside katib
            return self._create_again(trial, outcome)
        with self._lock:
            if outcome is None:
                return waiting(trial) or RunState.running()
            if trial.finished_at is None:
                trial.finished_at = time.time()
            # A job that ran to its end has its last log lines still in flight, or a pod whose
            # start its watch has not seen yet (a succeeded job's); a killed one not.
            draining = (outcome.reason in ("Completed", "Failed")
                        and logs_to_come(trial, before_any=outcome.reason == "Completed"))
            if draining and time.time() - trial.finished_at < _LOG_GRACE:
                return RunState.running()  # the last lines of the log are still coming
        self._finish(trial)
        return outcome

    def _create_again(self, trial: KubeTrial, lost: RunState) -> RunState:
        """A job deleted under its running trial (not by katib) is created again, as Katib's
        trial controller does (``reconcileJob``: not found, trial not completed, create):
        the trial runs on, its log noting it. Only if the cluster refuses does it end so."""
        from kubernetes.client.exceptions import ApiException

        job = trial.job
        try:
            created = self._create(trial.group, trial.version, job.namespace, trial.plural, self.manifest(job))
        except ApiException as exc:
            self._finish(trial)
            return RunState(True, reason="Lost", message=f"{lost.message}, and the cluster refused it again: "
                                                          f"{_status_message(exc)}")
        with job.log_path.open("a") as out:
            out.write(f"\n[katib] the {trial.obj and trial.obj.get('kind') or 'job'} was deleted outside katib; "
                      "created again, as Katib does\n")
        with self._lock:
            trial.gone, trial.outcome, trial.finished_at, trial.obj = False, None, None, None
            trial.saw_job(created)
        return RunState.running()

    def _finish(self, trial: KubeTrial) -> None:
        # The job stays until ``release``: deleted now, a controller that died before
        # storing the trial's end would find it gone and run the trial again.
        with self._lock:
            self._trials.pop(trial.job.name, None)
            self._ended[trial.job.name] = trial

    def release(self, handle: dict[str, Any]) -> None:
        """Delete a finished trial's job (unless the template says ``retain``), now that
        its end is stored."""
        with self._lock:
            trial = self._ended.pop(handle.get("name", ""), None)
        if trial is not None and not trial.retain:
            self._delete(trial.job.namespace, trial.group, trial.version, trial.plural, trial.job.name)

    def _delete(self, namespace: str, group: str, version: str, plural: str, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.delete_namespaced_custom_object(group, version, namespace, plural, name,
                                                        propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise

    def stop(self, handle: dict[str, Any]) -> None:
        name = handle.get("name", "")
        with self._lock:
            trial = self._trials.get(name)
            if trial is not None:
                trial.stopped = True
        group, version = group_version(str(handle.get("apiVersion", "")))
        path = SUSPEND_PATHS.get((group, str(handle.get("kind", ""))))
        if trial is not None and trial.retain and path is not None and not trial.queue:
            # retain: the job stays, as Katib keeps a retained trial's job once it is
            # stopped; suspending it ends its pods (Kueue's jobs are deleted: Kueue would
            # take a suspended job for one of its own to admit again).
            try:
                self.custom.patch_namespaced_custom_object(group, version, str(handle.get("namespace")),
                                                           str(handle.get("plural")), name, suspend({}, path))
                return
            except Exception:  # noqa: BLE001 - not suspendable after all: stopped by deleting it
                pass
        self._delete(str(handle.get("namespace")), group, version, str(handle.get("plural")), name)

    def owns(self, handle: dict[str, Any]) -> bool:
        with self._lock:
            return handle.get("name") in self._trials

    def wait(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    def close(self) -> None:
        self._closed.set()


def _expect_scrapes(job: TrialJob) -> None:
    """A PrometheusMetric trial's scrapes come through the pod proxy into the trial's folder
    (``_kubernetes_scrape``): the file is there from the start, so the controller's source
    reads it and never the endpoint's address on its own machine."""
    if job.collector == "PrometheusMetric":
        from ._prometheus import SCRAPES

        (job.trial_dir / SCRAPES).touch()


def _status_message(exc: Any) -> str:
    import json

    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)
