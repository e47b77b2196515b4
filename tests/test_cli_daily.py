"""The daily experience on the command line (issue 15): names found in the namespace that
holds them, hints that work as printed, install hints that keep their brackets, no
traceback and nothing stored when an executor cannot start, failure reasons shown, a
live view whose progress bar shows, `katib stop`, `katib --version`, single objects."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shlex
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import yaml

from tests.conftest import experiment, python_command


def katib(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "katib", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def in_namespace(namespace: str, **spec) -> dict:
    doc = experiment(**spec)
    doc["metadata"]["namespace"] = namespace
    return doc


def write(tmp_path: Path, doc: dict, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def without(tmp_path: Path, *modules: str, failing_init: bool = False) -> dict[str, str]:
    """An environment where importing ``modules`` fails as if they were not installed (or,
    with ``failing_init``, a ``ray`` whose node cannot start)."""
    fake = tmp_path / "fake-modules"
    for module in modules:
        (fake / module).mkdir(parents=True, exist_ok=True)
        if failing_init:
            body = ("def is_initialized():\n    return False\n\n"
                    "def init(**kwargs):\n    raise RuntimeError('Failed to start the GCS server: port 6379 is taken.\\n"
                    "  File \"/ray/_private/node.py\", line 1\\nmore of Ray\\'s traceback')\n")
        else:
            body = f"raise ModuleNotFoundError(\"No module named '{module}'\", name={module!r})\n"
        (fake / module / "__init__.py").write_text(body)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}


def run_in_terminal(args: list[str], timeout: float = 120) -> tuple[int, str]:
    """Run a command with a terminal (a pty, 200 columns) as its output, as a user sees it."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the other end closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(30)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_a_name_in_one_namespace_is_found_without_n(tmp_path):
    """The examples say `namespace: kubeflow`; the commands after the quick start find it."""
    db = str(tmp_path / "k.db")
    run = katib("run", str(write(tmp_path, in_namespace("kubeflow"))), "--db", db, "--tick", "0.05")
    assert run.returncode == 0, run.stderr

    table = katib("get", "trials", "demo", "--db", db)
    assert table.returncode == 0, table.stderr
    trials = json.loads(katib("get", "trials", "demo", "--db", db, "-o", "json").stdout)["items"]
    assert len(trials) == 4
    trial = trials[0]["metadata"]["name"]
    # Numbers in tables: six significant digits, never the 17 that wrap mid-digit.
    x = trials[0]["spec"]["parameterAssignments"][0]["value"]
    assert len(x) > 10 and x not in table.stdout and f"{float(x):.6g}" in table.stdout

    described = katib("describe", "experiment", "demo", "--db", db)
    assert described.returncode == 0 and yaml.safe_load(described.stdout)["metadata"]["namespace"] == "kubeflow"
    logs = katib("logs", trial, "--db", db)
    assert logs.returncode == 0 and logs.stdout.startswith("loss=")
    one = katib("get", "experiment", "demo", "--db", db)
    assert one.returncode == 0 and "kubeflow" in one.stdout and "Succeeded" in one.stdout and "4/4" in one.stdout
    assert json.loads(katib("get", "experiment", "demo", "--db", db, "-o", "json").stdout)["kind"] == "Experiment"
    single = katib("get", "trial", trial, "--db", db)
    assert single.returncode == 0 and trial in single.stdout and "demo" in single.stdout
    assert yaml.safe_load(katib("get", "trial", trial, "--db", db, "-o", "yaml").stdout)["kind"] == "Trial"
    resumed = katib("resume", "demo", "--db", db)
    assert resumed.returncode == 0 and "Succeeded" in resumed.stdout

    # The wrong -n says where the name is.
    wrong = katib("get", "trials", "demo", "-n", "default", "--db", db)
    assert wrong.returncode == 1 and "it is in namespace kubeflow: -n kubeflow" in wrong.stderr

    # The same name in a second namespace: which one is meant cannot be guessed.
    assert katib("run", str(write(tmp_path, in_namespace("default"), "b.yaml")), "--db", db, "--tick", "0.05").returncode == 0
    ambiguous = katib("get", "trials", "demo", "--db", db)
    assert ambiguous.returncode == 1 and "is in 2 namespaces (default, kubeflow)" in ambiguous.stderr
    assert "Traceback" not in ambiguous.stderr
    assert katib("get", "trials", "demo", "-n", "kubeflow", "--db", db).returncode == 0


