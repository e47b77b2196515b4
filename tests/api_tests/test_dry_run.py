"""A dry run changes nothing, wherever it is asked: ``?dryRun=All`` on a create or a patch,
and ``dryRun: [All]`` in the DeleteOptions body that ``kubectl delete --dry-run=server``
sends. Before, a patch and a delete ignored it: kubectl said "(server dry run)" and the
experiment was patched, or deleted. A route with no dry run refuses one by name."""

from __future__ import annotations

import json

from tests.conftest import experiment, python_command

KUBE = "/apis/kubeflow.org/v1beta1/namespaces/default"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def _budget(live) -> int:
    return live.client.get(f"{KUBE}/experiments/demo").json()["spec"]["maxTrialCount"]


def _delete(live, path: str, body: dict, **params):
    return live.client.request("DELETE", path, content=json.dumps(body), params=params,
                               headers={"content-type": "application/json"})


def test_a_dry_run_patch_answers_the_change_and_makes_none(live):
    # running throughout (a finished one with resumePolicy Never takes no edit at all)
    slow = experiment(name="demo", maxTrialCount=3, command=python_command("import time; time.sleep(120); print('loss=0.5')"))
    assert live.client.post(f"{KUBE}/experiments", json=slow).status_code == 201
    merge = {"content-type": "application/merge-patch+json"}
    r = live.client.patch(f"{KUBE}/experiments/demo", params={"dryRun": "All"}, headers=merge,
                          content=json.dumps({"spec": {"maxTrialCount": 9}}))
    assert r.status_code == 200 and r.json()["spec"]["maxTrialCount"] == 9
    assert _budget(live) == 3
    ops = [{"op": "replace", "path": "/spec/maxTrialCount", "value": 7}]
    r = live.client.patch(f"{KUBE}/experiments/demo", params={"dryRun": "All"}, content=json.dumps(ops),
                          headers={"content-type": "application/json-patch+json"})
    assert r.status_code == 200 and r.json()["spec"]["maxTrialCount"] == 7 and _budget(live) == 3
    # checked as the edit would be: a frozen field is refused, dry run or not
    r = live.client.patch(f"{KUBE}/experiments/demo", params={"dryRun": "All"}, headers=merge,
                          content=json.dumps({"spec": {"objective": {"objectiveMetricName": "other"}}}))
    assert r.status_code == 422 and "objective" in r.text
    # a value Kubernetes does not know is refused, not read as "no dry run"
    r = live.client.patch(f"{KUBE}/experiments/demo", params={"dryRun": "true"}, headers=merge,
                          content=json.dumps({"spec": {"maxTrialCount": 9}}))
    assert r.status_code == 422 and "dryRun" in r.text and _budget(live) == 3
    r = live.client.patch(f"{KUBE}/experiments/demo?dryRun=All&dryRun=", headers=merge,
                          content=json.dumps({"spec": {"maxTrialCount": 9}}))
    assert r.status_code == 422 and _budget(live) == 3  # every value must be All, not the last
    r = live.client.patch(f"{KUBE}/experiments/demo", headers=merge, content=json.dumps({"spec": {"maxTrialCount": 4}}))
    assert r.status_code == 200 and _budget(live) == 4
    live.client.delete(f"{KUBE}/experiments/demo")


def test_a_dry_run_delete_deletes_nothing_and_a_uid_precondition_is_kept(live):
    assert live.client.post(f"{KUBE}/experiments", json=experiment(name="demo", maxTrialCount=1, parallelTrialCount=1)).status_code == 201
    uid = live.client.get(f"{KUBE}/experiments/demo").json()["metadata"]["uid"]
    path = f"{KUBE}/experiments/demo"
    assert _delete(live, path, {"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"],
                                "propagationPolicy": "Background"}).status_code == 200
    assert live.client.get(path).status_code == 200
    assert _delete(live, path, {}, dryRun="All").status_code == 200 and live.client.get(path).status_code == 200
    assert _delete(live, path, {"dryRun": ["Everything"]}).status_code == 422
    assert _delete(live, f"{KUBE}/experiments/none-such", {"dryRun": ["All"]}).status_code == 404
    wrong = _delete(live, path, {"preconditions": {"uid": "not-" + uid}})
    assert wrong.status_code == 409 and "Precondition failed" in wrong.json()["message"]
    assert _delete(live, path, {"preconditions": {"resourceVersion": "1"}}).status_code == 422
    assert live.client.get(path).status_code == 200
    assert _delete(live, path, {"preconditions": {"uid": uid}}).status_code == 200
    assert live.client.get(path).status_code == 404


def test_a_route_with_no_dry_run_refuses_one_and_does_nothing(live):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept"}, "data": {"a": "b"}}
    r = live.client.post(CONFIGMAPS, params={"dryRun": "All"}, json=cm)
    assert r.status_code == 422 and "dryRun" in r.text
    assert live.client.get(f"{CONFIGMAPS}/kept").status_code == 404
    assert live.client.post(CONFIGMAPS, json=cm).status_code == 201
    for body in ({"dryRun": ["All"]}, {"preconditions": {"uid": "x"}}):
        r = _delete(live, f"{CONFIGMAPS}/kept", body)
        assert r.status_code == 422 and next(iter(body)) in r.text
        assert live.client.get(f"{CONFIGMAPS}/kept").status_code == 200
    assert _delete(live, f"{CONFIGMAPS}/kept", {"kind": "DeleteOptions", "propagationPolicy": "Background"}).status_code == 200
    assert live.client.get(f"{CONFIGMAPS}/kept").status_code == 404
    # the REST API's delete has no dry run either
    assert live.client.post("/api/v1/namespaces/default/experiments", json=experiment(name="rest", maxTrialCount=1, parallelTrialCount=1)).status_code == 201
    r = _delete(live, "/api/v1/namespaces/default/experiments/rest", {"dryRun": ["All"]})
    assert r.status_code == 422 and live.client.get(f"{KUBE}/experiments/rest").status_code == 200
    assert live.client.request("DELETE", "/api/v1/namespaces/default/experiments/rest", content=b"[1]",
                               headers={"content-type": "application/json"}).status_code == 422


def test_generate_name_is_read_as_the_api_server_reads_it(live):
    """The Katib SDK's create_experiment sends metadata.generateName and reads the name the
    server made; it was a 422 "metadata.name: is required"."""
    names = []
    for path in (f"{KUBE}/experiments", "/api/v1/namespaces/default/experiments"):
        doc = experiment()
        doc["metadata"] = {"generateName": "gen-"}
        r = live.client.post(path, json=doc)
        assert r.status_code == 201, r.text
        name = r.json()["metadata"]["name"]
        assert name.startswith("gen-") and len(name) == len("gen-") + 5, name
        assert live.client.get(f"{KUBE}/experiments/{name}").status_code == 200
        names.append(name)
    assert names[0] != names[1]
    doc = experiment()
    doc["metadata"] = {"generateName": "Bad_"}  # the name made is checked as any name is
    assert live.client.post(f"{KUBE}/experiments", json=doc).status_code == 422
