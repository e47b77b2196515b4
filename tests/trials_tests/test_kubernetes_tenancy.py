"""Multi-tenancy on the Kubernetes executor: an editor of ``ns-a`` on a live ``--auth``
server submits trials that run as pods (kmock's emulator, each pod's process started as a
container runtime would: the image's and the pod's environment only, a filesystem and PID
namespace of its own, its memory limit enforced) and try to get out, and templates that
try to walk around the cluster's fence. Every attempt must fail; every manifest is checked
for what it carries and validated against the official schemas."""

from __future__ import annotations

import json
import os

import httpx
import pytest

pytest.importorskip("kmock")

from katib._pushtoken import PushTokens  # noqa: E402
from katib.store import UserStore  # noqa: E402
from tests.api_tests.conftest import LiveServer  # noqa: E402
from tests.api_tests.test_isolation import _submit, _trials, _wait_phase  # noqa: E402
from tests.conftest import experiment, python_command  # noqa: E402
from tests.trials_tests.kube_cluster import FakeCluster  # noqa: E402
from trials._kubernetes import KubernetesExecutor  # noqa: E402
from trials._manifest import manifest_errors  # noqa: E402
from trials._sandbox import problem  # noqa: E402

SERVER_ACCOUNT = "ns-a/katib-server"  # the server runs in ns-a, a tenant's namespace: the hard case
OURS = {"KATIB_TRIAL_NAME", "KATIB_NAMESPACE", "KATIB_PUSH_URL", "KATIB_API_TOKEN"}

ATTACK = """
import json, os, signal, sqlite3, urllib.request
results = {{}}
def attempt(name, fn):
    try:
        results[name] = "ALLOWED " + repr(fn())[:200]
    except Exception as exc:
        results[name] = "refused " + type(exc).__name__
def push(namespace, trial):
    request = urllib.request.Request(os.environ["KATIB_PUSH_URL"] + f"/api/v1/namespaces/{{namespace}}/trials/{{trial}}/metrics",
                                     data=b'{{"loss": 0}}', method="POST", headers={{
                                         "Content-Type": "application/json",
                                         "Authorization": "Bearer " + os.environ["KATIB_API_TOKEN"]}})
    return urllib.request.urlopen(request, timeout=10).status
attempt("env-secret", lambda: os.environ["KATIB_TEST_ISOLATION_SECRET"])
attempt("env-aws", lambda: os.environ["AWS_SECRET_ACCESS_KEY"])
attempt("env-db-url", lambda: os.environ["KATIB_DB"])
attempt("server-environ", lambda: open("/proc/{server_pid}/environ", "rb").read())
attempt("read-b-log", lambda: open({b_log!r}).read())
attempt("list-b", lambda: os.listdir({b_dir!r}))
attempt("write-b", lambda: open({b_dir!r} + "/planted", "w").write("x"))
attempt("read-db", lambda: open({db!r}, "rb").read(100))
attempt("sqlite-admin", lambda: sqlite3.connect({db!r}).execute("update users set admin=1").rowcount)
attempt("read-push-secret", lambda: open({secret!r}).read())
attempt("sa-token", lambda: open("/var/run/secrets/kubernetes.io/serviceaccount/token").read())
attempt("kill-b", lambda: os.kill({b_pid}, signal.SIGKILL))
attempt("push-b", lambda: push("ns-b", {b_trial!r}))
attempt("push-sibling", lambda: push("ns-a", os.environ["KATIB_TRIAL_NAME"] + "x"))
own = push("ns-a", os.environ["KATIB_TRIAL_NAME"])  # its own token pushes its own metrics
print("RESULTS " + json.dumps(results), "OWN", own, flush=True)
"""


@pytest.fixture(scope="module")
def _cluster(tmp_path_factory):
    c = FakeCluster(tmp_path_factory.mktemp("pod-cwd"), tmp_path_factory.mktemp("pod-logs"), containers=True)
    yield c
    c.close()


