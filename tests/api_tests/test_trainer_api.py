"""Kubeflow Trainer's endpoints on katib server (issue 13), without the SDK: runtimes, a
TrainJob trial as a TrainJob and as JobSet's pods (set-based selectors too), its log, and
Katib's trial events; an OptimizationJob created on the server, shown with its result and trials."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.api_tests.conftest import LiveServer
from tests.conftest import experiment

ROOT = "/apis/trainer.kubeflow.org/v1alpha1"


def trainjob_experiment() -> dict:
    doc = experiment(name="tj", maxTrialCount=1, parallelTrialCount=1)
    doc["spec"]["trialTemplate"] = {
        "primaryContainerName": "node", "trialParameters": [{"name": "x", "reference": "x"}],
        "trialSpec": {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {"numNodes": 2, "command": ["python3", "-c", "import os; print('loss=${trialParameters.x}', os.environ['RANK'])"]},
        }},
    }
    return doc


def test_runtimes_trainjobs_pods_logs_and_events(sqlite_store, tmp_path):
    with LiveServer(sqlite_store, tmp_path) as server:
        c = server.client
        runtimes = c.get(f"{ROOT}/clustertrainingruntimes").json()
        assert [r["metadata"]["name"] for r in runtimes["items"]] == ["torch-distributed"]
        runtime = c.get(f"{ROOT}/clustertrainingruntimes/torch-distributed").json()
        assert runtime["metadata"]["labels"]["trainer.kubeflow.org/framework"] == "torch"
        assert c.get(f"{ROOT}/clustertrainingruntimes/nope").status_code == 404
        assert c.get(f"{ROOT}/namespaces/default/trainingruntimes").json()["items"] == []
        assert c.get(f"{ROOT}/namespaces/default/trainingruntimes/torch-distributed").status_code == 404
        assert c.post("/api/v1/namespaces/default/experiments", json=trainjob_experiment()).status_code == 201
        server.wait_for("default", "tj")
        [trial] = [t["metadata"]["name"] for t in c.get("/api/v1/namespaces/default/experiments/tj/trials").json()["items"]]
        job = c.get(f"{ROOT}/namespaces/default/trainjobs/{trial}").json()
        assert job["kind"] == "TrainJob" and job["spec"]["runtimeRef"]["name"] == "torch-distributed"
        assert job["status"]["conditions"][0]["type"] == "Complete"
        assert "${trialParameters" not in str(job["spec"])  # rendered with the trial's parameters
        assert [j["metadata"]["name"] for j in c.get(f"{ROOT}/namespaces/default/trainjobs").json()["items"]] == [trial]
        selector = (f"jobset.sigs.k8s.io/jobset-name={trial},jobset.sigs.k8s.io/replicatedjob-name in "
                    "(dataset-initializer, model-initializer, launcher, node)")
        pods = c.get("/api/v1/namespaces/default/pods", params={"labelSelector": selector}).json()["items"]
        assert [(p["metadata"]["name"], p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"]) for p in pods] == [
            (trial, "0"), (f"{trial}-node-1", "1")]
        assert [ct["name"] for ct in pods[0]["spec"]["containers"]] == ["node", "metrics-logger-and-collector"]
        assert {p["status"]["phase"] for p in pods} == {"Succeeded"}
        none = c.get("/api/v1/namespaces/default/pods", params={"labelSelector": "jobset.sigs.k8s.io/replicatedjob-name in (launcher)"})
        assert none.json()["items"] == []
        assert c.get("/api/v1/namespaces/default/pods", params={"labelSelector": "a!=b"}).status_code == 422
        log = c.get(f"/api/v1/namespaces/default/pods/{trial}/log", params={"container": "metrics-logger-and-collector"}).text
        assert log.startswith("loss=") and log.strip().endswith(" 0")  # node 0's output
        events = c.get("/api/v1/namespaces/default/events").json()["items"]
        assert [(e["involvedObject"]["name"], e["reason"]) for e in events] == [
            (trial, "JobCreated"), (trial, "JobRunning"), (trial, "JobSucceeded")]
        assert events[-1]["message"] == f"Job {trial} has succeeded"
        assert c.get(f"{ROOT}/namespaces/other/trainjobs").json()["items"] == []


def test_an_optimization_job_on_the_server_shows_its_result_and_trials(sqlite_store, tmp_path):
    doc = yaml.safe_load((Path(__file__).resolve().parents[1] / "data" / "trainer" / "optimizationjob-sample.yaml").read_text())
    doc["metadata"]["name"] = "oj"
    doc["spec"].update(numTrials=2, parallelTrials=2)
    doc["spec"]["trainJobTemplate"]["spec"]["runtimeRef"]["name"] = "torch-distributed"
    doc["spec"]["trainJobTemplate"]["spec"]["trainer"]["command"] = [
        "python", "-c", "import os; print('val_loss=' + os.environ['KUBEFLOW_TRAINER_OPT_BATCH_SIZE'])"]
    with LiveServer(sqlite_store, tmp_path) as server:
        c = server.client
        created = c.post("/api/v1/namespaces/default/experiments", json=doc)
        assert created.status_code == 201, created.text
        server.wait_for("default", "oj")
        job = c.get(f"{ROOT}/namespaces/default/optimizationjobs/oj").json()
        assert job["kind"] == "OptimizationJob" and job["spec"] == doc["spec"]
        status = job["status"]
        assert status["nextTrialIndex"] == 2 and [t["state"] for t in status["trials"]] == ["Succeeded", "Succeeded"]
        best = min(status["trials"], key=lambda t: int(next(p["value"] for p in t["parameters"] if p["name"] == "batch_size")))
        assert status["result"] == {"trainJobName": best["name"], "parameters": best["parameters"]}
        assert any(cond["type"] == "Complete" and cond["status"] == "True" for cond in status["conditions"])
        assert [j["metadata"]["name"] for j in c.get(f"{ROOT}/namespaces/default/optimizationjobs").json()["items"]] == ["oj"]
        assert c.post("/api/v1/namespaces/default/experiments", json=trainjob_experiment()).status_code == 201
        assert c.get(f"{ROOT}/namespaces/default/optimizationjobs/tj").status_code == 404  # a Katib Experiment
        bad = dict(doc, metadata={"name": "bad"}, spec=dict(doc["spec"], parallelTrials=5))
        refused = c.post("/api/v1/namespaces/default/experiments", json=bad)
        assert refused.status_code == 422 and "parallelTrials cannot exceed numTrials" in refused.text


def test_trainjobs_events_pods_and_optimization_jobs_keep_to_the_page_limit(sqlite_store, tmp_path):
    """The security review: …/trainjobs, …/events (and …/pods, …/optimizationjobs, which
    embed trials) answered every trial of the namespace at once, whatever the page limit.
    Now a page at a time, at most KATIB_MAX_PAGE (here 5); a page may end within a trial's
    pods or events, and the next starts where it ended."""
    import json

    from fastapi.testclient import TestClient

    from api import ServerLimits, create_app
    from katib.spec import OPTIMIZATION_JOB_SOURCE
    from katib.store import TrialRecord

    def seed(name: str, doc: dict, n: int) -> None:
        rec = sqlite_store.create_experiment("ns", name, doc, {}, "/w")
        sqlite_store.add_trials([TrialRecord(
            id=0, experiment_id=rec.id, name=f"{name}-{i}", state="Succeeded", assignments=[{"name": "x", "value": str(i)}],
            labels={"katib.kubeflow.org/experiment": name}, created_at=1000.0 + i, start_time=1000.5 + i,
            completion_time=1001.0 + i) for i in range(n)])

    seed("tj", trainjob_experiment(), 7)  # TrainJob trials of 2 nodes: 14 pods, 21 events
    plain = experiment(name="oj")
    plain["metadata"]["annotations"] = {OPTIMIZATION_JOB_SOURCE: json.dumps({"apiVersion": "trainer.kubeflow.org/v1alpha1", "spec": {}})}
    seed("oj", plain, 12)  # an OptimizationJob of 12 trials
    seed("oj2", {**plain, "metadata": {**plain["metadata"], "name": "oj2"}}, 2)

    def pages(c, url, **params):
        out, token = [], None
        while True:
            body = c.get(url, params={**params, **({"continue": token} if token else {})}).json()
            out.append(body["items"])
            token = body["metadata"].get("continue")
            if not token:
                return out

    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False, limits=ServerLimits(page=5))
    with TestClient(app, base_url="http://localhost") as c:
        jobs = pages(c, f"{ROOT}/namespaces/ns/trainjobs")
        assert [len(p) for p in jobs] == [5, 2]
        assert [j["metadata"]["name"] for p in jobs for j in p] == [f"tj-{i}" for i in range(7)]
        assert [len(p) for p in pages(c, f"{ROOT}/namespaces/ns/trainjobs", limit="3")] == [3, 3, 1]
        assert len(c.get(f"{ROOT}/namespaces/ns/trainjobs", params={"limit": "100"}).json()["items"]) == 5

        events = pages(c, "/api/v1/namespaces/ns/events")  # 3 a trial: 21 + 36 + 6
        assert [len(p) for p in events] == [5] * 12 + [3]
        seen = [(e["involvedObject"]["name"], e["reason"]) for p in events for e in p]
        # every event once; pages follow the experiments and trials, each page oldest first
        assert sorted(seen) == sorted((f"{name}-{i}", reason) for name, n in (("tj", 7), ("oj", 12), ("oj2", 2))
                                      for i in range(n) for reason in ("JobCreated", "JobRunning", "JobSucceeded"))
        assert all(p == sorted(p, key=lambda e: e["firstTimestamp"]) for p in events)

        pods = pages(c, "/api/v1/namespaces/ns/pods", labelSelector="katib.kubeflow.org/experiment=tj", limit="3")
        assert [len(p) for p in pods] == [3, 3, 3, 3, 2]  # pages end within a trial's two pods
        assert [p["metadata"]["name"] for page in pods for p in page] == [
            name for i in range(7) for name in (f"tj-{i}", f"tj-{i}-node-1")]
        one = pages(c, "/api/v1/namespaces/ns/pods", labelSelector="jobset.sigs.k8s.io/jobset-name=tj-3", limit="1")
        assert [[p["metadata"]["name"] for p in page] for page in one] == [["tj-3"], ["tj-3-node-1"]]

        job = c.get(f"{ROOT}/namespaces/ns/optimizationjobs/oj").json()
        assert [t["name"] for t in job["status"]["trials"]] == [f"oj-{i}" for i in range(7, 12)]  # the last page
        assert job["status"]["nextTrialIndex"] == 12
        listed = pages(c, f"{ROOT}/namespaces/ns/optimizationjobs")  # at most a page of trials embedded a page
        assert [[(j["metadata"]["name"], len(j["status"]["trials"])) for j in p] for p in listed] == [[("oj", 5)], [("oj2", 2)]]


def test_an_optimization_job_is_created_and_deleted_at_its_own_url(sqlite_store, tmp_path):
    """kubectl create -f job.yaml posts to the OptimizationJob's URL (discovery says where):
    it was a 405, and only a POST to .../experiments made one."""
    doc = yaml.safe_load((Path(__file__).resolve().parents[1] / "data" / "trainer" / "optimizationjob-sample.yaml").read_text())
    doc["metadata"]["name"] = "oj2"
    doc["spec"].update(numTrials=1, parallelTrials=1)
    doc["spec"]["trainJobTemplate"]["spec"]["runtimeRef"]["name"] = "torch-distributed"
    doc["spec"]["trainJobTemplate"]["spec"]["trainer"]["command"] = ["python", "-c", "print('val_loss=0.5')"]
    with LiveServer(sqlite_store, tmp_path) as server:
        c = server.client
        url = f"{ROOT}/namespaces/default/optimizationjobs"
        verbs = next(r["verbs"] for r in c.get(ROOT).json()["resources"] if r["name"] == "optimizationjobs")
        assert {"create", "delete"} <= set(verbs)
        dry = c.post(url, json=doc, params={"dryRun": "All"})
        assert dry.status_code == 201 and dry.json()["kind"] == "OptimizationJob", dry.text
        assert c.get(f"{url}/oj2").status_code == 404  # a dry run makes nothing
        created = c.post(url, json=doc)
        assert created.status_code == 201 and created.json()["kind"] == "OptimizationJob", created.text
        assert created.json()["metadata"]["name"] == "oj2"
        server.wait_for("default", "oj2")
        refused = c.post(url, json=trainjob_experiment())
        assert refused.status_code == 422 and "must be OptimizationJob at this URL" in refused.text
        assert c.post("/api/v1/namespaces/default/experiments", json=trainjob_experiment()).status_code == 201
        assert c.delete(f"{url}/tj").status_code == 404  # a Katib Experiment, not an OptimizationJob
        assert c.delete(f"{url}/oj2").status_code == 200
        assert c.get(f"{url}/oj2").status_code == 404 and c.get("/api/v1/namespaces/default/experiments/tj").status_code == 200


def test_a_method_or_path_the_api_does_not_have_answers_a_kubernetes_status(sqlite_store, tmp_path):
    """FastAPI's own 404 and 405 said {"detail": …} where every other error on these paths
    is a Status (kubectl and the Kubernetes client read its message and reason)."""
    from fastapi.testclient import TestClient

    from api import create_app

    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as c:
        for method in ("put", "delete"):
            answer = getattr(c, method)(f"{ROOT}/namespaces/ns/optimizationjobs")
            body = answer.json()
            assert answer.status_code == 405 and body["kind"] == "Status" and body["reason"] == "MethodNotAllowed", body
            assert "GET" in answer.headers["allow"]
        body = c.get("/apis/kubeflow.org/v1beta1/namespaces/ns/nothing").json()
        assert body["kind"] == "Status" and body["code"] == 404, body
        assert "message" in c.get("/api/v1/nothing-here/at/all").json()
