"""The annotation that makes an experiment an OptimizationJob is ours alone (security
review 5): a plain Experiment that planted it was shown as an OptimizationJob of 999 trials
maximizing ``acc`` while it ran one trial minimizing ``loss``. Now admission refuses it on
both create routes and on edits, an OptimizationJob's edits keep it, and the view shows
the budget and objectives that run."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from katib.spec import OPTIMIZATION_JOB_SOURCE
from tests.api_tests.conftest import LiveServer
from tests.conftest import experiment, python_command

ROOT = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/default/optimizationjobs"
KUBE = "/apis/kubeflow.org/v1beta1/namespaces/default/experiments"
FIELD = f"metadata.annotations[{OPTIMIZATION_JOB_SOURCE}]"
PLANTED = json.dumps({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "OptimizationJob",
                      "spec": {"numTrials": 999, "objectives": [{"metric": "acc", "direction": "maximize"}]}})


def waiting(release: Path) -> str:
    """A trial's code that runs until ``release`` exists, so its experiment can be edited."""
    return f"import os, time\nwhile not os.path.exists({str(release)!r}): time.sleep(0.05)\nprint('loss=1')"


def optimization_job(name: str, release: Path) -> dict:
    doc = yaml.safe_load((Path(__file__).resolve().parents[1] / "data" / "trainer" / "optimizationjob-sample.yaml").read_text())
    doc.pop("status")
    doc["metadata"]["name"] = name
    doc["spec"].update(numTrials=2, parallelTrials=1)
    doc["spec"]["trainJobTemplate"]["spec"]["runtimeRef"]["name"] = "torch-distributed"
    doc["spec"]["trainJobTemplate"]["spec"]["trainer"]["command"] = ["python", "-c", waiting(release).replace("loss", "val_loss")]
    return doc


def refused(r, path: str = FIELD) -> str:
    """The message of a 422 about ``path``, in our API's shape or as a Kubernetes Status."""
    assert r.status_code == 422, r.text
    body = r.json()
    errors = body["errors"] if "errors" in body else body["details"]["causes"]
    [message] = [e["message"] for e in errors if e["field"] == path]
    return message


def test_a_plain_experiment_cannot_plant_the_annotation(sqlite_store, tmp_path):
    release = tmp_path / "release"
    with LiveServer(sqlite_store, tmp_path) as server:
        c = server.client
        planted = experiment(name="plain1", maxTrialCount=1, parallelTrialCount=1)
        planted["metadata"]["annotations"] = {OPTIMIZATION_JOB_SOURCE: PLANTED}
        assert "is reserved" in refused(c.post("/api/v1/namespaces/default/experiments", json=planted))
        assert "is reserved" in refused(c.post(KUBE, json=planted))
        assert c.get(f"{ROOT}/plain1").status_code == 404
        assert c.get(ROOT).json()["items"] == []

        # Nor by an edit of a plain experiment (the budget changes, so the edit is stored).
        doc = experiment(name="plain2", command=python_command(waiting(release)), maxTrialCount=3, parallelTrialCount=1)
        assert c.post("/api/v1/namespaces/default/experiments", json=doc).status_code == 201
        edit = {"metadata": {"annotations": {OPTIMIZATION_JOB_SOURCE: PLANTED}}, "spec": {"maxTrialCount": 5}}
        assert "is reserved" in refused(c.patch(f"{KUBE}/plain2", json=edit))
        assert c.get(f"{ROOT}/plain2").status_code == 404
        assert c.get("/api/v1/namespaces/default/experiments/plain2").json()["spec"]["maxTrialCount"] == 3
        release.touch()


