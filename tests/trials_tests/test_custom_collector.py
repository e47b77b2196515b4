"""Katib's Custom collector on the local executor (trials/_custom.py): the collector
container's command as Katib's example writes it (examples/v1beta1/metrics-collector/
custom-metrics-collector.yaml: ``-s katib-db-manager.kubeflow:6789``, ``TrialNamePrefix``
from ``fieldRef metadata.name``) is pointed at this trial's DBManager and folder. The run
itself: tests/katib_conformance/test_katib_examples_run.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from trials import LaunchError, TrialJob
from trials._custom import collector_member

UPSTREAM = {
    "name": "custom-metrics-logger-and-collector",
    "image": "ghcr.io/kubeflow/katib/custom-metrics-collector:latest",
    "command": ["collector"],
    "args": ["-m", "accuracy", "-s", "katib-db-manager.kubeflow:6789", "-path", "/katib/mnist.log"],
    "env": [{"name": "TrialNamePrefix", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "DB", "value": "katib-db-manager:6789"}],
}


def job(tmp_path: Path, collector: dict) -> TrialJob:
    return TrialJob(name="exp-abc", experiment="exp", namespace="team", run_spec={}, primary_container="main",
                    workdir=tmp_path, trial_dir=tmp_path / "t", path_map={"/katib/mnist.log": str(tmp_path / "t/m.log")},
                    env={"KATIB_TRIAL_NAME": "exp-abc"}, collector="Custom", custom_collector=collector,
                    db_manager="127.0.0.1:41234")


def test_upstream_example_reports_to_this_trials_db_manager(tmp_path):
    m = collector_member(job(tmp_path, UPSTREAM), clean_env=True)
    assert m.argv == ["collector", "-m", "accuracy", "-s", "127.0.0.1:41234", "-path", str(tmp_path / "t/m.log")]
    assert (m.env["TrialNamePrefix"], m.env["NS"], m.env["DB"]) == ("exp-abc", "team", "127.0.0.1:41234")
    assert (m.env["KATIB_DB_MANAGER_ADDRESS"], m.env["KATIB_DB_MANAGER_SERVICE_IP"],
            m.env["KATIB_DB_MANAGER_SERVICE_PORT"]) == ("127.0.0.1:41234", "127.0.0.1", "41234")
    assert (m.replica, m.log_name) == ("custom-metrics-logger-and-collector", "metrics-collector.log")


def test_a_collector_without_a_command_is_refused_naming_it(tmp_path):
    with pytest.raises(LaunchError, match="custom-metrics-logger-and-collector.*no command or args"):
        collector_member(job(tmp_path, {"name": "custom-metrics-logger-and-collector", "image": "x"}), clean_env=True)


def test_sandboxed_tenants_get_no_unauthenticated_db_manager(sqlite_store, tmp_path):
    """Under katib server --auth (a sandboxed local executor) a Custom collector's trial
    fails at launch saying why: Katib's gRPC API carries no credentials, so a tenant's
    collector could report for another's trials."""
    from katib.controller import Controller, admit
    from tests.conftest import experiment
    from trials import LocalExecutor

    doc = experiment(name="custom-auth", maxTrialCount=1, parallelTrialCount=1, metricsCollectorSpec={
        "collector": {"kind": "Custom", "customCollector": UPSTREAM}})
    ctl = Controller(sqlite_store, executor=LocalExecutor(sandbox=object()), runs_root=tmp_path / "runs")  # type: ignore[arg-type]
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    [t] = sqlite_store.list_trials(rec.id)
    assert t.state == "Failed" and "carries no credentials" in t.conditions[-1].message