def test_stop_then_the_printed_hint_resumes(tmp_path):
    """`katib stop` ends a `katib run` as Ctrl-C would; the run prints a resume command that
    works as printed (namespace and store included); meanwhile every screen says Stopped."""
    db = str(tmp_path / "k.db")
    go = tmp_path / "go"  # trials wait for it, so the run is still going when `katib stop` comes, however loaded the machine
    wait = f"import os, time\nt0 = time.time()\nwhile not os.path.exists({str(go)!r}) and time.time() - t0 < 120:\n    time.sleep(0.05)\n"
    doc = in_namespace("kubeflow", command=python_command(wait + "print('loss=0.5')"), maxTrialCount=2, parallelTrialCount=1)
    proc = subprocess.Popen([sys.executable, "-m", "katib", "run", str(write(tmp_path, doc)), "--db", db, "--tick", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        while " Running " not in proc.stdout.readline():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        running = katib("get", "experiments", "--db", db)
        assert "Running" in running.stdout and "Stopped" not in running.stdout
        stopped = katib("stop", "demo", "--db", db)
        assert stopped.returncode == 0, stopped.stderr
        assert proc.wait(60) == 130
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    hint = next(line for line in stderr.splitlines() if "carries on" in line).split("`")[1]
    assert hint == shlex.join(["katib", "resume", "demo", "-n", "kubeflow", "--db", db])
    assert f"`{hint}` carries on" in stopped.stdout
    from katib.store import Store

    store = Store(db)
    assert store.get_experiment("kubeflow", "demo").stopped_at is not None  # a server started here leaves it stopped

    listing = katib("get", "experiments", "--db", db)
    assert "Stopped" in listing.stdout and "no controller runs it" in listing.stdout and "Running" not in listing.stdout
    assert "nothing to stop" not in katib("stop", "demo", "--db", db).stdout  # not running: says how to resume
    go.touch()
    again = subprocess.run([sys.executable, "-m", *shlex.split(hint)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "experiment demo Succeeded (ExperimentMaxTrialsReached)" in again.stdout
    assert store.get_experiment("kubeflow", "demo").stopped_at is None  # resumed: the user's stop is over
    assert "nothing to stop" in katib("stop", "demo", "--db", db).stdout


def test_missing_extras_name_the_extra_and_store_nothing(tmp_path):
    db = str(tmp_path / "k.db")
    path = str(write(tmp_path, experiment()))
    for executor in ("ray", "kubernetes"):
        r = katib("run", path, "--db", db, "--executor", executor, env=without(tmp_path, executor))
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert f"pip install 'katib[{executor}]'" in r.stderr  # rich markup no longer eats [ray]
    for command in (["server"], ["ui"]):
        if command == ["ui"]:
            katib("user", "list", "--db", db)  # makes the store katib ui opens (a read makes none)
        r = katib(*command, "--db", db, "--port", "1", env=without(tmp_path, "uvicorn"))
        assert r.returncode == 1 and "pip install 'katib[server]'" in r.stderr, r.stderr
    assert json.loads(katib("get", "experiments", "--db", db, "-o", "json").stdout)["items"] == []


def test_a_ray_node_that_cannot_start_is_one_sentence(tmp_path):
    db = str(tmp_path / "k.db")
    r = katib("run", str(write(tmp_path, experiment())), "--db", db, "--executor", "ray",
              env=without(tmp_path, "ray", failing_init=True))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "node.py" not in r.stderr
    assert "Ray could not start a node here or reach its cluster (Failed to start the GCS server" in r.stderr
    # Checked before anything was stored: no experiment stuck in Created.
    assert json.loads(katib("get", "experiments", "--db", db, "-o", "json").stdout)["items"] == []


def test_a_failed_experiment_says_why(tmp_path):
    db = str(tmp_path / "k.db")
    doc = experiment(command=python_command("import sys; print('loss=0.3'); sys.exit('CUDA out of memory')"),
                     maxTrialCount=3, maxFailedTrialCount=1)
    r = katib("run", str(write(tmp_path, doc)), "--db", db, "--tick", "0.05")
    assert r.returncode == 1 and "Failed (ExperimentFailed)" in r.stdout
    assert "last failure: demo-" in r.stdout and "CUDA out of memory" in r.stdout
    one = katib("get", "experiment", "demo", "--db", db)
    assert "max failed count has reached" in one.stdout and "CUDA out of memory" in one.stdout
    trials = katib("get", "trials", "demo", "--db", db)
    assert "WHY" in trials.stdout and "exited with code 1" in trials.stdout


def test_the_live_view_shows_its_progress_bar_and_why_trials_failed(tmp_path):
    doc = experiment(command=python_command("import sys; x = ${trialParameters.x}; print(f'loss={x}'); "
                                            "sys.exit(3 if x > 0.5 else 0)"), maxTrialCount=4, maxFailedTrialCount=4)
    code, screen = run_in_terminal([sys.executable, "-m", "katib", "run", str(write(tmp_path, doc)),
                                    "--db", str(tmp_path / "k.db"), "--tick", "0.05"])
    assert code == 0, screen
    assert "demo  [##############################] 4/4 trials" in screen  # rich ate "[###…]" as markup
    assert "why" in screen and "exited with code 3" in screen


def test_ui_refuses_a_store_that_does_not_exist(tmp_path):
    typo = tmp_path / "katib.bd"
    r = katib("ui", "--db", str(typo))
    assert r.returncode == 1 and f"no store at {typo}" in r.stderr
    assert not typo.exists()


def test_version():
    r = katib("--version")
    assert r.returncode == 0 and r.stdout.strip() == "katib 0.1.0"


def test_interrupt_prints_a_hint_with_the_store(tmp_path):
    """Ctrl-C (SIGINT) on a run in `default`: the hint names the store given with --db."""
    db = str(tmp_path / "k.db")
    doc = experiment(command=python_command("import time; time.sleep(5); print('loss=0.5')"), maxTrialCount=2)
    # As a terminal starts it: Ctrl-C not ignored (a run started by a shell's `&`, as a
    # CI script may be, inherits SIGINT ignored, and rightly runs on through one).
    proc = subprocess.Popen([sys.executable, "-m", "katib", "run", str(write(tmp_path, doc)), "--db", db],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None and proc.stderr is not None
    while " Running " not in proc.stdout.readline():
        assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    assert f"`katib resume demo --db {db}` carries on" in proc.stderr.read()


def test_the_grpc_services_without_their_extra_say_which_in_one_sentence(tmp_path):
    """`katib suggestion serve` and `katib server --grpc-port` without grpcio-health-checking
    (kserve brings grpcio, not it) printed 40 lines of traceback; `katib run --grpc-port`
    already said what to install."""
    env = without(tmp_path, "grpc_health")
    for args in (["suggestion", "serve", "--port", "0"], ["server", "--port", "0", "--grpc-port", "0", "--db", str(tmp_path / "k.db")]):
        result = katib(*args, env=env, timeout=60)
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
        assert "needs what is not installed (grpc_health): pip install 'katib[grpc]'" in result.stderr, result.stderr
