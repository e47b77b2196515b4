"""A completed experiment restarted (maxTrialCount raised, resumePolicy LongRunning or
FromVolume) carries Katib's conditions, in Katib's order, at every step:
``MarkExperimentStatusRestarting`` (util.go) drops Succeeded and Failed and appends
Restarting, which stays True after the experiment runs again (``MarkExperimentStatusRunning``
leaves it); ``setCondition`` moves a condition whose status or reason changes to the end.
The SDK's ``is_experiment_*`` (has_condition) and the one-word phase (Katib's UI shows the
last condition's type) read them as Katib's would."""

from __future__ import annotations

import time
from pathlib import Path

from katib import views
from katib._results import ExperimentResult
from katib.client import _finished, _true
from katib.controller import Controller, ExperimentManager, admit, experiment_phase
from katib.controller._status import remove_condition, rfc3339, set_condition
from katib.spec import Condition
from tests.conftest import experiment

CREATED = ("Created", "True", "ExperimentCreated", "Experiment is created")
RUNNING = ("Running", "True", "ExperimentRunning", "Experiment is running")
RAN = ("Running", "False", "ExperimentRunning", "Experiment is running")
RESTARTING = ("Restarting", "True", "ExperimentRestarting", "Experiment is restarted")
MAX_REACHED = ("Succeeded", "True", "ExperimentMaxTrialsReached",
               "Experiment has succeeded because max trial count has reached")


def conditions(obj) -> list[tuple[str, str, str, str]]:
    return [(c["type"], c["status"], c["reason"], c["message"]) for c in obj["status"]["conditions"]]


def sdk(obj) -> dict[str, bool]:
    """What the Katib SDK's is_experiment_* answer (has_condition: type and status True)."""
    return {kind: _true(obj, kind) for kind in ("Created", "Running", "Restarting", "Succeeded", "Failed")}


def test_a_restarted_experiment_keeps_katibs_restarting_condition(store, tmp_path: Path):
    seen: list[dict] = []

    def listener(event, run, trial):
        if event == "started":  # the run's first status, stored: what a reader sees while it runs
            seen.append(views.experiment_object(store.get_experiment("default", "demo")))

    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05, listener=listener)
    ctl.submit(admit(experiment(maxTrialCount=2, resumePolicy="LongRunning")), tmp_path)
    ctl.run("default", "demo")
    first = views.experiment_object(store.get_experiment("default", "demo"))
    assert conditions(first) == [CREATED, RAN, MAX_REACHED]

    _, action = ctl.submit(admit(experiment(maxTrialCount=4, resumePolicy="LongRunning")), tmp_path)
    assert action == "restarted"
    rec = store.get_experiment("default", "demo")
    obj = views.experiment_object(rec)
    assert conditions(obj) == [CREATED, RAN, RESTARTING]
    assert sdk(obj) == {"Created": True, "Running": False, "Restarting": True, "Succeeded": False, "Failed": False}
    assert views.phase(rec) == ExperimentResult(obj, []).state == "Restarting"

    ctl.run("default", "demo")
    running = seen[-1]  # as it ran again: Running moved after Restarting, which stays
    assert conditions(running) == [CREATED, RESTARTING, RUNNING]
    assert sdk(running) == {"Created": True, "Running": True, "Restarting": True, "Succeeded": False, "Failed": False}
    assert experiment_phase([Condition.model_validate(c) for c in running["status"]["conditions"]]) == "Running"
    assert ExperimentResult(running, []).state == "Running"  # the last condition, as Katib's UI shows

    rec = store.get_experiment("default", "demo")
    done = views.experiment_object(rec)
    assert conditions(done) == [CREATED, RESTARTING, RAN, MAX_REACHED]
    assert sdk(done) == {"Created": True, "Running": False, "Restarting": True, "Succeeded": True, "Failed": False}
    assert views.phase(rec) == ExperimentResult(done, []).state == "Succeeded"
    assert len(store.list_trials(rec.id)) == 4

    # Again: Restarting, unchanged (same status and reason), keeps its place.
    _, action = ctl.submit(admit(experiment(maxTrialCount=5, resumePolicy="LongRunning")), tmp_path)
    assert action == "restarted"
    assert conditions(views.experiment_object(store.get_experiment("default", "demo"))) == [CREATED, RESTARTING, RAN]
    ctl.run("default", "demo")
    assert conditions(seen[-1]) == [CREATED, RESTARTING, RUNNING]
    assert conditions(views.experiment_object(store.get_experiment("default", "demo"))) == [
        CREATED, RESTARTING, RAN, MAX_REACHED]