@pytest.fixture
def tenants(sqlite_store, tmp_path, _cluster, monkeypatch):
    """A live ``--auth`` server whose trials are pods (tenants fenced, the server's own
    service account known), with its secrets in its environment; mallory edits ns-a, bob ns-b."""
    monkeypatch.setenv("KATIB_TEST_ISOLATION_SECRET", "server-secret-value")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    monkeypatch.setenv("KATIB_DB", f"sqlite:///{tmp_path / 'katib.db'}")
    users = UserStore(sqlite_store)
    tokens = {}
    for name, namespace in (("mallory", "ns-a"), ("bob", "ns-b")):
        tokens[name] = users.add_user(name)
        users.grant(name, namespace, "editor")
    push_tokens = PushTokens.load(tmp_path / "push-secret")
    where: dict[str, str] = {}

    def factory() -> KubernetesExecutor:
        return KubernetesExecutor(api_client=_cluster.api, watch_timeout=5, push_url=where["url"],
                                  push_tokens=push_tokens, tenants=True, server_account=SERVER_ACCOUNT)

    with LiveServer(sqlite_store, tmp_path, auth=True, executor_factory=factory, push_tokens=push_tokens,
                    executor="kubernetes") as server:
        where["url"] = server.url
        clients = {name: httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}, timeout=60)
                   for name, token in tokens.items()}
        yield server, clients, push_tokens
        for c in clients.values():
            c.close()


def _job(cluster: FakeCluster, trial: str) -> dict:
    return next(j for j in cluster.created if j["metadata"]["name"] == trial)


@pytest.mark.skipif(problem() is not None, reason="bubblewrap cannot emulate a container's filesystem here")
def test_a_tenants_pod_reaches_nothing_of_the_server_the_store_or_another_namespace(tenants, tmp_path, _cluster):
    server, clients, push_tokens = tenants
    _submit(clients["bob"], "ns-b", "victim", "print('bob-secret-1234', flush=True); import time; time.sleep(300)")
    b_trial = _trials(clients["bob"], "ns-b", "victim", "Running")[0]["metadata"]["name"]
    b_dir = tmp_path / "runs" / "ns-b" / "victim" / b_trial
    _wait_log(clients["bob"], "ns-b", b_trial, "bob-secret-1234")
    b_pid = next(p.pid for name, p in list(_cluster.procs.items()) if name.startswith(b_trial))
    code = ATTACK.format(server_pid=os.getpid(), b_log=str(b_dir / "trial.log"), b_dir=str(b_dir),
                         db=str(tmp_path / "katib.db"), secret=str(tmp_path / "push-secret"), b_pid=b_pid, b_trial=b_trial)
    _submit(clients["mallory"], "ns-a", "attack", code)
    _wait_phase(clients["mallory"], "ns-a", "attack", "Succeeded")
    a_trial = _trials(clients["mallory"], "ns-a", "attack")[0]["metadata"]["name"]
    log = clients["mallory"].get(f"/api/v1/namespaces/ns-a/trials/{a_trial}/log").text
    assert "RESULTS " in log, log
    results = json.loads(log.split("RESULTS ", 1)[1].split(" OWN ")[0])
    assert len(results) == 14 and log.split(" OWN ")[1].split()[0] == "202", log
    allowed = {k: v for k, v in results.items() if not v.startswith("refused")}
    assert not allowed, allowed
    assert "bob-secret-1234" not in log and not (b_dir / "planted").exists()
    assert not UserStore(server.store).authenticate(clients["mallory"].headers["authorization"].split()[1]).admin
    # What the pod was given: its namespace, its own push token, nothing of the server's.
    job = _job(_cluster, a_trial)
    assert manifest_errors(job) == [] and job["metadata"]["namespace"] == "ns-a"
    pod = job["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0].get("env", [])}
    assert set(env) <= OURS and env["KATIB_API_TOKEN"] == push_tokens.token("ns-a", a_trial)
    text = json.dumps(job)  # (the command names the store's path: it is the attack)
    assert not any(s in text for s in ("server-secret-value", "aws-secret-value", "sqlite:///"))
    assert pod["automountServiceAccountToken"] is False
    assert pod.get("serviceAccountName", "default") != SERVER_ACCOUNT.split("/")[1]
    # bob's pod runs on, untouched.
    os.kill(b_pid, 0)
    assert "bob-secret-1234" in clients["bob"].get(f"/api/v1/namespaces/ns-b/trials/{b_trial}/log").text
    # Memory past the pod's limit fails that trial, nothing else.
    doc = experiment(name="hog", command=python_command("b = bytearray(1 << 30)\nprint('loss=1')"),
                     maxTrialCount=1, parallelTrialCount=1)
    _container(doc)["resources"] = {"limits": {"memory": "200Mi"}}
    assert clients["mallory"].post("/api/v1/namespaces/ns-a/experiments", json=doc).status_code == 201
    _wait_phase(clients["mallory"], "ns-a", "hog", "Failed")
    hog = _trials(clients["mallory"], "ns-a", "hog")[0]["metadata"]["name"]
    assert "MemoryError" in clients["mallory"].get(f"/api/v1/namespaces/ns-a/trials/{hog}/log").text
    assert _job(_cluster, hog)["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "200Mi"
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200


def _container(doc: dict) -> dict:
    return doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]


def _pod(doc: dict) -> dict:
    return doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]


