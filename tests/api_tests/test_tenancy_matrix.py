"""The tenancy matrix: every route of the API (found in the app itself, so a new route is in
the matrix or this test fails) × every kind of caller × both namespaces, on a live
``--auth`` server. Each request is sent straight, crossed (where the caller has a role:
its namespace with the other namespace's experiment, trial or ConfigMap) and, for reads,
as HEAD; the event stream
is read by every caller while both namespaces run. The rules:

- no leak: an answer never holds what marks a namespace the caller may not read (its
  experiments', trials' names, a secret its trials print) unless the caller sent it;
- no escalation: what the caller may not do is 401 or 403, a crossed name is 404 (or 403),
  and afterwards every namespace is as its owners left it;
- no 5xx, ever.

``pytest -s`` prints the figures (docs/security.md quotes them).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from katib.store import UserStore
from tests.api_tests.conftest import LiveServer
from tests.conftest import experiment, python_command

NAMESPACES = ("ns-a", "ns-b")
OTHER = {"ns-a": "ns-b", "ns-b": "ns-a"}
GRANTS: dict[str, dict[str, str]] = {  # the four users: what each may do where
    "admin": {"ns-a": "editor", "ns-b": "editor"},  # (an admin: everything everywhere)
    "ed": {"ns-a": "editor", "ns-b": "viewer"},
    "vic": {"ns-a": "viewer"},
    "nobody": {},
}
CALLERS = (*GRANTS, "anonymous", "push-token")  # and no token at all, and a trial's push token
PUBLIC, GLOBAL, READ, WRITE, PUSH, STREAM = "public", "global", "read", "write", "push", "stream"
REFUSED = "refused"  # a list across namespaces: 422 for anyone with a token (kubectl get -A)
MISSING = "missing"  # a read of what is not there: 404 for a reader, 403 for anyone else
WRITE_NONE = "write-none"  # a write that finds nothing of its kind there: 404 for an editor, 403 for anyone else
WRITE_REFUSED = "write-refused"  # a write whose body that URL refuses: 422 for an editor, 403 for anyone else

# Every route: (its kind, the body of a request, whose experiment a write acts on).
# A write acts on "scratch" (made by that caller's create), "kscratch" (the Kubernetes
# create's) or "cscratch" (its ConfigMap), so allowed writes never touch the namespaces'
# own experiments and ConfigMaps.
MATRIX: dict[str, tuple[str, Any, str | None]] = {
    "GET /": (PUBLIC, None, None),
    "GET /ui": (PUBLIC, None, None),
    "GET /healthz": (PUBLIC, None, None),
    "GET /openapi.json": (PUBLIC, None, None),
    "GET /metrics": (GLOBAL, None, None),
    "GET /api/v1/experiments": (GLOBAL, None, None),
    "GET /api/v1/events": (STREAM, None, None),
    "POST /api/v1/namespaces/{namespace}/experiments": (WRITE, "create", "scratch"),
    "GET /api/v1/namespaces/{namespace}/experiments/{name}": (READ, None, None),
    "GET /api/v1/namespaces/{namespace}/experiments/{name}/status": (READ, None, None),
    "GET /api/v1/namespaces/{namespace}/experiments/{name}/trials": (READ, None, None),
    "GET /api/v1/namespaces/{namespace}/experiments/{name}/summary": (READ, None, None),
    "GET /api/v1/namespaces/{namespace}/experiments/{name}/importance": (READ, None, None),
    "GET /api/v1/namespaces/{namespace}/experiments/{name}/yaml": (READ, None, None),
    "POST /api/v1/namespaces/{namespace}/experiments/{name}/stop": (WRITE, None, "scratch"),
    "POST /api/v1/namespaces/{namespace}/experiments/{name}/resume": (WRITE, None, "scratch"),
    "PATCH /api/v1/namespaces/{namespace}/experiments/{name}/budget": (WRITE, {"maxFailedTrialCount": 1}, "scratch"),
    "POST /api/v1/namespaces/{namespace}/experiments/{name}/ask": (WRITE, None, "scratch"),
    "POST /api/v1/namespaces/{namespace}/experiments/{name}/tell": (WRITE, "tell", "scratch"),
    "DELETE /api/v1/namespaces/{namespace}/experiments/{name}": (WRITE, None, "scratch"),
    "GET /api/v1/namespaces/{namespace}/trials/{trial}": (READ, None, None),
    "GET /api/v1/namespaces/{namespace}/trials/{trial}/observations": (READ, None, None),
    "GET /api/v1/namespaces/{namespace}/trials/{trial}/log": (READ, None, None),
    "POST /api/v1/namespaces/{namespace}/trials/{trial}/metrics": (PUSH, {"loss": 0.5}, None),
    "GET /api/v1/namespaces/{namespace}/trials/{trial}/yaml": (READ, None, None),
    "POST /api/v1/namespaces/{namespace}/trials/{trial}/stop": (WRITE, None, None),
    "POST /api/v1/namespaces/{namespace}/trials/{trial}/retry": (WRITE, None, None),
    "GET /api/v1/namespaces/{namespace}/experiments/{name}/note": (READ, None, None),
    "PUT /api/v1/namespaces/{namespace}/experiments/{name}/note": (WRITE, {"text": "a note"}, "scratch"),
    "GET /api/v1/namespaces/{namespace}/trials/{trial}/note": (READ, None, None),
    "PUT /api/v1/namespaces/{namespace}/trials/{trial}/note": (WRITE, {"text": "a note"}, None),
    "GET /api/v1/namespaces/{namespace}/pods": (READ, None, None),
    "GET /api/v1/namespaces/{namespace}/pods/{name}/log": (READ, None, None),
    "POST /apis/kubeflow.org/v1beta1/namespaces/{namespace}/experiments": (WRITE, "create", "kscratch"),
    "GET /apis/kubeflow.org/v1beta1/namespaces/{namespace}/experiments": (READ, None, None),
    "GET /apis/kubeflow.org/v1beta1/namespaces/{namespace}/experiments/{name}": (READ, None, None),
    "PATCH /apis/kubeflow.org/v1beta1/namespaces/{namespace}/experiments/{name}":
        (WRITE, {"spec": {"maxFailedTrialCount": 2}}, "kscratch"),
    "DELETE /apis/kubeflow.org/v1beta1/namespaces/{namespace}/experiments/{name}": (WRITE, None, "kscratch"),
    "GET /apis/kubeflow.org/v1beta1/namespaces/{namespace}/trials": (READ, None, None),
    "GET /apis/kubeflow.org/v1beta1/namespaces/{namespace}/trials/{name}": (READ, None, None),
    "GET /apis/kubeflow.org/v1beta1/namespaces/{namespace}/suggestions": (READ, None, None),
    "GET /apis/kubeflow.org/v1beta1/namespaces/{namespace}/suggestions/{name}": (READ, None, None),
    "POST /api/v1/namespaces/{namespace}/configmaps": (WRITE, "configmap", "cscratch"),
    "GET /api/v1/namespaces/{namespace}/configmaps": (READ, None, None),
    "GET /api/v1/namespaces/{namespace}/configmaps/{configmap}": (READ, None, None),
    "DELETE /api/v1/namespaces/{namespace}/configmaps/{configmap}": (WRITE, None, "cscratch"),
    # Kubeflow Trainer's API (issue 13): cluster runtimes are everyone's (read-only); the
    # namespace has no TrainingRuntime and no TrainJob trial: a reader gets 404, others 403.
    "GET /apis/trainer.kubeflow.org/v1alpha1/clustertrainingruntimes": (GLOBAL, None, None),
    "GET /apis/trainer.kubeflow.org/v1alpha1/clustertrainingruntimes/{runtime}": (GLOBAL, None, None),
    "GET /apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/trainingruntimes": (READ, None, None),
    "GET /apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/trainingruntimes/{runtime}": (MISSING, None, None),
    "GET /apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/trainjobs": (READ, None, None),
    "GET /apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/trainjobs/{trial}": (MISSING, None, None),
    "GET /api/v1/namespaces/{namespace}/events": (READ, None, None),
    "GET /apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/optimizationjobs": (READ, None, None),
    "GET /apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/optimizationjobs/{name}": (MISSING, None, None),
    # An Experiment at the OptimizationJob's URL is refused; the namespace's experiment is no OptimizationJob.
    "POST /apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/optimizationjobs":
        (WRITE_REFUSED, experiment(name="not-an-optimization-job"), None),
    "DELETE /apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/optimizationjobs/{name}": (WRITE_NONE, None, None),
    # What Katib's e2e scripts read: the namespace (and a patch that leaves it as it is), and a
    # FromVolume experiment's suggestion volume (none here: a reader gets 404, others 403).
    "GET /api/v1/namespaces/{namespace}": (READ, None, None),
    "PATCH /api/v1/namespaces/{namespace}":
        (WRITE, {"metadata": {"labels": {"katib.kubeflow.org/metrics-collector-injection": "enabled"}}}, None),
    "GET /api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}": (MISSING, None, None),
    # kubectl's discovery (everyone's, as the server's routes are), a trial's pod, and the
    # lists across namespaces it refuses.
    "GET /version": (GLOBAL, None, None),
    "GET /api": (GLOBAL, None, None),
    "GET /api/v1": (GLOBAL, None, None),
    "GET /apis": (GLOBAL, None, None),
    "GET /apis/{group}": (GLOBAL, None, None),
    "GET /apis/{group}/{version}": (GLOBAL, None, None),
    "GET /openapi/v2": (GLOBAL, None, None),
    "GET /openapi/v3": (GLOBAL, None, None),
    "GET /openapi/v3/apis/kubeflow.org/v1beta1": (GLOBAL, None, None),
    "GET /api/v1/namespaces/{namespace}/pods/{name}": (READ, None, None),
    "GET /apis/{group}/{version}/{resource}": (REFUSED, None, None),
    "GET /api/v1/pods": (REFUSED, None, None),
    "GET /api/v1/namespaces": (GLOBAL, None, None),  # those the caller may read: test_kubectl
}
SCRATCH = {"scratch": "s", "kscratch": "k", "cscratch": "c"}  # the name prefix of what each caller's creates make


def app_routes(app: Any) -> set[str]:
    """``METHOD path`` of every route the app serves (HEAD aside: it is the GET), mounts as GET."""
    found: set[str] = set()

    def walk(routes: Any, prefix: str) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)
            if included is not None:  # FastAPI's included router
                walk(included.routes, prefix + getattr(getattr(route, "include_context", None), "prefix", ""))
            elif getattr(route, "methods", None):
                found.update(f"{m} {prefix}{route.path}" for m in route.methods if m != "HEAD")
            elif hasattr(route, "routes") or hasattr(route, "app"):  # a mount (static files)
                found.add(f"GET {prefix}{route.path}")
            else:
                raise AssertionError(f"a route the matrix cannot read: {route!r}")

    walk(app.routes, "")
    return found


def _role(caller: str, namespace: str) -> str | None:
    return GRANTS.get(caller, {}).get(namespace)


@dataclass
class Tally:
    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)


@pytest.fixture
def world(sqlite_store, tmp_path):
    """A live --auth server; each namespace has an experiment of two finished trials that
    print a secret of that namespace, and a trial still running."""
    from katib._pushtoken import PushTokens

    users = UserStore(sqlite_store)
    tokens: dict[str, str] = {}
    for name, grants in GRANTS.items():
        tokens[name] = users.add_user(name, admin=name == "admin")
        for namespace, role in grants.items():
            users.grant(name, namespace, role)
    push_tokens = PushTokens.load(tmp_path / "push-secret")
    with LiveServer(sqlite_store, tmp_path, auth=True, push_tokens=push_tokens) as server:
        server.client.headers["authorization"] = f"Bearer {tokens['admin']}"
        admin = server.client
        marks: dict[str, set[str]] = {}
        names: dict[str, dict[str, str]] = {}
        for ns in NAMESPACES:
            secret = f"secret-of-{ns}-{tmp_path.name[-6:]}"
            code = f"print({secret!r}); print('loss=${{trialParameters.x}}')"
            doc = experiment(name=f"exp-{ns}", command=python_command(code), maxTrialCount=2, parallelTrialCount=2)
            assert admin.post(f"/api/v1/namespaces/{ns}/experiments", json=doc).status_code == 201
            run = experiment(name=f"run-{ns}", command=python_command("import time; time.sleep(120)"),
                             maxTrialCount=1, parallelTrialCount=1)
            assert admin.post(f"/api/v1/namespaces/{ns}/experiments", json=run).status_code == 201
        for ns in NAMESPACES:
            server.wait_for(ns, f"exp-{ns}")
            trials = [t["metadata"]["name"] for t in admin.get(f"/api/v1/namespaces/{ns}/experiments/exp-{ns}/trials").json()["items"]]
            names[ns] = {"experiment": f"exp-{ns}", "trial": trials[0]}
            cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{ns}"},
                  "data": {"template": f"cm-secret-of-{ns}"}}
            assert admin.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm).status_code == 201
            names[ns]["configmap"] = f"cm-{ns}"
            # Notes (the matrix's own note writes go to scratch experiments and the first trial).
            for path in (f"experiments/exp-{ns}", f"trials/{trials[1]}"):
                note = {"text": f"note-secret-of-{ns}"}
                assert admin.put(f"/api/v1/namespaces/{ns}/{path}/note", json=note).status_code == 200
            marks[ns] = {f"exp-{ns}", f"run-{ns}", *trials, f"secret-of-{ns}-{tmp_path.name[-6:]}", f"cm-secret-of-{ns}",
                         f"note-secret-of-{ns}"}
        running = _wait_running(admin, "ns-a", "run-ns-a")
        tokens["push-token"] = push_tokens.token("ns-a", running)
        names["push"] = running  # type: ignore[assignment]
        yield server, tokens, names, marks, admin


def _wait_running(admin: httpx.Client, ns: str, name: str) -> str:
    deadline = time.monotonic() + 60
    while True:
        items = admin.get(f"/api/v1/namespaces/{ns}/experiments/{name}/trials").json()["items"]
        if items and admin.get(f"/api/v1/namespaces/{ns}/experiments/{name}/status").json()["status"].get("trialsRunning"):
            return str(items[0]["metadata"]["name"])
        assert time.monotonic() < deadline, items
        time.sleep(0.05)


def _body(spec: Any, caller: str, target: str | None, asked: dict[str, str]) -> Any:
    if spec == "configmap":
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c-{caller}"}, "data": {"k": "v"}}
    if spec == "create":
        doc = experiment(name=f"{SCRATCH[str(target)]}-{caller}", maxTrialCount=2, parallelTrialCount=1,
                         executor="external")
        del doc["spec"]["trialTemplate"]  # an outside loop's trials: nothing runs here
        return doc
    if spec == "tell":
        return {"trial": asked.get(caller, "none"), "metrics": {"loss": 0.1}}
    return spec


def _expected(kind: str, caller: str, namespace: str, crossed: bool) -> set[int] | None:
    """The statuses allowed (None: any success, or 409 for a write on a state it does not fit)."""
    if kind == PUBLIC:
        return {200}
    if caller == "anonymous":
        return {401}
    if caller == "push-token":
        return {401} if kind != PUSH else None  # decided by the trial, below
    role = _role(caller, namespace)
    if kind in (GLOBAL, STREAM):
        return {200}
    if kind == REFUSED:
        return {422}
    may = role is not None if kind in (READ, MISSING) else role == "editor"
    if not may:
        return {403}
    if kind == WRITE_REFUSED:
        return {422}
    return {404} if crossed or kind in (MISSING, WRITE_NONE) else None


def test_every_route_every_caller_both_namespaces(world, capsys):
    server, tokens, names, marks, admin = world
    routes = app_routes(server.app)
    assert routes == set(MATRIX), (f"routes with no matrix entry: {sorted(routes - set(MATRIX))}; "
                                   f"entries with no route: {sorted(set(MATRIX) - routes)}")
    before = {ns: admin.get(f"/api/v1/namespaces/{ns}/experiments/exp-{ns}").json() for ns in NAMESPACES}
    tally = Tally()
    clients = {c: httpx.Client(base_url=server.url, timeout=60,
                               headers={"authorization": f"Bearer {tokens[c]}"} if c in tokens else {})
               for c in CALLERS}
    # Writes in order: the creates first, the deletes last.
    order = sorted(MATRIX, key=lambda k: (MATRIX[k][1] != "create", k.startswith("DELETE"), k))
    for caller in CALLERS:
        asked: dict[str, str] = {}
        for ns in NAMESPACES:
            # Crossed only where the caller has a role: without one, both are the same 403.
            for crossed in (False, True) if _role(caller, ns) else (False,):
                for key in order:
                    kind, body_spec, target = MATRIX[key]
                    if kind == STREAM or (crossed and not any(p in key for p in ("{name}", "{trial}", "{configmap}"))):
                        continue
                    _one(tally, clients[caller], caller, ns, crossed, key, names, marks, body_spec, target, asked)
    own = names["push"]  # the push token on its own trial: the one thing it may do
    r = clients["push-token"].post(f"/api/v1/namespaces/ns-a/trials/{own}/metrics", json={"loss": 0.5})
    _record(tally, r, "push-token", "ns-a", False, "POST /api/v1/namespaces/{namespace}/trials/{trial}/metrics",
            marks, None, expected={202})
    stream_requests = _streams(tally, server, tokens, admin, marks)
    after = {ns: admin.get(f"/api/v1/namespaces/{ns}/experiments/exp-{ns}").json() for ns in NAMESPACES}
    for ns in NAMESPACES:
        tally.check(after[ns]["spec"] == before[ns]["spec"], f"{ns}'s experiment was changed: {after[ns]['spec']}")
        listed = {e["metadata"]["name"] for e in admin.get("/api/v1/experiments", params={"namespace": ns}).json()["items"]}
        strays = listed - {f"exp-{ns}", f"run-{ns}"}
        tally.check(not strays, f"{ns} holds experiments made by callers who may not: {sorted(strays)}")
        maps = [c["metadata"]["name"] for c in admin.get(f"/api/v1/namespaces/{ns}/configmaps").json()["items"]]
        tally.check(maps == [f"cm-{ns}"], f"{ns}'s ConfigMaps were changed: {maps}")
    users = UserStore(server.store)
    tally.check([u.name for u in users.list_users() if u.admin] == ["admin"], "someone became an admin")
    for c in clients.values():
        c.close()
    with capsys.disabled():
        print(f"\ntenancy matrix: {len(routes)} routes × {len(CALLERS)} callers ({len(GRANTS)} users, no token, "
              f"a push token) × {len(NAMESPACES)} namespaces: {tally.requests} requests "
              f"({stream_requests} event streams), statuses {dict(sorted(tally.by_status.items()))}, "
              f"{len(tally.failures)} failures")
    assert not tally.failures, "\n".join(tally.failures[:40])


def _one(tally: Tally, client: httpx.Client, caller: str, ns: str, crossed: bool, key: str, names: dict,
         marks: dict, body_spec: Any, target: str | None, asked: dict[str, str]) -> None:
    method, template = key.split(" ", 1)
    kind = MATRIX[key][0]
    role = _role(caller, ns)
    source = OTHER[ns] if crossed else ns
    name, configmap = names[source]["experiment"], names[source]["configmap"]
    if kind == WRITE and role == "editor" and not crossed and target:
        name = configmap = f"{SCRATCH[target]}-{caller}"
    trial = names[source]["trial"]
    path = (template.replace("{namespace}", ns).replace("{trial}", trial).replace("{configmap}", configmap)
            .replace("{runtime}", "torch-distributed").replace("{group}", "kubeflow.org").replace("{version}", "v1beta1")
            .replace("{resource}", "trials"))
    if "/trials/{name}" in path or "/pods/{name}" in path:
        path = path.replace("{name}", trial)
    path = path.replace("{name}", name)
    if key == "GET /ui":
        path = "/ui/app.js"
    body = _body(body_spec, caller, target, asked)
    r = client.request(method, path, json=body if body is not None else None,
                       params={"count": 1} if key.endswith("/ask") else None)
    _record(tally, r, caller, ns, crossed, key, marks, body)
    if key.endswith("/ask") and r.status_code == 200 and r.json().get("trials"):
        asked[caller] = r.json()["trials"][0]["name"]
    if method == "GET" and kind != PUBLIC and not crossed:
        head = client.head(path)
        tally.requests += 1
        tally.check(head.status_code == r.status_code and not head.content,
                    f"HEAD {path} as {caller}: {head.status_code} (GET: {r.status_code}), body {head.content[:80]!r}")


def _record(tally: Tally, r: httpx.Response, caller: str, ns: str, crossed: bool, key: str, marks: dict,
            body: Any, expected: set[int] | None = None) -> None:
    tally.requests += 1
    tally.by_status[r.status_code] = tally.by_status.get(r.status_code, 0) + 1
    kind = MATRIX[key][0]
    what = f"{r.request.method} {r.request.url.path} as {caller} ({'crossed' if crossed else 'straight'})"
    tally.check(r.status_code < 500, f"{what}: {r.status_code} {r.text[:200]}")
    expected = expected or _expected(kind, caller, ns, crossed)
    if caller == "push-token" and kind == PUSH and expected != {202}:
        expected = {403}  # the token is ns-a's running trial's; the path names another trial
    if expected is None:
        tally.check(r.status_code < 400 or r.status_code == 409, f"{what}: allowed, yet {r.status_code} {r.text[:200]}")
    else:
        tally.check(r.status_code in expected, f"{what}: {r.status_code}, expected {sorted(expected)}: {r.text[:200]}")
    sent = str(r.request.url) + json.dumps(body)
    readable = {n for n in NAMESPACES if caller == "admin" or _role(caller, n) is not None}
    for n in NAMESPACES:
        if n in readable:
            continue
        leaked = [m for m in marks[n] if m in r.text and m not in sent]
        tally.check(not leaked, f"{what}: leaks {n}'s {leaked}")
    if kind == READ and r.status_code == 200 and key.endswith("/log"):
        tally.check(any(m.startswith("secret-of-") and m in r.text for m in marks[ns]), f"{what}: the log is not ns's")


def _streams(tally: Tally, server: LiveServer, tokens: dict[str, str], admin: httpx.Client, marks: dict) -> int:
    """Every caller reads the event stream (all namespaces, and each one by name) while an
    experiment runs in each namespace: only readable namespaces' events arrive (a stream of
    one namespace the caller may not read is a 403)."""
    seen: dict[tuple[str, str | None], list[dict]] = {}
    started: dict[tuple[str, str | None], int] = {}
    ready = threading.Barrier(1 + len(CALLERS) * 3, timeout=60)
    opened: list[socket.socket] = []  # raw, so that closing one ends its stream at the server now

    def read(caller: str, namespace: str | None) -> None:
        events = seen.setdefault((caller, namespace), [])
        sock = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=60)
        opened.append(sock)
        auth = f"Authorization: Bearer {tokens[caller]}\r\n" if caller in tokens else ""
        query = f"?namespace={namespace}" if namespace else ""
        sock.sendall(f"GET /api/v1/events{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode())
        lines = sock.makefile("rb")
        try:
            started[(caller, namespace)] = int(lines.readline().split()[1])
            if started[(caller, namespace)] == 200:
                while lines.readline().strip() != b": connected":  # headers, a chunk's size: subscribed
                    pass
            ready.wait()
            sock.settimeout(None)
            for line in lines:  # (chunk sizes between the lines are skipped: they are no data)
                if line.startswith(b"data: "):
                    events.append(json.loads(line[6:]))
        except (OSError, ValueError, threading.BrokenBarrierError):
            pass  # closed under it: the stream is over

    threads = [threading.Thread(target=read, args=(c, n), daemon=True) for c in CALLERS for n in (None, *NAMESPACES)]
    for t in threads:
        t.start()
    ready.wait()
    for ns in NAMESPACES:
        doc = experiment(name=f"ev-{ns}", command=python_command("print('loss=1')"), maxTrialCount=1, parallelTrialCount=1)
        assert admin.post(f"/api/v1/namespaces/{ns}/experiments", json=doc).status_code == 201
    deadline = time.monotonic() + 60

    def ended(caller: str, namespace: str | None) -> set[str]:
        return {e["namespace"] for e in seen.get((caller, namespace), []) if e["type"] == "ended" and
                e["experiment"].startswith("ev-")}

    while ended("admin", None) != set(NAMESPACES) or any(
            ended(c, n) != {x for x in NAMESPACES if (n in (None, x)) and _role(c, x)}
            for c in GRANTS for n in (None, *NAMESPACES)):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    time.sleep(0.2)  # anything late would still be on its way
    for sock in opened:
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
    for ns in NAMESPACES:
        admin.delete(f"/api/v1/namespaces/{ns}/experiments/ev-{ns}")
    for (caller, namespace), status in started.items():
        tally.requests += 1
        tally.by_status[status] = tally.by_status.get(status, 0) + 1
        what = f"GET /api/v1/events?namespace={namespace} as {caller}"
        # One namespace's stream is a read of it: 403 without a role there, as its GETs are.
        readable = namespace is None or caller == "admin" or _role(caller, namespace) is not None
        tally.check(status == (401 if caller in ("anonymous", "push-token") else 200 if readable else 403), f"{what}: {status}")
        got = {e["namespace"] for e in seen[(caller, namespace)]}
        may = {x for x in NAMESPACES if (namespace in (None, x)) and (caller == "admin" or _role(caller, x))}
        if status == 200:
            tally.check(got <= may, f"{what}: events of {sorted(got - may)} leaked")
            tally.check(ended(caller, namespace) == may, f"{what}: ended events of {sorted(may)} expected, "
                                                          f"got {sorted(ended(caller, namespace))}")
    return len(started)
