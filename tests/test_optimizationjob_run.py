"""``katib run`` of Kubeflow Trainer OptimizationJobs to the end (issue 13): upstream's own
sample (its runtime pytorch-distributed given in $KATIB_RUNTIMES), and one beyond upstream's
limits (several objectives, Katib's algorithm block and its settings, early stopping; every
algorithm and 100,000 trials × 1,000 in parallel are admission's, tests/spec_tests/test_optimizationjob.py), trials reading
their parameters from KUBEFLOW_TRAINER_OPT_* variables."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import yaml

from katib.runtimes import TORCH_DISTRIBUTED
from katib.store import Store

DATA = Path(__file__).resolve().parent / "data" / "trainer"
TRAIN = """import math, os
lr = float(os.environ["KUBEFLOW_TRAINER_OPT_LEARNING_RATE"])
batch = int(os.environ["KUBEFLOW_TRAINER_OPT_BATCH_SIZE"])
print(f"val_loss={(math.log10(lr) + 2) ** 2 + batch / 640}")
print(f"latency={batch / 16}")
"""


def run(tmp_path: Path, doc: dict) -> tuple[subprocess.CompletedProcess, Store, str]:
    runtime = copy.deepcopy(TORCH_DISTRIBUTED)
    runtime["metadata"]["name"] = "pytorch-distributed"
    (tmp_path / "runtimes.yaml").write_text(yaml.safe_dump(runtime))
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {**os.environ, "KATIB_RUNTIMES": str(tmp_path / "runtimes.yaml")}
    result = subprocess.run([sys.executable, "-m", "katib", "run", str(tmp_path / "job.yaml"), "--db", str(tmp_path / "k.db"),
                             "--tick", "0.05"], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    return result, Store(str(tmp_path / "k.db")), doc["metadata"]["name"]


def test_upstreams_sample_runs_to_the_end(tmp_path):
    doc = yaml.safe_load((DATA / "optimizationjob-sample.yaml").read_text())
    result, store, name = run(tmp_path, doc)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    [rec] = store.list_experiments("default")
    trials = store.list_trials(rec.id)
    assert rec.name == name and len(trials) == 20 and {t.state for t in trials} == {"Succeeded"}
    for t in trials:
        p = t.parameters()
        assert 0.0001 <= float(p["learning_rate"]) <= 0.1 and p["batch_size"] in ("16", "32", "64")
    best = rec.status.to_dict()["currentOptimalTrial"]
    assert best["bestTrialName"] == min(trials, key=lambda t: t.objective if t.objective is not None else 1e9).name
    store.close()


def test_an_optimization_job_beyond_upstreams_limits_runs_to_the_end(tmp_path):
    doc = yaml.safe_load((DATA / "optimizationjob-sample.yaml").read_text())
    doc["metadata"]["name"] = "beyond"
    spec = doc["spec"]
    spec["objectives"] = [{"metric": "val_loss", "direction": "Minimize"}, {"metric": "latency", "direction": "Minimize"}]
    spec["searchAlgorithm"] = {"katib": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "3"}]}}
    spec["earlyStopping"] = {"algorithmName": "medianstop", "algorithmSettings": [{"name": "min_trials_required", "value": "2"}]}
    spec.update(numTrials=6, parallelTrials=6)
    result, store, name = run(tmp_path, doc)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    [rec] = store.list_experiments("default")
    trials = store.list_trials(rec.id)
    assert len(trials) == 6 and {t.state for t in trials} == {"Succeeded"}
    for t in trials:
        assert t.observation is not None and set(t.observation) == {"val_loss", "latency"}
    assert rec.status.pareto_front or rec.status.to_dict()["currentOptimalTrial"]["bestTrialName"]
    store.close()


def test_katib_run_of_its_experiment_as_katib_get_prints_it_is_accepted_and_a_new_name_refused(tmp_path):
    """Review of the reserved annotation: ``katib get experiment -o yaml`` of an experiment
    written from an OptimizationJob, run again, is the same experiment (already finished,
    as before the annotation was reserved); under a new name it is refused (a new
    experiment may not carry the annotation), and nothing is stored."""
    doc = yaml.safe_load((DATA / "optimizationjob-sample.yaml").read_text())
    doc["spec"].update(numTrials=2, parallelTrials=2)
    result, store, name = run(tmp_path, doc)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    store.close()

    def katib(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "KATIB_RUNTIMES": str(tmp_path / "runtimes.yaml")}
        return subprocess.run([sys.executable, "-m", "katib", *args, "--db", str(tmp_path / "k.db")],
                              capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)

    exported = katib("get", "experiment", name, "-o", "yaml").stdout
    assert "katib.kubeflow.org/optimization-job" in exported
    (tmp_path / "again.yaml").write_text(exported)
    again = katib("run", "again.yaml", "--tick", "0.05")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert f"experiment.kubeflow.org/{name} already finished" in again.stdout

    copied = yaml.safe_load(exported)
    copied["metadata"]["name"] = "copy"
    (tmp_path / "copy.yaml").write_text(yaml.safe_dump(copied))
    refused = katib("run", "copy.yaml", "--tick", "0.05")
    assert refused.returncode != 0 and "optimization-job]: is reserved" in refused.stderr, refused.stderr[-2000:]
    store = Store(str(tmp_path / "k.db"))
    assert [r.name for r in store.list_experiments("default")] == [name]
    store.close()


def test_an_optimization_job_whose_trials_all_failed_is_failed_not_complete(tmp_path):
    """Katib calls an experiment that ran out of trials Succeeded, results or not; as an
    OptimizationJob that was Complete=True with no result, which a caller waiting for
    Complete (the Kubeflow SDK) takes for one."""
    from katib.optimizationjobs import optimization_job_object

    doc = yaml.safe_load((DATA / "optimizationjob-sample.yaml").read_text())
    doc["spec"].update(numTrials=2, parallelTrials=2)
    global TRAIN
    TRAIN, kept = "import sys; sys.exit(3)\n", TRAIN
    try:
        result, store, name = run(tmp_path, doc)
    finally:
        TRAIN = kept
    assert result.returncode != 0, result.stdout[-2000:] + result.stderr[-2000:]
    [rec] = store.list_experiments("default")
    job = optimization_job_object(rec, store.list_trials(rec.id))
    assert job is not None and "result" not in job["status"]
    ended = {c["type"]: (c["status"], c["reason"]) for c in job["status"]["conditions"]}
    assert ended.get("Failed") == ("True", "NoTrialSucceeded") and "Complete" not in ended, ended
    [failed] = [c for c in job["status"]["conditions"] if c["type"] == "Failed"]
    # Why, not Katib's "Experiment has succeeded because max trial count has reached".
    assert failed["message"].startswith("No result: ") and "succeeded because" not in failed["message"], failed
    assert "no trial reported" in failed["message"], failed
    store.close()