def _wait_log(client: httpx.Client, namespace: str, trial: str, text: str) -> None:
    import time

    deadline = time.monotonic() + 60
    while text not in client.get(f"/api/v1/namespaces/{namespace}/trials/{trial}/log").text:
        assert time.monotonic() < deadline, f"{text!r} never reached the log of {namespace}/{trial}"
        time.sleep(0.05)


def _host_path(doc: dict, tmp_path) -> None:
    _pod(doc)["spec"]["volumes"] = [{"name": "host", "hostPath": {"path": str(tmp_path)}}]
    _container(doc)["volumeMounts"] = [{"name": "host", "mountPath": "/host"}]


ESCAPES = {  # name: (how the template is changed, what the refusal names)
    "hostpath": (_host_path, "spec.volumes[0].hostPath: a tenant's trial may not mount the node's files"),
    "hostpid": (lambda d, _: _pod(d)["spec"].update(hostPID=True), "spec.hostPID: a tenant's trial may not share"),
    "hostnet": (lambda d, _: _pod(d)["spec"].update(hostNetwork=True), "spec.hostNetwork"),
    "privileged": (lambda d, _: _container(d).update(securityContext={"privileged": True}),
                   "containers[0].securityContext.privileged"),
    "sysadmin": (lambda d, _: _container(d).update(securityContext={"capabilities": {"add": ["SYS_ADMIN"]}}),
                 "SYS_ADMIN is beyond what a tenant's trial may add"),
    "server-sa": (lambda d, _: _pod(d)["spec"].update(serviceAccountName="katib-server"),
                  "the server's own service account ns-a/katib-server may not be used by trial pods"),
    "other-ns": (lambda d, _: _pod(d).setdefault("metadata", {}).update(namespace="ns-b"),
                 "a trial's pods run in its experiment's namespace 'ns-a', not 'ns-b'"),
    "workflow": (lambda d, _: _workflow(d), "a Workflow's pods are made by its own controller"),
    # A decoy pod template where Argo never reads one used to let the whole Workflow through.
    "decoy": (lambda d, _: _workflow(d, decoy=True), "a Workflow's pods are made by its own controller"),
}


def _workflow(doc: dict, decoy: bool = False) -> None:
    """An Argo Workflow whose pods share the node's namespaces and disk, outside any pod
    template (``decoy``: with an innocent pod template in a field Argo ignores)."""
    doc["spec"]["trialTemplate"].update(successCondition='status.[@this].#(phase=="Succeeded")#',
                                        failureCondition='status.[@this].#(phase=="Failed")#')
    doc["spec"]["trialTemplate"]["trialSpec"] = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "spec": {"entrypoint": "main", "hostNetwork": True, "hostPID": True,
                 "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
                 "templates": [{"name": "main", "container": {
                     "image": "python:3.11", "command": _container(doc)["command"],
                     "securityContext": {"privileged": True}, "volumeMounts": [{"name": "root", "mountPath": "/host"}]}}]}}
    if decoy:
        doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["katibDecoy"] = {"spec": {"containers": [
            {"name": "main", "image": "busybox", "command": ["true"]}]}}


