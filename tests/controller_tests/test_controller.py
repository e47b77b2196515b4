"""The controller end to end, with real trial processes and a real store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from katib.controller import Controller, admit
from katib.errors import ValidationError
from tests.conftest import experiment, python_command


def run(store, tmp_path: Path, doc, **kw):
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05, **kw)
    rec, action = ctl.submit(admit(doc), tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    return ctl, rec, status, store.list_trials(rec.id)


def reason(status) -> tuple[str, str]:
    cond = [c for c in status["conditions"] if c["status"] == "True"][-1]
    return cond["type"], cond["reason"]


def test_max_trials_reached_with_katib_status(store, tmp_path):
    _, rec, status, trials = run(store, tmp_path, experiment())
    assert reason(status) == ("Succeeded", "ExperimentMaxTrialsReached")
    assert len(trials) == 4 and {t.state for t in trials} == {"Succeeded"}
    assert status["trials"] == status["trialsSucceeded"] == 4
    assert sorted(status["succeededTrialList"]) == sorted(t.name for t in trials)
    best = min(trials, key=lambda t: float(t.parameters()["x"]))
    optimal = status["currentOptimalTrial"]
    assert optimal["bestTrialName"] == best.name
    assert optimal["parameterAssignments"] == [{"name": "x", "value": best.parameters()["x"]}]
    assert optimal["observation"]["metrics"][0]["name"] == "loss"
    assert float(optimal["observation"]["metrics"][0]["latest"]) == float(best.parameters()["x"])
    for t in trials:
        assert t.name.startswith("demo-") and len(t.name) == len("demo-") + 8
        assert t.labels["katib.kubeflow.org/experiment"] == "demo"
        types = [(c.type, c.status) for c in t.conditions]
        assert types == [("Created", "True"), ("Running", "False"), ("Succeeded", "True")]
    types = [(c["type"], c["status"]) for c in status["conditions"]]
    assert types == [("Created", "True"), ("Running", "False"), ("Succeeded", "True")]
    assert status["completionTime"] and status["startTime"]


def test_a_listener_told_a_trial_finished_sees_it_in_the_best(store, tmp_path):
    """katib run's line for each finished trial prints the best so far: it was the best
    before that trial, one step behind."""
    seen = []

    def listener(event, run, trial):
        if event == "finished":
            seen.append((float(trial.parameters()["x"]), run._best()))

    run(store, tmp_path, experiment(parallelTrialCount=1), listener=listener)
    assert len(seen) == 4
    for i, (x, best) in enumerate(seen):
        assert best == min(v for v, _ in seen[:i + 1]), seen
        assert best <= x


def test_nothing_is_started_once_a_stop_is_asked(store, tmp_path):
    """A stop (SIGTERM, katib stop) that comes while a trial runs: the step that wakes when
    it ends used to create and launch the next trial, then interrupt it (to run it again
    on resume)."""
    import threading

    from trials import LocalExecutor

    code = "import time; time.sleep(1); print('loss=${trialParameters.x}')"
    stop = threading.Event()
    executor = LocalExecutor()
    wait = executor.wait

    def stop_while_it_waits(timeout: float) -> None:
        # The stop comes while the loop waits for the running trial. Not from a thread that
        # watches the store: under load it saw the trial Running and set the stop before
        # the step that launched it had ended, which interrupted that trial.
        stop.set()
        wait(timeout)

    executor.wait = stop_while_it_waits  # type: ignore[method-assign]
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=30, executor=executor)  # the wait wakes on the trial's end
    rec, _ = ctl.submit(admit(experiment(command=python_command(code), parallelTrialCount=1)), tmp_path)
    ctl.run(rec.namespace, rec.name, stop=stop)
    assert [t.state for t in store.list_trials(rec.id)] == ["Succeeded"]


def test_goal_reached_stops_the_others(store, tmp_path):
    code = "import sys,time; x=float('${trialParameters.x}'); time.sleep(0 if x < 0.5 else 30); print(f'loss={x}')"
    doc = experiment(command=python_command(code), maxTrialCount=20, parallelTrialCount=3,
                     objective={"type": "minimize", "goal": 0.5, "objectiveMetricName": "loss"})
    started = time.monotonic()
    _, _, status, trials = run(store, tmp_path, doc)
    assert reason(status) == ("Succeeded", "ExperimentGoalReached")
    assert time.monotonic() - started < 25
    assert all(t.state in ("Succeeded", "Killed") for t in trials)
    assert float(status["currentOptimalTrial"]["observation"]["metrics"][0]["min"]) < 0.5


def test_max_failed_trials_fails_with_the_output(store, tmp_path):
    doc = experiment(command=python_command("import sys; print('boom: bad input'); sys.exit(3)"),
                     maxFailedTrialCount=2, maxTrialCount=6)
    _, _, status, trials = run(store, tmp_path, doc)
    assert reason(status) == ("Failed", "ExperimentFailed")
    failed = [t for t in trials if t.state == "Failed"]
    assert len(failed) >= 2
    message = failed[0].conditions[-1].message
    assert "exited with code 3" in message and "boom: bad input" in message
    # Katib's wording, the process's end as the job's reason
    assert failed[0].conditions[-1].reason == "TrialFailed. Job reason: Error"
    assert message.startswith("Trial has failed. Job message: the trial process exited with code 3")


def test_a_failed_trials_object_has_no_observation_as_in_katib(store, tmp_path):
    """Katib fills a trial's status.observation when its job succeeds (or it is stopped
    early): a trial that printed its metric and then failed showed it as its observation,
    read by the SDK and kubectl as the trial's result. Its reports stay its metric logs."""
    from katib import views

    code = "import sys; x = float('${trialParameters.x}'); print(f'loss={x}'); sys.exit(0 if x > 0.5 else 1)"
    doc = experiment(command=python_command(code), maxTrialCount=8, parallelTrialCount=2, maxFailedTrialCount=8,
                     parameters=[{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}])
    _, rec, _, trials = run(store, tmp_path, doc)
    states = {t.state for t in trials}
    assert states == {"Succeeded", "Failed"}, states  # random_state 1: both kinds
    exp = store.get_experiment(rec.namespace, rec.name)
    for t in trials:
        observation = views.trial_object(exp, t)["status"].get("observation")
        assert (observation is None) == (t.state == "Failed"), (t.state, observation)
        assert store.observations(t.id, "loss")  # what it printed is kept
    # and katib get trials (local, as --server's, from the object) shows no value for a failed one
    from katib.cli._read import _trials_table

    table = _trials_table(exp, trials)
    loss = next(c for c in table.columns if c.header == "loss")
    for t, cell in zip(trials, loss._cells, strict=True):
        assert (str(cell) == "") == (t.state == "Failed"), (t.state, str(cell))


