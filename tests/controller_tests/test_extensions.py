"""Beyond Katib: several objectives (a Pareto front), constraints, warm start."""

from __future__ import annotations

import pytest

from katib.controller import Controller, admit
from katib.errors import ValidationError
from tests.conftest import experiment, python_command

GRID_X = [{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": [f"0.{i}" for i in range(1, 10)]}}]


def run(store, tmp_path, doc):
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    return rec, status, store.list_trials(rec.id)


def test_constraints_make_infeasible_trials_rank_last(store, tmp_path):
    code = "x = float('${trialParameters.x}'); print(f'score={x} memory={10 * x}')"
    doc = experiment(command=python_command(code), algorithm={"algorithmName": "grid"}, parameters=GRID_X,
                     maxTrialCount=9, parallelTrialCount=3,
                     objective={"type": "maximize", "objectiveMetricName": "score", "additionalMetricNames": ["memory"],
                                "constraints": [{"metricName": "memory", "max": "5"}]})
    _, status, trials = run(store, tmp_path, doc)
    best = status["currentOptimalTrial"]
    assert {a["name"]: a["value"] for a in best["parameterAssignments"]} == {"x": "0.5"}  # 0.9 scores more but breaks the constraint
    assert len(trials) == 9


def test_a_trial_that_breaks_the_constraints_is_no_result(store, tmp_path):
    """Every trial breaks a constraint: there is no best trial (it used to be the least
    violating one, shown as the result with exit 0), and the end says why."""
    from katib import views

    code = "x = float('${trialParameters.x}'); print(f'score={x} memory={10 + x}')"
    doc = experiment(command=python_command(code), algorithm={"algorithmName": "grid"}, parameters=GRID_X,
                     maxTrialCount=3, parallelTrialCount=3,
                     objective={"type": "maximize", "objectiveMetricName": "score", "additionalMetricNames": ["memory"],
                                "constraints": [{"metricName": "memory", "max": "5"}]})
    rec, status, trials = run(store, tmp_path, doc)
    assert not (status.get("currentOptimalTrial") or {}).get("bestTrialName")
    ended = [c for c in status["conditions"] if c["status"] == "True"][-1]
    assert ended["reason"] == "ExperimentMaxTrialsReached"
    assert "no trial met the objective's constraints (memory in [-inf, 5]): 3 trial(s) reported 'score'" in ended["message"]
    note = views.no_result(store.get_experiment_by_id(rec.id), trials)
    assert note is not None and "constraints" in note


def test_goal_counts_only_feasible_trials(store, tmp_path):
    code = "x = float('${trialParameters.x}'); print(f'score={x} memory={10 * x}')"
    doc = experiment(command=python_command(code), algorithm={"algorithmName": "grid"}, parameters=GRID_X[:1],
                     maxTrialCount=9, parallelTrialCount=1,
                     objective={"type": "maximize", "goal": 0.6, "objectiveMetricName": "score", "additionalMetricNames": ["memory"],
                                "constraints": [{"metricName": "memory", "max": "5"}]})
    _, status, trials = run(store, tmp_path, doc)
    # 0.6 would reach the goal but is infeasible (memory 6 > 5): the experiment runs to the end.
    assert [c["reason"] for c in status["conditions"] if c["status"] == "True"][-1] == "ExperimentMaxTrialsReached"


def test_several_objectives_give_a_pareto_front(store, tmp_path):
    code = "x = float('${trialParameters.x}'); print(f'loss={x} cost={(x - 0.5) ** 2:.4f}')"
    doc = experiment(command=python_command(code), algorithm={"algorithmName": "grid"}, parameters=GRID_X,
                     maxTrialCount=9, parallelTrialCount=3,
                     objective={"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["cost"],
                                "additionalObjectives": [{"metricName": "cost", "type": "minimize"}]})
    _, status, trials = run(store, tmp_path, doc)
    front = sorted(a["value"] for t in status["paretoFront"] for a in t["parameterAssignments"])
    assert front == ["0.1", "0.2", "0.3", "0.4", "0.5"]
    assert {a["value"] for a in status["currentOptimalTrial"]["parameterAssignments"]} == {"0.1"}


def test_an_additional_objective_and_a_constraint_read_their_own_strategy(store, tmp_path):
    """Unset, a metric's strategy followed the objective's direction (Katib's rule for the
    metrics it has): a maximized additional objective was scored by its minimum, so the
    trial whose accuracy ended at 0.99 lay behind one at 0.90; and a constraint's metric
    was read at the end the objective favours, so a trial whose memory ended at 20, above
    the bound of 10, passed on its 5. Now an additional objective follows its own direction
    and a constrained metric is read as the trial ended (latest)."""
    code = ("x = '${trialParameters.x}'\n"
            "print({'0.1': 'acc=0.10 mem=1', '0.2': 'acc=0.90 mem=1', '0.3': 'mem=5 acc=0.95'}[x])\n"
            "print({'0.1': 'acc=0.99 loss=0.5 mem=2', '0.2': 'loss=0.5 mem=2', '0.3': 'loss=0.1 mem=20'}[x])")
    doc = experiment(command=python_command(code), algorithm={"algorithmName": "grid"}, maxTrialCount=3, parallelTrialCount=3,
                     parameters=[{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["0.1", "0.2", "0.3"]}}],
                     objective={"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["acc", "mem"],
                                "additionalObjectives": [{"metricName": "acc", "type": "maximize"}],
                                "constraints": [{"metricName": "mem", "max": "10"}]})
    strategies = {s.name: s.value for s in admit(doc).spec.objective.metric_strategies}
    assert strategies == {"loss": "min", "acc": "max", "mem": "latest"}
    _, status, trials = run(store, tmp_path, doc)
    name = {t.parameters()["x"]: t.name for t in trials}
    # 0.3 (loss 0.1) broke the constraint as it ended; 0.1 dominates 0.2 (same loss, acc 0.99 > 0.90).
    assert [t["bestTrialName"] for t in status["paretoFront"]] == [name["0.1"]]
    assert status["currentOptimalTrial"]["bestTrialName"] in (name["0.1"], name["0.2"])


def test_multi_objective_tpe_runs(store, tmp_path):
    code = "x = float('${trialParameters.x}'); print(f'loss={x} cost={(x - 0.5) ** 2:.4f}')"
    doc = experiment(command=python_command(code), algorithm={"algorithmName": "tpe"}, maxTrialCount=12,
                     objective={"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["cost"],
                                "additionalObjectives": [{"metricName": "cost", "type": "minimize"}]})
    _, status, trials = run(store, tmp_path, doc)
    assert len(trials) == 12 and status["paretoFront"]


def test_single_objective_algorithms_refuse_several():
    doc = experiment(algorithm={"algorithmName": "cmaes"},
                     parameters=[GRID_X[0] | {"parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
                                 {"name": "y", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
                     objective={"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["cost"],
                                "additionalObjectives": [{"metricName": "cost", "type": "minimize"}]},
                     command=python_command("print(1)  # ${trialParameters.y}"))
    doc["spec"]["trialTemplate"]["trialParameters"].append({"name": "y", "reference": "y"})
    with pytest.raises(ValidationError, match="the cmaes algorithm optimises one objective"):
        admit(doc)


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        ({"additionalObjectives": [{"metricName": "acc", "type": "maximize"}]},
         "spec.objective.additionalObjectives[0].metricName: must be one of additionalMetricNames, so it is collected (got 'acc')"),
        ({"additionalMetricNames": ["cost"], "additionalObjectives": [{"metricName": "cost", "type": "max"}]},
         "spec.objective.additionalObjectives[0].type: must be minimize or maximize (got 'max')"),
        ({"constraints": [{"metricName": "memory", "max": "5"}]},
         "spec.objective.constraints[0].metricName: must be the objective or one of additionalMetricNames (got 'memory')"),
        ({"constraints": [{"metricName": "loss"}]}, "spec.objective.constraints[0]: needs min, max or both"),
        ({"constraints": [{"metricName": "loss", "min": "2", "max": "1"}]}, "spec.objective.constraints[0].min: must be at most max (got 2 > 1)"),
    ],
)
def test_extension_validation(objective, message):
    doc = experiment(objective={"type": "minimize", "objectiveMetricName": "loss", **objective})
    with pytest.raises(ValidationError) as info:
        admit(doc)
    assert message in [str(e) for e in info.value.errors]


WARM = {"trials": [
    {"parameterAssignments": [{"name": "x", "value": "0.15"}], "observation": {"metrics": [{"name": "loss", "latest": "0.15"}]}},
    {"parameterAssignments": [{"name": "x", "value": "0.85"}], "observation": {"metrics": [{"name": "loss", "latest": "0.85"}]}},
]}


def test_warm_start_seeds_the_experiment_without_using_its_budget(store, tmp_path):
    # Seeded: unseeded, TPE's draws from the good-side density reach past 0.7 now and then.
    doc = experiment(warmStart=WARM, maxTrialCount=3, parallelTrialCount=1,
                     algorithm={"algorithmName": "tpe", "algorithmSettings": [
                         {"name": "n_startup_trials", "value": "0"}, {"name": "random_state", "value": "0"}]})
    rec, status, trials = run(store, tmp_path, doc)
    warm = [t for t in trials if t.labels.get("katib.kubeflow.org/warm-start") == "true"]
    ran = [t for t in trials if t not in warm]
    assert [t.name for t in warm] == ["demo-warm-1", "demo-warm-2"] and {t.state for t in warm} == {"Succeeded"}
    assert len(ran) == 3 and {t.state for t in ran} == {"Succeeded"}
    assert status["trials"] == 5
    assert [c["reason"] for c in status["conditions"] if c["status"] == "True"][-1] == "ExperimentMaxTrialsReached"
    # TPE with no random start learns from the warm results: it proposes near the good one.
    assert all(float(t.parameters()["x"]) < 0.7 for t in ran)


@pytest.mark.parametrize(
    ("warm", "message"),
    [
        ({"trials": [{"parameterAssignments": [{"name": "x", "value": "2"}], "observation": {"metrics": [{"name": "loss", "latest": "1"}]}}]},
         "spec.warmStart.trials[0].parameterAssignments[0].value: must be within [0.1, 0.9] (got 2)"),
        ({"trials": [{"parameterAssignments": [{"name": "y", "value": "2"}], "observation": {"metrics": [{"name": "loss", "latest": "1"}]}}]},
         "spec.warmStart.trials[0].parameterAssignments[0].name: is not a parameter of the experiment (got 'y')"),
        ({"trials": [{"parameterAssignments": [{"name": "x", "value": "0.5"}], "observation": {"metrics": [{"name": "acc", "latest": "1"}]}}]},
         "spec.warmStart.trials[0].observation.metrics: needs a numeric value of the objective metric 'loss'"),
        ({"trials": [{"parameterAssignments": [], "observation": {"metrics": [{"name": "loss", "latest": "1"}]}}]},
         "spec.warmStart.trials[0].parameterAssignments: has no value for parameter 'x'"),
        # A value that reads as a number and is none would be the best of every comparison.
        ({"trials": [{"parameterAssignments": [{"name": "x", "value": "0.5"}],
                      "observation": {"metrics": [{"name": "loss", "latest": "0.3", "min": "-inf"}]}}]},
         "spec.warmStart.trials[0].observation.metrics[0].min: must be a finite number or text (got '-inf')"),
        ({"trials": [{"parameterAssignments": [{"name": "x", "value": "0.5"}],
                      "observation": {"metrics": [{"name": "loss", "latest": "0.3"}, {"name": "acc", "max": "nan"}]}}]},
         "spec.warmStart.trials[0].observation.metrics[1].max: must be a finite number or text (got 'nan')"),
        ({"trials": [{"parameterAssignments": [{"name": "x", "value": "0.5"}],
                      "observation": {"metrics": [{"name": "loss", "latest": "0.3", "max": " "}]}}]},
         "spec.warmStart.trials[0].observation.metrics[0].max: must be a finite number or text (got ' ')"),
    ],
)
def test_warm_start_validation(warm, message):
    with pytest.raises(ValidationError) as info:
        admit(experiment(warmStart=warm))
    assert message in [str(e) for e in info.value.errors]
