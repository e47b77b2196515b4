"""The `katib` command line as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, experiment, python_command


def katib(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "katib", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def write(tmp_path: Path, doc, name="exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return path


def test_validate_ok_prints_dry_run_and_defaults(tmp_path):
    path = write(tmp_path, experiment())
    result = katib("validate", str(path))
    assert result.returncode == 0 and "experiment.kubeflow.org/demo validated" in result.stdout
    defaulted = yaml.safe_load(katib("validate", str(path), "-o", "yaml").stdout)
    assert defaulted["spec"]["resumePolicy"] == "Never"
    assert defaulted["spec"]["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}


def test_run_of_a_file_with_two_experiments_is_invalid_input(tmp_path):
    """Exit 2, the README's code for invalid input (it was 1, a failed run's), and nothing stored."""
    path = write(tmp_path, yaml.safe_dump(experiment(name="one")) + "---\n" + yaml.safe_dump(experiment(name="two")))
    result = katib("run", str(path), "--db", str(tmp_path / "k.db"))
    assert result.returncode == 2 and "holds 2 experiments" in result.stderr, result.stderr
    assert not (tmp_path / "k.db").exists()


def test_validate_lists_every_error_without_a_traceback(tmp_path):
    doc = experiment(maxTrialCount=0, parallelTrialCount=0)
    doc["spec"]["parameters"][0]["feasibleSpace"]["min"] = "2"
    result = katib("validate", str(write(tmp_path, doc)))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for line in ("spec.maxTrialCount: must be > 0 (got 0)", "spec.parallelTrialCount: must be > 0 (got 0)",
                 "spec.parameters[0].feasibleSpace.min: must not exceed max (got 2 > 0.9)"):
        assert line in result.stderr


def test_validate_bad_yaml_and_missing_file(tmp_path):
    result = katib("validate", str(write(tmp_path, "spec: [unclosed\n")))
    assert result.returncode == 2 and "invalid YAML" in result.stderr and "Traceback" not in result.stderr
    result = katib("validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_run_get_describe_logs_delete(tmp_path):
    db = str(tmp_path / "k.db")
    path = write(tmp_path, experiment())
    result = katib("run", str(path), "--db", db, "--tick", "0.05")
    assert result.returncode == 0, result.stderr
    assert "experiment.kubeflow.org/demo created" in result.stdout
    assert "experiment demo Succeeded (ExperimentMaxTrialsReached)" in result.stdout
    assert "best trial: demo-" in result.stdout
    # each trial's line shows six significant digits, as the best beside it (x has 16 or so)
    import re

    shown = re.findall(r"Succeeded +loss=(\S+)", result.stdout)
    assert len(shown) == 4 and all(len(v.lstrip("0.")) <= 6 for v in shown), shown

    listing = katib("get", "experiments", "--db", db)
    assert "demo" in listing.stdout and "Succeeded" in listing.stdout and "ExperimentMaxTrialsReached" in listing.stdout
    items = json.loads(katib("get", "experiments", "--db", db, "-o", "json").stdout)["items"]
    assert items[0]["metadata"]["name"] == "demo" and items[0]["status"]["trialsSucceeded"] == 4

    trials = json.loads(katib("get", "trials", "demo", "--db", db, "-o", "json").stdout)["items"]
    assert len(trials) == 4 and trials[0]["kind"] == "Trial"
    assert trials[0]["metadata"]["labels"]["katib.kubeflow.org/experiment"] == "demo"
    assert trials[0]["status"]["observation"]["metrics"][0]["name"] == "loss"
    table = katib("get", "trials", "demo", "--db", db).stdout
    assert "Succeeded" in table and "loss" in table

    described = yaml.safe_load(katib("describe", "experiment", "demo", "--db", db).stdout)
    assert described["kind"] == "Experiment" and described["status"]["currentOptimalTrial"]["bestTrialName"]

    name = trials[0]["metadata"]["name"]
    value = trials[0]["spec"]["parameterAssignments"][0]["value"]
    assert katib("logs", name, "--db", db).stdout.strip() == f"loss={value}"

    again = katib("run", str(path), "--db", db)
    assert again.returncode == 0 and "already finished" in again.stdout

    deleted = katib("delete", "experiment", "demo", "--db", db)
    assert deleted.returncode == 0 and 'experiment.kubeflow.org "demo" deleted' in deleted.stdout
    gone = katib("describe", "experiment", "demo", "--db", db)
    assert gone.returncode == 1 and "experiment demo not found in any namespace" in gone.stderr


def test_failed_experiment_exits_non_zero(tmp_path):
    doc = experiment(command=["false", "${trialParameters.x}"], maxTrialCount=2, maxFailedTrialCount=1)
    result = katib("run", str(write(tmp_path, doc)), "--db", str(tmp_path / "k.db"), "--tick", "0.05")
    assert result.returncode == 1
    assert "Failed (ExperimentFailed)" in result.stdout


def test_a_warm_start_best_does_not_hide_that_every_trial_run_failed(tmp_path):
    """A warm start covers one grid point and the only trial run fails: the search found
    nothing, and every surface says so (`katib run` exited 0 with the warmStart result as its
    best; the client returned it as the optimum). One run trial that succeeds, even worse
    than the warm start, is a search that worked: the warm start is its best."""
    from katib import KatibClient
    from katib.errors import NoResultError

    warm = {"trials": [{"parameterAssignments": [{"name": "v", "value": "a"}],
                        "observation": {"metrics": [{"name": "loss", "latest": "0.3"}]}}]}
    parameters = [{"name": "v", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}}]
    db = str(tmp_path / "k.db")
    for code, rc in (("import sys; sys.exit('diverged')", 1), ("print('loss=0.9')", 0)):
        doc = experiment(name=f"warm-{rc}", maxTrialCount=2, parallelTrialCount=1, warmStart=warm,
                         algorithm={"algorithmName": "grid"}, parameters=parameters,
                         command=[sys.executable, "-c", code, "${trialParameters.v}"])
        doc["spec"]["trialTemplate"]["trialParameters"] = [{"name": "v", "reference": "v"}]
        result = katib("run", str(write(tmp_path, doc)), "--db", db, "--tick", "0.05")
        assert result.returncode == rc, result.stdout
        said = " ".join(result.stdout.split())
        assert ("best trial: warm-0-warm-1" in said) == (rc == 0), said
        assert ("no result: every trial this experiment ran ended without a result, and results given in "
                "spec.warmStart are none of its own" in said) == (rc == 1), said
        assert ("diverged" in said) == (rc == 1), said
        # The trials it ran: the warm start is given, not run, and uses none of the budget.
        assert f"trials: 1 ({'1 failed' if rc else '1 succeeded'}); 1 result(s) given in spec.warmStart" in said, said
    client = KatibClient(db=db)
    try:
        with pytest.raises(NoResultError, match="given in spec.warmStart are none of its own"):
            client.get_optimal_hyperparameters("warm-1")
        with pytest.raises(NoResultError):
            client.wait_for_experiment_condition("warm-1", timeout=5)
        assert client.get_optimal_hyperparameters("warm-0")["bestTrialName"] == "warm-0-warm-1"
    finally:
        client.close()
    listed = " ".join(katib("get", "experiment", "warm-1", "--db", db).stdout.split())
    assert "warm-1 Succeeded ExperimentSuggestionEndReached 1/2 0 1" in listed, listed  # TRIALS, SUCCEEDED, FAILED
    assert "no result: every trial this experiment ran ended without a result" in listed, listed


def test_editing_a_frozen_field_is_refused(tmp_path):
    db = str(tmp_path / "k.db")
    katib("run", str(write(tmp_path, experiment(maxTrialCount=2))), "--db", db, "--tick", "0.05")
    changed = experiment(maxTrialCount=2, algorithm={"algorithmName": "grid"},
                         parameters=[{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}}])
    result = katib("run", str(write(tmp_path, changed)), "--db", db)
    assert result.returncode == 2
    assert "spec.algorithm: cannot be changed on an existing experiment" in result.stderr
    assert "spec.parameters: cannot be changed on an existing experiment" in result.stderr


def test_help_lists_the_commands():
    result = katib("--help")
    for command in ("validate", "run", "resume", "get", "describe", "logs", "delete"):
        assert command in result.stdout


def test_examples_use_only_files_that_exist():
    from katib.spec import find_containers

    for path in (REPO / "examples").glob("*.yaml"):
        for container in find_containers(yaml.safe_load(path.read_text())["spec"]["trialTemplate"]["trialSpec"]):
            assert (path.parent / container["command"][1]).exists(), path


def test_suggestion_serve_answers_health_checks():
    import re

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    proc = subprocess.Popen([sys.executable, "-m", "katib", "suggestion", "serve", "--port", "0"],
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        port = int(re.search(r":(\d+) ", line).group(1))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="manager.v1beta1.Suggestion"), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_ui_stays_on_loopback_and_executor_names_are_checked(tmp_path):
    r = katib("ui", "--host", "0.0.0.0", "--db", str(tmp_path / "k.db"))
    assert r.returncode != 0 and "katib ui serves without authentication; listen on loopback" in r.stderr
    r = katib("run", str(REPO / "examples" / "random.yaml"), "--db", str(tmp_path / "k.db"), "--executor", "lsf")
    said = " ".join(r.stderr.replace("│", " ").split())  # a usage error, in Rich's box
    assert r.returncode == 2 and "'--executor': must be local, ray, kubernetes or slurm (got 'lsf')" in said, said


def test_a_run_where_no_trial_reports_the_objective_exits_non_zero(tmp_path):
    db = str(tmp_path / "k.db")
    code = "import sys; print('loading data'); sys.exit('no GPU found')"
    doc = experiment(command=python_command(code), maxTrialCount=3)
    del doc["spec"]["maxFailedTrialCount"]  # failures alone never end it: it runs to maxTrialCount
    result = katib("run", str(write(tmp_path, doc)), "--db", db, "--tick", "0.05")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Succeeded (ExperimentMaxTrialsReached)" in result.stdout  # Katib's conditions are kept
    assert "no trial reported the objective metric 'loss'" in result.stdout
    assert "3 of 3 trials" in result.stdout and "no GPU found" in result.stdout

    described = katib("describe", "experiment", "demo", "--db", db)
    assert "no trial reported the objective metric 'loss'" in described.stderr
    conditions = yaml.safe_load(described.stdout)["status"]["conditions"]
    ended = [c for c in conditions if c["type"] == "Succeeded"][0]
    assert ended["reason"] == "ExperimentMaxTrialsReached" and "no GPU found" in ended["message"]


def test_a_run_where_trials_print_no_metric_names_the_hint(tmp_path):
    doc = experiment(command=python_command("print('accuracy: 0.9')"), maxTrialCount=2)
    del doc["spec"]["maxFailedTrialCount"]
    result = katib("run", str(write(tmp_path, doc)), "--db", str(tmp_path / "k.db"), "--tick", "0.05")
    assert result.returncode == 1
    assert "no trial reported the objective metric 'loss'" in result.stdout
    assert "2 of 2 trials" in result.stdout and "MetricsUnavailable" in result.stdout
    # FAILED counts what maxFailedTrialCount counts: MetricsUnavailable too (it read 0)
    listed = katib("get", "experiments", "--db", str(tmp_path / "k.db"))
    header, row = listed.stdout.splitlines()[:2]
    assert row.split()[header.split().index("FAILED")] == "2", listed.stdout


def test_every_screen_shows_the_metric_strategy_value(tmp_path):
    """A trial reports loss 0.2 then 0.7: minimizing, Katib's default strategy is min, so
    0.2 is its value on every screen (the latest, 0.7, is not)."""
    db = str(tmp_path / "k.db")
    doc = experiment(command=python_command("print('loss=0.2', flush=True); print('loss=0.7')"), maxTrialCount=1,
                     parallelTrialCount=1)
    result = katib("run", str(write(tmp_path, doc)), "--db", db, "--tick", "0.05")
    assert result.returncode == 0, result.stderr
    finished = next(line for line in result.stdout.splitlines() if " Succeeded " in line)
    assert "loss=0.2" in finished and "0.7" not in finished
    assert "  loss: 0.2 (min; latest 0.7, min 0.2, max 0.7)" in result.stdout
    listing = katib("get", "experiments", "--db", db).stdout
    assert "loss=0.2" in listing and "loss=0.7" not in listing
    table = katib("get", "trials", "demo", "--db", db).stdout
    assert "0.2" in table and "0.7" not in table


def test_the_resume_hint_carries_the_flags_that_decide_where_trials_run():
    from katib.cli._run import _resume_words

    assert _resume_words("local", {"--kueue-queue": None}) == ["resume"]
    assert _resume_words("kubernetes", {"--context": "prod", "--kueue-queue": "team-a", "--grpc-port": 7000,
                                        "--slurm-partition": None}) == \
        ["resume", "--executor", "kubernetes", "--context", "prod", "--kueue-queue", "team-a", "--grpc-port", "7000"]


def test_values_and_messages_that_look_like_rich_markup_are_printed_as_they_are(tmp_path):
    # Printed as rich markup, "[/x]" raised MarkupError and `katib run` ended in a traceback;
    # through rich, ":warning:" was printed as an emoji. A message's escape sequence is
    # not passed to the terminal.
    doc = experiment(command=python_command(
        "import sys; print('loss=1'); sys.exit('bad [/] input [bold] \\x1b[31mred\\x1b[0m')"),
        maxTrialCount=1, maxFailedTrialCount=1, parallelTrialCount=1)
    doc["spec"]["parameters"].append({"name": "opt", "parameterType": "categorical",
                                      "feasibleSpace": {"list": ["[/x]:warning:"]}})
    doc["spec"]["trialTemplate"]["trialParameters"].append({"name": "opt", "reference": "opt"})
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"][-1] += \
        "  # ${trialParameters.opt}"
    result = katib("run", str(write(tmp_path, doc)), "--db", str(tmp_path / "k.db"), "--tick", "0.05")
    assert "Traceback" not in result.stderr, result.stderr
    assert "opt=[/x]:warning:" in result.stdout
    assert "bad [/] input [bold] red" in result.stdout and "\x1b" not in result.stdout
    assert result.returncode == 1  # the only trial failed


def test_a_store_that_is_not_there_or_not_a_store_is_one_line_and_a_read_creates_none(tmp_path):
    """A mistyped --db made its folders and an empty store, listed nothing and exited 0; a
    file that is not SQLite was a SQLAlchemy traceback."""
    missing = tmp_path / "no" / "such" / "k.db"
    r = katib("get", "experiments", "--db", str(missing))
    assert r.returncode == 1 and "there is no katib store there" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "no").exists()
    garbage = tmp_path / "notes.db"
    garbage.write_text("hello\n")
    for args in (("get", "experiments"), ("run", str(REPO / "examples" / "random.yaml"))):
        r = katib(*args, "--db", str(garbage))
        assert r.returncode == 1 and "not a katib store that opens (file is not a database)" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def test_a_tick_that_is_not_positive_is_refused_before_anything_runs(tmp_path):
    """--tick -1 failed after the trials were made (a traceback, the experiment left
    Stopped); --tick 0 spun a core."""
    for tick in ("-1", "0"):
        r = katib("run", str(REPO / "examples" / "random.yaml"), "--db", str(tmp_path / "k.db"), "--tick", tick)
        assert r.returncode == 2 and "--tick" in r.stderr and "0.01" in r.stderr, r.stderr
    assert not (tmp_path / "k.db").exists()


def test_a_db_manager_beyond_loopback_needs_to_be_asked_for_by_name(tmp_path):
    """``--grpc-host 0.0.0.0`` served the DBManager, with no authentication, to any host that
    reached it: every trial's metrics in the store read, reported and deleted."""
    for command in (("run", str(REPO / "examples" / "random.yaml")), ("resume", "random-example")):
        r = katib(*command, "--db", str(tmp_path / "k.db"), "--grpc-port", "0", "--grpc-host", "0.0.0.0")
        said = " ".join(r.stderr.split())
        assert r.returncode != 0 and "refusing to serve --grpc-port on 0.0.0.0 without authentication" in said, said
        assert "--allow-unauthenticated" in said
    assert not (tmp_path / "k.db").exists()


