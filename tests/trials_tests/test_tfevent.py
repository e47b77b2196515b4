"""The TensorFlowEvent collector on files tensorboardX and torch.utils.tensorboard write.

Ported from Katib's ``test/unit/v1beta1/metricscollector/test_tfevent_metricscollector.py``
(``test_parse_file_with_tensorboardX``; ``test_parse_file`` reads TensorFlow-written files
that Katib's repository does not ship), plus tensors (``new_style`` scalars), the values'
text as Katib writes it, and reading on while the files grow."""

from __future__ import annotations

from pathlib import Path

import pytest

from trials._tfevent import TFEventReader, should_consider

pytest.importorskip("tensorboard")
UPSTREAM = "test/unit/v1beta1/metricscollector/test_tfevent_metricscollector.py"
METRIC_DIR_NAMES = ("train", "test")
METRIC_NAMES = ("accuracy", "loss")
QUALIFIED = tuple(f"{d}/{m}" for d in METRIC_DIR_NAMES for m in METRIC_NAMES)


def test_parse_file_with_tensorboardx(tmp_path: Path):
    """test_parse_file_with_tensorboardX, case for case."""
    tensorboardx = pytest.importorskip("tensorboardX")
    num_iters = 3
    for dir_name in METRIC_DIR_NAMES:
        with tensorboardx.SummaryWriter(str(tmp_path / dir_name)) as writer:
            for metric_name in METRIC_NAMES:
                for it in range(num_iters):
                    writer.add_scalar(metric_name, 0.1, it)
    logs = TFEventReader(tmp_path, list(QUALIFIED)).read()
    assert len(logs) == num_iters * len(QUALIFIED)
    assert {s.metric for s in logs} == set(QUALIFIED)
    # Katib's str(ScalarEvent.value): the float32 as a Python float.
    assert {s.value for s in logs} == {"0.10000000149011612"}
    train = TFEventReader(tmp_path / "train", list(METRIC_NAMES)).read()
    assert len(train) == num_iters * len(METRIC_NAMES) and {s.metric for s in train} == set(METRIC_NAMES)


def test_torch_tensorboard_scalars_and_tensors_read_on_as_they_grow(tmp_path: Path):
    tensorboard = pytest.importorskip("torch.utils.tensorboard")
    writer = tensorboard.SummaryWriter(str(tmp_path / "train"))
    reader = TFEventReader(tmp_path, ["train/loss", "accuracy"])
    writer.add_scalar("loss", 0.5, 0)
    writer.add_scalar("accuracy", 0.25, 0, new_style=True)  # a tensor, as TF 2's tf.summary writes
    writer.add_histogram("loss_histogram", __import__("numpy").array([1.0, 2.0]), 0)  # ignored, as Katib keeps scalars and tensors
    writer.flush()
    first = reader.read()
    assert sorted((s.metric, s.value) for s in first) == [("accuracy", "0.25"), ("train/loss", "0.5")]
    writer.add_scalar("loss", 0.125, 1)
    writer.close()
    assert [(s.metric, s.value) for s in reader.read()] == [("train/loss", "0.125")]
    assert reader.read() == []
    assert all(s.time > 1.6e9 for s in first)  # the events' wall time


@pytest.mark.parametrize(("tag", "name", "path", "expected"), [
    ("accuracy", "accuracy", "/logs/train/events", True),
    ("accuracy_top5", "accuracy", "/logs/train/events", True),  # Katib matches the tag's start
    ("accuracy", "train/accuracy", "/logs/train/events", True),
    ("accuracy", "test/accuracy", "/logs/train/events", False),
    ("loss", "accuracy", "/logs/train/events", False),
])
def test_should_consider_is_katibs(tag, name, path, expected):
    assert should_consider(tag, name, path) is expected


