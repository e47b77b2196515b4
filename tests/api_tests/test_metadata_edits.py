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


def test_labelling_a_stopped_experiment_leaves_it_stopped(live):
    """The review's case: a label stored through the edit path resumed a stopped
    experiment (its unchanged spec read as "run it again")."""
    import time

    slow = experiment(name="paused", maxTrialCount=2, parallelTrialCount=1,
                      command=python_command("import time; time.sleep(60); print('loss=0.5')"))
    assert live.client.post(f"{KUBE}/experiments", json=slow).status_code == 201
    manager = live.app.state.katib.manager
    deadline = time.monotonic() + 30
    while not live.client.get(f"{KUBE}/trials").json()["items"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert live.client.post("/api/v1/namespaces/default/experiments/paused/stop").status_code == 200
    while manager.is_running("default", "paused"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert _patch(live, "paused", {"metadata": {"labels": {"team": "a"}}}).status_code == 200
    ops = [{"op": "add", "path": "/metadata/annotations", "value": {"note": "x"}}]
    assert live.client.patch(f"{KUBE}/experiments/paused", content=json.dumps(ops),
                             headers={"content-type": "application/json-patch+json"}).status_code == 200
    time.sleep(0.5)
    assert not manager.is_running("default", "paused")
    assert _names(live, "team=a") == ["paused"]
    # the whole object patched again is submitted again, as katib --server run of the same
    # file does: that resumes it, as it did
    whole = live.client.get(f"{KUBE}/experiments/paused").json()
    assert _patch(live, "paused", {k: whole[k] for k in ("apiVersion", "kind", "metadata", "spec")}).status_code == 200
    while not manager.is_running("default", "paused"):
        assert time.monotonic() < deadline + 30
        time.sleep(0.05)
    live.client.delete(f"{KUBE}/experiments/paused")


def test_label_patches_at_once_all_stay(live):
    """Each patch reads, merges and writes the whole document: two at once each kept only
    its own label, and both answered 200."""
    from concurrent.futures import ThreadPoolExecutor

    done = experiment(name="many", maxTrialCount=1, parallelTrialCount=1)
    assert live.client.post(f"{KUBE}/experiments", json=done).status_code == 201
    live.wait_for("default", "many")
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: _patch(live, "many", {"metadata": {"labels": {f"l{i}": "x"}}}).status_code, range(16)))
    assert codes == [200] * 16
    labels = live.client.get(f"{KUBE}/experiments/many").json()["metadata"]["labels"]
    assert set(labels) == {f"l{i}" for i in range(16)}


def test_creates_of_one_name_at_once_make_one_and_refuse_the_rest(live, monkeypatch):
    """A create checked the name, then stored the experiment as an apply would: two POSTs
    at once (through two servers, or one) both passed the check, and the later one edited
    the first and answered 201. Now a create that finds the name taken by then is a 409,
    as Kubernetes answers. (The window is widened here: every create waits after its
    checks, as a busy server's may.)"""
    import time
    from concurrent.futures import ThreadPoolExecutor

    import katib.controller._controller as controller

    checked = controller.runnable_errors
    monkeypatch.setattr(controller, "runnable_errors", lambda *a: (time.sleep(0.3), checked(*a))[1])

    def post(i: int) -> int:
        doc = experiment(name="once", maxTrialCount=1 + i, parallelTrialCount=1,
                         command=python_command("import time; time.sleep(60); print('loss=0.5')"))
        return int(live.client.post(f"{KUBE}/experiments", json=doc).status_code)

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(post, range(8)))
    assert codes == [201] + [409] * 7, codes
    stored = live.client.get(f"{KUBE}/experiments/once").json()
    assert stored["spec"]["maxTrialCount"] in range(1, 9)
