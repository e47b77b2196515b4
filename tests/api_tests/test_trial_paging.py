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


KUBE = "/apis/kubeflow.org/v1beta1/namespaces/ns"
EXP = "katib.kubeflow.org/experiment"


def _seed(store, sizes):
    """Experiments of ``sizes`` trials each (``<name>-<i>``, labelled with their experiment)."""
    for name, n in sizes.items():
        rec = store.create_experiment("ns", name, {"spec": {}}, {}, "/w")
        store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name=f"{name}-{i}", state="Succeeded",
                                      assignments=[], labels={EXP: name}) for i in range(n)])


def _pages(client, url, **params):
    """Every page of a Kubernetes list, following metadata.continue: the pages' items."""
    pages, token = [], None
    while True:
        r = client.get(url, params={**params, **({"continue": token} if token else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body["items"])
        token = body["metadata"].get("continue")
        # a version a watch may start from for a whole list only (one page, no continue)
        assert (body["metadata"]["resourceVersion"] != "") == (not token and len(pages) == 1), body["metadata"]
        if not token:
            return pages
        assert len(pages) < 100, "the pages never end"


def test_namespace_wide_kube_lists_keep_to_the_page_limit(sqlite_store, tmp_path):
    """The security review's reproduction: …/trials, …/pods and …/suggestions of a
    namespace answered every trial at once, whatever the page limit and ``limit``."""
    from api import ServerLimits

    _seed(sqlite_store, {"e": 30, "f": 20})
    every = [f"e-{i}" for i in range(30)] + [f"f-{i}" for i in range(20)]
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False, limits=ServerLimits(page=5))
    with TestClient(app, base_url="http://localhost") as c:
        assert len(c.get("/api/v1/namespaces/ns/experiments/e/trials").json()["items"]) == 5
        for url in (f"{KUBE}/trials", "/api/v1/namespaces/ns/pods"):
            assert len(c.get(url, params={"limit": "5"}).json()["items"]) == 5, url
            assert len(c.get(url, params={"limit": "500"}).json()["items"]) == 5, url  # capped at the page
            # without a limit, pages of the server's page; followed, every trial once, in order
            pages = _pages(c, url)
            assert [len(p) for p in pages] == [5] * 10, url
            assert [i["metadata"]["name"] for p in pages for i in p] == every, url
            pages = _pages(c, url, limit="3")
            assert [len(p) for p in pages] == [3] * 16 + [2], url
            assert [i["metadata"]["name"] for p in pages for i in p] == every, url
            # the Katib SDK's selector: one experiment's trials only, its token kept to that selector
            pages = _pages(c, url, labelSelector=f"{EXP}=f")
            assert [i["metadata"]["name"] for p in pages for i in p] == every[30:], url
            pages = _pages(c, url, labelSelector=f"{EXP} in (f, g)", limit="7")
            assert [i["metadata"]["name"] for p in pages for i in p] == every[30:], url
        nothing = c.get(f"{KUBE}/trials", params={"labelSelector": f"{EXP}=nope"}).json()
        assert list(nothing.pop("metadata")) == ["resourceVersion"]  # whole: a list a watch may start from
        assert nothing == {"apiVersion": "kubeflow.org/v1beta1", "kind": "TrialList", "items": []}

        # A Suggestion embeds its experiment's most recent trials, at most a page of them.
        e = c.get(f"{KUBE}/suggestions/e").json()
        assert [s["name"] for s in e["status"]["suggestions"]] == [f"e-{i}" for i in range(25, 30)]
        assert e["status"]["suggestionCount"] == 30 and e["spec"]["requests"] == 30
        first = c.get(f"{KUBE}/suggestions").json()
        assert len(first["items"][0]["status"]["suggestions"]) <= 5
        # a page of Suggestions embeds at most a page of trials in all: here one Suggestion a page
        pages = _pages(c, f"{KUBE}/suggestions")
        assert [[(s["metadata"]["name"], len(s["status"]["suggestions"])) for s in p] for p in pages] == [
            [("e", 5)], [("f", 5)]]


def test_a_bad_continue_token_of_a_kube_list_is_a_400(sqlite_store, tmp_path):
    from api import ServerLimits

    _seed(sqlite_store, {"e": 4})
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False, limits=ServerLimits(page=2))
    with TestClient(app, base_url="http://localhost") as c:
        token = c.get(f"{KUBE}/trials").json()["metadata"]["continue"]
        assert c.get(f"{KUBE}/trials", params={"continue": token}).status_code == 200
        changed = token[:-1] + ("0" if token[-1] != "0" else "1")
        for url, params, why in [
            (f"{KUBE}/trials", {"continue": changed}, "checksum"),
            (f"{KUBE}/trials", {"continue": "not-a-token"}, "decode"),
            (f"{KUBE}/trials", {"continue": "%%%.abc"}, "decode"),
            ("/api/v1/namespaces/ns/pods", {"continue": token}, "another list"),  # the trials' token
            (f"{KUBE}/trials", {"continue": token, "labelSelector": f"{EXP}=e"}, "labelSelector"),
            ("/api/v1/namespaces/ns/experiments/e/trials", {"continue": token}, "continue"),
        ]:
            r = c.get(url, params=params)
            assert r.status_code == 400 and r.json()["message"].startswith("continue: "), (url, r.text)
            assert why in r.json()["message"], (why, r.text)
        # an experiment deleted between two pages is passed over: the list carries on after it
        sqlite_store.create_experiment("ns", "later", {"spec": {}}, {}, "/w")
        token = c.get(f"{KUBE}/suggestions", params={"limit": "1"}).json()["metadata"]["continue"]
        sqlite_store.delete_experiment("ns", "e")
        assert [s["metadata"]["name"] for s in c.get(f"{KUBE}/suggestions", params={"continue": token}).json()["items"]] == ["later"]
