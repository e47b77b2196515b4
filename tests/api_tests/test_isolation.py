"""Multi-tenancy that holds below the API: an editor of one namespace runs trials; what
those trials can reach of the server, the store and the other namespaces.

The attacker holds an editor token for ``ns-a`` on a live ``katib server --auth`` with the
local executor in its sandbox, and submits trials (``python -c``) that try to get out.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from katib.store import Store, UserStore


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CliServer:
    """``katib server`` as an operator starts it, in a process of its own."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = tmp_path / "katib.db"
        self.argv = [sys.executable, "-m", "katib", "server", "--port", str(self.port), "--db", str(self.db),
                     "--workdir", str(tmp_path), "--tick", "0.05", *args]
        self.env = {**os.environ, **(env or {})}
        self.cwd = tmp_path
        self.proc: subprocess.Popen[str] | None = None
        self.verify: str | bool = True  # a certificate's file, for a server started with --tls-cert

    def start(self, timeout: float = 60) -> CliServer:
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, text=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=5, verify=self.verify).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)

    def refused(self, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run it expecting it not to start."""
        return subprocess.run(self.argv, env=self.env, cwd=self.cwd, text=True, capture_output=True, timeout=timeout)

    def stop(self) -> str:
        assert self.proc is not None
        self.proc.terminate()
        try:
            _, stderr = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, stderr = self.proc.communicate()
        return stderr


def _no_bwrap_path(tmp_path: Path) -> str:
    """A PATH with what a server needs but bubblewrap."""
    folder = tmp_path / "bin-without-bwrap"
    folder.mkdir(exist_ok=True)
    for tool in ("env", "prlimit"):
        for d in ("/usr/bin", "/bin"):
            if Path(d, tool).exists() and not (folder / tool).exists():
                (folder / tool).symlink_to(Path(d, tool))
    return str(folder)


# -- the server refuses what it cannot fence in ---------------------------------------


def test_auth_with_ray_refuses_to_start_without_allow_unfenced_trials(tmp_path):
    result = CliServer(tmp_path, "--auth", "--executor", "ray").refused()
    assert result.returncode != 0
    assert "refusing to run trials under --auth" in result.stderr and "--allow-unfenced-trials" in result.stderr
    assert "Ray has no sandbox" in result.stderr and "Traceback" not in result.stderr


def test_auth_without_bubblewrap_refuses_then_starts_when_the_operator_allows_unfenced_trials(tmp_path):
    env = {"PATH": _no_bwrap_path(tmp_path)}
    result = CliServer(tmp_path, "--auth", env=env).refused()
    assert result.returncode != 0 and "bubblewrap" in result.stderr and "--allow-unfenced-trials" in result.stderr
    result = CliServer(tmp_path, "--auth", "--no-sandbox").refused()
    assert result.returncode != 0 and "--no-sandbox runs local trials unfenced" in result.stderr
    server = CliServer(tmp_path, "--auth", "--allow-unfenced-trials", env=env).start()
    stderr = server.stop()
    assert "warning" in stderr and "every editor of a namespace could run code as this server's user" in stderr


def test_without_auth_a_server_needs_no_sandbox(tmp_path):
    server = CliServer(tmp_path, env={"PATH": _no_bwrap_path(tmp_path)}).start()
    assert "warning" not in server.stop()


def test_allow_unfenced_trials_says_what_it_means():
    result = subprocess.run([sys.executable, "-m", "katib", "server", "--help"], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "300"}, timeout=60)
    assert "--allow-unfenced-trials" in result.stdout
    assert "every editor may then run code as this server's user" in " ".join(result.stdout.split())


def _user(db: Path, name: str, namespace: str, role: str = "editor") -> str:
    store = Store(str(db))
    try:
        users = UserStore(store)
        token = users.add_user(name)
        users.grant(name, namespace, role)
        return token
    finally:
        store.close()


@pytest.mark.skipif(__import__("trials._sandbox", fromlist=["problem"]).problem() is not None,
                    reason="bubblewrap cannot make a sandbox on this machine")
def test_katib_server_auth_sandboxes_local_trials_by_default(tmp_path):
    server = CliServer(tmp_path, "--auth")
    token = _user(server.db, "mallory", "ns-a")
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}, timeout=30) as client:
            log = _peek(client, [server.db])
        assert f"{server.db} refused" in log and f"{server.db} read" not in log, log
    finally:
        server.stop()


def _peek(client: httpx.Client, paths: list[Path]) -> str:
    """The log of a trial in ns-a that prints the first bytes of each of ``paths``."""
    from tests.conftest import experiment, python_command

    code = (f"for p in {[str(p) for p in paths]!r}:\n    try:\n        print(p, 'read', repr(open(p, 'rb').read()[:40]))\n"
            f"    except OSError as exc:\n        print(p, 'refused', exc.errno)\nprint('loss=1')")
    doc = experiment(name="peek", command=python_command(code), maxTrialCount=1, parallelTrialCount=1)
    assert client.post("/api/v1/namespaces/ns-a/experiments", json=doc).status_code == 201
    deadline = time.monotonic() + 60
    while client.get("/api/v1/namespaces/ns-a/experiments/peek/status").json()["phase"] != "Succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    trial = client.get("/api/v1/namespaces/ns-a/experiments/peek/trials").json()["items"][0]["metadata"]["name"]
    return client.get(f"/api/v1/namespaces/ns-a/trials/{trial}/log").text


@pytest.mark.skipif(__import__("trials._sandbox", fromlist=["problem"]).problem() is not None,
                    reason="bubblewrap cannot make a sandbox on this machine")
def test_a_trial_cannot_read_the_servers_tls_key_nor_a_home_folder(tmp_path):
    """The sandbox hid the store and the push secret, not ``--tls-key``: with the key in the
    working folder a tenant's trial printed it, and could then pose as the server to every
    client. The key alone is covered, where it is named and where its link leads (Let's
    Encrypt's live/ links into archive/); its folder, and the certificate's (the system's
    CA store), stay as they were. And a working folder that is a home folder showed trials
    its keys; the server refuses one."""
    from tests.api_tests.test_kubectl import _self_signed

    made_cert, made_key = _self_signed(tmp_path)
    (tmp_path / "certs").mkdir()
    cert = tmp_path / "certs" / "katib.pem"
    made_cert.rename(cert)
    (tmp_path / "certs" / "ca-certificates.crt").write_text("PUBLIC CA BUNDLE")
    (tmp_path / "archive" / "site").mkdir(parents=True)
    (tmp_path / "live" / "site").mkdir(parents=True)
    target = tmp_path / "archive" / "site" / "privkey1.pem"
    made_key.rename(target)
    key = tmp_path / "live" / "site" / "privkey.pem"
    key.symlink_to("../../archive/site/privkey1.pem")
    server = CliServer(tmp_path, "--auth", "--tls-cert", str(cert), "--tls-key", str(key))
    server.url, server.verify = server.url.replace("http://", "https://"), str(cert)
    token = _user(server.db, "mallory", "ns-a")
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}, timeout=30,
                          verify=str(cert)) as client:
            log = _peek(client, [key, target, tmp_path / "certs" / "ca-certificates.crt"])
        assert "PRIVATE KEY" not in log, log
        for path in (key, target):  # covered by /dev/null: nothing to read (or refused on a nodev mount)
            assert f"{path} read b''" in log or f"{path} refused" in log, log
        assert "PUBLIC CA BUNDLE" in log, log  # the certificate's folder is not emptied
    finally:
        server.stop()
    home = CliServer(tmp_path, "--auth")
    home.argv[home.argv.index("--workdir") + 1] = str(Path.home())
    refused = home.refused()
    assert refused.returncode != 0 and "trials see the server's working folder" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr


# -- a live server with tenants: ns-a's editor is the attacker --------------------------


def _fenced_factory(tmp_path: Path, hidden: list[Path]):
    from trials import LocalExecutor
    from trials._sandbox import Sandbox, problem, store_files

    if problem() is not None:
        return lambda: LocalExecutor(clean_env=True)
    sandbox = Sandbox(tmp_path / "runs", hidden=[*store_files(tmp_path / "katib.db"), *hidden])
    return lambda: LocalExecutor(clean_env=True, sandbox=sandbox)


@pytest.fixture
def tenants(sqlite_store, tmp_path):
    """A live ``--auth`` server as ``katib server --auth`` makes it (clean environment,
    sandbox, push tokens), an admin, mallory (editor of ns-a) and bob (editor of ns-b)."""
    from katib._pushtoken import PushTokens
    from tests.api_tests.conftest import LiveServer

    users = UserStore(sqlite_store)
    tokens = {"admin": users.add_user("admin", admin=True)}
    for name, namespace in (("mallory", "ns-a"), ("bob", "ns-b")):
        tokens[name] = users.add_user(name)
        users.grant(name, namespace, "editor")
    push_tokens = PushTokens.load(tmp_path / "push-secret")
    factory = _fenced_factory(tmp_path, [tmp_path / "push-secret"])
    with LiveServer(sqlite_store, tmp_path, auth=True, executor_factory=factory, push_tokens=push_tokens) as server:
        clients = {name: httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}, timeout=60)
                   for name, token in tokens.items()}
        yield server, clients, push_tokens
        for c in clients.values():
            c.close()


def _submit(client: httpx.Client, namespace: str, name: str, code: str, parallel: int = 1, **spec) -> None:
    from tests.conftest import experiment, python_command

    doc = experiment(name=name, command=python_command(code), maxTrialCount=parallel, parallelTrialCount=parallel,
                     **spec)
    r = client.post(f"/api/v1/namespaces/{namespace}/experiments", json=doc)
    assert r.status_code == 201, r.text


def _trials(client: httpx.Client, namespace: str, name: str, state: str | None = None, count: int = 1,
            timeout: float = 60) -> list[dict]:
    """The experiment's trials once ``count`` of them are in ``state`` (any state: None)."""
    deadline = time.monotonic() + timeout
    while True:
        items = client.get(f"/api/v1/namespaces/{namespace}/experiments/{name}/trials").json()["items"]
        chosen = [t for t in items if state is None or t["status"].get("phase", _phase(t)) == state]
        if len(chosen) >= count:
            return chosen
        assert time.monotonic() < deadline, items
        time.sleep(0.05)


def _phase(trial: dict) -> str:
    conditions = [c for c in trial["status"].get("conditions", []) if c.get("status") == "True"]
    return conditions[-1]["type"] if conditions else "Created"


SLEEP = "import time; time.sleep(120)"


def test_a_push_token_pushes_its_own_trials_metrics_and_nothing_else(tenants):
    server, clients, push_tokens = tenants
    _submit(clients["mallory"], "ns-a", "mine", SLEEP, parallel=2)
    _submit(clients["bob"], "ns-b", "theirs", SLEEP)
    mine = [t["metadata"]["name"] for t in _trials(clients["mallory"], "ns-a", "mine", "Running", count=2)]
    theirs = _trials(clients["bob"], "ns-b", "theirs", "Running")[0]["metadata"]["name"]
    own = push_tokens.token("ns-a", mine[0])  # what the pod of trial mine[0] would hold

    def push(namespace: str, trial: str, token: str) -> httpx.Response:
        return httpx.post(f"{server.url}/api/v1/namespaces/{namespace}/trials/{trial}/metrics", json={"loss": 0.5},
                          headers={"authorization": f"Bearer {token}"}, timeout=30)

    assert push("ns-a", mine[0], own).status_code == 202
    assert push("ns-a", mine[1], own).status_code == 403  # another trial of the same experiment
    assert push("ns-b", theirs, own).status_code == 403  # another namespace's
    assert push("ns-b", theirs, push_tokens.token("ns-b", mine[0])).status_code == 403  # the name, elsewhere
    forged = __import__("katib._pushtoken", fromlist=["PushTokens"]).PushTokens(b"x" * 32).token("ns-b", theirs)
    assert push("ns-b", theirs, forged).status_code == 403
    # It is no user's token: every other endpoint refuses it.
    auth = {"authorization": f"Bearer {own}"}
    for method, path in (("GET", "/api/v1/namespaces/ns-a/experiments/mine"), ("GET", "/api/v1/experiments"),
                         ("GET", f"/api/v1/namespaces/ns-a/trials/{mine[0]}/log"),
                         ("POST", "/api/v1/namespaces/ns-a/experiments/mine/stop"),
                         ("GET", "/apis/kubeflow.org/v1beta1/namespaces/ns-a/experiments")):
        r = httpx.request(method, server.url + path, headers=auth, timeout=30)
        assert r.status_code == 401, (method, path, r.status_code, r.text)
    # Only while the trial runs: a finished trial's token pushes nothing.
    _submit(clients["mallory"], "ns-a", "done", "print('loss=1')")
    _wait_phase(clients["mallory"], "ns-a", "done", "Succeeded")
    done = _trials(clients["mallory"], "ns-a", "done")[0]["metadata"]["name"]
    assert push("ns-a", done, push_tokens.token("ns-a", done)).status_code == 409


def _wait_phase(client: httpx.Client, namespace: str, name: str, phase: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.get(f"/api/v1/namespaces/{namespace}/experiments/{name}/status").json()["phase"] != phase:
        assert time.monotonic() < deadline, f"{namespace}/{name} did not reach {phase}"
        time.sleep(0.05)


def test_the_servers_own_push_token_is_no_longer_handed_out(tmp_path):
    server = CliServer(tmp_path, env={"KATIB_PUSH_TOKEN": "katib_server-own-token"}).start()
    assert "--push-token (KATIB_PUSH_TOKEN) is no longer used" in server.stop()
    secret = tmp_path / "push-secret"  # beside the runs folder, this user's only
    assert secret.exists() and secret.stat().st_mode & 0o077 == 0


# -- the attacks: each must fail ----------------------------------------------------------

needs_sandbox = pytest.mark.skipif(__import__("trials._sandbox", fromlist=["problem"]).problem() is not None,
                                   reason="bubblewrap cannot make a sandbox on this machine")

ATTACK = """
import json, os, signal, sqlite3, urllib.request
results = {{}}
def attempt(name, fn):
    try:
        results[name] = "ALLOWED " + repr(fn())[:200]
    except Exception as exc:
        results[name] = "refused " + type(exc).__name__
def post(path, token=None):
    headers = {{"Content-Type": "application/json"}}
    if token:
        headers["Authorization"] = "Bearer " + token
    request = urllib.request.Request({url!r} + path, data=b'{{"loss": 0}}', headers=headers, method="POST")
    return urllib.request.urlopen(request, timeout=10).status
mine = os.environ["KATIB_TRIAL_DIR"]
attempt("env-secret", lambda: os.environ["KATIB_TEST_ISOLATION_SECRET"])
attempt("env-aws", lambda: os.environ["AWS_SECRET_ACCESS_KEY"])
attempt("env-db-url", lambda: os.environ["KATIB_DB"])  # a PostgreSQL store's URL, password and all
attempt("server-environ", lambda: open("/proc/{server_pid}/environ", "rb").read())
attempt("read-b-log", lambda: open({b_log!r}).read())
attempt("list-b", lambda: os.listdir({b_dir!r}))
attempt("write-b", lambda: open({b_dir!r} + "/planted", "w").write("x"))
attempt("read-db", lambda: open({db!r}, "rb").read(100))
attempt("read-wal", lambda: open({db!r} + "-wal", "rb").read(100))
attempt("sqlite-admin", lambda: sqlite3.connect({db!r}).execute("update users set admin=1").rowcount)
attempt("read-push-secret", lambda: open({secret!r}).read())
attempt("read-b-configmap", lambda: open({configmaps!r} + "/ns-b/template.json").read())
attempt("list-configmaps", lambda: os.listdir({configmaps!r}) or 1 / 0)
attempt("kill-b", lambda: os.kill({b_pid}, signal.SIGKILL))
attempt("killpg-b", lambda: os.killpg({b_pid}, signal.SIGKILL))
attempt("push-b", lambda: post("/api/v1/namespaces/ns-b/trials/{b_trial}/metrics"))
attempt("push-b-forged", lambda: post("/api/v1/namespaces/ns-b/trials/{b_trial}/metrics", "katib-push.AAAA"))
attempt("link-log", lambda: (os.symlink({b_log!r}, mine + "/l"), os.replace(mine + "/l", mine + "/trial.log")))
attempt("link-push", lambda: (os.symlink({b_log!r}, mine + "/m"), os.replace(mine + "/m", mine + "/push.jsonl")))
def state_folder():  # whatever the server keeps there, now or later, shows as nothing
    found = []
    for root, dirs, files in os.walk({state!r}):
        dirs[:] = [d for d in dirs if os.path.join(root, d) != mine]
        found += [os.path.join(root, f) for f in files if os.path.getsize(os.path.join(root, f))]
    if found:
        return found
    raise PermissionError("every file there is empty")
attempt("state-folder", state_folder)
# Seen, never signalled: should the fence ever fail, this test must not kill the machine.
results["visible"] = "refused" if not [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, os.getpid())] else "ALLOWED"
print("RESULTS " + json.dumps(results))
print("loss=1")
"""


@needs_sandbox
def test_an_editors_trials_cannot_reach_the_server_the_store_or_another_namespace(tenants, tmp_path, monkeypatch):
    server, clients, _ = tenants
    monkeypatch.setenv("KATIB_TEST_ISOLATION_SECRET", "server-secret-value")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    monkeypatch.setenv("KATIB_DB", "postgresql://katib:store-password@127.0.0.1:5432/katib")
    # bob's long trial in ns-b: a secret in its log, then it runs on.
    _submit(clients["bob"], "ns-b", "victim", "print('bob-secret-1234', flush=True); import time; time.sleep(300)")
    b_trial = _trials(clients["bob"], "ns-b", "victim", "Running")[0]["metadata"]["name"]
    b_dir = tmp_path / "runs" / "ns-b" / "victim" / b_trial
    deadline = time.monotonic() + 60
    while "bob-secret-1234" not in clients["bob"].get(f"/api/v1/namespaces/ns-b/trials/{b_trial}/log").text:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    b_pid = int((b_dir / "pid").read_text().split()[0])
    configmaps = tmp_path / "configmaps"  # the server's ConfigMaps, beside the runs folder, in the working folder
    (configmaps / "ns-b").mkdir(parents=True, exist_ok=True)
    (configmaps / "ns-b" / "template.json").write_text('{"data": {"token": "bob-configmap-secret"}}')
    code = ATTACK.format(configmaps=str(configmaps), state=str(tmp_path), url=server.url, server_pid=os.getpid(), b_log=str(b_dir / "trial.log"), b_dir=str(b_dir),
                         db=str(tmp_path / "katib.db"), secret=str(tmp_path / "push-secret"), b_pid=b_pid,
                         b_trial=b_trial)
    _submit(clients["mallory"], "ns-a", "attack", code)
    _wait_phase(clients["mallory"], "ns-a", "attack", "Succeeded")
    a_trial = _trials(clients["mallory"], "ns-a", "attack")[0]["metadata"]["name"]
    log = clients["mallory"].get(f"/api/v1/namespaces/ns-a/trials/{a_trial}/log").text
    assert "RESULTS " in log, f"the log served as the trial's is not its output (a link?): {log[:300]!r}"
    results = __import__("json").loads(log.split("RESULTS ", 1)[1].splitlines()[0])
    assert {"env-secret", "read-b-log", "read-db", "sqlite-admin", "kill-b", "push-b", "link-log", "visible",
            "read-b-configmap", "env-db-url", "state-folder"} <= set(results)
    allowed = {k: v for k, v in results.items() if not v.startswith("refused")}
    assert not allowed, allowed
    # Nothing leaked through the server either: its log is its own, the store unchanged.
    assert "bob-secret-1234" not in log and "server-secret-value" not in log
    assert not (b_dir / "planted").exists() and not (tmp_path / "runs" / "ns-a" / "attack" / a_trial / "trial.log").is_symlink()
    assert clients["mallory"].get("/api/v1/namespaces/ns-b/experiments/victim").status_code == 403
    assert not UserStore(server.store).authenticate(clients["mallory"].headers["authorization"].split()[1]).admin
    assert not (b_dir / "push.jsonl").exists() or not (b_dir / "push.jsonl").read_text()
    # bob's trial runs on, untouched.
    assert _phase(clients["bob"].get(f"/api/v1/namespaces/ns-b/trials/{b_trial}").json()) == "Running"
    os.kill(b_pid, 0)
    assert "bob-secret-1234" in clients["bob"].get(f"/api/v1/namespaces/ns-b/trials/{b_trial}/log").text


@needs_sandbox
def test_memory_past_a_trials_limit_fails_that_trial_and_the_server_lives(tenants):
    server, clients, _ = tenants
    container = {"resources": {"limits": {"memory": "200Mi"}}}
    for name, code in (("hog", "b = bytearray(1 << 30)\nprint('loss=1')"), ("fits", "b = bytearray(20 << 20)\nprint('loss=1')")):
        from tests.conftest import experiment, python_command

        doc = experiment(name=name, command=python_command(code), maxTrialCount=1, parallelTrialCount=1)
        doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0].update(container)
        assert clients["mallory"].post("/api/v1/namespaces/ns-a/experiments", json=doc).status_code == 201
        _wait_phase(clients["mallory"], "ns-a", name, "Failed" if name == "hog" else "Succeeded")
    hog = _trials(clients["mallory"], "ns-a", "hog")[0]
    assert _phase(hog) == "Failed"
    assert "MemoryError" in clients["mallory"].get(f"/api/v1/namespaces/ns-a/trials/{hog['metadata']['name']}/log").text
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200


PLANT = """
import os
folder = os.path.join(os.environ['KATIB_TRIAL_DIR'], 'bin')
os.makedirs(folder)
for tool in ('env', 'prlimit', 'bwrap'):
    with open(os.path.join(folder, tool), 'w') as f:
        f.write('#!/bin/sh\\necho ESCAPED uid=$(id -u); head -c 15 {db}; echo; ls {runs}\\n')
    os.chmod(os.path.join(folder, tool), 0o755)
print('planted', folder)
print('loss=1')
"""


@needs_sandbox
def test_an_editor_cannot_run_a_program_of_theirs_outside_the_sandbox_through_the_trials_path(tenants, tmp_path):
    """Programs planted by one trial, then put first on the next trial's PATH (and a loader
    variable beside them): the sandbox's own programs come from the server's PATH."""
    server, clients, _ = tenants
    mallory = clients["mallory"]
    _submit(clients["bob"], "ns-b", "bobs", "print('loss=1')")
    _submit(mallory, "ns-a", "plant", PLANT.format(db=tmp_path / "katib.db", runs=tmp_path / "runs" / "ns-b"))
    _wait_phase(mallory, "ns-a", "plant", "Succeeded")
    planted = _trials(mallory, "ns-a", "plant")[0]["metadata"]["name"]
    log = mallory.get(f"/api/v1/namespaces/ns-a/trials/{planted}/log").text
    folder = next(line.split()[1] for line in log.splitlines() if line.startswith("planted"))
    from tests.conftest import experiment, python_command

    doc = experiment(name="escape", command=python_command("import os; print('path', os.environ['PATH']); print('loss=1')"),
                     maxTrialCount=1, parallelTrialCount=1)
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "PATH", "value": f"{folder}:/usr/bin:/bin"}, {"name": "LD_PRELOAD", "value": ""}]
    assert mallory.post("/api/v1/namespaces/ns-a/experiments", json=doc).status_code == 201
    trial = _trials(mallory, "ns-a", "escape")[0]["metadata"]["name"]
    deadline = time.monotonic() + 60
    while mallory.get("/api/v1/namespaces/ns-a/experiments/escape/status").json()["phase"] not in ("Succeeded", "Failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    log = mallory.get(f"/api/v1/namespaces/ns-a/trials/{trial}/log").text
    assert "ESCAPED" not in log and "SQLite" not in log and "bobs" not in log, log
    assert f"path {folder}:/usr/bin:/bin" in log  # inside, its PATH is its own