def test_templates_that_would_leave_the_clusters_fence_are_refused(tenants, tmp_path, _cluster):
    _, clients, _ = tenants
    code = f"print(open({str(tmp_path / 'katib.db')!r}, 'rb').read(16))\nprint('loss=1')"
    for name, (change, _) in ESCAPES.items():
        doc = experiment(name=name, command=python_command(code), maxTrialCount=1, parallelTrialCount=1)
        change(doc, tmp_path)
        assert clients["mallory"].post("/api/v1/namespaces/ns-a/experiments", json=doc).status_code == 201
    for name, (_, why) in ESCAPES.items():
        _wait_phase(clients["mallory"], "ns-a", name, "Failed")
        trial = _trials(clients["mallory"], "ns-a", name)[0]
        message = next(c["message"] for c in trial["status"]["conditions"] if c["type"] == "Failed")
        assert "would leave its fence" in message and why in message, (name, message)
        assert not any(j["metadata"]["name"] == trial["metadata"]["name"] for j in _cluster.created), name
    # A template that asks for its own account and token keeps them: it is not the server's.
    doc = experiment(name="own-sa", command=python_command("print('loss=1')"), maxTrialCount=1, parallelTrialCount=1)
    _pod(doc)["spec"].update(serviceAccountName="trainer", automountServiceAccountToken=True)
    assert clients["mallory"].post("/api/v1/namespaces/ns-a/experiments", json=doc).status_code == 201
    _wait_phase(clients["mallory"], "ns-a", "own-sa", "Succeeded")
    trial = _trials(clients["mallory"], "ns-a", "own-sa")[0]["metadata"]["name"]
    spec = _job(_cluster, trial)["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "trainer" and spec["automountServiceAccountToken"] is True


def test_the_servers_service_account_is_read_from_its_token_and_guarded_without_a_name():
    import base64

    from trials._podfence import identity_of_client, identity_of_token, problems

    def jwt(claims: dict) -> str:
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        return f"eyJhbGciOiJSUzI1NiJ9.{body}.c2ln"

    assert identity_of_token(jwt({"sub": "system:serviceaccount:kubeflow:katib-server"})) == ("kubeflow", "katib-server")
    assert identity_of_token("Bearer " + jwt({"kubernetes.io/serviceaccount/namespace": "kf",
                                              "kubernetes.io/serviceaccount/service-account.name": "k"})) == ("kf", "k")
    assert identity_of_token(jwt({"sub": "alice@example.com"})) is None and identity_of_token("opaque") is None
    client = type("C", (), {"configuration": type("Cfg", (), {
        "api_key": {"authorization": "Bearer " + jwt({"sub": "system:serviceaccount:kf:default"})},
        "refresh_api_key_hook": None})()})()
    assert identity_of_client(client) == ("kf", "default")
    job = experiment()["spec"]["trialTemplate"]["trialSpec"]
    # A pod naming no account gets its namespace's default: refused where that is the server's.
    assert "none given: the namespace's default" in " ".join(problems(job, "kf", ("kf", "default"), tenants=False))
    assert problems(job, "team-a", ("kf", "default"), tenants=False) == []  # another namespace's default is not it
    # Malformed fields are the schema check's to name: the fence neither fails on them nor trusts them.
    broken = {"spec": {"template": {"metadata": "x", "spec": {
        "containers": [{"name": "m", "securityContext": "bad", "ports": "x"}], "volumes": {"a": 1}, "hostPID": True}}}}
    assert [p.split(":")[0] for p in problems(broken, "team-a", None, tenants=True)] == ["spec.template.spec.hostPID"]
    assert KubernetesExecutor(api_client=client, validate=False, tenants=True).server_account == ("kf", "default")
    # One user's own `katib run`: its pods may run as that user's account.
    assert KubernetesExecutor(api_client=client, validate=False).server_account is None


def test_katib_server_auth_fences_pods_in(tmp_path, _cluster, monkeypatch):
    """`katib server --auth --executor kubernetes --server-service-account …`, as an operator
    starts it (in this process, its serving caught): its executor keeps the tenants' rules
    and refuses the account it was given to pods; a malformed account is refused at once."""
    import yaml
    from typer.testing import CliRunner

    import katib.cli._server as server_cli
    from katib.cli import app

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": _cluster.url}}],
        "users": [{"name": "me", "user": {"token": "not-checked"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "me"}}]}))
    served: list = []
    monkeypatch.setattr(server_cli, "_serve", lambda application, *_, **__: served.append(application))
    args = ["server", "--db", str(tmp_path / "k.db"), "--auth", "--executor", "kubernetes",
            "--kubeconfig", str(kubeconfig), "--server-service-account"]
    bad = CliRunner().invoke(app, [*args, "katib-server"])
    assert bad.exit_code != 0 and "--server-service-account: a service account is NAMESPACE/NAME" in str(bad.exception)
    result = CliRunner().invoke(app, [*args, SERVER_ACCOUNT])
    assert result.exit_code == 0 and len(served) == 1, result.output
    executor = served[0].state.katib.manager.executor_factory()
    try:
        assert executor.tenants is True and executor.server_account == ("ns-a", "katib-server")
    finally:
        executor.close()


