"""Issue 11: the same experiment driven by the controller's loop and by ask-and-tell
proposes the same trials, in the same order, and ends the same way (seeded algorithms)."""

from __future__ import annotations

import copy

import pytest

from katib.controller import AskTell, Controller, admit
from katib.errors import ConflictError
from tests.conftest import experiment, python_command

LOSS = "print('loss=' + repr((float('${trialParameters.x}') - 0.3) ** 2 + int('${trialParameters.n}') / 100))"
PARAMS = [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.9"}},
          {"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}}]


def _seeded(name: str, *settings: tuple[str, str]) -> dict:
    return {"algorithmName": name, "algorithmSettings": [{"name": "random_state", "value": "3"}]
            + [{"name": k, "value": v} for k, v in settings]}


CASES = {
    "random": (_seeded("random"), 1, 6),
    "grid": ({"algorithmName": "grid"}, 1, 6),
    "tpe": (_seeded("tpe", ("n_startup_trials", "3")), 1, 7),
    "multivariate-tpe": (_seeded("multivariate-tpe", ("n_startup_trials", "3")), 1, 7),
    "cmaes": (_seeded("cmaes"), 1, 7),
    "sobol": ({"algorithmName": "sobol"}, 1, 6),
    "hyperband": (_seeded("hyperband", ("r_l", "3"), ("eta", "3"), ("resource_name", "n")), 3, 20),
    "pbt": (_seeded("pbt", ("suggestion_trial_dir", "/var/log/katib/checkpoints/"), ("n_population", "5"),
                    ("truncation_threshold", "0.4")), 1, 9),
}


def _doc(algorithm: dict, parallel: int, budget: int) -> dict:
    doc = experiment(name="parity", algorithm=copy.deepcopy(algorithm), parameters=PARAMS, parallelTrialCount=parallel,
                     maxTrialCount=budget, maxFailedTrialCount=budget, command=python_command(LOSS))
    doc["spec"]["trialTemplate"]["trialParameters"] = [{"name": "x", "reference": "x"}, {"name": "n", "reference": "n"}]
    if algorithm["algorithmName"] == "grid":
        for p in doc["spec"]["parameters"]:
            p["feasibleSpace"]["step"] = "0.2" if p["parameterType"] == "double" else "4"
    return doc


def _loss(params: dict[str, str]) -> float:
    return (float(params["x"]) - 0.3) ** 2 + int(params["n"]) / 100


def _ending(status: dict) -> tuple[str, str]:
    cond = [c for c in status["conditions"] if c["status"] == "True"][-1]
    return cond["type"], cond["reason"]


@pytest.mark.parametrize("algorithm", sorted(CASES))
def test_the_loop_and_ask_tell_agree(sqlite_store, tmp_path, algorithm):
    spec, parallel, budget = CASES[algorithm]
    ctl = Controller(sqlite_store, runs_root=tmp_path / "runs", tick=0.02)
    rec, _ = ctl.submit(admit(_doc(spec, parallel, budget)), tmp_path)
    loop_status = ctl.run(rec.namespace, rec.name).to_dict()
    loop = [t.parameters() for t in sqlite_store.list_trials(rec.id)]

    doc = _doc(spec, parallel, budget)
    doc["metadata"] = {"name": "parity", "namespace": "outside"}
    doc["spec"]["executor"] = "external"
    del doc["spec"]["trialTemplate"]
    exp = admit(doc)
    at = AskTell(sqlite_store)
    sqlite_store.create_experiment(exp.namespace, exp.name, exp.model_dump(by_alias=True, exclude_none=True, mode="json"),
                                   {"conditions": []}, "/tmp")
    told = []
    while True:
        try:
            batch = at.ask(exp.namespace, exp.name, parallel)
        except ConflictError:
            break
        for trial in batch:
            at.tell(exp.namespace, exp.name, trial["name"], {"loss": _loss(trial["parameters"])})
            told.append(trial["parameters"])
    outside = sqlite_store.get_experiment(exp.namespace, exp.name)
    assert told == loop, algorithm
    assert _ending(outside.status.to_dict()) == _ending(loop_status)
    assert len(loop) <= budget