def test_missing_objective_is_metrics_unavailable_with_a_hint(store, tmp_path):
    doc = experiment(command=python_command("print('accuracy: 0.9')"), maxTrialCount=2, maxFailedTrialCount=2)
    _, _, status, trials = run(store, tmp_path, doc)
    assert {t.state for t in trials} == {"MetricsUnavailable"}
    assert status["trialMetricsUnavailable"] == 2
    assert reason(status) == ("Failed", "ExperimentFailed")
    message = trials[0].conditions[-1].message
    assert "'loss' was never reported" in message and "loss=0.93" in message and "accuracy: 0.9" in message
    assert trials[0].observation == {"loss": {"min": "unavailable", "max": "unavailable", "latest": "unavailable"}}


def test_an_exhausted_space_ends_with_suggestion_end_reached(store, tmp_path):
    # (Katib's grid refuses a maxTrialCount above its points; random search runs out instead.)
    doc = experiment(algorithm={"algorithmName": "random"}, maxTrialCount=10,
                     parameters=[{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["1", "2", "3"]}}])
    _, _, status, trials = run(store, tmp_path, doc)
    assert reason(status) == ("Succeeded", "ExperimentSuggestionEndReached")
    assert sorted(t.parameters()["x"] for t in trials) == ["1", "2", "3"]


