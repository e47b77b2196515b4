"""A trial's artifacts folder is its tenant's: ``katib serve`` and ``KatibClient.load_model``
(the operator, outside any sandbox) read the model there. Nothing the trial leaves in it
(a manifest naming another path, a link in place of the model or of the folder itself, a
FIFO) may make them load another tenant's model, or hang; and in the sandbox the trial
cannot replace its artifacts folder by a link at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from katib._model import MANIFEST, find_model, load_model, save_model
from katib.errors import KatibError
from katib.names import RunLayout

torch = pytest.importorskip("torch")


@pytest.fixture
def tenants(tmp_path):
    """ns-b's trial saved a TorchScript model; ns-a's trial has an empty artifacts folder."""
    layout = RunLayout(tmp_path / "runs")
    theirs = layout.artifacts("ns-b", "exp-b", "exp-b-1234")
    theirs.mkdir(parents=True)
    save_model(torch.nn.Linear(2, 1), theirs)
    ours = layout.artifacts("ns-a", "exp-a", "exp-a-9999")
    ours.mkdir(parents=True)
    return layout, ours, theirs


@pytest.mark.parametrize("file", ["../../../../ns-b/exp-b/exp-b-1234/artifacts/model.pt", "ABSOLUTE", "sub/model.pt",
                                  "..", "model.joblib"])
def test_a_manifest_names_a_plain_model_file_of_its_own_folder(tenants, file):
    _, ours, theirs = tenants
    (ours / "sub").mkdir()
    os.symlink(theirs / "model.pt", ours / "sub" / "model.pt")
    file = str(theirs / "model.pt") if file == "ABSOLUTE" else file
    (ours / MANIFEST).write_text(json.dumps({"format": "torchscript", "file": file}))
    for read in (find_model, load_model):
        with pytest.raises(KatibError, match=r"file must be one of model\.pt, a plain name in the artifacts folder"):
            read(ours)


def test_an_artifacts_folder_replaced_by_a_link_is_refused(tenants):
    layout, ours, theirs = tenants
    ours.rmdir()
    os.symlink(theirs, ours)
    with pytest.raises(KatibError, match="is a symbolic link, not the trial's own artifacts folder"):
        layout.artifacts("ns-a", "exp-a", "exp-a-9999")  # katib serve's locate
    for read in (find_model, load_model):
        with pytest.raises(KatibError, match="is a symbolic link, not a folder"):
            read(ours)
    assert type(load_model(theirs)).__name__ == "RecursiveScriptModule"  # its own still loads


@pytest.mark.parametrize("name", ["model.pt", MANIFEST])
def test_a_model_file_or_manifest_that_is_a_link_is_refused(tenants, name):
    _, ours, theirs = tenants
    if name == MANIFEST:
        (ours / "model.pt").write_bytes(b"not a model")
    os.symlink(theirs / name, ours / name)
    with pytest.raises(KatibError, match="is a symbolic link"):
        load_model(ours)


def test_a_fifo_in_place_of_the_model_is_refused_at_once(tenants):
    """Opening a FIFO for reading waits for a writer (in torch's C++, holding the GIL):
    the load runs in a process of its own, so a hang fails the test instead of holding it."""
    _, ours, _ = tenants
    os.mkfifo(ours / "model.pt")
    code = ("import sys; from katib._model import load_model\n"
            "try:\n    load_model(sys.argv[1])\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)")
    try:
        done = subprocess.run([sys.executable, "-c", code, str(ours)], capture_output=True, text=True, timeout=60,
                              cwd=Path(__file__).resolve().parents[1])
    except subprocess.TimeoutExpired:
        pytest.fail("load_model blocked on a FIFO the trial left in place of its model")
    assert done.stdout.startswith("KatibError") and "is not a plain file" in done.stdout, done.stdout + done.stderr


def test_a_saved_model_still_loads_by_manifest_and_by_name(tenants):
    _, ours, theirs = tenants
    assert find_model(theirs).file == "model.pt"
    (ours / "model.pt").write_bytes((theirs / "model.pt").read_bytes())  # written by the trial, no manifest
    assert find_model(ours).format == "torchscript"
    assert type(load_model(ours)).__name__ == "RecursiveScriptModule"


def test_in_the_sandbox_a_trial_cannot_replace_its_artifacts_folder(sqlite_store, tmp_path):
    from katib.controller import Controller, admit
    from tests.conftest import experiment, python_command
    from trials import LocalExecutor
    from trials._sandbox import Sandbox, problem, store_files

    if problem() is not None:
        pytest.skip(f"no sandbox on this machine: {problem()}")
    other = tmp_path / "runs" / "ns-b" / "exp" / "exp-1" / "artifacts"
    other.mkdir(parents=True)
    code = f"""
import os, shutil
a = os.environ['KATIB_ARTIFACT_DIR']
for what, act in (("rmtree", lambda: shutil.rmtree(a)), ("rename", lambda: os.rename(a, a + '.old'))):
    try:
        act()
        print(what, "ALLOWED")
        os.symlink({str(other)!r}, a)
    except OSError as exc:
        print(what, "refused", type(exc).__name__)
open(a + '/model.pt', 'wb').write(b'mine')  # still its own to write
print('loss=1')
"""
    sandbox = Sandbox(tmp_path / "runs", hidden=store_files(tmp_path / "katib.db"))
    ctl = Controller(sqlite_store, LocalExecutor(clean_env=True, sandbox=sandbox), runs_root=tmp_path / "runs", tick=0.05)
    doc = experiment(command=python_command(code), maxTrialCount=1, parallelTrialCount=1)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    t = sqlite_store.list_trials(rec.id)[0]
    folder = tmp_path / "runs" / rec.namespace / rec.name / t.name
    log = (folder / "trial.log").read_text()
    assert t.state == "Succeeded", log
    assert "rmtree refused" in log and "rename refused" in log, log
    artifacts = folder / "artifacts"
    assert artifacts.is_dir() and not artifacts.is_symlink()
    assert (artifacts / "model.pt").read_bytes() == b"mine"
    assert RunLayout(tmp_path / "runs").artifacts(rec.namespace, rec.name, t.name) == artifacts.resolve()
    assert not list(other.iterdir())


def test_a_link_left_where_the_artifacts_folder_goes_is_removed_before_the_trial_runs(tmp_path):
    from trials._sandbox import Sandbox

    trial_dir = tmp_path / "trial"
    trial_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, trial_dir / "artifacts")
    args = Sandbox._pin(trial_dir, [], ["pid"])
    assert not (trial_dir / "artifacts").is_symlink() and (trial_dir / "artifacts").is_dir()
    pinned = str(trial_dir / "artifacts")
    assert any(args[i:i + 3] == ["--bind", pinned, pinned] for i in range(len(args))), args
    assert elsewhere.is_dir()  # the link went, not what it pointed to
