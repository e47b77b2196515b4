"""Population based training: the population, exploit and explore, checkpoints."""

from __future__ import annotations

import pytest

from katib.controller import Controller, admit
from katib.errors import ValidationError
from suggestion import TrialView, get_algorithm
from suggestion._pbt import CHECKPOINT_FROM_LABEL, GENERATION_LABEL, PARENT_LABEL
from tests.conftest import experiment, python_command


def pbt_doc(population="5", threshold="0.2", command=None, max_trials=12, parallel=3):
    return experiment(
        algorithm={"algorithmName": "pbt", "algorithmSettings": [
            {"name": "suggestion_trial_dir", "value": "/var/log/katib/checkpoints/"},
            {"name": "n_population", "value": population}, {"name": "truncation_threshold", "value": threshold},
            {"name": "random_state", "value": "1"}]},
        parameters=[{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.9"}}],
        maxTrialCount=max_trials, parallelTrialCount=parallel,
        **({"command": command} if command else {}),
    )


@pytest.mark.parametrize(("population", "threshold", "message"), [
    ("4", "0.2", "n_population must be >= 5 (got 4)"),
    ("5", "1.5", "truncation_threshold must be <= 1 (got 1.5)"),
])
def test_settings(population, threshold, message):
    with pytest.raises(ValidationError) as info:
        admit(pbt_doc(population, threshold))
    assert any(message in str(e) for e in info.value.errors)


def test_founders_then_exploit_and_explore():
    exp = admit(pbt_doc())
    alg, state = get_algorithm("pbt"), {}
    founders = alg.suggest(exp, [], 10, state)
    assert len(founders) == 5 and all(a.labels[GENERATION_LABEL] == "0" for a in founders)
    assert all(a.name and a.name.startswith("demo-") for a in founders)
    # minimize x: the founder with the largest x is the bottom fifth
    views = [TrialView(a.name, a.parameters, "Succeeded", float(a.parameters["x"])) for a in founders]
    best = min(views, key=lambda v: v.objective)
    worst = max(views, key=lambda v: v.objective)
    children = alg.suggest(exp, views, 10, state)
    assert len(children) == 5
    by_parent = {c.labels[PARENT_LABEL]: c for c in children}
    assert set(by_parent) == {v.name for v in views}
    assert by_parent[worst.name].labels[CHECKPOINT_FROM_LABEL] == best.name  # exploit the top
    assert by_parent[best.name].labels[CHECKPOINT_FROM_LABEL] == best.name   # go on from itself
    for c in children:
        assert c.labels[GENERATION_LABEL] == "1"
        source = next(v for v in views if v.name == c.labels[CHECKPOINT_FROM_LABEL])
        ratio = float(c.parameters["x"]) / float(source.parameters["x"])
        assert 0.1 <= float(c.parameters["x"]) <= 0.9 and (abs(ratio - 0.8) < 1e-6 or abs(ratio - 1.2) < 1e-6
                                                          or float(c.parameters["x"]) in (0.1, 0.9))
    assert alg.suggest(exp, views, 10, state) == []  # every finished member is expanded once


def test_checkpoints_are_passed_down_the_generations(store, tmp_path):
    code = ("import os, pathlib\nd = pathlib.Path(os.environ['KATIB_CHECKPOINT_DIR'])\n"
            "f = d / 'steps'\nn = int(f.read_text()) + 1 if f.exists() else 1\nf.write_text(str(n))\n"
            "print(f'loss={n}')\nprint('cwd-arg /var/log/katib/checkpoints/')")
    doc = pbt_doc(command=python_command(code), max_trials=15, parallel=5)
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    trials = store.list_trials(rec.id)
    assert len(trials) == 15
    steps = {t.name: t.objective for t in trials}
    for t in trials:
        # each trial trained one step more than the checkpoint it started from
        source = t.labels.get(CHECKPOINT_FROM_LABEL)
        assert t.objective == (steps[source] + 1 if source else 1)
        assert (t.labels[GENERATION_LABEL] == "0") == (source is None)
    assert max(steps.values()) >= 3  # some lineage went on for generations
    state = store.algorithm_state(rec.id)
    assert set(state["generation"]) == {t.name for t in trials}
