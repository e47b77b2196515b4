"""Ask and tell from several processes on one database (several servers, or a server and
a ``KatibClient`` on its database): each ask reads the trials and writes its own after the
last one's, so the budget and the parallelism hold and no point is handed out twice, and a
trial told twice ends once. Before, each process locked only its own threads: two asks
filled one slot with the same Sobol point, and both tells of one trial were taken."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from katib.controller import AskTell, Controller, admit
from katib.errors import ConflictError
from katib.store import Store
from tests.conftest import POSTGRES_ENV, store_urls

BUDGET = 24
WORKERS = 3


def _doc() -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "shared"},
        "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
                 "algorithm": {"algorithmName": "sobol"}, "executor": "external",
                 "parallelTrialCount": BUDGET, "maxTrialCount": BUDGET, "maxFailedTrialCount": 0,
                 "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
                                {"name": "y", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}]},
    }


def _asker(url: str, go: Any, out: Any) -> None:
    store = Store(url)
    at = AskTell(store)
    got: list[tuple[str, str]] = []
    go.wait()
    while True:
        try:
            got += [(t["name"], repr(sorted(t["parameters"].items()))) for t in at.ask("default", "shared", 1)]
        except ConflictError:
            break
    out.put(got)
    store.close()


def _teller(url: str, names: list[str], go: Any, out: Any) -> None:
    store = Store(url)
    at = AskTell(store)
    told = 0
    go.wait()
    for name in names:
        try:
            at.tell("default", "shared", name, {"loss": 0.5})
            told += 1
        except ConflictError:
            pass
    out.put(told)
    store.close()


def _run(target: Any, args: list[tuple[Any, ...]]) -> list[Any]:
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, go, out)) for a in args]
    for p in procs:
        p.start()
    go.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    return results


@pytest.mark.parametrize("backend", store_urls())
def test_asks_and_tells_from_several_processes_take_turns(backend: str, tmp_path: Path):
    if backend == "sqlite":
        url = str(tmp_path / "katib.db")
    else:
        import os

        from tests.conftest import _fresh_schema

        url = _fresh_schema(os.environ[POSTGRES_ENV])
    store = Store(url)
    try:
        Controller(store).submit(admit(_doc()), tmp_path)
        asked = [t for got in _run(_asker, [(url,)] * WORKERS) for t in got]
        trials = store.list_trials(store.get_experiment("default", "shared").id)
        assert len(trials) == BUDGET and len(asked) == BUDGET, (len(trials), len(asked))
        assert len({p for _, p in asked}) == BUDGET  # no point handed out twice
        names = [t.name for t in trials]
        told = _run(_teller, [(url, names)] * WORKERS)  # every process tells every trial
        assert sum(told) == BUDGET, told  # each trial ended once
        status = store.get_experiment("default", "shared").status
        assert status.trials_succeeded == BUDGET
    finally:
        store.close()
