"""An experiment's labels and annotations may change at any time, as on any Kubernetes
object: ``kubectl label`` and ``kubectl annotate`` send a merge patch of them, and an
applied file may carry new ones. Before, such a patch answered 200 (kubectl said
"labeled") and nothing was stored: the spec was unchanged, so the edit was dropped."""

from __future__ import annotations

import json

from tests.conftest import experiment, python_command

KUBE = "/apis/kubeflow.org/v1beta1/namespaces/default"
MERGE = {"content-type": "application/merge-patch+json"}


def _patch(live, name: str, body: dict):
    return live.client.patch(f"{KUBE}/experiments/{name}", headers=MERGE, content=json.dumps(body))


def _names(live, selector: str) -> list[str]:
    return [e["metadata"]["name"] for e in live.client.get(f"{KUBE}/experiments", params={"labelSelector": selector}).json()["items"]]


def test_labels_and_annotations_are_stored_on_a_running_and_a_finished_experiment(live):
    slow = experiment(name="running", maxTrialCount=1, parallelTrialCount=1,
                      command=python_command("import time; time.sleep(60); print('loss=0.5')"))
    assert live.client.post(f"{KUBE}/experiments", json=slow).status_code == 201
    done = experiment(name="done", maxTrialCount=1, parallelTrialCount=1)
    assert live.client.post(f"{KUBE}/experiments", json=done).status_code == 201
    live.wait_for("default", "done")
    for name in ("running", "done"):
        r = _patch(live, name, {"metadata": {"labels": {"team": "a"}, "annotations": {"note": "kept"}}})
        assert r.status_code == 200 and r.json()["metadata"]["labels"] == {"team": "a"}
        stored = live.client.get(f"{KUBE}/experiments/{name}").json()["metadata"]
        assert stored["labels"] == {"team": "a"} and stored["annotations"]["note"] == "kept"
    assert sorted(_names(live, "team=a")) == ["done", "running"]
    # a label removed (null in a merge patch) goes too; the finished experiment stays finished
    assert _patch(live, "done", {"metadata": {"labels": {"team": None}}}).status_code == 200
    assert _names(live, "team=a") == ["running"]
    status = live.client.get(f"{KUBE}/experiments/done").json()["status"]
    assert status["conditions"][-1]["type"] == "Succeeded" and status["trials"] == 1
    # a dry run stores nothing, labels included
    r = live.client.patch(f"{KUBE}/experiments/running", params={"dryRun": "All"}, headers=MERGE,
                          content=json.dumps({"metadata": {"labels": {"team": "b"}}}))
    assert r.status_code == 200 and r.json()["metadata"]["labels"] == {"team": "b"}
    assert _names(live, "team=b") == []
    live.client.delete(f"{KUBE}/experiments/running")
