"""Executors are a registry with entry points (the ``katib.executors`` group), as algorithms
are: a package that registers one is picked by ``katib run --executor NAME``; one whose
code is missing says which package to install; an unknown name lists the known ones. A
trial's output is read by its executor's ``logs``, in ``katib logs`` and the API alike."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import trials
from katib import _entry_points
from katib.errors import KatibError
from tests.conftest import experiment
from trials import _registry, _sources

PLUGIN = '''
from trials import LocalExecutor, Sample, Source


class StampingExecutor(LocalExecutor):
    """Runs trials as the local executor does, and leaves a mark in each trial's folder."""

    name = "stamping"

    def launch(self, job):
        (job.trial_dir / "stamped-by-plugin").parent.mkdir(parents=True, exist_ok=True)
        (job.trial_dir / "stamped-by-plugin").write_text(job.name)
        return super().launch(job)

    # Its logs read as it says: the trial's output in capitals.
    @classmethod
    def logs(cls, handle, trial_dir, tail=None, max_bytes=1 << 20):
        return super().logs(handle, trial_dir, tail, max_bytes).upper()

    @classmethod
    def log_since(cls, handle, trial_dir, offset):
        read = super().log_since(handle, trial_dir, offset)
        return None if read is None else (read[0].upper(), read[1])


class Unfenced(StampingExecutor):
    """Says nothing of fencing trials in, and runs trials in another image."""

    fences = None
    shares_environment = False


class Sentences(Source):
    """A collector kind: metrics in sentences ("loss is 0.25") in the trial's output."""

    def read(self, final=False):
        text = self.ctx.output.read_text() if self.ctx.output.exists() else ""
        words = [line.split(" is ") for line in text.splitlines() if " is " in line]
        return [Sample(0.0, name, value) for name, value in words if name in self.ctx.names]
'''


def _site(tmp_path: Path) -> Path:
    """A package installed as pip would leave it: its module and its dist-info."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "katib_stamping.py").write_text(PLUGIN)
    info = site / "katib_stamping-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: katib-stamping\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[katib.executors]\nstamping = katib_stamping:StampingExecutor\nbroken = katib_not_there:Executor\n"
        "unfenced = katib_stamping:Unfenced\n"
        "[katib.collectors]\nCustom = katib_stamping:Sentences\n")
    return site


def _katib(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "katib", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """The plugin on this process's path too (the registry's cache cleared around it)."""
    site = _site(tmp_path)
    monkeypatch.syspath_prepend(str(site))
    _entry_points.forget()
    _registry._executor_plugins.cache_clear()
    _sources._sources.cache_clear()
    yield site
    monkeypatch.undo()
    _entry_points.forget()
    _registry._executor_plugins.cache_clear()
    _sources._sources.cache_clear()


def test_a_third_party_executor_is_picked_by_its_entry_point_and_reads_its_logs(tmp_path, plugin_site):
    db = tmp_path / "k.db"
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(experiment(maxTrialCount=2)))

    r = _katib(plugin_site, "run", str(path), "--db", str(db), "--tick", "0.05", "--executor", "stamping")
    assert r.returncode == 0, r.stderr
    stamps = sorted(p.read_text() for p in (tmp_path / "runs").rglob("stamped-by-plugin"))
    assert len(stamps) == 2 and all(s.startswith("demo-") for s in stamps)

    # katib logs and the API's log routes read the output through the trial's executor.
    from typer.testing import CliRunner

    from katib.cli import app

    r = CliRunner().invoke(app, ["logs", stamps[0], "--db", str(db)])  # in this process: the plugin is on its path
    assert r.exit_code == 0 and r.stdout.startswith("LOSS=0."), r.stdout
    from katib.store import Store
    from tests.api_tests.conftest import LiveServer

    store = Store(str(db))
    with LiveServer(store, tmp_path, resume=False, read_only=True) as server:
        for url in (f"/api/v1/namespaces/default/trials/{stamps[0]}/log",
                    f"/api/v1/namespaces/default/pods/{stamps[0]}/log?tailLines=1"):
            got = server.client.get(url)
            assert got.status_code == 200 and got.text.startswith("LOSS=0."), (url, got.text)
    store.close()


def test_a_missing_or_unknown_executor_is_one_sentence(plugin_site):
    assert trials.executor_names() == ["local", "ray", "kubernetes", "slurm", "broken", "stamping", "unfenced"]
    # Registered, but its module is not installed: the package to install is named.
    with pytest.raises(KatibError, match=r"the broken executor needs what is not installed \(katib_not_there\): "
                                         r"pip install 'katib-stamping'"):
        trials.executor_factory("broken")
    with pytest.raises(KatibError, match=r"--executor must be local, ray, kubernetes, slurm, broken, stamping or "
                                         r"unfenced \(got 'lsf'\)"):
        trials.executor_factory("lsf")
    assert trials.executor_factory("stamping")().name == "stamping"
    assert trials.executor_class("broken") is trials.Executor  # its logs read as the base class reads them


def test_the_built_ins_are_registered_in_pyproject():
    """pyproject.toml's katib.executors and katib.collectors groups and the registries'
    fallback tables agree."""
    import tomllib

    from tests.conftest import REPO

    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    assert groups["katib.executors"] == {name: target for name, (target, _) in _registry.BUILTIN_EXECUTORS.items()}
    assert groups["katib.collectors"] == {kind: target for kind, (target, _) in _sources.BUILTIN_SOURCES.items()}


def test_a_third_party_collector_kind_reads_the_metrics(tmp_path, plugin_site):
    """A package that registers a collector kind (here Katib's Custom, whose built-in source
    reads only what the collector container reports: the package's replaces it) makes it
    admissible on the local executor, and its source reads the trial's metrics."""
    from katib.controller import admit, runnable_errors

    assert trials.collector_kinds() == ["StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Push", "Custom"]
    doc = experiment(metricsCollectorSpec={"collector": {"kind": "Custom", "customCollector": {
        "name": "collector", "image": "example/collector:v1"}}})
    assert runnable_errors(admit(doc), "local") == []
    assert runnable_errors(admit(doc), "ray") == []  # its command runs beside the trial in its actor
    log = tmp_path / "trial.log"
    log.write_text("epoch 1\nloss is 0.25\naccuracy is 0.9\n")
    samples = trials.Collector(kind="Custom", names={"loss"}, output=log).collect(final=True)
    assert [(s.metric, s.value) for s in samples] == [("loss", "0.25")]


def test_katib_server_auth_refuses_a_plugin_executor_that_does_not_fence_trials_in(tmp_path, plugin_site):
    """Under --auth every executor must say how it fences trials in (Executor.fences); one
    that says nothing is refused like Ray, not waved through like Kubernetes."""
    r = _katib(plugin_site, "server", "--auth", "--executor", "unfenced", "--db", str(tmp_path / "k.db"), "--port", "0")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert ("refusing to run trials under --auth: the unfenced executor does not say that it fences trials in"
            in r.stderr), r.stderr


def test_a_tuned_function_that_cannot_travel_is_refused_where_the_executor_uses_another_image(plugin_site):
    """Whether a KatibClient.tune function must run from its source alone is the executor's
    to say (Executor.shares_environment), not a test of its name."""
    import json

    from katib._function import ANNOTATION, executor_errors

    stuck = {ANNOTATION: json.dumps({"function": "train", "portable": False, "why": "it uses a global"})}
    assert executor_errors(stuck, "local") == []
    assert "would run in another image (the unfenced executor's)" in str(executor_errors(stuck, "unfenced"))