def test_files_that_are_not_event_files_are_skipped(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("not an event file\n")
    assert TFEventReader(tmp_path, ["loss"]).read() == []


WRITER = """
import sys, time
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
x = float('${trialParameters.x}')
for sub, tag, values in (("train", "loss", [1.0, x]), ("test", "loss", [9.0])):
    w = EventFileWriter("/var/log/katib/tfevent/" + sub)
    for step, v in enumerate(values):
        value = summary_pb2.Summary.Value(tag=tag, simple_value=v)
        w.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=[value])))
    w.close()
"""


def test_an_experiment_with_the_tensorflowevent_collector_runs(sqlite_store, tmp_path: Path):
    """Katib's TensorFlowEvent collector locally: the trial writes TensorBoard event files
    under Katib's directory (mapped into its folder); ``train/loss`` is the ``loss`` tag in
    the ``train`` folder, the latest value its value."""
    import sys

    from katib.controller import Controller, admit
    from tests.conftest import experiment

    doc = experiment(
        name="tfevent", maxTrialCount=2, parallelTrialCount=2,
        objective={"type": "minimize", "objectiveMetricName": "train/loss"},
        metricsCollectorSpec={"collector": {"kind": "TensorFlowEvent"},
                              "source": {"fileSystemPath": {"path": "/var/log/katib/tfevent/", "kind": "Directory"}}},
        command=[sys.executable, "-c", WRITER])
    ctl = Controller(sqlite_store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    assert status["trialsSucceeded"] == 2, status
    for t in sqlite_store.list_trials(rec.id):
        x = t.parameters()["x"]
        assert t.observation["train/loss"]["latest"] == str(float(__import__("numpy").float32(x)))
        assert [o.value for o in sqlite_store.observations(t.id)][:1] == ["1.0"]


def test_the_tensorflowevent_collector_runs_in_the_sandbox(sqlite_store, tmp_path: Path):
    """A fenced trial's event folder is pinned as a folder (it used to be made a file, and
    the trial failed writing its first event)."""
    import sys

    from katib.controller import Controller, admit
    from tests.conftest import experiment
    from trials import LocalExecutor
    from trials._sandbox import Sandbox, problem

    if problem() is not None:
        pytest.skip(f"no sandbox on this machine: {problem()}")
    doc = experiment(
        name="tfevent", maxTrialCount=1, parallelTrialCount=1,
        objective={"type": "minimize", "objectiveMetricName": "train/loss"},
        metricsCollectorSpec={"collector": {"kind": "TensorFlowEvent"},
                              "source": {"fileSystemPath": {"path": "/var/log/katib/tfevent/", "kind": "Directory"}}},
        command=[sys.executable, "-c", WRITER])
    executor = LocalExecutor(clean_env=True, sandbox=Sandbox(tmp_path / "runs"))
    ctl = Controller(sqlite_store, executor, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    t = sqlite_store.list_trials(rec.id)[0]
    log = (tmp_path / "runs" / rec.namespace / rec.name / t.name / "trial.log").read_text()
    assert status["trialsSucceeded"] == 1, log
    assert t.observation["train/loss"]["latest"] == str(float(__import__("numpy").float32(t.parameters()["x"])))


def test_links_and_fifos_in_the_event_folder_are_not_read(tmp_path: Path):
    """The folder is the trial's: a link it plants (to another tenant's events, the store)
    is not followed, a FIFO does not hang the server, a linked folder is not walked."""
    import os
    import threading

    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    elsewhere = tmp_path / "elsewhere"
    w = EventFileWriter(str(elsewhere))
    w.add_event(event_pb2.Event(wall_time=1.7e9, step=0, summary=summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag="loss", simple_value=0.25)])))
    w.close()
    theirs = next(elsewhere.glob("events.out.tfevents*"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "events.out.tfevents.link").symlink_to(theirs)
    (mine / "linked").symlink_to(elsewhere, target_is_directory=True)
    os.mkfifo(mine / "events.out.tfevents.fifo")
    read: list = []
    reader = threading.Thread(target=lambda: read.append(TFEventReader(mine, ["loss"]).read()), daemon=True)
    reader.start()
    reader.join(10)
    assert read == [[]], "hung on the FIFO" if not read else read
    assert TFEventReader(mine / "linked", ["loss"]).read() == []  # the folder itself a link
    assert [s.value for s in TFEventReader(elsewhere, ["loss"]).read()] == ["0.25"]


def test_katibs_paths_are_replaced_once():
    """A directory with its slash and without: the longer key wins and nothing is mapped twice."""
    from trials._members import remap_paths as _remap

    path_map = {"/var/log/katib/tfevent": "/runs/t/var/log/katib/tfevent",
                "/var/log/katib/tfevent/": "/runs/t/var/log/katib/tfevent/"}
    assert _remap("--logdir=/var/log/katib/tfevent/train /var/log/katib/tfevent", path_map) == (
        "--logdir=/runs/t/var/log/katib/tfevent/train /runs/t/var/log/katib/tfevent")


def test_tensorflowevent_runs_locally_on_kubernetes_and_on_ray():
    """Locally the controller reads the event files; on Kubernetes Katib's sidecar does
    (tests/trials_tests/test_kubernetes_sidecar.py); on Ray they come back from the trial's
    node (tests/trials_tests/test_ray.py)."""
    from katib.controller import admit, runnable_errors
    from tests.conftest import experiment

    exp = admit(experiment(metricsCollectorSpec={"collector": {"kind": "TensorFlowEvent"}}))
    assert runnable_errors(exp, "local") == runnable_errors(exp, "kubernetes") == runnable_errors(exp, "ray") == []
