"""kill -9 the controller while trials run; `katib resume` adopts them: each trial runs
once (a long GPU trial is never started again because its controller restarted), keeps
its attempt, start time and observations, and nothing is stored twice."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import yaml

from katib.controller import Controller
from katib.store import Store
from tests.conftest import experiment
from tests.test_crash_recovery import katib, wait_for
from trials import LocalExecutor
from trials._process import alive
from trials._ray import RayExecutor

# Each start leaves a marker (a re-run would leave two); three losses a second apart.
TRIAL = """
import os, time
open(os.path.join({markers!r}, os.environ["KATIB_TRIAL_NAME"] + "." + str(os.getpid())), "w").close()
x = float("${{trialParameters.x}}")
for step in range(3):
    print(f"loss={{x + step}}", flush=True)
    time.sleep({step_seconds})
"""


def _spec(tmp_path: Path, markers: Path, step_seconds: float = 1.0, **spec) -> Path:
    markers.mkdir()
    path = tmp_path / "exp.yaml"
    code = TRIAL.format(markers=str(markers), step_seconds=step_seconds)
    path.write_text(yaml.safe_dump(experiment(command=[sys.executable, "-c", code], maxFailedTrialCount=0, **spec)))
    return path


def _trial_processes(marker_dir: Path) -> list[int]:
    """Live processes whose command line names the markers folder (the trials)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(marker_dir).encode() in cmdline and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def test_kill_9_then_resume_adopts_the_running_trials(tmp_path: Path):
    db, markers = tmp_path / "katib.db", tmp_path / "markers"
    spec = _spec(tmp_path, markers, maxTrialCount=4, parallelTrialCount=2)
    first = katib("run", str(spec), "--db", str(db), "--tick", "0.05")
    store = Store(str(db))

    def running_with_metrics() -> bool:
        try:
            rec = store.get_experiment("default", "demo")
        except Exception:
            return False
        running = [t for t in store.list_trials(rec.id) if t.state == "Running"]
        return len(running) == 2 and all(store.observations(t.id, "loss") for t in running)

    wait_for(running_with_metrics)
    first.send_signal(signal.SIGKILL)
    first.wait()
    rec = store.get_experiment("default", "demo")
    before = {t.name: t for t in store.list_trials(rec.id) if t.state == "Running"}
    assert len(before) == 2 and rec.owner  # the dead controller still holds it

    again = katib("resume", "demo", "--db", str(db), "--tick", "0.05")
    output, _ = again.communicate(timeout=120)
    assert again.returncode == 0, output
    assert "ExperimentMaxTrialsReached" in output

    after = {t.name: t for t in store.list_trials(rec.id)}
    assert len(after) == 4 and {t.state for t in after.values()} == {"Succeeded"}
    status = store.get_experiment("default", "demo").status.to_dict()
    assert status["trials"] == status["trialsSucceeded"] == 4
    # Each trial started exactly once: the two running ones were adopted, not run again.
    started = sorted(p.name.rsplit(".", 1)[0] for p in markers.iterdir())
    assert started == sorted(after)
    for name, t in before.items():
        adopted = after[name]
        assert adopted.attempt == 0 and adopted.start_time == t.start_time
        assert adopted.handle["pid"] == t.handle["pid"]
        assert not any(c.reason == "TrialRestarted" for c in adopted.conditions)
        assert "restarted controller" in next(c.message for c in adopted.conditions if c.type == "Running")
    # Every trial's three losses, once each and in order: none lost, none stored twice.
    for t in after.values():
        x = float(t.assignments[0]["value"])
        assert [float(o.value) for o in store.observations(t.id, "loss")] == [x, x + 1, x + 2]
        assert float(t.observation["loss"]["latest"]) == x + 2 and float(t.observation["loss"]["min"]) == x
    assert store.get_experiment("default", "demo").owner is None
    assert _trial_processes(markers) == []  # nothing of any trial is left running


# Hangs on its first start, succeeds on its second.
FIRST_HANGS = """
import os, time
marker = os.path.join({markers!r}, os.environ["KATIB_TRIAL_NAME"])
if not os.path.exists(marker):
    open(marker, "w").close()
    time.sleep(300)
print("loss=${{trialParameters.x}}")
"""


def test_trials_stopped_by_an_interrupted_run_are_run_again_not_adopted(tmp_path: Path):
    """A polite stop (SIGTERM, Ctrl-C) stops the trials: they ended because katib stopped
    them, so the next run runs them again rather than adopting a trial killed by SIGTERM."""
    db, markers = tmp_path / "katib.db", tmp_path / "markers"
    markers.mkdir()
    spec = tmp_path / "exp.yaml"
    code = FIRST_HANGS.format(markers=str(markers))
    spec.write_text(yaml.safe_dump(experiment(command=[sys.executable, "-c", code], maxTrialCount=2,
                                              parallelTrialCount=2, maxFailedTrialCount=0)))
    first = katib("run", str(spec), "--db", str(db), "--tick", "0.05")
    wait_for(lambda: len(list(markers.iterdir())) == 2)
    first.send_signal(signal.SIGTERM)
    output, _ = first.communicate(timeout=60)
    assert first.returncode == 130, output
    again = katib("resume", "demo", "--db", str(db), "--tick", "0.05")
    output, _ = again.communicate(timeout=60)
    assert again.returncode == 0, output
    store = Store(str(db))
    trials = store.list_trials(store.get_experiment("default", "demo").id)
    assert [(t.state, t.attempt) for t in trials] == [("Succeeded", 1)] * 2
    for t in trials:
        created = next(c for c in t.conditions if c.type == "Created")
        assert created.reason == "TrialRestarted" and "stopped it as it stopped" in (created.message or "")


class _RefusesAsRay(LocalExecutor):
    """Runs trials locally but, as the Ray executor, cannot follow another controller's."""

    adopt = RayExecutor.adopt


def test_a_trial_the_executor_cannot_adopt_is_run_again_saying_why(tmp_path: Path):
    db, markers = tmp_path / "katib.db", tmp_path / "markers"
    spec = _spec(tmp_path, markers, step_seconds=0.3, maxTrialCount=1, parallelTrialCount=1)
    first = katib("run", str(spec), "--db", str(db), "--tick", "0.05")
    store = Store(str(db))
    wait_for(lambda: len(list(markers.iterdir())) == 1)
    wait_for(lambda: store.list_trials(store.get_experiment("default", "demo").id)[0].state == "Running")
    first.send_signal(signal.SIGKILL)
    first.wait()
    (lost,) = store.list_trials(store.get_experiment("default", "demo").id)
    ctl = Controller(store, executor=_RefusesAsRay(), runs_root=tmp_path / "runs", tick=0.05)
    status = ctl.run("default", "demo").to_dict()
    assert status["trialsSucceeded"] == 1
    (t,) = store.list_trials(store.get_experiment("default", "demo").id)
    assert t.attempt == 1 and len(list(markers.iterdir())) == 2  # run again, from the start
    created = next(c for c in t.conditions if c.type == "Created")
    assert created.reason == "TrialRestarted"
    assert "cannot be followed on: a Ray trial's actor is not detached" in (created.message or "")
    assert len(store.observations(t.id, "loss")) == 3  # the lost attempt's observations were cleared
    assert not alive(lost.handle["pid"], lost.handle["start"])  # what was left of it was killed