def test_an_optimization_jobs_edits_keep_its_source_and_its_view_shows_what_runs(sqlite_store, tmp_path):
    release = tmp_path / "release"
    with LiveServer(sqlite_store, tmp_path) as server:
        c = server.client
        doc = optimization_job("oj1", release)
        assert c.post("/api/v1/namespaces/default/experiments", json=doc).status_code == 201
        job = c.get(f"{ROOT}/oj1").json()
        assert job["spec"] == doc["spec"]  # as written, while nothing was edited

        # The budget edit: the view's numTrials is the maxTrialCount that runs.
        assert c.patch("/api/v1/namespaces/default/experiments/oj1/budget", json={"maxTrialCount": 4}).status_code == 200
        job = c.get(f"{ROOT}/oj1").json()
        assert (job["spec"]["numTrials"], job["spec"]["parallelTrials"]) == (4, 1)
        assert job["spec"]["objectives"] == doc["spec"]["objectives"]  # as written ("minimize")

        # The Katib SDK's edit: GET the whole object, change the budget, PATCH it back.
        whole = c.get(f"{KUBE}/oj1").json()
        whole["spec"].update(maxTrialCount=5, parallelTrialCount=2)
        r = c.patch(f"{KUBE}/oj1", json=whole)
        assert r.status_code == 200, r.text
        job = c.get(f"{ROOT}/oj1").json()
        assert (job["spec"]["numTrials"], job["spec"]["parallelTrials"]) == (5, 2)

        # What it came from may not be rewritten or dropped by an edit.
        for value in (PLANTED, None):
            edit = {"metadata": {"annotations": {OPTIMIZATION_JOB_SOURCE: value}}, "spec": {"maxTrialCount": 6}}
            assert "cannot be changed or removed" in refused(c.patch(f"{KUBE}/oj1", json=edit))
        job = c.get(f"{ROOT}/oj1").json()
        assert job["spec"]["numTrials"] == 5 and job["spec"]["objectives"] == doc["spec"]["objectives"]
        release.touch()


def test_a_planted_record_already_stored_shows_what_runs(sqlite_store, tmp_path):
    """An experiment stored before admission refused the annotation: its view shows the
    budget and objective that run, not the planted ones."""
    planted = experiment(name="old", maxTrialCount=1, parallelTrialCount=1)
    planted["metadata"]["annotations"] = {OPTIMIZATION_JOB_SOURCE: PLANTED}
    sqlite_store.create_experiment("default", "old", planted, {}, str(tmp_path))
    with LiveServer(sqlite_store, tmp_path, resume=False) as server:
        spec = server.client.get(f"{ROOT}/old").json()["spec"]
        assert spec["numTrials"] == 1 and spec.get("parallelTrials", 1) == 1  # 1 left out, as an OptimizationJob may
        assert spec["objectives"] == [{"metric": "loss", "direction": "Minimize"}]


def test_a_create_of_an_existing_name_is_a_conflict_and_a_new_one_with_the_annotation_is_refused(sqlite_store, tmp_path):
    """Review of the reserved annotation: the object got back from either API, posted again,
    is the name's 409 (so a client's apply submits it again as an edit), not a 422 for the
    annotation; under a new name the annotation is refused as before."""
    release = tmp_path / "release"
    with LiveServer(sqlite_store, tmp_path) as server:
        c = server.client
        assert c.post("/api/v1/namespaces/default/experiments", json=optimization_job("oj2", release)).status_code == 201
        for url in ("/api/v1/namespaces/default/experiments", KUBE):
            whole = c.get(f"{KUBE}/oj2").json()
            r = c.post(url, json=whole)
            assert r.status_code == 409 and "already exists" in r.text, r.text
            whole["metadata"]["name"] = "oj2-copy"
            assert "is reserved" in refused(c.post(url, json=whole))
        assert c.get(f"{ROOT}/oj2-copy").status_code == 404
        release.touch()