@pytest.mark.parametrize("change, why", [
    (lambda s, c, m: s.update(securityContext={"seccompProfile": {"type": "Unconfined"}}), "seccompProfile"),
    (lambda s, c, m: c.update(securityContext={"seccompProfile": {"type": "Unconfined"}}), "seccompProfile"),
    (lambda s, c, m: c.update(securityContext={"procMount": "Unmasked"}), "procMount"),
    (lambda s, c, m: s.update(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}), "sysctls[0]"),
    (lambda s, c, m: c.update(securityContext={"appArmorProfile": {"type": "Unconfined"}}), "appArmorProfile"),
    (lambda s, c, m: m.update(annotations={"container.apparmor.security.beta.kubernetes.io/main": "unconfined"}),
     "AppArmor"),
    (lambda s, c, m: c.update(securityContext={"seLinuxOptions": {"type": "spc_t"}}), "seLinuxOptions"),
    (lambda s, c, m: s.update(securityContext={"seLinuxOptions": {"user": "system_u"}}), "seLinuxOptions"),
    (lambda s, c, m: c.update(securityContext={"windowsOptions": {"hostProcess": True}}), "hostProcess"),
])
def test_the_rest_of_pod_security_baseline_is_refused_for_tenants(change, why):
    from trials._podfence import problems

    job = experiment()["spec"]["trialTemplate"]["trialSpec"]
    template = job["spec"]["template"]
    assert problems(job, "team-a", None, tenants=True) == []
    change(template["spec"], template["spec"]["containers"][0], template.setdefault("metadata", {}))
    found = problems(job, "team-a", None, tenants=True)
    assert len(found) == 1 and why in found[0], found
    assert problems(job, "team-a", None, tenants=False) == []  # one user's own pods: their cluster's rules


def test_what_pod_security_baseline_allows_stays_allowed():
    from trials._podfence import problems

    job = experiment()["spec"]["trialTemplate"]["trialSpec"]
    template = job["spec"]["template"]
    template["spec"]["securityContext"] = {"seccompProfile": {"type": "RuntimeDefault"},
                                           "sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}],
                                           "seLinuxOptions": {"type": "container_t", "level": "s0:c1"}}
    template["spec"]["containers"][0]["securityContext"] = {"procMount": "Default",
                                                            "appArmorProfile": {"type": "RuntimeDefault"}}
    template["metadata"] = {"annotations": {"container.apparmor.security.beta.kubernetes.io/main": "localhost/p"}}
    assert problems(job, "team-a", None, tenants=True) == []
