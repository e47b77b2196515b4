"""Katib's ``Custom`` metrics collector on the local and Ray executors: the collector
container's command runs beside the trial, as Katib runs it in the trial's pod (on Ray, in
the trial's actor on its node: ``trials._ray``).

Its ``command`` and ``args`` run with the container's ``env``, Katib's paths mapped into the
trial's folder as for the trial's own container, and Katib's DB manager service
(``katib-db-manager``, with any namespace, domain and port, in an argument or an ``env``
value) replaced by the DBManager this trial reports to (``TrialJob.db_manager``), so what
the collector sends with ``ReportObservationLog`` lands on this trial; it is also in
``$KATIB_DB_MANAGER_ADDRESS`` (``host:port``), ``$KATIB_DB_MANAGER_SERVICE_IP`` and
``$KATIB_DB_MANAGER_SERVICE_PORT`` (Katib's variables), and the trial's name in
``$KATIB_TRIAL_NAME`` (Katib passes it as ``-t``). ``valueFrom.fieldRef``
``metadata.name`` and ``metadata.namespace`` give the trial's pod name (here the trial's
name, as its one pod is) and namespace. It is one of the trial's processes: the trial ends
when the training and the collector have exited (a pod ends when all its containers have;
Katib's collectors exit once the training has ended and they have reported), and a
collector that fails fails the trial. Its output is ``metrics-collector.log`` in the trial's
folder.
"""

from __future__ import annotations

import re

from ._executor import LaunchError, TrialJob
from ._members import Member, command_of, remap_paths, trial_env

DB_MANAGER = re.compile(r"\bkatib-db-manager(?:\.[A-Za-z0-9-]+)*(?::\d+)?")
LOG_NAME = "metrics-collector.log"


def collector_member(job: TrialJob, clean_env: bool) -> Member:
    """The Custom collector's process for ``job`` (``job.custom_collector``, ``job.db_manager``)."""
    container = job.custom_collector
    if not isinstance(container, dict):
        raise LaunchError("spec.metricsCollectorSpec.collector.customCollector: must be a container")
    address = job.db_manager or ""
    argv = [DB_MANAGER.sub(address, a) for a in command_of(container, job.path_map)]
    env = trial_env(job, container, clean_env)
    host, _, port = address.rpartition(":")
    env.update(KATIB_DB_MANAGER_ADDRESS=address, KATIB_DB_MANAGER_SERVICE_IP=host, KATIB_DB_MANAGER_SERVICE_PORT=port)
    fields = {"metadata.name": job.name, "metadata.namespace": job.namespace}
    for item in container.get("env") or []:
        if not isinstance(item, dict) or not item.get("name"):
            continue
        name = str(item["name"])
        if "value" in item:
            env[name] = DB_MANAGER.sub(address, remap_paths(str(item["value"]), job.path_map))
            continue
        path = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if path in fields:
            env[name] = fields[path]
    return Member(str(container.get("name") or "metrics-collector"), container, argv, env, log_name=LOG_NAME)
