"""Multi-tenancy: users × namespaces × operations, with no leak either way."""

from __future__ import annotations

import subprocess
import sys
import time
import types

import httpx
import pytest

from katib.store import UserStore, hash_token
from tests.api_tests.conftest import LiveServer
from tests.conftest import experiment

NAMESPACES = ("team-a", "team-b")


@pytest.fixture
def tenants(sqlite_store, tmp_path):
    users = UserStore(sqlite_store)
    tokens = {"admin": users.add_user("admin", admin=True)}
    for name, grants in {"ann": {"team-a": "owner"}, "ed": {"team-a": "editor", "team-b": "viewer"},
                         "vic": {"team-a": "viewer"}, "nobody": {}}.items():
        tokens[name] = users.add_user(name)
        for ns, role in grants.items():
            users.grant(name, ns, role)
    with LiveServer(sqlite_store, tmp_path, auth=True) as server:
        server.client.headers["authorization"] = f"Bearer {tokens['admin']}"
        admin = server.client
        for ns in NAMESPACES:
            doc = experiment(name=f"exp-{ns}", maxTrialCount=1, parallelTrialCount=1)
            assert admin.post(f"/api/v1/namespaces/{ns}/experiments", json=doc).status_code == 201
        yield server, tokens, sqlite_store


EXPECTED = {  # (user, namespace) -> (may read, may write)
    ("admin", "team-a"): (True, True), ("admin", "team-b"): (True, True),
    ("ann", "team-a"): (True, True), ("ann", "team-b"): (False, False),
    ("ed", "team-a"): (True, True), ("ed", "team-b"): (True, False),
    ("vic", "team-a"): (True, False), ("vic", "team-b"): (False, False),
    ("nobody", "team-a"): (False, False), ("nobody", "team-b"): (False, False),
}


def test_matrix_of_users_namespaces_and_operations(tenants):
    server, tokens, _ = tenants
    for (user, ns), (may_read, may_write) in EXPECTED.items():
        c = httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {tokens[user]}"}, timeout=60)
        reads = [
            c.get(f"/api/v1/namespaces/{ns}/experiments/exp-{ns}"),
            c.get(f"/api/v1/namespaces/{ns}/experiments/exp-{ns}/trials"),
            c.get(f"/apis/kubeflow.org/v1beta1/namespaces/{ns}/experiments"),
            c.get(f"/apis/kubeflow.org/v1beta1/namespaces/{ns}/trials"),
            c.get(f"/api/v1/namespaces/{ns}/pods"),
        ]
        for r in reads:
            assert r.status_code == (200 if may_read else 403), (user, ns, r.request.url, r.text)
        listed = {e["metadata"]["namespace"] for e in c.get("/api/v1/experiments").json()["items"]}
        assert (ns in listed) == may_read, (user, ns, listed)
        writes = [
            c.post(f"/api/v1/namespaces/{ns}/experiments", json=experiment(name=f"new-{user}", maxTrialCount=1, parallelTrialCount=1)),
            c.patch(f"/api/v1/namespaces/{ns}/experiments/exp-{ns}/budget", json={"maxFailedTrialCount": 1}),
            c.post(f"/api/v1/namespaces/{ns}/experiments/exp-{ns}/stop"),
        ]
        for r in writes:
            assert (r.status_code < 400) == may_write, (user, ns, r.request.method, r.request.url, r.status_code, r.text)
            if not may_write:
                assert r.status_code == 403
        if may_write:
            assert c.delete(f"/api/v1/namespaces/{ns}/experiments/new-{user}").status_code == 200


def test_trainers_public_configmap_is_served_to_every_user_and_nothing_else_there(tenants):
    """The Kubeflow SDK's OptimizerClient reads kubeflow-system/kubeflow-trainer-public for
    Trainer's version, and warned on every construction that the control plane was missing."""
    server, tokens, _ = tenants
    headers = {"authorization": f"Bearer {tokens['nobody']}"}
    r = server.client.get("/api/v1/namespaces/kubeflow-system/configmaps/kubeflow-trainer-public", headers=headers)
    assert r.status_code == 200 and r.json()["data"]["kubeflow_trainer_version"].startswith("v2."), r.text
    assert server.client.get("/api/v1/namespaces/kubeflow-system/configmaps", headers=headers).status_code == 403
    assert server.client.get("/api/v1/namespaces/kubeflow-system/configmaps/other", headers=headers).status_code == 403
    r = server.client.delete("/api/v1/namespaces/kubeflow-system/configmaps/kubeflow-trainer-public", headers=headers)
    assert r.status_code == 403
    r = server.client.delete("/api/v1/namespaces/kubeflow-system/configmaps/kubeflow-trainer-public")  # the admin's
    assert r.status_code == 404  # built in, not stored: nothing to delete (it was a 500)


