"""Shared fixtures: experiments from small YAML strings, stores on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import stat
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
POSTGRES_ENV = "KATIB_TEST_POSTGRES_URL"

BASE = """
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: demo
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
  algorithm:
    algorithmName: random
    algorithmSettings:
      - name: random_state
        value: "1"
  parallelTrialCount: 2
  maxTrialCount: 4
  maxFailedTrialCount: 4
  parameters:
    - name: x
      parameterType: double
      feasibleSpace: {min: "0.1", max: "0.9"}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - name: x
        reference: x
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: main
                image: python:3.11
                command: ["python3", "-c", "print('loss=${trialParameters.x}')"]
"""


# The longest groups, started first so that no worker is left with one at the end.
FIRST = ("example-nas/enas.yaml", "tests/test_fault_injection.py", "example-nas/darts.yaml",
         "example-pytorchjob-digits.yaml", "example-random.yaml", "example-pbt.yaml", "example-grid.yaml",
         "tests/test_cli_daily.py", "tests/test_notebook.py")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``--dist loadgroup``) a test file runs on one worker, so its
    module-scoped services (a Ray head, the Kubernetes emulator, a viewer server) start
    once. The examples are the exception: each runs on a worker of its own, and the
    serving tests join the run of the example they serve (and share its server: ``served``).
    The longest groups go first."""
    groups: dict[str, str] = {}
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        path = item.nodeid.split("::", 1)[0]
        group = path
        if path.endswith("tests/test_examples.py") and "[" in item.nodeid:
            group = "example-" + item.nodeid.split("[", 1)[1].rstrip("]")
        elif path.endswith(("tests/test_serve.py", "tests/test_serve_guard.py")):
            group = "example-random.yaml"
        item.add_marker(pytest.mark.xdist_group(group))
        groups[item.nodeid] = group
    rank = {g: i for i, g in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(groups.get(item.nodeid, ""), len(FIRST)))  # stable: others keep their order


def pytest_configure(config: pytest.Config) -> None:
    """``--dist loadgroup`` works by pytest-xdist setting ``item._nodeid`` to ``id@group``.
    A pytest release whose ids ignore that attribute (9.2) lets xdist spread a file over
    workers, each starting its module's services (a Ray head, the Slurm node) and tearing
    them down under the others: refuse to run, saying why, rather than fail at random."""
    if config.getoption("dist", None) != "loadgroup" or hasattr(config, "workerinput") \
            or not config.getoption("numprocesses", None):  # -n 0: nothing is distributed
        return

    class Probe(pytest.Item):
        def runtest(self) -> None: ...

    probe = object.__new__(Probe)
    probe._nodeid = "test@group"  # type: ignore[attr-defined]  # what xdist does on each worker
    try:
        grouped = probe.nodeid == "test@group"
    except AttributeError:
        grouped = False
    if not grouped:
        raise pytest.UsageError(
            f"pytest {pytest.__version__} keeps pytest-xdist from grouping tests (--dist loadgroup): "
            "install the pytest range that pyproject.toml's dev extra names")


def experiment(**spec: Any) -> dict[str, Any]:
    """The base experiment with ``spec`` fields replaced (``command=[...]`` sets the command)."""
    doc = yaml.safe_load(BASE)
    command = spec.pop("command", None)
    name = spec.pop("name", None)
    if name:
        doc["metadata"]["name"] = name
    doc["spec"].update(spec)
    if "maxTrialCount" in spec and "maxFailedTrialCount" not in spec and spec["maxTrialCount"]:
        doc["spec"]["maxFailedTrialCount"] = min(4, spec["maxTrialCount"])
    if command is not None:
        job = doc["spec"]["trialTemplate"]["trialSpec"]
        job["spec"]["template"]["spec"]["containers"][0]["command"] = command
    return doc


def python_command(code: str) -> list[str]:
    """``python -c code``; the base trial parameter is referenced (in a comment) so the
    template stays valid whatever ``code`` uses."""
    return [sys.executable, "-c", code + "\n# x=${trialParameters.x}"]


def store_urls() -> list[Any]:
    urls = [pytest.param("sqlite", id="sqlite")]
    if os.environ.get(POSTGRES_ENV) or os.environ.get("CI"):
        urls.append(pytest.param("postgresql", id="postgresql"))
    return urls


@pytest.fixture(params=store_urls())
def store(request: pytest.FixtureRequest, tmp_path: Path):
    """A fresh store on each backend: SQLite always, PostgreSQL when a server is given."""
    from katib.store import Store

    if request.param == "sqlite":
        s = Store(str(tmp_path / "katib.db"))
    else:
        url = os.environ.get(POSTGRES_ENV)
        if not url:
            pytest.fail(f"CI must provide a PostgreSQL server in {POSTGRES_ENV}")
        s = Store(_fresh_schema(url))
    yield s
    s.close()


def _fresh_schema(url: str) -> str:
    """A database of its own for one test, so tests never see each other's rows."""
    import sqlalchemy as sa

    name = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine("postgresql+psycopg://" + url.split("://", 1)[1], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def sqlite_store(tmp_path: Path):
    from katib.store import Store

    s = Store(str(tmp_path / "katib.db"))
    yield s
    s.close()


@pytest.fixture(scope="session")
def example_run(tmp_path_factory: pytest.TempPathFactory):
    """``katib run`` of an example, as a newcomer runs it, once per session: the examples
    test and the serving test read the same run (the digits examples take a while)."""
    import subprocess

    done: dict[Path, tuple[Any, Path]] = {}

    def run(path: Path) -> tuple[Any, Path]:
        if path not in done:
            tmp = tmp_path_factory.mktemp("example")
            db = tmp / "katib.db"
            result = subprocess.run([sys.executable, "-m", "katib", "run", str(path), "--db", str(db)],
                                    capture_output=True, text=True, timeout=600, cwd=tmp)
            done[path] = (result, db)
        return done[path]

    return run


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory, example_run: Any):
    """``katib serve`` of the random example's best trial, started once for the serving tests
    (tests/test_serve.py, tests/test_serve_guard.py): a ``tests._serving.Served``."""
    from tests._serving import serve_example

    with serve_example(tmp_path_factory.mktemp("serve"), example_run) as server:
        yield server


@pytest.fixture
def umask_022():
    """A umask that lets others read what is made: what must stay private is made so anyway."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def file_mode(path: Path) -> int:
    """``path``'s permission bits (of a link itself, not what it points to)."""
    return stat.S_IMODE(os.lstat(path).st_mode)
