"""Every example in examples/ runs to the end, as a newcomer would run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from katib.store import Store
from tests.conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("**/*.yaml"))
EXPECTED = {
    "random.yaml": ("random", 12, "ExperimentMaxTrialsReached"),
    "grid.yaml": ("grid", 12, "ExperimentMaxTrialsReached"),
    "file-metrics-collector.yaml": ("file-metrics-collector", 6, "ExperimentMaxTrialsReached"),
    "push-metrics.yaml": ("push-metrics", 6, "ExperimentMaxTrialsReached"),
    "pbt.yaml": ("pbt", 15, "ExperimentMaxTrialsReached"),
    "pytorchjob-digits.yaml": ("pytorchjob-digits", 4, "ExperimentMaxTrialsReached"),
    "nas/enas.yaml": ("enas", 6, "ExperimentMaxTrialsReached"),
    "nas/darts.yaml": ("darts", 1, "ExperimentMaxTrialsReached"),
}


def key(path: Path) -> str:
    return path.relative_to(REPO / "examples").as_posix()


def test_every_example_is_covered():
    assert {key(p) for p in EXAMPLES} == set(EXPECTED)


@pytest.mark.parametrize("path", EXAMPLES, ids=key)
def test_example_runs(path: Path, example_run):
    result, db = example_run(path)
    name, count, reason = EXPECTED[key(path)]
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Succeeded ({reason})" in result.stdout
    store = Store(str(db))
    rec = store.get_experiment("kubeflow", name)
    trials = store.list_trials(rec.id)
    assert len(trials) == count and {t.state for t in trials} == {"Succeeded"}
    # The models really learn: digits accuracy well above chance (0.1) for the best trial.
    best = rec.status.to_dict()["currentOptimalTrial"]["observation"]["metrics"]
    values = {m["name"].lower(): m["latest"] for m in best}
    if "validation-accuracy" in values:
        assert float(values["validation-accuracy"]) > (0.8 if name == "pytorchjob-digits" else 0.85)
    else:
        assert float(values["loss"]) < 0.5
    if name == "darts":  # the architecture found: Katib's genotype, collected as text, and its accuracy
        assert values["best-genotype"].startswith("Genotype(normal=[[(")
        assert float(values["genotype-accuracy"]) > 0.85
    # Intermediate values are kept per epoch, not only the last one.
    epochs = {"pbt": 2, "pytorchjob-digits": 5, "enas": 3, "darts": 4}.get(name, 6)
    assert len(store.observations(trials[0].id, rec.spec["spec"]["objective"]["objectiveMetricName"])) >= epochs