def test_missing_or_bad_token_is_401_and_trial_logs_do_not_leak(tenants):
    server, tokens, _ = tenants
    r = httpx.get(server.url + "/api/v1/namespaces/team-a/experiments/exp-team-a")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in r.json()["message"]
    r = httpx.get(server.url + "/api/v1/experiments", headers={"authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["message"] == "invalid token"
    r = httpx.get(server.url + "/apis/kubeflow.org/v1beta1/namespaces/team-a/experiments")
    assert r.status_code == 401 and r.json()["kind"] == "Status" and r.json()["reason"] == "Unauthorized"
    server.wait_for("team-a", "exp-team-a")
    trial = httpx.get(server.url + "/api/v1/namespaces/team-a/experiments/exp-team-a/trials",
                      headers={"authorization": f"Bearer {tokens['ann']}"}).json()["items"][0]["metadata"]["name"]
    for path in (f"/api/v1/namespaces/team-a/trials/{trial}/log", f"/api/v1/namespaces/team-a/pods/{trial}/log",
                 f"/api/v1/namespaces/team-a/trials/{trial}/observations"):
        assert httpx.get(server.url + path, headers={"authorization": f"Bearer {tokens['vic']}"}).status_code == 200
        r = httpx.get(server.url + path, headers={"authorization": f"Bearer {tokens['nobody']}"})
        assert r.status_code == 403 and "may not read anything in namespace 'team-a'" in r.text
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_tokens_are_stored_hashed(tenants):
    _, tokens, store = tenants
    import sqlalchemy as sa

    with store._read() as conn:
        stored = [row[0] for row in conn.execute(sa.text("SELECT token_hash FROM tokens"))]
    assert tokens["ann"] not in stored and hash_token(tokens["ann"]) in stored


def test_user_commands(tmp_path):
    db = str(tmp_path / "k.db")

    def katib(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "katib", *args, "--db", db], capture_output=True, text=True)

    token = katib("user", "add", "carol").stdout.strip()
    assert token.startswith("katib_")
    assert katib("user", "grant", "carol", "team-a", "editor").stdout.strip() == "carol is editor in team-a"
    r = katib("user", "grant", "carol", "team-a", "king")
    assert r.returncode == 2 and "role: must be one of viewer, editor, owner (got 'king')" in r.stderr
    assert katib("user", "add", "carol").stderr.strip().endswith("user 'carol' already exists")
    assert katib("user", "token", "carol").stdout.strip() != token
    assert "carol  team-a: editor" in katib("user", "list").stdout
    r = subprocess.run([sys.executable, "-m", "katib", "server", "--host", "0.0.0.0", "--db", db],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "refusing to listen on 0.0.0.0 without authentication" in r.stderr


def test_revoked_expired_and_removed_tokens_are_refused_on_the_next_request(sqlite_store, tmp_path, monkeypatch):
    from katib.store import _users

    now = [time.time()]
    monkeypatch.setattr(_users, "time", types.SimpleNamespace(time=lambda: now[0]))
    users = UserStore(sqlite_store)
    kept = users.add_user("ann")
    revoked, info = users.issue_token("ann")
    expiring = users.new_token("ann", expires_in=3600)
    removed = users.add_user("bob")
    with LiveServer(sqlite_store, tmp_path, auth=True) as server:
        # One keep-alive connection per token: nothing is remembered between requests.
        clients = {t: httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {t}"}, timeout=60)
                   for t in (kept, revoked, expiring, removed)}

        def status(token: str) -> int:
            return clients[token].get("/api/v1/experiments").status_code

        assert [status(t) for t in clients] == [200, 200, 200, 200]
        users.revoke_token("ann", info.id)
        assert status(revoked) == 401
        now[0] += 3600
        assert status(expiring) == 401
        users.remove_user("bob")
        r = clients[removed].get("/api/v1/experiments")
        assert r.status_code == 401 and r.json()["message"] == "invalid token"
        assert status(kept) == 200
        for c in clients.values():
            c.close()