def test_a_planted_record_already_stored_shows_the_search_it_runs(sqlite_store, tmp_path):
    """Review of the reserved annotation: an annotation planted before admission refused it
    may hold a whole, convincing OptimizationJob (upstream's sample: two parameters, random
    search, a TrainJob, early stopping); the view shows the experiment's own parameters,
    algorithm and trial job instead, each in an OptimizationJob's terms where it has them."""
    from katib.controller import admit

    sample = yaml.safe_load((Path(__file__).resolve().parents[1] / "data" / "trainer" / "optimizationjob-sample.yaml").read_text())
    sample["spec"]["earlyStopping"] = {"algorithmName": "medianstop"}
    plain = experiment(name="old2", maxTrialCount=1, parallelTrialCount=1)
    plain["spec"]["parameters"].append({"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9", "step": "2"}})
    plain["spec"]["trialTemplate"]["trialParameters"].append({"name": "n", "reference": "n"})
    job = plain["spec"]["trialTemplate"]["trialSpec"]
    job["spec"]["template"]["spec"]["containers"][0]["command"][-1] += "  # ${trialParameters.n}"
    stored = admit(plain).to_dict()  # what admission stored before it refused the annotation
    stored["metadata"]["annotations"] = {OPTIMIZATION_JOB_SOURCE: json.dumps(sample)}
    sqlite_store.create_experiment("default", "old2", stored, {}, str(tmp_path))
    with LiveServer(sqlite_store, tmp_path, resume=False) as server:
        spec = server.client.get(f"{ROOT}/old2").json()["spec"]
    assert spec["parameters"] == [
        {"name": "x", "searchSpace": {"uniform": {"min": "0.1", "max": "0.9", "type": "Float"}}},
        {"name": "n", "searchSpace": {"katib": {"parameterType": "int",  # a step: no OptimizationJob form
                                                "feasibleSpace": {"min": "1", "max": "9", "step": "2", "distribution": "uniform"}}}}]
    assert spec["searchAlgorithm"] == {"random": {"seed": 1}}  # random_state "1"
    assert spec["trainJobTemplate"] == stored["spec"]["trialTemplate"]["trialSpec"]  # a batch Job, kind and all
    assert spec["trainJobTemplate"]["kind"] == "Job"
    assert "earlyStopping" not in spec
    assert (spec["numTrials"], spec["objectives"]) == (1, [{"metric": "loss", "direction": "Minimize"}])


def test_the_view_of_an_optimization_job_is_its_spec_as_written_whatever_it_sets(sqlite_store, tmp_path):
    """What the view checks a planted annotation by (does the written job convert to what
    the experiment runs) holds for every form an OptimizationJob writes: each shows as
    written, not as read back from the experiment."""
    import copy

    from katib.controller import admit
    from katib.optimizationjobs import optimization_job_object

    sample = yaml.safe_load((Path(__file__).resolve().parents[1] / "data" / "trainer" / "optimizationjob-sample.yaml").read_text())
    sample.pop("status")
    variants = {
        "seed": {"searchAlgorithm": {"random": {"seed": 7}}},
        "katib": {"searchAlgorithm": {"katib": {"algorithmName": "tpe", "algorithmSettings": [{"name": "n_startup_trials", "value": "3"}]}}},
        "grid": {"searchAlgorithm": {"grid": {}}, "numTrials": 2, "parallelTrials": 1,
                 "parameters": [{"name": "b", "searchSpace": {"categorical": {"choices": ["1", "2"]}}}]},
        "int": {"parameters": [*sample["spec"]["parameters"], {"name": "n", "searchSpace": {"uniform": {"min": "1", "max": "5", "type": "Int"}}}]},
        "stop": {"earlyStopping": {"algorithmName": "medianstop", "algorithmSettings": [{"name": "min_trials_required", "value": "2"}]}},
    }
    for name, change in variants.items():
        doc = copy.deepcopy(sample)
        doc["metadata"]["name"] = name
        doc["spec"].update(copy.deepcopy(change))
        sqlite_store.create_experiment("default", name, admit(copy.deepcopy(doc)).to_dict(), {}, str(tmp_path))
        job = optimization_job_object(sqlite_store.get_experiment("default", name), [])
        assert job is not None and job["spec"] == doc["spec"], name