def test_from_volume_restart_is_restarting_not_succeeded_nor_failed(store, tmp_path: Path):
    """experiment_controller_test.go: a FromVolume experiment whose maxTrialCount is raised
    is ``IsRestarting() && !IsSucceeded() && !IsFailed()``."""
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    ctl.submit(admit(experiment(maxTrialCount=1, parallelTrialCount=1, resumePolicy="FromVolume")), tmp_path)
    ctl.run("default", "demo")
    _, action = ctl.submit(admit(experiment(maxTrialCount=3, parallelTrialCount=1, resumePolicy="FromVolume")), tmp_path)
    assert action == "restarted"
    obj = views.experiment_object(store.get_experiment("default", "demo"))
    assert _true(obj, "Restarting") and not _true(obj, "Succeeded") and not _true(obj, "Failed")


def _katib(conds: list[Condition]) -> list[tuple[str, str, str | None]]:
    return [(c.type, c.status, c.reason) for c in conds]


def test_set_condition_moves_a_changed_condition_to_the_end_as_katib():
    """util.go setCondition: a condition whose status or reason changes is removed and
    appended; its lastTransitionTime moves only when its status changes."""
    conds: list[Condition] = []
    set_condition(conds, "Created", "True", "ExperimentCreated", "Experiment is created", now=1)
    set_condition(conds, "Running", "True", "ExperimentRunning", "Experiment is running", now=2)
    set_condition(conds, "Running", "False", "ExperimentRunning", "Experiment is running", now=3)
    set_condition(conds, "Succeeded", "True", "ExperimentMaxTrialsReached", "…", now=3)
    # MarkExperimentStatusRestarting, then MarkExperimentStatusRunning
    remove_condition(conds, "Succeeded")
    remove_condition(conds, "Failed")
    set_condition(conds, "Restarting", "True", "ExperimentRestarting", "Experiment is restarted", now=4)
    assert _katib(conds) == [("Created", "True", "ExperimentCreated"), ("Running", "False", "ExperimentRunning"),
                             ("Restarting", "True", "ExperimentRestarting")]
    assert experiment_phase(conds) == "Restarting"
    set_condition(conds, "Running", "True", "ExperimentRunning", "Experiment is running", now=5)
    assert _katib(conds) == [("Created", "True", "ExperimentCreated"), ("Restarting", "True", "ExperimentRestarting"),
                             ("Running", "True", "ExperimentRunning")]
    assert conds[-1].last_transition_time == "1970-01-01T00:00:05Z"
    assert experiment_phase(conds) == "Running"
    # Same status, another reason: moved to the end, its transition time kept.
    set_condition(conds, "Created", "True", "Other", "x", now=6)
    assert [c.type for c in conds] == ["Restarting", "Running", "Created"]
    assert conds[-1].last_transition_time == "1970-01-01T00:00:01Z" and conds[-1].last_update_time == "1970-01-01T00:00:06Z"
    # Same status and reason: left where it is.
    set_condition(conds, "Restarting", "True", "ExperimentRestarting", "Experiment is restarted", now=7)
    assert [c.type for c in conds] == ["Restarting", "Running", "Created"]


def test_an_outside_loop_restarted_runs_again_as_katib(tmp_path: Path):
    """spec.executor: external — the first ask after a restart marks it Running again
    (after Restarting, which stays), as Katib's reconcile does."""
    from katib import KatibClient

    doc = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "outside"},
           "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
                    "algorithm": {"algorithmName": "random"}, "executor": "external", "resumePolicy": "LongRunning",
                    "parallelTrialCount": 1, "maxTrialCount": 1,
                    "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}]}}
    with KatibClient(db=str(tmp_path / "e.db"), workdir=tmp_path) as client:
        client.create_experiment(doc)
        [trial] = client.ask("outside")
        client.tell("outside", trial["name"], {"loss": 0.5})
        assert conditions(client.get_experiment("outside")) == [CREATED, RAN, MAX_REACHED]
        doc["spec"]["maxTrialCount"] = 2
        assert client.apply_experiment(doc)[1] == "restarted"
        assert conditions(client.get_experiment("outside")) == [CREATED, RAN, RESTARTING]
        [trial] = client.ask("outside")
        assert conditions(client.get_experiment("outside")) == [CREATED, RESTARTING, RUNNING]
        client.tell("outside", trial["name"], {"loss": 0.25})
        assert conditions(client.get_experiment("outside")) == [CREATED, RESTARTING, RAN, MAX_REACHED]


