"""The API's typed routes (response models over katib.spec's models) answer the very JSON the
CLI prints for the same records (views.*_object): the same fields, values and key order,
unset fields left out, on ours and the Kubernetes-style endpoints."""

from __future__ import annotations

import json

from katib import views
from katib.controller import rfc3339
from tests.conftest import experiment, python_command

KUBE = "/apis/kubeflow.org/v1beta1/namespaces/default"
OURS = "/api/v1/namespaces/default"
CONTROLS = ("active", "stoppable", "resumable", "lastFailure")


def _same(answer: dict, expected: dict) -> None:
    assert json.dumps(answer) == json.dumps(expected)  # key order included


def test_typed_routes_answer_the_katib_json_the_cli_prints(live):
    doc = experiment(command=python_command("print('loss=${trialParameters.x}')"), maxTrialCount=4, parallelTrialCount=2,
                     earlyStopping={"algorithmName": "medianstop",
                                    "algorithmSettings": [{"name": "min_trials_required", "value": "1"}]})
    assert live.client.post(f"{OURS}/experiments", json=doc).status_code == 201
    live.wait_for("default", "demo")
    rec = live.store.get_experiment("default", "demo")
    trials = live.store.list_trials(rec.id)
    expected = views.experiment_object(rec)
    assert expected["status"]["trials"] == 4 and "pendingTrialList" not in expected["status"]  # unset: left out

    _same(live.client.get(f"{OURS}/experiments/demo").json(), expected)
    _same(live.client.get(f"{KUBE}/experiments/demo").json(), expected)
    listed = live.client.get("/api/v1/experiments").json()
    assert listed["readOnly"] is False and listed["items"][0]["active"] is False
    _same({k: v for k, v in listed["items"][0].items() if k not in CONTROLS}, expected)
    kube_list = live.client.get(f"{KUBE}/experiments").json()
    assert kube_list["kind"] == "ExperimentList" and list(kube_list["metadata"]) == ["resourceVersion"]
    _same(kube_list["items"][0], expected)
    _same(live.client.get(f"{OURS}/experiments/demo/status").json(),
          {"status": expected["status"], "running": False, "completed": True, "phase": "Succeeded"})
    for t in trials:
        shown = views.trial_object(rec, t)
        _same(live.client.get(f"{OURS}/trials/{t.name}").json(), shown)
        _same(live.client.get(f"{KUBE}/trials/{t.name}").json(), shown)
    assert any(views.trial_object(rec, t)["spec"].get("earlyStoppingRules") for t in trials)
    logged = [{"timeStamp": rfc3339(o.time), "metric": {"name": o.metric_name, "value": o.value}}
              for o in live.store.observations(trials[0].id)]
    assert logged
    _same(live.client.get(f"{OURS}/trials/{trials[0].name}/observations").json(), {"metricLogs": logged})
    _same(live.client.post(f"{OURS}/experiments/demo/stop").json(), {"running": False})  # no message: left out
    patched = live.client.patch(f"{OURS}/experiments/demo/budget", json={"maxTrialCount": 4}).json()
    _same(patched, views.experiment_object(live.store.get_experiment("default", "demo")))
    kube_patched = live.client.patch(f"{KUBE}/experiments/demo", json={"spec": {"maxTrialCount": 4}},
                                     headers={"content-type": "application/merge-patch+json"}).json()
    _same(kube_patched, views.experiment_object(live.store.get_experiment("default", "demo")))
