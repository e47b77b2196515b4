"""Katib's examples in the shapes of its docs (``tests/data/katib-examples``) run locally to
the end, or say why not.

Their trials need an image's code, so the primary container gets a small stand-in command
that reports every metric the experiment names the way its collector reads them (printed
``name=value``, a JSON-lines file of strings, TensorBoard event files); everything else —
the trial kind (Job, PyTorchJob, TFJob, Argo Workflow, Tekton PipelineRun), the collector
(a Custom one's container gets a stand-in command, ``tests/custom_collector.py``, with its own args),
the ConfigMap template, the metadata references — is the example's own. Each runs two
trials. ``NOT_RUN`` lists the ones that cannot run here, with the reason; the test prints
which ran and which did not (``pytest -s``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from katib.configmaps import read_configmaps, resolve_trial_template
from katib.controller import Controller, admit
from katib.spec import find_containers
from tests.conftest import REPO
from trials import discover_gpus

EXAMPLES = REPO / "tests" / "data" / "katib-examples"
NOT_RUN = {
    "argo-workflow.yaml": "a Workflow runs its steps through Argo Workflows' controller (--executor kubernetes)",
    "tekton-pipeline-run.yaml": "a PipelineRun runs its steps through Tekton Pipelines' controller "
                                "(--executor kubernetes)",
}
if not discover_gpus():
    NOT_RUN["pytorchjob-mnist.yaml"] = "its trials ask for nvidia.com/gpu: 1 and this machine has no GPU"
# A stand-in for the custom collector's image, taking its args (tests/custom_collector.py).
CUSTOM_COLLECTOR = REPO / "tests" / "custom_collector.py"
PATHS = sorted(p for p in EXAMPLES.glob("*.yaml") if yaml.safe_load(p.read_text()).get("kind") == "Experiment")

STAND_IN = """
import json, os, sys, time
kind, path, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
values = {n: str(0.5 + i / 10) for i, n in enumerate(names)}
if kind == "File":
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        if path.endswith(".json"):
            f.write(json.dumps(values) + "\\n")
        else:
            f.writelines(f"{n}={v}\\n" for n, v in values.items())
elif kind == "TensorFlowEvent":
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    for n, v in values.items():
        w = EventFileWriter(os.path.join(path, os.path.dirname(n)))
        value = summary_pb2.Summary.Value(tag=os.path.basename(n), simple_value=float(v))
        w.add_event(event_pb2.Event(wall_time=time.time(), step=0, summary=summary_pb2.Summary(value=[value])))
        w.close()
else:
    print(" ".join(f"{n}={v}" for n, v in values.items()))
"""
RAN: list[str] = []


def with_stand_in(doc: dict) -> dict:
    spec = doc["spec"]
    spec["maxTrialCount"], spec["parallelTrialCount"] = 2, 2
    mc = spec.get("metricsCollectorSpec") or {}
    kind = (mc.get("collector") or {}).get("kind", "StdOut")
    path = ((mc.get("source") or {}).get("fileSystemPath") or {}).get("path", "")
    obj = spec["objective"]
    names = ",".join([obj["objectiveMetricName"], *(obj.get("additionalMetricNames") or [])])
    primary = spec["trialTemplate"]["primaryContainerName"]
    containers = [c for c in find_containers(spec["trialTemplate"]["trialSpec"]) if c.get("name") == primary]
    assert containers, f"no container {primary!r} in the trial spec"
    # The trial's parameters are passed too: every one must appear in the template.
    params = [f"${{trialParameters.{p['name']}}}" for p in spec["trialTemplate"].get("trialParameters") or []]
    # A Custom collector writes its file as File's TEXT; its own args are kept (-m, -s, -path).
    for c in containers:
        c["command"], c["args"] = [sys.executable, "-c", STAND_IN, "File" if kind == "Custom" else kind, path, names,
                                   *params], []
    if kind == "Custom":
        mc["collector"]["customCollector"]["command"] = [sys.executable, str(CUSTOM_COLLECTOR)]
    return doc


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_katib_example_runs(path: Path, sqlite_store, tmp_path):
    if path.name in NOT_RUN:
        pytest.skip(NOT_RUN[path.name])  # test_what_does_not_run_is_refused_saying_why checks the refusal
    pytest.importorskip("tensorboard")
    doc = resolve_trial_template(yaml.safe_load(path.read_text()),
                                 read_configmaps(EXAMPLES / "trial-templates.yaml"))
    ctl = Controller(sqlite_store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(with_stand_in(doc)), tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    assert status["trialsSucceeded"] == 2, status.get("conditions")
    best = {m["name"]: m["latest"] for m in status["currentOptimalTrial"]["observation"]["metrics"]}
    assert best[doc["spec"]["objective"]["objectiveMetricName"]] == "0.5"
    RAN.append(path.name)


def test_which_examples_ran():
    """The report: every example ran, or is in NOT_RUN with its reason (run after the others)."""
    lines = [f"ran: {', '.join(RAN) or 'none'}"] + [f"not run: {name}: {why}" for name, why in NOT_RUN.items()]
    print("\n".join(lines))
    if len(RAN) + len(NOT_RUN) == len(PATHS):
        assert set(RAN) | set(NOT_RUN) == {p.name for p in PATHS}


@pytest.mark.parametrize(("name", "message"), [
    ("argo-workflow.yaml", "a Workflow runs its steps through Argo Workflows' controller"),
    ("tekton-pipeline-run.yaml", "a PipelineRun runs its steps through Tekton Pipelines' controller"),
])
def test_what_does_not_run_is_refused_saying_why(name, message):
    """An example that cannot run here is refused before anything runs, with the reason."""
    from katib.controller import runnable_errors

    errors = runnable_errors(admit(yaml.safe_load((EXAMPLES / name).read_text())), "local")
    assert any(message in e.message for e in errors), errors
