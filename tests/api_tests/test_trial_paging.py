"""``GET …/trials?limit=&continue=``: keyset pages with Kubernetes-style continue tokens."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from api import create_app  # noqa: E402
from katib.store import TrialRecord  # noqa: E402

BASE = "/api/v1/namespaces/ns/experiments/e/trials"


def test_trials_page_by_continue_token_and_a_bad_token_is_a_400(sqlite_store, tmp_path):
    rec = sqlite_store.create_experiment("ns", "e", {"spec": {}}, {}, "/w")
    sqlite_store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name=f"e-{i}", state="Succeeded", assignments=[])
                             for i in range(5)])
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as client:
        names, params, tokens = [], {"limit": "2"}, []
        while True:
            r = client.get(BASE, params=params)
            assert r.status_code == 200, r.text
            names += [t["metadata"]["name"] for t in r.json()["items"]]
            token = r.json()["metadata"].get("continue")
            if not token:
                break
            tokens.append(token)
            params = {"limit": "2", "continue": token}
        assert names == [f"e-{i}" for i in range(5)] and len(tokens) == 2
        bad = client.get(BASE, params={"continue": tokens[0][:-1] + ("0" if tokens[0][-1] != "0" else "1")})
        assert bad.status_code == 400 and bad.json()["message"].startswith("continue: "), bad.text
        offset = client.get(BASE, params={"offset": "2"})
        assert offset.status_code == 400 and "continue" in offset.json()["message"]


def test_the_remote_client_follows_the_tokens(sqlite_store, tmp_path):
    from api import ServerLimits
    from katib.client._remote import _Remote
    from tests.api_tests.conftest import LiveServer

    rec = sqlite_store.create_experiment("ns", "e", {"spec": {}}, {}, "/w")
    sqlite_store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name=f"e-{i}", state="Succeeded", assignments=[])
                             for i in range(5)])
    with LiveServer(sqlite_store, tmp_path, limits=ServerLimits(page=2)) as server:
        remote = _Remote(server.url, 30)
        try:
            assert [t["metadata"]["name"] for t in remote.trials("e", "ns")] == [f"e-{i}" for i in range(5)]
        finally:
            remote.close()