def test_intermediate_values_are_a_time_series_and_strategies_apply(store, tmp_path):
    code = "import time\nfor v in (0.9, 0.2, 0.5):\n    print(f'loss={v} acc={1-v}', flush=True); time.sleep(0.05)"
    doc = experiment(command=python_command(code), maxTrialCount=1, parallelTrialCount=1,
                     objective={"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["acc"],
                                "metricStrategies": [{"name": "loss", "value": "latest"}]})
    _, _, status, trials = run(store, tmp_path, doc)
    t = trials[0]
    assert [o.value for o in store.observations(t.id, "loss")] == ["0.9", "0.2", "0.5"]
    assert t.observation["loss"] == {"min": "0.2", "max": "0.9", "latest": "0.5"}
    assert t.objective == 0.5  # latest, as the strategy says
    assert t.observation["acc"]["max"] == "0.8"  # acc defaults to min for a minimize objective, all kept


def test_trial_environment_metadata_and_working_directory(store, tmp_path):
    code = ("import os; print('loss=1'); "
            "print(os.environ['KATIB_TRIAL_NAME'], os.environ['ROLE'], os.environ['TRIAL_LABEL'], os.getcwd())")
    doc = experiment(command=python_command(code), maxTrialCount=1, parallelTrialCount=1)
    doc["spec"]["trialTemplate"]["trialParameters"].append({"name": "trialName", "reference": "${trialSpec.Name}"})
    doc["spec"]["trialTemplate"]["trialParameters"].append({"name": "label", "reference": "${trialSpec.Labels[team]}"})
    job = doc["spec"]["trialTemplate"]["trialSpec"]
    job["metadata"] = {"labels": {"team": "vision"}}
    job["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "ROLE", "value": "trial-${trialParameters.trialName}"},
        {"name": "TRIAL_LABEL", "value": "${trialParameters.label}"}]
    _, _, _, trials = run(store, tmp_path, doc)
    t = trials[0]
    log = (tmp_path / "runs" / "default" / "demo" / t.name / "trial.log").read_text()
    assert f"{t.name} trial-{t.name} vision {tmp_path}" in log


def test_file_collector_path_is_mapped_into_the_trial_dir(store, tmp_path):
    code = "import sys; open(sys.argv[1], 'a').write('2026-01-01T00:00:00Z loss=${trialParameters.x}\\n')"
    doc = experiment(command=[*python_command(code), "/var/log/katib/metrics.log"], maxTrialCount=2,
                     metricsCollectorSpec={"collector": {"kind": "File"}})
    _, _, status, trials = run(store, tmp_path, doc)
    assert reason(status) == ("Succeeded", "ExperimentMaxTrialsReached")
    t = trials[0]
    assert (tmp_path / "runs" / "default" / "demo" / t.name / "var/log/katib/metrics.log").exists()
    assert store.observations(t.id)[0].time == 1767225600.0  # the line's own timestamp


def test_push_collector(store, tmp_path):
    code = "import katib; katib.report_metrics({'loss': ${trialParameters.x}})"
    doc = experiment(command=python_command(code), maxTrialCount=2, metricsCollectorSpec={"collector": {"kind": "Push"}})
    _, _, status, trials = run(store, tmp_path, doc)
    assert {t.state for t in trials} == {"Succeeded"}
    assert all(t.objective == float(t.parameters()["x"]) for t in trials)


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is in the group; zombies wait for a reaper."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def test_deadline_kills_the_whole_process_group(store, tmp_path):
    code = "import subprocess,sys,time; subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']); time.sleep(60)"
    doc = experiment(command=python_command(code), maxTrialCount=1, parallelTrialCount=1, maxFailedTrialCount=1)
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = 1
    started = time.monotonic()
    _, _, status, trials = run(store, tmp_path, doc)
    assert time.monotonic() - started < 20
    t = trials[0]
    assert t.state == "Failed" and "activeDeadlineSeconds" in t.conditions[-1].message
    time.sleep(0.2)
    assert not _group_alive(t.handle["pid"])


