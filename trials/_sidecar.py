"""Katib's metrics-collector sidecar on the Kubernetes executor, injected into a trial's pod
as Katib's pod webhook injects it (kubeflow/katib ``pkg/webhook/v1beta1/pod``:
``inject_webhook.go`` and ``utils.go``) for the ``File`` and ``TensorFlowEvent`` collectors:

- a container ``metrics-logger-and-collector`` (File) or ``metrics-collector``
  (TensorFlowEvent) of the collector's image, with Katib's default resources and its
  args: ``-t TRIAL -m METRICS`` (the objective first, joined by ``;``) ``-o-type TYPE
  -s-db DB_MANAGER -path PATH``, then ``-f FILTERS`` (the spec's ``metricsFormat`` joined by ``;``) and, for File, ``-format``;
- an ``emptyDir`` volume ``metrics-volume`` mounted at the metrics file's folder (the
  event files' folder itself for TensorFlowEvent) in that container and the primary one;
- ``shareProcessNamespace: true``, so the collector sees the training process end;
- the primary container's command wrapped as Katib wraps it: ``sh -c "COMMAND && echo
  completed > DIR/$$$$.pid"`` (Kubernetes turns ``$$`` into ``$``: the shell writes its own
  pid), the marker Katib's collectors wait for before they report.

The collector reports through the DBManager at ``-s-db`` (``katib server --grpc-port``, as
pods reach it: ``--db-manager-address``), where the values land on the trial as pushed
metrics. Katib's ``-stop-rule`` early stopping in the sidecar is not injected: katib's
controller applies a trial's early-stopping rules itself and deletes the trial's job.

A ``Custom`` collector (``inject_custom``) is injected as Katib injects it: the user's
``collector.customCollector`` container itself (its name, image, command, args and env as
written, no resources added), the ``metrics-volume`` ``emptyDir`` only where the spec's
``source.fileSystemPath`` names a path (at the file's folder for ``kind: File``, else the
path), ``shareProcessNamespace: true``, and the primary container left unwrapped (Katib
wraps only StdOut, File and TensorFlowEvent). As on the local executor (``_custom``), Katib's
DB manager service (``katib-db-manager[.NAMESPACE…][:PORT]``) in its args or env values is
replaced by the DBManager the pods reach, which is also in ``$KATIB_DB_MANAGER_ADDRESS``,
``$KATIB_DB_MANAGER_SERVICE_IP`` and ``$KATIB_DB_MANAGER_SERVICE_PORT``, and the trial's name
and namespace are in ``$KATIB_TRIAL_NAME`` and ``$KATIB_NAMESPACE`` (Katib gives the primary
container the first; a collector also reads its pod's name through the downward API, as
Katib's example does with ``TrialNamePrefix``).
"""

from __future__ import annotations

import copy
import posixpath
from typing import Any

from katib.runtimes import is_trainjob

from ._custom import DB_MANAGER
from ._executor import LaunchError, TrialJob
from ._manifest import pod_templates

SIDECAR_KINDS = ("File", "TensorFlowEvent")  # Katib's collector images (katib-config)
INJECTED_KINDS = (*SIDECAR_KINDS, "Custom")  # the kinds whose collector is a sidecar
VOLUME = "metrics-volume"  # Katib's common.MetricsVolume
IMAGES = {  # Katib's katib-config defaults
    "File": "ghcr.io/kubeflow/katib/file-metrics-collector:v0.19.0",
    "TensorFlowEvent": "ghcr.io/kubeflow/katib/tfevent-metrics-collector:v0.19.0",
}
# Katib's collector resources: katib-config's (TensorFlowEvent: a 1Gi memory limit), the
# rest from its defaults (pkg/apis/config/v1beta1/defaults.go setResourceRequirements).
REQUESTS = {"cpu": "50m", "memory": "10Mi", "ephemeral-storage": "500Mi"}
LIMITS = {"File": {"cpu": "500m", "memory": "100Mi", "ephemeral-storage": "5Gi"},
          "TensorFlowEvent": {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "5Gi"}}
CONTAINER_NAMES = {"File": "metrics-logger-and-collector", "TensorFlowEvent": "metrics-collector"}
ROLE_LABELS = ("training.kubeflow.org/job-role", "training.kubeflow.org/replica-type")


class SidecarError(ValueError):
    """Why the sidecar cannot be injected (the message names the field)."""


