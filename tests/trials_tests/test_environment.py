"""What a trial inherits of the environment of the katib that starts it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from katib.controller import Controller, admit
from tests.conftest import experiment, python_command
from trials import LocalExecutor, TrialJob
from trials._members import trial_env

SECRET = "KATIB_TEST_SERVER_SECRET"
# The trial prints what it sees; "loss=1" keeps the experiment a success.
SHOW_ENV = ("import os; print('loss=1'); print('secret=' + os.environ.get('" + SECRET + "', 'absent')); "
            "print('home=' + os.environ.get('HOME', '')); print('lang=' + os.environ.get('LC_ALL', ''))")


def _job(tmp_path: Path) -> TrialJob:
    return TrialJob(name="t-1", experiment="e", namespace="default", run_spec={}, primary_container="main",
                    workdir=tmp_path, trial_dir=tmp_path / "runs" / "t-1",
                    env={"KATIB_TRIAL_NAME": "t-1", "KATIB_PUSH_FILE": str(tmp_path / "runs" / "t-1" / "push.jsonl")})


def test_clean_env_keeps_path_locale_and_katib_variables_only(tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET, "s3cr3t")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("TZ", "Europe/Paris")
    job = _job(tmp_path)
    container = {"name": "main", "env": [{"name": "LR", "value": "0.1"}]}
    env = trial_env(job, container, clean=True)
    assert SECRET not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["LANG"] == env["LC_ALL"] == "C.UTF-8" and env["TZ"] == "Europe/Paris"
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert env["HOME"] == str(job.trial_dir)
    assert env["LR"] == "0.1" and env["KATIB_TRIAL_NAME"] == "t-1"
    assert set(env) <= {"PATH", "LANG", "LC_ALL", "TZ", "HOME", "LR", "PYTHONUNBUFFERED", *job.env}
    # katib run, one user on their own machine: the whole environment, as before.
    assert trial_env(job, container)[SECRET] == "s3cr3t"


def _log(store, rec) -> str:
    t = store.list_trials(rec.id)[0]
    return (Path(rec.workdir) / "runs" / rec.namespace / rec.name / t.name / "trial.log").read_text()


def test_local_executor_with_clean_env_hides_this_process_environment(store, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET, "s3cr3t")
    doc = experiment(command=python_command(SHOW_ENV), maxTrialCount=1, parallelTrialCount=1)
    for clean, seen in ((True, "secret=absent"), (False, "secret=s3cr3t")):
        doc["metadata"]["name"] = f"clean-{str(clean).lower()}"
        ctl = Controller(store, LocalExecutor(clean_env=clean), runs_root=tmp_path / "runs", tick=0.05)
        rec, _ = ctl.submit(admit(doc), tmp_path)
        ctl.run(rec.namespace, rec.name)
        log = _log(store, rec)
        assert seen in log, log
        if clean:
            assert f"home={tmp_path / 'runs'}" in log


def _katib(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "katib", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_katib_run_inherits_the_shell_and_clean_env_does_not(tmp_path):
    env = {**os.environ, SECRET: "s3cr3t"}
    doc = experiment(command=python_command(SHOW_ENV), maxTrialCount=1, parallelTrialCount=1)
    for flag, seen in (((), "secret=s3cr3t"), (("--clean-env",), "secret=absent")):
        doc["metadata"]["name"] = "with-clean" if flag else "without"
        path = tmp_path / f"{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        db = str(tmp_path / "k.db")
        result = _katib("run", str(path), "--db", db, "--tick", "0.05", *flag, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        listed = _katib("get", "trials", doc["metadata"]["name"], "--db", db, "-o", "json", env=env, cwd=tmp_path)
        trial = json.loads(listed.stdout)["items"][0]["metadata"]["name"]
        assert seen in _katib("logs", trial, "--db", db, env=env, cwd=tmp_path).stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_katib_server_trials_never_see_the_server_environment(tmp_path):
    port = _free_port()
    env = {**os.environ, SECRET: "s3cr3t", "KATIB_PUSH_TOKEN": "server-token"}
    server = subprocess.Popen([sys.executable, "-m", "katib", "server", "--port", str(port), "--db", str(tmp_path / "k.db"),
                               "--workdir", str(tmp_path), "--tick", "0.05"],
                              env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
            time.sleep(0.1)
        code = SHOW_ENV + "; print('token=' + os.environ.get('KATIB_PUSH_TOKEN', 'absent'))"
        doc = experiment(name="env", command=python_command(code), maxTrialCount=1, parallelTrialCount=1)
        assert client.post("/api/v1/namespaces/default/experiments", json=doc).status_code == 201
        while client.get("/api/v1/namespaces/default/experiments/env/status").json()["phase"] != "Succeeded":
            assert time.monotonic() < deadline, "the experiment did not finish"
            time.sleep(0.1)
        trial = client.get("/api/v1/namespaces/default/experiments/env/trials").json()["items"][0]["metadata"]["name"]
        log = client.get(f"/api/v1/namespaces/default/trials/{trial}/log").text
        assert "secret=absent" in log and "token=absent" in log, log
    finally:
        server.terminate()
        server.wait(30)