def test_a_command_that_cannot_start_fails_the_trial(store, tmp_path):
    doc = experiment(command=["/no/such/program", "${trialParameters.x}"], maxTrialCount=1, parallelTrialCount=1, maxFailedTrialCount=1)
    _, _, status, trials = run(store, tmp_path, doc)
    assert trials[0].state == "Failed"
    assert trials[0].conditions[-1].reason == "LaunchFailed"
    assert "cannot start '/no/such/program'" in trials[0].conditions[-1].message


def test_restart_after_raising_max_trials(store, tmp_path):
    doc = experiment(maxTrialCount=2, resumePolicy="LongRunning")
    ctl, rec, status, _ = run(store, tmp_path, doc)
    assert reason(status) == ("Succeeded", "ExperimentMaxTrialsReached")
    same, action = ctl.submit(admit(doc), tmp_path)
    assert action == "unchanged"
    rec, action = ctl.submit(admit(experiment(maxTrialCount=4, resumePolicy="LongRunning")), tmp_path)
    assert action == "restarted"
    assert [c["type"] for c in store.get_experiment("default", "demo").status.to_dict()["conditions"] if c["status"] == "True"][-1] == "Restarting"
    status = ctl.run("default", "demo").to_dict()
    assert reason(status) == ("Succeeded", "ExperimentMaxTrialsReached")
    assert len(store.list_trials(rec.id)) == 4
    # Katib keeps the Restarting condition (True) after the experiment runs again.
    assert [c["type"] for c in status["conditions"]] == ["Created", "Restarting", "Running", "Succeeded"]


def test_restart_is_refused_with_resume_policy_never(store, tmp_path):
    ctl, *_ = run(store, tmp_path, experiment(maxTrialCount=2))
    with pytest.raises(ValidationError, match="spec.resumePolicy: Experiment can be restarted if it is in succeeded state"):
        ctl.submit(admit(experiment(maxTrialCount=4)), tmp_path)


def test_only_the_budget_may_change(store, tmp_path):
    ctl = Controller(store, runs_root=tmp_path / "runs")
    ctl.submit(admit(experiment()), tmp_path)
    changed = experiment(objective={"type": "maximize", "objectiveMetricName": "loss"})
    with pytest.raises(ValidationError) as info:
        ctl.submit(admit(changed), tmp_path)
    assert [str(e) for e in info.value.errors] == [
        "spec.objective: cannot be changed on an existing experiment (only parallelTrialCount, maxTrialCount and maxFailedTrialCount can)"]
    rec, action = ctl.submit(admit(experiment(parallelTrialCount=1)), tmp_path)
    assert action == "resumed" and store.get_experiment("default", "demo").spec["spec"]["parallelTrialCount"] == 1


def test_unsupported_collector_is_refused_before_any_trial(store, tmp_path, monkeypatch):
    from trials import LocalExecutor

    # An executor that serves only some kinds (as Ray and Kubernetes do; local serves all).
    monkeypatch.setattr(LocalExecutor, "collector_kinds", ("StdOut", "File"))
    ctl = Controller(store, runs_root=tmp_path / "runs")
    doc = experiment(metricsCollectorSpec={"collector": {"kind": "Custom", "customCollector": {
        "name": "collector", "image": "example/collector:v1"}}})
    with pytest.raises(ValidationError, match="Custom is not supported by the local executor"):
        ctl.submit(admit(doc), tmp_path)
    assert store.list_experiments() == []


def test_a_trial_whose_spec_renders_past_the_bound_fails_alone_at_launch(store, tmp_path, monkeypatch):
    """A template stored before the bound (or a value from outside the feasible space) is
    checked again at each trial's launch: that trial fails, LaunchFailed, saying why."""
    from katib.spec import _template

    doc = experiment(maxTrialCount=2, parallelTrialCount=1, maxFailedTrialCount=2)
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    monkeypatch.setattr(_template, "RENDER_GROWTH", -1000)  # below what any trial's spec renders to
    status = ctl.run(rec.namespace, rec.name).to_dict()
    trials = store.list_trials(rec.id)
    assert status["trialsFailed"] == 2 and all(t.state == "Failed" for t in trials)
    failed = trials[0].conditions[-1]
    assert failed.reason == "LaunchFailed" and "spec would grow by more than" in failed.message
