"""A checkpoint hand-over travels with the assignment, whatever the algorithm: the
algorithm says where its trials keep their checkpoint (``Algorithm.checkpoint_dir``) and
labels a successor with the trial it starts from (``CHECKPOINT_FROM_LABEL``); the
controller maps that path into each trial's checkpoint folder and copies the parent's
checkpoint in. Nothing in the controller is PBT's alone."""

from __future__ import annotations

from pathlib import Path

from katib.controller import Controller, admit
from katib.names import RunLayout
from suggestion import CHECKPOINT_FROM_LABEL, Algorithm, Assignment
from tests.conftest import experiment, python_command

STEP = ("import pathlib; p = pathlib.Path('/katib-test-handover/state.txt'); n = int(p.read_text()) + 1 if p.exists() else 1; "
        "p.parent.mkdir(parents=True, exist_ok=True); p.write_text(str(n)); print(f'loss={n}')")


def chained(name: str) -> type[Algorithm]:
    """An algorithm ``name``: three trials, one after another, each continuing from the
    one before (``CHECKPOINT_FROM_LABEL``), in the checkpoint folder ``/katib-test-<name>/``."""

    class Chained(Algorithm):
        def checkpoint_dir(self, experiment):
            return f"/katib-test-{name}/"

        def exhausted(self, experiment, trials, state=None):
            return len(trials) >= 3

        def suggest(self, experiment, trials, count, state=None):
            if any(t.state in ("Created", "Running") for t in trials) or len(trials) >= 3:
                return []
            labels = {CHECKPOINT_FROM_LABEL: trials[-1].name} if trials else {}
            return [Assignment({"x": "0.5"}, name=f"{name}-{len(trials) + 1}", labels=labels)]

    Chained.name = name
    return Chained


Handover = chained("handover")


def test_any_algorithm_hands_a_checkpoint_on(store, tmp_path, monkeypatch):
    from suggestion import _registry

    monkeypatch.setitem(_registry._BUILTIN, "handover", f"{__name__}:Handover")
    doc = experiment(command=python_command(STEP), maxTrialCount=3, parallelTrialCount=1)
    doc["spec"]["algorithm"] = {"algorithmName": "handover"}
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    trials = {t.name: t for t in store.list_trials(rec.id)}
    # Each trial found its parent's count in its own copy of the parent's checkpoint.
    assert [trials[f"handover-{i}"].observation["loss"]["latest"] for i in (1, 2, 3)] == ["1", "2", "3"]
    layout = RunLayout(tmp_path / "runs")
    assert (layout.checkpoint(rec.namespace, rec.name, "handover-3") / "state.txt").read_text() == "3"
    assert not Path("/katib-test-handover").exists()  # mapped, never the path itself
