"""The security review: a TrainJob trial whose ``numNodes`` is ``${trialParameters.n}``, with
``n`` = 2,000,000, was admitted, and a viewer's ``GET …/pods?limit=1`` then built every
node's pod in the server (1 min 40 s, 3.5 GB). Now such an experiment is a 422 naming the
field, and one stored by old code shows its trial as one pod, its nodes never counted out."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import api._trainjobs
from api import create_app
from katib.store import TrialRecord
from tests.api_tests.test_trainer_api import trainjob_experiment

HUGE = "2000000000"
MOST_WORK = 1000  # pods built in one request: far more than these tests need, far fewer than HUGE


@pytest.fixture(autouse=True)
def _default_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KATIB_MAX_REPLICAS", raising=False)


def huge_trainjob(name: str = "tj") -> dict:
    doc = trainjob_experiment()
    doc["metadata"]["name"] = name
    doc["spec"]["parameters"].append({"name": "n", "parameterType": "int", "feasibleSpace": {"min": HUGE, "max": HUGE}})
    doc["spec"]["trialTemplate"]["trialParameters"].append({"name": "n", "reference": "n"})
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["trainer"]["numNodes"] = "${trialParameters.n}"
    return doc


@pytest.fixture
def bounded_work(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the pods built (each is stamped once): past MOST_WORK the request fails at
    once, so old code fails this test quickly instead of building two billion pods."""
    built = [0]
    stamp = api._trainjobs.stamp

    def counted(seconds: float | None) -> str | None:
        built[0] += 1
        if built[0] > MOST_WORK:
            raise AssertionError(f"more than {MOST_WORK} pods built for one request")
        return stamp(seconds)

    monkeypatch.setattr(api._trainjobs, "stamp", counted)
    return built


def test_a_placeholder_node_count_past_the_limit_is_a_422_naming_the_field(sqlite_store, tmp_path):
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as c:
        # dryRun: the same admission; old code, which admits it, then stores and runs nothing
        r = c.post("/api/v1/namespaces/ns/experiments", params={"dryRun": "true"}, json=huge_trainjob())
        assert r.status_code == 422, r.text
        assert "spec.trialTemplate.trialSpec.spec.trainer.numNodes" in r.text
        assert f"from {HUGE} to {HUGE}: every value must be an integer from 1 to 64" in r.text
        assert "KATIB_MAX_REPLICAS" in r.text


def test_a_stored_trial_with_millions_of_nodes_lists_as_one_pod_quickly(sqlite_store, tmp_path, bounded_work):
    rec = sqlite_store.create_experiment("ns", "tj", huge_trainjob(), {}, "/w")  # as old code stored it
    sqlite_store.add_trials([TrialRecord(
        id=0, experiment_id=rec.id, name=f"tj-{i}", state="Succeeded",
        assignments=[{"name": "x", "value": "0.5"}, {"name": "n", "value": HUGE}],
        labels={"katib.kubeflow.org/experiment": "tj"}, created_at=1000.0 + i, start_time=1000.5 + i,
        completion_time=1001.0 + i) for i in range(3)])
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as c:
        one = c.get("/api/v1/namespaces/ns/pods", params={"labelSelector": "jobset.sigs.k8s.io/jobset-name=tj-1", "limit": "1"})
        every = c.get("/api/v1/namespaces/ns/pods", params={"limit": "1"})
        whole = c.get("/api/v1/namespaces/ns/pods")
    assert one.status_code == every.status_code == whole.status_code == 200, (one.text, every.text, whole.text)
    assert [p["metadata"]["name"] for p in one.json()["items"]] == ["tj-1"]
    assert "continue" not in one.json()["metadata"] or not one.json()["metadata"]["continue"]
    assert [p["metadata"]["name"] for p in every.json()["items"]] == ["tj-0"]
    assert [p["metadata"]["name"] for p in whole.json()["items"]] == ["tj-0", "tj-1", "tj-2"]  # one pod a trial
    assert bounded_work[0] <= 50  # a few stamps a trial (its TrainJob, its one pod), not one a node


def test_a_budget_edit_of_an_experiment_stored_past_the_limit_is_a_422(sqlite_store, tmp_path):
    """Intended: the edit admits the whole spec again, so an experiment that old code stored
    with a count placeholder past the limit keeps its budget until its template is fixed."""
    sqlite_store.create_experiment("ns", "tj", huge_trainjob(), {}, "/w")  # as old code stored it
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as c:
        r = c.patch("/api/v1/namespaces/ns/experiments/tj/budget", json={"maxTrialCount": 5})
    assert r.status_code == 422, r.text
    assert "spec.trialTemplate.trialSpec.spec.trainer.numNodes" in r.text and "KATIB_MAX_REPLICAS" in r.text
    assert sqlite_store.get_experiment("ns", "tj").spec["spec"]["maxTrialCount"] == 1
