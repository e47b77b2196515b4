"""Trial objects field for field: Katib's ``Trial.spec.runSpec``, ``status.lastReconcileTime``
and the ``MetricsUnavailable`` condition's reason.

From ``pkg/controller.v1beta1/trial/trial_controller_status.go`` (``TrialMetricsUnavailableReason
= "MetricsUnavailable"``) and ``pkg/controller.v1beta1/experiment/experiment_controller_util.go``
(``getTrialInstance``: ``runSpec`` is the template with the trial's parameters, named and
namespaced as the trial)."""

from __future__ import annotations

from katib import views
from katib.controller import Controller, admit
from tests.conftest import experiment, python_command

STATUS = "pkg/controller.v1beta1/trial/trial_controller_status.go"


def test_run_spec_and_metrics_unavailable_reason(sqlite_store, tmp_path):
    doc = experiment(name="objects", maxTrialCount=1, parallelTrialCount=1,
                     command=python_command("print('no metric here')"))
    ctl = Controller(sqlite_store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    rec = sqlite_store.get_experiment(rec.namespace, rec.name)
    [t] = sqlite_store.list_trials(rec.id)
    obj = views.trial_object(rec, t)
    assert obj["status"]["lastReconcileTime"] >= obj["status"]["completionTime"]  # the last write
    condition = obj["status"]["conditions"][-1]
    assert (condition["type"], condition["reason"]) == ("MetricsUnavailable", "MetricsUnavailable")  # STATUS
    run = obj["spec"]["runSpec"]
    assert (run["kind"], run["metadata"]["name"], run["metadata"]["namespace"]) == ("Job", t.name, "default")
    assert run["metadata"]["labels"]["katib.kubeflow.org/trial"] == t.name
    command = run["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[-1].endswith(f"# x={t.parameters()['x']}")  # the trial's own parameter, substituted
