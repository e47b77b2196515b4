"""``katib --server URL …`` against a real ``katib server`` process: run, get, describe, logs,
stop, resume and delete go through its API (with and without ``--auth``) and print what
the same command prints over the server's store here; errors are one sentence."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from katib import KatibClient
from katib.cli import app
from katib.errors import KatibError, ValidationError
from tests.api_tests.test_isolation import CliServer, _free_port, _user
from tests.conftest import experiment, python_command
from tests.test_cli_daily import run_in_terminal


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The command in this process (a subprocess costs seconds of imports): its exit code,
    stdout and stderr, with a KatibError as `main` prints it."""
    r = CliRunner().invoke(app, list(args), env={"KATIB_SERVER": "", "KATIB_TOKEN": "", **(env or {})})
    if isinstance(r.exception, ValidationError):
        return 2, r.stdout, r.stderr + f"error: {r.exception}"
    if isinstance(r.exception, KatibError):
        return 1, r.stdout, r.stderr + f"error: {r.exception}"
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.stdout, r.stderr


def write(tmp_path: Path, doc: dict, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # One answer of …/log holds at most 16 bytes here: `katib logs` reads on until it has all.
    srv = CliServer(tmp_path_factory.mktemp("remote"), env={"KATIB_MAX_LOG_BYTES": "16"}).start()
    yield srv
    srv.stop()


def test_run_get_describe_logs_delete_match_the_local_commands(server, tmp_path):
    doc = experiment(name="remote-quad", command=python_command("print('loss=' + str(float('${trialParameters.x}') ** 2))\n"
                                                                "print('the end, with ünïcödé split across answers')"),
                     maxTrialCount=3, parallelTrialCount=2)
    code, stdout, _ = cli("--server", server.url, "run", str(write(tmp_path, doc)), "--tick", "0.1")
    assert code == 0, stdout
    lines = stdout.splitlines()
    assert lines[0] == f"experiment.kubeflow.org/remote-quad created on {server.url}"
    assert sum("  Succeeded  loss=" in line for line in lines) == 3
    assert "experiment remote-quad Succeeded (ExperimentMaxTrialsReached)" in stdout and "best trial: remote-quad-" in stdout

    local = ("--db", str(server.db))
    for command in (["get", "trials", "remote-quad"], ["describe", "experiment", "remote-quad"],
                    ["get", "experiment", "remote-quad", "-o", "json"], ["get", "experiments", "-o", "yaml"]):
        here, there = cli(*command, *local), cli("--server", server.url, *command)
        assert there == here and there[0] == 0, command
    table = cli("--server", server.url, "get", "experiments")[1]
    assert "remote-quad  Succeeded  ExperimentMaxTrialsReached  3/3" in table
    trial = yaml.safe_load(cli("--server", server.url, "get", "trials", "remote-quad", "-o", "yaml")[1])["items"][0]
    name = trial["metadata"]["name"]
    for command in (["get", "trial", name], ["logs", name], ["logs", "-f", name]):
        here, there = cli(*command, *local), cli("--server", server.url, *command)
        assert there == here and there[0] == 0, command
    assert cli("--server", server.url, "logs", name)[1].endswith("\nthe end, with ünïcödé split across answers\n")

    assert cli("--server", server.url, "delete", "experiment", "remote-quad")[1] == \
        'experiment.kubeflow.org "remote-quad" deleted\n'
    code, _, stderr = cli("--server", server.url, "get", "experiment", "remote-quad")
    assert code == 1 and stderr == f"error: experiment remote-quad not found on {server.url}"


def test_run_without_a_result_exits_1_and_says_why(server, tmp_path):
    doc = experiment(name="remote-silent", command=python_command("print('no metric here')"), maxTrialCount=1,
                     parallelTrialCount=1)
    code, stdout, _ = cli("--server", server.url, "run", str(write(tmp_path, doc)), "--tick", "0.1")
    assert code == 1
    assert "no result: no trial reported the objective metric 'loss'" in stdout
    # The same file again: as katib run here, the finished experiment is shown, not re-run.
    code, stdout, _ = cli("--server", server.url, "run", str(write(tmp_path, doc)))
    assert code == 1 and f"experiment.kubeflow.org/remote-silent already finished on {server.url}" in stdout
    assert "no result: no trial reported the objective metric 'loss'" in stdout
    assert len(httpx.get(f"{server.url}/api/v1/namespaces/default/experiments/remote-silent/trials").json()["items"]) == 1
    # A change other than the budget is refused, naming the field.
    doc["spec"]["objective"]["type"] = "maximize"
    code, _, stderr = cli("--server", server.url, "run", str(write(tmp_path, doc)))
    assert code == 2 and "spec.objective: cannot be changed on an existing experiment" in stderr, stderr


def _wait_running(server: CliServer, name: str, follower: subprocess.Popen) -> None:
    """Until the server runs the experiment and its trial runs."""
    from katib.cli._api import trial_state

    deadline = time.monotonic() + 60
    while True:
        listed = httpx.get(f"{server.url}/api/v1/experiments", timeout=10).json()["items"]
        trials = httpx.get(f"{server.url}/api/v1/namespaces/default/experiments/{name}/trials", timeout=10).json()
        if any(e["metadata"]["name"] == name and e["active"] for e in listed) and \
                any(trial_state(t["status"]["conditions"]) == "Running" for t in trials["items"]):
            return
        assert time.monotonic() < deadline and follower.poll() is None, follower.communicate()
        time.sleep(0.1)


def _follow(server: CliServer, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "katib", "--server", server.url, *args, "--tick", "0.1"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_run_of_an_invalid_experiment_lists_the_servers_field_errors_and_exits_2(server, tmp_path):
    code, _, stderr = cli("--server", server.url, "run", str(write(tmp_path, experiment(name="remote-bad", maxTrialCount=-3))))
    assert code == 2 and "spec.maxTrialCount: must be > 0 (got -3)" in stderr
    assert "remote-bad" not in httpx.get(f"{server.url}/api/v1/experiments", timeout=10).text


def test_a_changed_file_of_an_existing_name_is_refused_as_here(server, tmp_path):
    """The same name with another algorithm: the server merged the file into the stored
    experiment, kept the old algorithm's settings and refused the new one for them ("unknown
    setting ... for algorithm grid"); it is now refused as `katib run` here refuses it,
    naming what Katib keeps from changing. The same file again carries on (exit 0)."""
    doc = experiment(name="remote-changed", maxTrialCount=2, parallelTrialCount=2,
                     algorithm={"algorithmName": "tpe", "algorithmSettings": [{"name": "n_startup_trials", "value": "3"}]})
    assert cli("--server", server.url, "run", str(write(tmp_path, doc)), "--tick", "0.1")[0] == 0
    again = cli("--server", server.url, "run", str(write(tmp_path, doc)), "--tick", "0.1")
    assert again[0] == 0 and "remote-changed already finished" in again[1], again
    grid = experiment(name="remote-changed", maxTrialCount=2, parallelTrialCount=2, algorithm={"algorithmName": "grid"},
                      parameters=[{"name": "x", "parameterType": "double",
                                   "feasibleSpace": {"min": "0.1", "max": "0.9", "step": "0.4"}}])
    code, stdout, stderr = cli("--server", server.url, "run", str(write(tmp_path, grid, "grid.yaml")), "--tick", "0.1")
    assert code == 2, (stdout, stderr)
    assert "spec.algorithm: cannot be changed on an existing experiment" in stderr, stderr
    assert "n_startup_trials" not in stderr, stderr


def test_stop_a_run_on_the_server_then_resume_it(server, tmp_path):
    go_on = tmp_path / "go-on"
    code = (f"import os, time\nwhile not os.path.exists({str(go_on)!r}):\n    time.sleep(0.05)\nprint('loss=0.5')")
    doc = experiment(name="remote-wait", command=python_command(code), maxTrialCount=1, parallelTrialCount=1)
    follower = _follow(server, "run", str(write(tmp_path, doc)))
    try:
        _wait_running(server, "remote-wait", follower)
        code, stdout, _ = cli("--server", server.url, "delete", "experiment", "remote-wait")
        assert code == 1  # still running: refused, with the command that stops it
        code, stdout, _ = cli("stop", "remote-wait", env={"KATIB_SERVER": server.url})
        assert code == 0 and stdout.startswith(f"experiment remote-wait stopped on {server.url}")
        _, stderr = follower.communicate(timeout=60)
        assert follower.returncode == 130
        assert f"stopped on the server: no controller runs it; `katib --server {server.url} resume remote-wait`" in stderr
    finally:
        follower.kill()
    assert "not running (no controller runs it)" in cli("--server", server.url, "stop", "remote-wait")[1]
    assert "Stopped" in cli("--server", server.url, "get", "experiment", "remote-wait")[1]
    # The same file run again resumes it, as katib run does here; stopped by a `katib stop`
    # that finds the server from the store here.
    follower = _follow(server, "run", str(write(tmp_path, doc)))
    try:
        _wait_running(server, "remote-wait", follower)
        code, stdout, _ = cli("stop", "remote-wait", "--db", str(server.db))
        assert code == 0 and f"experiment remote-wait stopped (by the katib server at {server.url})" in stdout
        # Carried on through that server: a resume here would run its trials outside its fences.
        assert f"`katib --server {server.url} resume remote-wait` carries on" in stdout, stdout
        shown, _ = follower.communicate(timeout=60)
        assert follower.returncode == 130 and f"experiment.kubeflow.org/remote-wait resumed on {server.url}" in shown
    finally:
        follower.kill()
    go_on.touch()
    # In a terminal: the live table `katib run` shows here, then the summary.
    code, shown = run_in_terminal([sys.executable, "-m", "katib", "--server", server.url, "resume", "remote-wait",
                                   "--tick", "0.1"])
    assert code == 0 and "experiment.kubeflow.org/remote-wait resumed on" in shown, shown
    assert "remote-wait  [##############################] 1/1 trials   best loss = 0.5" in shown
    assert "Succeeded" in shown.split("experiment \x1b[1mremote-wait\x1b[0m", 1)[1]
    assert "has ended (Succeeded): nothing to stop" in cli("--server", server.url, "stop", "remote-wait")[1]
    assert cli("--server", server.url, "delete", "experiment", "remote-wait")[0] == 0


def test_auth_tokens_and_errors_are_one_sentence(tmp_path):
    srv = CliServer(tmp_path, "--auth", "--no-sandbox", "--allow-unfenced-trials")
    editor, viewer = _user(srv.db, "ed", "team"), _user(srv.db, "vi", "team", "viewer")
    srv.start()
    try:
        doc = experiment(name="remote-auth", command=python_command("print('loss=0.25')"), maxTrialCount=1,
                         parallelTrialCount=1)
        doc["metadata"]["namespace"] = "team"
        path = write(tmp_path, doc)
        code, _, stderr = cli("--server", srv.url, "run", str(path))
        assert code == 1 and f"the katib server at {srv.url} needs an API token (--token or $KATIB_TOKEN" in stderr
        code, _, stderr = cli("--server", srv.url, "--token", "wrong", "get", "experiments")
        assert code == 1 and f"the katib server at {srv.url} did not accept the API token" in stderr
        code, _, stderr = cli("--server", srv.url, "--token", viewer, "run", str(path))
        assert code == 1 and f"the katib server at {srv.url} forbids this" in stderr and "editor" in stderr
        code, stdout, _ = cli("run", str(path), "--tick", "0.1", env={"KATIB_SERVER": srv.url, "KATIB_TOKEN": editor})
        assert code == 0 and "experiment remote-auth Succeeded" in stdout
        assert " team       remote-auth  Succeeded" in cli("--server", srv.url, "--token", viewer, "get", "experiments")[1]
        code, _, stderr = cli("--server", f"http://127.0.0.1:{_free_port()}", "get", "experiments")
        assert code == 1 and "cannot reach the katib server at http://127.0.0.1:" in stderr
        # The real command line: one sentence on stderr, no traceback.
        r = subprocess.run([sys.executable, "-m", "katib", "--server", srv.url, "get", "experiments"],
                           capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
        assert r.returncode == 1 and "needs an API token" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    finally:
        srv.stop()


def test_a_token_needs_a_server():
    with pytest.raises(ValueError, match="token is for a katib server: give its url too"):
        KatibClient(token="t")


def test_commands_of_this_machine_refuse_server():
    for args, said in ((["user", "list"], "`katib user` edits the users of a store of this machine"),
                       (["ui"], "`katib ui` serves a store of this machine"),
                       (["server"], "`katib server` runs a server here")):
        code, _, stderr = cli(*args, env={"KATIB_SERVER": "http://127.0.0.1:9"})
        assert code == 1 and said in stderr and "cannot go through $KATIB_SERVER http://127.0.0.1:9" in stderr
    code, _, stderr = cli("--server", "127.0.0.1:8080", "get", "experiments")
    assert code == 2 and "must be an http:// or https:// URL" in stderr
    code, _, stderr = cli("--server", "http://127.0.0.1:9", "run", "x.yaml", "--executor", "ray")
    assert code == 1 and "--executor is for trials run here" in stderr