def collector_args(kind: str, trial: str, metrics: list[str], objective_type: str, db_manager: str,
                   source: dict[str, Any]) -> list[str]:
    """Katib's ``getMetricsCollectorArgs`` for ``kind`` (no stop rules, no ``-w``)."""
    fsp = source.get("fileSystemPath") or {}
    args = ["-t", trial, "-m", ";".join(metrics), "-o-type", objective_type, "-s-db", db_manager]
    if fsp.get("path"):
        args += ["-path", str(fsp["path"])]
    formats = (source.get("filter") or {}).get("metricsFormat") or []
    if formats:
        args += ["-f", ";".join(formats)]
    if kind == "File" and fsp:
        args += ["-format", str(fsp.get("format") or "TEXT")]
    return args


def metrics_dir(kind: str, path: str) -> str:
    """The folder the ``emptyDir`` is mounted at: the file's folder, or the event folder."""
    return posixpath.dirname(path) if kind == "File" else path.rstrip("/") or "/"


def wrapped(container: dict[str, Any], directory: str) -> tuple[list[str], list[str]]:
    """Katib's ``wrapWorkerContainer``: the command and args that run the container's own
    command, then write the completed marker; ``SidecarError`` when it has no command (Katib
    reads the image's entrypoint from its registry, which katib does not reach)."""
    argv = [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
    if not container.get("command"):
        raise SidecarError("command: the primary container needs a command for the metrics collector to wrap "
                           "(Katib reads the image's entrypoint from its registry; katib does not): write it in "
                           "the trial template")
    command = ["sh", "-c"]
    if len(argv) >= 2 and argv[0] in ("sh", "bash") and argv[1] == "-c":
        command, argv = argv[:2], argv[2:]
    marker = posixpath.join(directory, "$$$$.pid")
    return command, [" ".join([*argv, "&&", f"echo completed > {marker}"])]


def _maybe_primary(path: str, template: dict[str, Any], primary_labels: dict[str, str]) -> bool:
    """Whether pods of this template may carry ``primaryPodLabels`` (Katib mutates only the
    pods that do): the template's own labels, and a replica's role for Kubeflow's jobs."""
    labels = (template.get("metadata") or {}).get("labels") or {}
    parts = path.split(".")
    role = parts[-2].lower() if len(parts) >= 3 and parts[-3].endswith("ReplicaSpecs") else None
    for key, value in primary_labels.items():
        if key in labels:
            if labels[key] != value:
                return False
        elif key in ROLE_LABELS and role is not None and role != value.lower():
            return False
    return True


def inject(manifest: dict[str, Any], *, kind: str, trial: str, primary_container: str,
           primary_labels: dict[str, str] | None, metrics: list[str], objective_type: str,
           source: dict[str, Any], db_manager: str, image: str | None = None) -> int:
    """Add the sidecar to the primary pod templates of ``manifest`` (in place); returns
    how many templates got it. ``SidecarError`` names what is missing."""
    fsp = source.get("fileSystemPath") or {}
    path = str(fsp.get("path") or "")
    if not path:
        raise SidecarError(f"spec.metricsCollectorSpec.source.fileSystemPath.path: the {kind} collector needs it")
    directory = metrics_dir(kind, path)
    name = CONTAINER_NAMES[kind]
    sidecar = {"name": name, "image": image or IMAGES[kind], "imagePullPolicy": "IfNotPresent",
               "args": collector_args(kind, trial, metrics, objective_type, db_manager, source),
               "resources": {"requests": dict(REQUESTS), "limits": dict(LIMITS[kind])},
               "volumeMounts": [{"name": VOLUME, "mountPath": directory}]}
    done = 0
    for where, template in pod_templates(manifest):
        spec = template["spec"]
        primary = next((c for c in spec["containers"] if c.get("name") == primary_container), None)
        if primary is None or not _maybe_primary(where, template, primary_labels or {}):
            continue
        try:
            primary["command"], primary["args"] = wrapped(primary, directory)
        except SidecarError as exc:
            raise SidecarError(f"{where}.spec.containers[{primary_container}].{exc}") from None
        primary["volumeMounts"] = [*(primary.get("volumeMounts") or []), {"name": VOLUME, "mountPath": directory}]
        spec["containers"] = [c for c in spec["containers"] if c.get("name") != name] + [copy.deepcopy(sidecar)]
        spec["volumes"] = [*(v for v in spec.get("volumes") or [] if v.get("name") != VOLUME),
                           {"name": VOLUME, "emptyDir": {}}]
        spec["shareProcessNamespace"] = True
        done += 1
    return done


def custom_container(container: Any, trial: str, namespace: str, db_manager: str) -> dict[str, Any]:
    """The Custom collector's container as it is injected: as written, Katib's DB manager
    service replaced by ``db_manager`` in its args and env values, katib's variables added."""
    if not isinstance(container, dict) or not container.get("image"):
        raise SidecarError("spec.metricsCollectorSpec.collector.customCollector: must be a container with an image")
    out = copy.deepcopy(container)
    out.setdefault("name", "custom-metrics-collector")
    for key in ("command", "args"):
        if out.get(key):
            out[key] = [DB_MANAGER.sub(db_manager, str(a)) for a in out[key]]
    host, _, port = db_manager.rpartition(":")
    ours = {"KATIB_TRIAL_NAME": trial, "KATIB_NAMESPACE": namespace, "KATIB_DB_MANAGER_ADDRESS": db_manager,
            "KATIB_DB_MANAGER_SERVICE_IP": host, "KATIB_DB_MANAGER_SERVICE_PORT": port}
    env = []
    for item in out.get("env") or []:
        if isinstance(item, dict) and isinstance(item.get("value"), str):
            item = {**item, "value": DB_MANAGER.sub(db_manager, item["value"])}
        env.append(item)
    written = {item.get("name") for item in env if isinstance(item, dict)}
    out["env"] = env + [{"name": k, "value": v} for k, v in ours.items() if k not in written]
    return out


def inject_custom(manifest: dict[str, Any], *, trial: str, namespace: str, primary_container: str,
                  primary_labels: dict[str, str] | None, container: Any, source: dict[str, Any],
                  db_manager: str) -> int:
    """Add the Custom collector's container to the primary pod templates of ``manifest``
    (in place), as Katib's webhook does; returns how many templates got it."""
    sidecar = custom_container(container, trial, namespace, db_manager)
    fsp = source.get("fileSystemPath") or {}
    path = str(fsp.get("path") or "")
    directory = (posixpath.dirname(path) if fsp.get("kind", "File") == "File" else path) if path else ""
    mount = {"name": VOLUME, "mountPath": directory}
    done = 0
    for where, template in pod_templates(manifest):
        spec = template["spec"]
        primary = next((c for c in spec["containers"] if c.get("name") == primary_container), None)
        if primary is None or not _maybe_primary(where, template, primary_labels or {}):
            continue
        injected = copy.deepcopy(sidecar)
        if directory:
            for c in (primary, injected):
                c["volumeMounts"] = [*(m for m in c.get("volumeMounts") or [] if m.get("name") != VOLUME), dict(mount)]
            spec["volumes"] = [*(v for v in spec.get("volumes") or [] if v.get("name") != VOLUME),
                               {"name": VOLUME, "emptyDir": {}}]
        spec["containers"] = [c for c in spec["containers"] if c.get("name") != injected["name"]] + [injected]
        spec["shareProcessNamespace"] = True
        done += 1
    return done


def add_sidecar(manifest: dict[str, Any], job: TrialJob, db_manager: str, image: str | None = None) -> None:
    """``inject`` (``inject_custom`` for a Custom collector) for the Kubernetes executor's
    trial ``job``; ``LaunchError`` says why not."""
    kind = job.collector
    if is_trainjob(manifest):
        raise LaunchError(f"the {kind} collector's sidecar is not injected into a TrainJob's pods: "
                          "use StdOut or Push for TrainJob trials")
    try:
        if kind == "Custom":
            added = inject_custom(manifest, trial=job.name, namespace=job.namespace,
                                  primary_container=job.primary_container, primary_labels=job.primary_pod_labels,
                                  container=job.custom_collector, source=job.collector_source or {},
                                  db_manager=db_manager)
        else:
            added = inject(manifest, kind=kind, trial=job.name, primary_container=job.primary_container,
                           primary_labels=job.primary_pod_labels, metrics=job.metric_names,
                           objective_type=job.objective_type, source=job.collector_source or {},
                           db_manager=db_manager, image=image)
    except SidecarError as exc:
        raise LaunchError(f"the {kind} metrics collector for trial {job.name}: {exc}") from None
    if not added:
        raise LaunchError(f"the {kind} metrics collector for trial {job.name}: no pod template has the primary "
                          f"container {job.primary_container} (spec.trialTemplate.primaryContainerName)")
