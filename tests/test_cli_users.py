"""`katib user …` as an administrator runs it: tokens with an expiry, listed, revoked; users removed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from katib.store import Store, UserStore


def katib(db: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "katib", "user", *args, "--db", str(db)],
                          capture_output=True, text=True, timeout=120)


def test_tokens_expire_are_listed_and_revoked(tmp_path):
    db = tmp_path / "k.db"
    first = katib(db, "add", "carol").stdout.strip()
    r = katib(db, "token", "carol", "--expires", "30d")
    second = r.stdout.strip()
    assert second.startswith("katib_") and r.stderr.startswith("token 2 of carol, valid until ")
    assert "valid until revoked" in katib(db, "token", "carol").stderr

    r = katib(db, "token", "carol", "--expires", "30 days")
    assert r.returncode == 2 and "error: invalid option" in r.stderr
    assert "--expires: must be a positive number followed by s, m, h or d, like 30d or 12h (got '30 days')" in r.stderr
    assert katib(db, "token", "carol", "--expires", "0h").returncode == 2

    table = katib(db, "tokens", "carol").stdout.splitlines()
    assert table[0].split() == ["ID", "AGE", "EXPIRES", "LAST", "USED"]
    assert [line.split()[0] for line in table[1:]] == ["1", "2", "3"]
    assert table[1].split()[2:] == ["never", "never"]
    assert table[2].split()[2:] == ["in", "29d", "never"]  # 30 days less the seconds this test took
    assert first not in "\n".join(table) and second not in "\n".join(table)

    assert katib(db, "revoke", "carol", "2").stdout.strip() == "token 2 of carol revoked"
    users = UserStore(Store(str(db)))
    assert users.authenticate(second) is None and users.authenticate(first) is not None
    r = katib(db, "revoke", "carol", "2")
    assert r.returncode == 1 and "user 'carol' has no token 2" in r.stderr


def test_remove_ungrant_and_names(tmp_path):
    db = tmp_path / "k.db"
    token = katib(db, "add", "dave").stdout.strip()
    katib(db, "grant", "dave", "team-a", "editor")
    katib(db, "grant", "dave", "team-b", "viewer")
    assert katib(db, "ungrant", "dave", "team-a").stdout.strip() == "dave has no role in team-a now"
    assert "dave  team-b: viewer" in katib(db, "list").stdout
    r = katib(db, "ungrant", "dave", "team-a")
    assert r.returncode == 1 and "user 'dave' has no role in namespace 'team-a'" in r.stderr

    assert katib(db, "remove", "dave").stdout.strip() == "user dave removed"
    assert "dave" not in katib(db, "list").stdout
    assert UserStore(Store(str(db))).authenticate(token) is None
    r = katib(db, "remove", "dave")
    assert r.returncode == 1 and "user 'dave' not found" in r.stderr

    r = katib(db, "add", "Dave")
    assert r.returncode == 2 and "user: must consist of lower case letters" in r.stderr
    katib(db, "add", "erin")
    r = katib(db, "grant", "erin", "../etc", "viewer")
    assert r.returncode == 2 and "namespace: must consist of lower case letters" in r.stderr


def test_a_local_resume_of_a_tenants_experiment_is_refused(tmp_path):
    """In a `katib server --auth`'s store the experiments are its tenants': `katib resume`
    here ran a tenant's trial in the operator's shell, outside the sandbox and the quota,
    seeing the store and the operator's environment (an operator's walk through the docs)."""
    import yaml

    from tests.conftest import experiment

    db = tmp_path / "k.db"
    assert katib(db, "add", "alice").returncode == 0
    doc = experiment(maxTrialCount=1, parallelTrialCount=1)
    doc["metadata"]["namespace"] = "team-a"
    from katib.controller import Controller, admit

    store = Store(str(db))
    Controller(store, runs_root=tmp_path / "runs").submit(admit(doc), tmp_path)  # as the server stores it
    store.close()
    fresh = {**doc, "metadata": {**doc["metadata"], "name": "fresh"}}
    (tmp_path / "fresh.yaml").write_text(yaml.safe_dump(fresh))  # a new one too: it would run in a tenant's name
    r = subprocess.run([sys.executable, "-m", "katib", "run", str(tmp_path / "fresh.yaml"), "--db", str(db)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "`katib --server URL run FILE`" in r.stderr, r.stderr
    for args in (["resume", "demo", "-n", "team-a"], ["run", str(tmp_path / "e.yaml")]):
        (tmp_path / "e.yaml").write_text(yaml.safe_dump(doc))
        r = subprocess.run([sys.executable, "-m", "katib", *args, "--db", str(db)], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode != 0 and "is in the store of a `katib server --auth`" in r.stderr, (args, r.stderr)
        assert "katib --server URL resume demo -n team-a" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "runs" / "team-a" / "demo").exists() or not any((tmp_path / "runs" / "team-a" / "demo").iterdir())
