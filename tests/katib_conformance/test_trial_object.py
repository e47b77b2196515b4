"""Trial objects field for field: Katib's ``Trial.spec.runSpec``, ``status.lastReconcileTime``
and the ``MetricsUnavailable`` condition's reason.

From ``pkg/controller.v1beta1/trial/trial_controller_status.go`` (``TrialMetricsUnavailableReason
= "MetricsUnavailable"``) and ``pkg/controller.v1beta1/experiment/experiment_controller_util.go``
(``getTrialInstance``: ``runSpec`` is the template with the trial's parameters, named and
namespaced as the trial)."""

from __future__ import annotations

import sys

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


EXPERIMENT_UTIL = "pkg/controller.v1beta1/experiment/experiment_controller_util.go"


def test_early_stopping_rules_fixed_when_the_trial_is_created(sqlite_store, tmp_path):
    """Katib's Trial carries ``spec.earlyStoppingRules`` as the EarlyStopping service gave
    them when the trial was created (getTrialInstance): medianstop's mean over the trials
    that had succeeded by then, ``greater`` when minimising; none before that."""
    # Each trial reports its loss x; the third then waits to be stopped (random_state 1 gives
    # it a loss above the first two's mean).
    code = (f"import pathlib, sys, time\nn = pathlib.Path({str(tmp_path / 'n')!r})\n"
            "n.open('a').write('.')\nprint('loss=' + sys.argv[1], flush=True)\n"
            "time.sleep(30 if len(n.read_text()) >= 3 else 0)")
    doc = experiment(name="rules", maxTrialCount=3, parallelTrialCount=1,
                     command=[sys.executable, "-c", code, "${trialParameters.x}"],
                     earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [
                         {"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "1"}]})
    ctl = Controller(sqlite_store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    rec = sqlite_store.get_experiment(rec.namespace, rec.name)
    first, second, third = sorted(sqlite_store.list_trials(rec.id), key=lambda t: t.created_at)
    assert first.early_stopping_rules is None and second.early_stopping_rules is None  # too few succeeded
    assert (first.state, second.state) == ("Succeeded", "Succeeded")
    mean = (float(first.parameters()["x"]) + float(second.parameters()["x"])) / 2
    rule = {"name": "loss", "value": str(mean), "comparison": "greater", "startStep": 1}
    assert third.early_stopping_rules == [rule]  # stored: read back from the store
    assert views.trial_object(rec, third)["spec"]["earlyStoppingRules"] == [rule]  # EXPERIMENT_UTIL
    assert "earlyStoppingRules" not in views.trial_object(rec, first)["spec"]
    # The stop decided live is this rule: the third's loss is greater, it is stopped.
    assert float(third.parameters()["x"]) > mean and third.state == "EarlyStopped"