# A start and an end long ago: rfc3339 keeps whole seconds, and a quick run would end again
# in the very second it ended before.
OLD_START, OLD_END = "2020-01-01T00:00:00Z", "2020-01-01T00:01:00Z"


def _backdate(store, name: str = "demo") -> None:
    rec = store.get_experiment("default", name)
    status = rec.status
    status.start_time, status.completion_time = OLD_START, OLD_END
    store.update_experiment(rec.id, status=status)


def test_a_restarted_experiment_keeps_its_times_until_it_ends_again(store, tmp_path: Path):
    """experiment_controller.go ``Reconcile``: restarting (``MarkExperimentStatusRestarting``)
    touches the conditions only; ``startTime`` is set once, while it is nil, and
    ``completionTime`` only by status_util.go ``UpdateExperimentStatusCondition`` when the
    experiment ends (``now``). So while it runs again it shows its previous end's
    completionTime, and no surface may read that as ended: the conditions say it runs. The
    trial counts stay the trials' (``updateTrialsSummary``)."""
    seen: list[dict] = []

    def listener(event, run, trial):
        if event == "started":
            seen.append(views.experiment_object(store.get_experiment("default", "demo")))

    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05, listener=listener)
    ctl.submit(admit(experiment(maxTrialCount=2, resumePolicy="LongRunning")), tmp_path)
    ctl.run("default", "demo")
    _backdate(store)

    _, action = ctl.submit(admit(experiment(maxTrialCount=4, resumePolicy="LongRunning")), tmp_path)
    assert action == "restarted"
    rec = store.get_experiment("default", "demo")
    restarted = views.experiment_object(rec)
    status = restarted["status"]
    assert (status["startTime"], status["completionTime"]) == (OLD_START, OLD_END)
    assert (status["trials"], status["trialsSucceeded"], status["trialsRunning"]) == (2, 2, 0)
    assert not _finished(restarted) and views.phase(rec) == ExperimentResult(restarted, []).state == "Restarting"

    before = rfc3339(time.time())
    ctl.run("default", "demo")
    running = seen[-1]  # stored as it ran again
    assert (running["status"]["startTime"], running["status"]["completionTime"]) == (OLD_START, OLD_END)
    assert not _finished(running) and ExperimentResult(running, []).state == "Running"

    done = views.experiment_object(store.get_experiment("default", "demo"))["status"]
    assert done["startTime"] == OLD_START
    assert done["completionTime"] >= before  # the new end's (RFC 3339 UTC text sorts as time)
    assert (done["trials"], done["trialsSucceeded"]) == (4, 4)


def test_a_restarted_experiment_whose_controller_fails_ends_now(sqlite_store, tmp_path: Path):
    """Marked Failed (ExperimentControllerFailed), a restarted experiment gets the time it
    failed as its completionTime, as every end in status_util.go
    ``UpdateExperimentStatusCondition`` sets ``now``, not the end it was restarted from."""
    ctl = Controller(sqlite_store, runs_root=tmp_path / "runs", tick=0.05)
    ctl.submit(admit(experiment(maxTrialCount=1, parallelTrialCount=1, resumePolicy="LongRunning")), tmp_path)
    ctl.run("default", "demo")
    _backdate(sqlite_store)
    _, action = ctl.submit(admit(experiment(maxTrialCount=2, parallelTrialCount=1, resumePolicy="LongRunning")),
                           tmp_path)
    assert action == "restarted"

    def broken_executor():
        raise RuntimeError("no executor today")

    before = rfc3339(time.time())
    manager = ExperimentManager(sqlite_store, tmp_path / "runs", tick=0.05, executor_factory=broken_executor)
    assert "no executor today" in (manager.resume("default", "demo") or "")
    status = sqlite_store.get_experiment("default", "demo").status
    assert _true({"status": status.to_dict()}, "Failed")
    assert status.start_time == OLD_START and status.completion_time is not None and status.completion_time >= before