def test_a_second_run_of_a_running_experiment_is_refused_before_it_says_anything(tmp_path):
    """It printed "experiment.kubeflow.org/… resumed", then refused."""
    db = str(tmp_path / "k.db")
    path = write(tmp_path, experiment(command=python_command("import time; time.sleep(60)"), maxTrialCount=1,
                                      parallelTrialCount=1))
    first = subprocess.Popen([sys.executable, "-m", "katib", "run", str(path), "--db", db, "--tick", "0.05"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from katib.store import Store

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if Path(db).exists():
                recs = Store(db).list_experiments()
                if recs and recs[0].owner:
                    break
            time.sleep(0.1)
        for args in (("run", str(path)), ("resume", "demo")):
            r = katib(*args, "--db", db)
            assert r.returncode == 1 and r.stdout == "", (args, r.stdout, r.stderr)
            assert "is being run by another controller" in r.stderr and "`katib stop demo --db" in r.stderr
    finally:
        first.terminate()
        first.wait(30)


def test_validate_prints_several_experiments_as_kubectl_does_and_names_a_wrong_kind(tmp_path):
    """Two validated experiments were printed back to back: YAML without `---` (a duplicate
    key when read again), two JSON objects. A misspelt kind was "no Experiment found", exit 1."""
    files = [str(REPO / "examples" / "random.yaml"), str(REPO / "examples" / "grid.yaml")]
    both = write(tmp_path, katib("validate", "-o", "yaml", *files).stdout, "both.yaml")
    again = katib("validate", str(both))
    assert again.returncode == 0 and again.stdout.count("validated") == 2, again.stderr
    listed = json.loads(katib("validate", "-o", "json", *files).stdout)
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == ["random", "grid"]
    assert json.loads(katib("validate", "-o", "json", files[0]).stdout)["kind"] == "Experiment"
    typo = write(tmp_path, "apiVersion: kubeflow.org/v1beta1\nkind: Experment\nmetadata: {name: x}\n", "typo.yaml")
    r = katib("validate", str(typo))
    assert r.returncode == 2 and "kind: must be Experiment" in r.stderr and "'Experment'" in r.stderr


def test_an_edit_katib_refuses_says_the_way_forward(tmp_path):
    """A finished experiment's file, edited and run again, gave Katib's three webhook errors
    and no way on."""
    db = str(tmp_path / "k.db")
    doc = experiment(command=python_command("print('loss=0.5')"), maxTrialCount=1, parallelTrialCount=1)
    path = write(tmp_path, doc)
    assert katib("run", str(path), "--db", db, "--tick", "0.05").returncode == 0
    doc["spec"]["parameters"][0]["feasibleSpace"]["max"] = "0.95"
    r = katib("run", str(write(tmp_path, doc)), "--db", db)
    assert r.returncode == 2 and "spec.parameters: cannot be changed" in r.stderr
    assert f"`katib delete experiment demo --db {db}` and run it again, or give metadata.name a new name" in r.stderr


def test_a_busy_port_is_one_error_line_before_any_address_is_printed(tmp_path):
    """`katib ui` printed "the viewer: http://…" for a port another program held."""
    import socket

    from katib.store import Store

    Store(str(tmp_path / "k.db")).close()
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = str(held.getsockname()[1])
        r = katib("ui", "--port", port, "--db", str(tmp_path / "k.db"))
    assert r.returncode == 1 and "the viewer" not in r.stdout and f"cannot listen on 127.0.0.1:{port}" in r.stderr


def test_a_file_that_cannot_be_read_is_invalid_input(tmp_path):
    """A missing file exited 1 (a failed run), and one that is not UTF-8 printed a
    UnicodeDecodeError's traceback: both are bad input, exit 2, in one sentence."""
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00kind: Experiment")
    for path, why in ((tmp_path / "missing.yaml", "No such file or directory"), (binary, "it is not UTF-8 text")):
        for command in (["validate", str(path)], ["run", str(path), "--db", str(tmp_path / "k.db")]):
            result = katib(*command)
            assert result.returncode == 2, (command, result.stderr)
            assert f"cannot read {path}: {why}" in result.stderr and "Traceback" not in result.stderr, result.stderr
