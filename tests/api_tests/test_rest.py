"""Our REST API through HTTP: every endpoint, and its 4xx answers with their messages."""

from __future__ import annotations

import json
import threading
import time

import yaml

from tests.conftest import experiment, python_command

BASE = "/api/v1/namespaces/default"


def test_create_from_yaml_runs_to_the_end(live):
    r = live.client.post(f"{BASE}/experiments", content=yaml.safe_dump(experiment()),
                         headers={"content-type": "application/yaml"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["kind"] == "Experiment" and body["metadata"]["name"] == "demo" and body["metadata"]["uid"]
    status = live.wait_for("default", "demo")
    assert status["status"]["trialsSucceeded"] == 4
    got = live.client.get(f"{BASE}/experiments/demo").json()
    assert got["status"]["currentOptimalTrial"]["bestTrialName"].startswith("demo-")
    listing = live.client.get("/api/v1/experiments", params={"namespace": "default"}).json()["items"]
    assert [e["metadata"]["name"] for e in listing] == ["demo"]
    trials = live.client.get(f"{BASE}/experiments/demo/trials").json()["items"]
    assert len(trials) == 4 and trials[0]["kind"] == "Trial"
    name = trials[0]["metadata"]["name"]
    assert live.client.get(f"{BASE}/trials/{name}").json()["metadata"]["name"] == name
    logs = live.client.get(f"{BASE}/trials/{name}/observations").json()["metricLogs"]
    assert logs[0]["metric"]["name"] == "loss" and logs[0]["timeStamp"].endswith("Z")
    value = trials[0]["spec"]["parameterAssignments"][0]["value"]
    assert live.client.get(f"{BASE}/trials/{name}/log").text.strip() == f"loss={value}"
    assert live.client.get(f"{BASE}/trials/{name}/log", params={"tail": 1}).text.strip() == f"loss={value}"


def test_validation_errors_come_back_together(live):
    doc = experiment(maxTrialCount=0, parallelTrialCount=0)
    r = live.client.post(f"{BASE}/experiments", json=doc)
    assert r.status_code == 422
    fields = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert fields["spec.maxTrialCount"] == "must be > 0 (got 0)"
    assert fields["spec.parallelTrialCount"] == "must be > 0 (got 0)"
    assert live.client.get("/api/v1/experiments").json()["items"] == []  # nothing half-written


def test_4xx_answers(live):
    c = live.client
    assert c.post(f"{BASE}/experiments", content="").json()["message"] == "invalid request: the request body is empty"
    r = c.post(f"{BASE}/experiments", content="spec: [unclosed", headers={"content-type": "application/yaml"})
    assert r.status_code == 422 and "invalid YAML" in r.json()["message"]
    r = c.post("/api/v1/namespaces/other/experiments", json=experiment() | {"metadata": {"name": "demo", "namespace": "default"}})
    assert r.status_code == 422 and "metadata.namespace: must be 'other'" in r.json()["message"]
    assert c.get(f"{BASE}/experiments/nope").status_code == 404
    assert c.get(f"{BASE}/experiments/nope").json()["message"] == "experiment default/nope not found"
    assert c.get(f"{BASE}/trials/nope").status_code == 404
    assert c.get(f"{BASE}/trials/nope/log").status_code == 404
    assert c.delete(f"{BASE}/experiments/nope").status_code == 404
    assert c.post(f"{BASE}/experiments/nope/resume").status_code == 404
    assert c.patch(f"{BASE}/experiments/nope/budget", json={"maxTrialCount": 3}).status_code == 404
    assert c.post(f"{BASE}/experiments", json=experiment()).status_code == 201
    r = c.post(f"{BASE}/experiments", json=experiment())
    assert r.status_code == 409 and r.json()["message"] == 'experiments.kubeflow.org "demo" already exists'
    r = c.patch(f"{BASE}/experiments/demo/budget", json={"objective": 1})
    assert r.status_code == 422
    r = c.patch(f"{BASE}/experiments/demo/budget", json={"maxTrialCount": 0})
    assert r.status_code == 422 and "spec.maxTrialCount: must be > 0" in r.json()["message"]
    live.wait_for("default", "demo")
    r = c.post(f"{BASE}/experiments/demo/resume")
    assert r.status_code == 409 and "has finished" in r.json()["message"]


def test_dry_run_validates_without_creating(live):
    r = live.client.post(f"{BASE}/experiments", params={"dryRun": "true"}, json=experiment())
    assert r.status_code == 201 and r.json()["spec"]["resumePolicy"] == "Never"
    assert live.client.get(f"{BASE}/experiments/demo").status_code == 404


def test_budget_edit_restarts_a_long_running_experiment(live):
    doc = experiment(maxTrialCount=2, resumePolicy="LongRunning")
    assert live.client.post(f"{BASE}/experiments", json=doc).status_code == 201
    live.wait_for("default", "demo")
    r = live.client.patch(f"{BASE}/experiments/demo/budget", json={"maxTrialCount": 4})
    assert r.status_code == 200, r.text
    status = live.wait_for("default", "demo")
    assert status["status"]["trials"] == 4


def test_stop_resume_delete(live):
    code = "import time; time.sleep(30); print('loss=${trialParameters.x}')"
    assert live.client.post(f"{BASE}/experiments", json=experiment(command=python_command(code))).status_code == 201
    deadline = time.monotonic() + 20
    while live.client.get(f"{BASE}/experiments/demo").json()["status"].get("trialsRunning", 0) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = live.client.post(f"{BASE}/experiments/demo/stop")
    assert r.status_code == 200 and r.json() == {"running": False}
    st = live.client.get(f"{BASE}/experiments/demo/status").json()
    assert st["running"] is False and st["completed"] is False

    def running() -> dict:  # what the Katib SDK's is_experiment_running and kubectl read
        kube = live.client.get("/apis/kubeflow.org/v1beta1/namespaces/default/experiments/demo").json()
        ours = live.client.get(f"{BASE}/experiments/demo").json()
        assert kube["status"]["conditions"] == ours["status"]["conditions"]
        return kube["status"]["conditions"][-1]

    shown = running()  # it stored Running=True: nothing ran it, and both said it ran
    assert (shown["type"], shown["status"], shown["reason"]) == ("Running", "False", "ExperimentStopped")
    assert "resum" in shown["message"]
    assert live.client.post(f"{BASE}/experiments/demo/resume").json() == {"running": True}
    shown = running()
    assert (shown["type"], shown["status"]) == ("Running", "True")
    r = live.client.delete(f"{BASE}/experiments/demo")
    assert r.status_code == 200
    assert live.client.get(f"{BASE}/experiments/demo").status_code == 404


def test_event_stream(live):
    events: list[dict] = []
    ready = threading.Event()

    def listen() -> None:
        with live.client.stream("GET", "/api/v1/events", params={"experiment": "demo"}) as r:
            for line in r.iter_lines():
                if line.startswith(": connected"):
                    ready.set()
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if events[-1]["type"] == "ended":
                        return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert ready.wait(10)
    live.client.post(f"{BASE}/experiments", json=experiment())
    t.join(30)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "started" and kinds.count("launched") == 4 and kinds.count("finished") == 4 and kinds[-1] == "ended"


def test_health_and_metrics(live):
    assert live.client.get("/healthz").text == "ok"
    live.client.post(f"{BASE}/experiments", json=experiment())
    live.wait_for("default", "demo")
    text = live.client.get("/metrics").text
    assert 'katib_experiments{namespace="default",phase="Succeeded"} 1' in text
    assert 'katib_trials{namespace="default",experiment="demo",state="Succeeded"} 4' in text


def test_openapi_schema_documents_the_routes(live):
    paths = live.client.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/namespaces/{namespace}/experiments", "/api/v1/namespaces/{namespace}/experiments/{name}/budget",
                 "/apis/kubeflow.org/v1beta1/namespaces/{namespace}/experiments", "/healthz", "/metrics"):
        assert path in paths


def test_what_katibs_e2e_scripts_read_around_their_experiments(live):
    """test/e2e/v1beta1/scripts/gh-actions: the namespace's labels (read, and patched when
    the metrics-collector injection label is missing), the Suggestion of a LongRunning
    experiment (verify.py: never Succeeded), and a FromVolume experiment's suggestion volume
    (``<experiment>-<algorithm>``, verify.py: it must exist)."""
    c = live.client
    ns = c.get("/api/v1/namespaces/default").json()
    assert ns["kind"] == "Namespace" and ns["metadata"]["labels"] == {
        "kubernetes.io/metadata.name": "default", "katib.kubeflow.org/metrics-collector-injection": "enabled"}
    same = {"metadata": {"labels": {"katib.kubeflow.org/metrics-collector-injection": "enabled"}}}
    r = c.patch("/api/v1/namespaces/default", json=same, headers={"content-type": "application/strategic-merge-patch+json"})
    assert r.status_code == 200 and r.json() == ns
    r = c.patch("/api/v1/namespaces/default", json={"metadata": {"labels": {"team": "a"}}},
                headers={"content-type": "application/merge-patch+json"})
    assert r.status_code == 422 and r.json()["kind"] == "Status"
    assert r.json()["details"]["causes"][0]["field"] == "metadata.labels.team"
    assert c.get("/api/v1/namespaces/Bad_Name").status_code == 422

    kube = "/apis/kubeflow.org/v1beta1/namespaces/default"
    for name, policy in (("long", "LongRunning"), ("volume", "FromVolume"), ("never", "Never")):
        doc = experiment(name=name, maxTrialCount=2, resumePolicy=policy)
        assert c.post(f"{BASE}/experiments", json=doc).status_code == 201
        live.wait_for("default", name)
    conditions = {n: {x["type"]: x["status"] for x in c.get(f"{kube}/suggestions/{n}").json()["status"]["conditions"]}
                  for n in ("long", "volume", "never")}
    assert conditions["long"] == {"Created": "True", "Running": "True"}
    assert conditions["volume"] == conditions["never"] == {"Created": "True", "Running": "False", "Succeeded": "True"}
    succeeded = {n: next(x for x in c.get(f"{kube}/suggestions/{n}").json()["status"]["conditions"] if x["type"] == "Succeeded")
                 for n in ("volume", "never")}  # Katib's words (cleanupSuggestionResources)
    assert succeeded["never"]["message"] == "Suggestion is succeeded, can't be restarted"
    assert succeeded["volume"]["message"] == "Suggestion is succeeded, suggestion volume is not deleted, can be restarted"
    pvc = c.get("/api/v1/namespaces/default/persistentvolumeclaims/volume-random")
    assert pvc.status_code == 200 and pvc.json()["kind"] == "PersistentVolumeClaim"
    assert pvc.json()["status"]["phase"] == "Bound" and pvc.json()["metadata"]["labels"]["katib.kubeflow.org/experiment"] == "volume"
    for missing in ("never-random", "long-random", "volume-tpe", "nothing"):
        r = c.get(f"/api/v1/namespaces/default/persistentvolumeclaims/{missing}")
        assert r.status_code == 404 and r.json()["reason"] == "NotFound", missing
    assert c.delete(f"{BASE}/experiments/volume").status_code == 200
    assert c.get("/api/v1/namespaces/default/persistentvolumeclaims/volume-random").status_code == 404
