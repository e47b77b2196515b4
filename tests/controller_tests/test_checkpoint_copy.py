"""The server copies a trial's checkpoint for the trial that starts from it (PBT's
hand-over), outside any sandbox: what the first trial left there must not fill the
server's disk, hold its controller or fail the whole experiment. Only files, folders and
links are copied (links as links), at most ``KATIB_MAX_CHECKPOINT_BYTES`` of files; what
is refused fails the one trial that would start from it, with the reason."""

from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

import pytest

from katib.controller import Controller, admit
from katib.names import RunLayout
from tests.conftest import experiment, python_command
from tests.controller_tests.test_checkpoints import chained

# The first trial of each experiment plants PLANT in its checkpoint folder; the others
# count how many files they found in their copy of it.
STEP = """
import os, pathlib
d = pathlib.Path(os.environ['KATIB_CHECKPOINT_DIR'])
if os.environ['KATIB_TRIAL_NAME'].endswith('-1'):
    d.mkdir(parents=True, exist_ok=True)
    (d / 'sub').mkdir(exist_ok=True)
    (d / 'sub' / 'weights.bin').write_bytes(b'w' * 1000)
    os.symlink('/etc/passwd', d / 'link')
    PLANT
print(f"loss={len(list(d.rglob('*')))}")
"""


Chain = chained("chain")  # three trials, one after another, each starting from the one before


def _run(store, tmp_path: Path, monkeypatch, plant: str):
    from suggestion import _registry

    monkeypatch.setitem(_registry._BUILTIN, "chain", f"{__name__}:Chain")
    doc = experiment(command=python_command(STEP.replace("PLANT", plant)), maxTrialCount=3, parallelTrialCount=1)
    doc["spec"]["algorithm"] = {"algorithmName": "chain"}
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    trials = {t.name: t for t in store.list_trials(rec.id)}
    assert trials["chain-1"].state == "Succeeded", (tmp_path / "runs" / "default" / "demo" / "chain-1" / "trial.log").read_text()
    return store.get_experiment(rec.namespace, rec.name), trials, RunLayout(tmp_path / "runs")


def _failed_for(trials, name: str, *words: str) -> None:
    t = trials[name]
    failed = [c for c in t.conditions if c.type == "Failed" and c.status == "True"]
    assert t.state == "Failed" and failed, (name, t.state, t.conditions)
    text = f"{failed[0].reason}: {failed[0].message}"
    assert failed[0].reason == "LaunchFailed", text
    for word in words:
        assert word in text, (word, text)


@pytest.fixture
def no_disk_filling(monkeypatch):
    """Old code wrote a sparse file out in full: cap this process's file size (1 GiB), so
    such a copy fails with EFBIG rather than filling the machine's disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if hard != resource.RLIM_INFINITY:
        pytest.skip("the trial must lift the file-size cap it inherits")
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 30, hard))
    yield
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, old)


def test_a_sparse_file_of_16_tb_is_refused_not_written_out(store, tmp_path, monkeypatch, no_disk_filling):
    # 16 TB apparent, a few bytes of disk (the trial lifts the file-size cap it inherits)
    plant = ("import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2); "
             "open(d / 'huge', 'wb').truncate(16 * 10**12)")
    rec, trials, layout = _run(store, tmp_path, monkeypatch, plant)
    _failed_for(trials, "chain-2", "KATIB_MAX_CHECKPOINT_BYTES", "chain-1", "64 GiB")
    assert not layout.checkpoint(rec.namespace, rec.name, "chain-2").joinpath("huge").exists()
    # The experiment went on: the next trial started (from chain-2's empty checkpoint) and ran.
    assert trials["chain-3"].state == "Succeeded" and rec.status.to_dict().get("completionTime")


def test_the_cap_is_the_operators_choice(store, tmp_path, monkeypatch):
    monkeypatch.setenv("KATIB_MAX_CHECKPOINT_BYTES", str(1 << 20))
    plant = "(d / 'big').write_bytes(b'x' * (4 << 20))"
    rec, trials, layout = _run(store, tmp_path, monkeypatch, plant)
    _failed_for(trials, "chain-2", "KATIB_MAX_CHECKPOINT_BYTES", "1048576 bytes", "big")
    assert trials["chain-3"].state == "Succeeded"


@pytest.mark.parametrize("plant, what", [
    ("os.mkfifo(d / 'pipe')", "pipe"),
    # Bound by a relative name: a pytest folder's path can pass AF_UNIX's 108 characters.
    ("os.chdir(d); __import__('socket').socket(__import__('socket').AF_UNIX).bind('sock')", "sock"),
])
def test_a_fifo_or_socket_fails_that_trial_only(store, tmp_path, monkeypatch, plant, what):
    rec, trials, layout = _run(store, tmp_path, monkeypatch, plant)
    _failed_for(trials, "chain-2", what, "FIFO, socket or device")
    assert trials["chain-3"].state == "Succeeded"
    assert rec.status.to_dict().get("completionTime")


def test_files_folders_and_links_are_copied_as_they_were(store, tmp_path, monkeypatch):
    plant = "os.chmod(d / 'sub' / 'weights.bin', 0o640)"
    rec, trials, layout = _run(store, tmp_path, monkeypatch, plant)
    assert all(t.state == "Succeeded" for t in trials.values()), {n: t.state for n, t in trials.items()}
    copy = layout.checkpoint(rec.namespace, rec.name, "chain-3")
    assert (copy / "sub" / "weights.bin").read_bytes() == b"w" * 1000
    assert (copy / "sub" / "weights.bin").stat().st_mode & 0o777 == 0o640
    assert (copy / "link").is_symlink() and os.readlink(copy / "link") == "/etc/passwd"
