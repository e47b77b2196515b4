"""Two lists that answered everything at once, now paged by keyset like the trials:

- ``GET …/trials/{trial}/observations``: a trial that printed ``accuracy=<i>`` 500,000 times
  made one GET answer 41 MB in 14-30 s (+450-740 MB of server memory), and the viewer's
  trial page asked again every 1.5 s. Now a page of at most the server's ``page`` values
  (``metadata.continue`` while more follow), ``?tail=`` for the last ones, and
  ``metadata.resume`` for only what was reported since.
- ``GET /api/v1/experiments`` and ``/apis/kubeflow.org/v1beta1/namespaces/{ns}/experiments``:
  150 experiments with 1 MB specs (a 9,800-value categorical list, legal) made one GET
  answer 144-151 MB (+0.6-1.35 GB). Now pages of at most ``page`` experiments and about
  ``list_bytes`` of them, at least one a page.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from api import ServerLimits, create_app  # noqa: E402
from katib.store import ObservationRow, TrialRecord  # noqa: E402

OBS = "/api/v1/namespaces/ns/trials/e-0/observations"
KUBE = "/apis/kubeflow.org/v1beta1/namespaces/ns/experiments"


def _trial_with_reports(store, n: int, start: float = 1000.0):
    rec = store.create_experiment("ns", "e", {"spec": {}}, {}, "/w")
    [t] = store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name="e-0", state="Running", assignments=[])])
    # pairs share a time stamp: the pages are ordered (and keyed) by time, then by id
    _report(store, t, [ObservationRow(start + i // 2, "accuracy" if i % 3 else "loss", str(i)) for i in range(n)])
    return rec, t


def _report(store, t, rows):
    store.save_trial(t, rows)


def _values(answer) -> list[str]:
    return [m["metric"]["value"] for m in answer["metricLogs"]]


def _walk(client, url, **params):
    """Every page of a list (following ``metadata.continue``): the pages' answers."""
    answers, token = [], None
    while True:
        r = client.get(url, params={**params, **({"continue": token} if token else {})})
        assert r.status_code == 200, r.text
        answers.append(r.json())
        token = (r.json().get("metadata") or {}).get("continue")
        if not token:
            return answers
        assert len(answers) < 100, "the pages never end"


def test_a_trials_observations_come_a_page_at_a_time(sqlite_store, tmp_path):
    _trial_with_reports(sqlite_store, 25)
    every = [str(i) for i in range(25)]
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False, limits=ServerLimits(page=10))
    with TestClient(app, base_url="http://localhost") as c:
        first = c.get(OBS).json()  # no limit: one whole page of the server's, not all 25
        assert _values(first) == every[:10] and first["metadata"]["continue"]
        pages = _walk(c, OBS)
        assert [len(p["metricLogs"]) for p in pages] == [10, 10, 5]
        assert [v for p in pages for v in _values(p)] == every
        assert first["metricLogs"][0] == {"timeStamp": "1970-01-01T00:16:40Z", "metric": {"name": "loss", "value": "0"}}
        assert [v for p in _walk(c, OBS, limit="4") for v in _values(p)] == every  # ties on time, split across pages
        assert len(c.get(OBS, params={"limit": "500"}).json()["metricLogs"]) == 10  # capped at the page
        # one metric's, its token kept to that metric
        loss = _walk(c, OBS, metric="loss", limit="3")
        assert [v for p in loss for v in _values(p)] == [str(i) for i in range(0, 25, 3)]
        token = loss[0]["metadata"]["continue"]
        for params in ({"continue": token}, {"continue": token, "metric": "accuracy"}, {"continue": token[:-1] + "x"}):
            r = c.get(OBS, params=params)
            assert r.status_code == 400 and r.json()["message"].startswith("continue: "), r.text
        # the last values, and how many came before them
        tail = c.get(OBS, params={"tail": "4"}).json()
        assert _values(tail) == every[-4:] and tail["metadata"]["earlierItemCount"] == 21
        assert "continue" not in tail["metadata"]
        assert c.get(OBS, params={"tail": "4", "continue": token}).status_code == 400


def test_resume_answers_only_what_was_reported_since(sqlite_store, tmp_path):
    """How the viewer follows a running trial: the last values once, then what is new."""
    _, t = _trial_with_reports(sqlite_store, 6)
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False, limits=ServerLimits(page=10))
    with TestClient(app, base_url="http://localhost") as c:
        tail = c.get(OBS, params={"tail": "3"}).json()
        assert _values(tail) == ["3", "4", "5"] and tail["metadata"]["earlierItemCount"] == 3
        resume = tail["metadata"]["resume"]
        nothing = c.get(OBS, params={"continue": resume}).json()
        assert nothing["metricLogs"] == [] and "continue" not in nothing["metadata"]
        _report(sqlite_store, t, [ObservationRow(1002.0, "accuracy", "6"), ObservationRow(2000.0, "accuracy", "7")])
        since = c.get(OBS, params={"continue": nothing["metadata"]["resume"]}).json()
        assert _values(since) == ["6", "7"] and "continue" not in since["metadata"]
        assert c.get(OBS, params={"continue": since["metadata"]["resume"]}).json()["metricLogs"] == []


def test_a_small_trials_log_still_comes_whole(sqlite_store, tmp_path):
    """The default answer of a trial smaller than a page is the log as before."""
    _trial_with_reports(sqlite_store, 3)
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as c:
        body = c.get(OBS).json()
        assert set(body) == {"metricLogs"} and _values(body) == ["0", "1", "2"]
        assert set(c.get(OBS, params={"limit": "5"}).json()["metadata"]) == {"resume"}


def test_the_remote_client_follows_the_tokens(sqlite_store, tmp_path):
    from katib.client._remote import _Remote
    from tests.api_tests.conftest import LiveServer

    _trial_with_reports(sqlite_store, 23)
    for name in ("f", "g", "h", "i"):
        sqlite_store.create_experiment("ns", name, {"spec": {}}, {}, "/w")
    sqlite_store.create_experiment("other", "j", {"spec": {}}, {}, "/w")
    with LiveServer(sqlite_store, tmp_path, limits=ServerLimits(page=2)) as server:
        remote = _Remote(server.url, 30)
        try:
            assert [m["metric"]["value"] for m in remote.observations("e-0", "ns", None)] == [str(i) for i in range(23)]
            assert [m["metric"]["value"] for m in remote.observations("e-0", "ns", "loss")] == [str(i) for i in range(0, 23, 3)]
            assert [o["metadata"]["name"] for o in remote.experiments("ns")] == ["e", "f", "g", "h", "i"]
            assert [o["metadata"]["name"] for o in remote.all_experiments()] == ["e", "f", "g", "h", "i", "j"]
        finally:
            remote.close()


def _experiments(store, sizes: dict[str, int], namespace: str = "ns"):
    """Experiments whose specs weigh about ``sizes[name]`` bytes (a long categorical list)."""
    for name, size in sizes.items():
        values = [f"v{i:06d}" + "x" * 33 for i in range(max(1, size // 44))]
        store.create_experiment(namespace, name, {
            "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"labels": {"size": str(size)}},
            "spec": {"objective": {"type": "maximize", "objectiveMetricName": "accuracy"}, "algorithm": {"algorithmName": "random"},
                     "maxTrialCount": 3, "parameters": [{"name": "c", "parameterType": "categorical",
                                                         "feasibleSpace": {"list": values}}]}}, {}, "/w")


@pytest.mark.parametrize("url", ["/api/v1/experiments", KUBE])
def test_experiment_lists_page_by_count(sqlite_store, tmp_path, url):
    _experiments(sqlite_store, {f"e{i}": 100 for i in range(7)})
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False, limits=ServerLimits(page=3))
    with TestClient(app, base_url="http://localhost") as c:
        pages = _walk(c, url)
        assert [len(p["items"]) for p in pages] == [3, 3, 1]
        assert [i["metadata"]["name"] for p in pages for i in p["items"]] == [f"e{i}" for i in range(7)]
        assert [len(p["items"]) for p in _walk(c, url, limit="2")] == [2, 2, 2, 1]
        assert len(c.get(url, params={"limit": "50"}).json()["items"]) == 3  # capped at the page
        token = pages[0]["metadata"]["continue"]
        other = KUBE if url != KUBE else "/api/v1/experiments"
        for where, params in ((url, {"continue": token[:-1] + "x"}), (other, {"continue": token})):
            r = c.get(where, params=params)
            assert r.status_code == 400 and r.json()["message"].startswith("continue: "), r.text


@pytest.mark.parametrize("url", ["/api/v1/experiments", KUBE])
def test_experiment_lists_page_by_bytes(sqlite_store, tmp_path, url):
    """A page ends once its experiments pass the byte budget (at least one a page), so an
    answer's size is bounded whatever the specs weigh."""
    sizes = {"a": 60_000, "b": 60_000, "c": 60_000, "huge": 400_000, "d": 60_000, "e": 1_000}
    _experiments(sqlite_store, sizes)
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False,
                     limits=ServerLimits(list_bytes=150_000))
    with TestClient(app, base_url="http://localhost") as c:
        pages, token = [], None
        while True:
            r = c.get(url, params={"continue": token} if token else {})
            assert r.status_code == 200, r.text
            pages.append([i["metadata"]["name"] for i in r.json()["items"]])
            assert len(r.content) < 150_000 + 20_000 or pages[-1] == ["huge"], (pages[-1], len(r.content))
            token = (r.json().get("metadata") or {}).get("continue")
            if not token:
                break
        assert pages == [["a", "b"], ["c"], ["huge"], ["d", "e"]]
        # the Kubernetes list's labelSelector still filters, its token kept to it
        if url == KUBE:
            picked = _walk(c, KUBE, labelSelector="size=60000")
            assert [i["metadata"]["name"] for p in picked for i in p["items"]] == ["a", "b", "c", "d"]


def test_the_viewers_brief_list_leaves_the_big_parts_of_specs_out(sqlite_store, tmp_path):
    _experiments(sqlite_store, {"a": 200_000})
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as c:
        full = c.get("/api/v1/experiments")
        brief = c.get("/api/v1/experiments", params={"brief": "true"})
        assert len(full.content) > 150_000 and len(brief.content) < 2_000, len(brief.content)
        [item] = brief.json()["items"]
        assert item["spec"] == {"objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
                                "algorithm": {"algorithmName": "random"}, "maxTrialCount": 3}
        assert item["metadata"]["name"] == "a" and item["metadata"]["labels"] == {"size": "200000"}
        assert {"active", "stoppable", "resumable", "status"} <= set(item)


def test_a_page_of_a_thousand_experiments_with_trials_is_answered(sqlite_store, tmp_path):
    """The statuses' trial lists were read with one OR per experiment: past 1,000
    experiments SQLite refused the query (expression tree too large), a 500."""
    recs = [sqlite_store.create_experiment("ns", f"e{i}", {"spec": {}}, {}, "/w") for i in range(1001)]
    sqlite_store.add_trials([TrialRecord(id=0, experiment_id=r.id, name=f"{r.name}-0", state="Succeeded", assignments=[])
                             for r in recs])
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as c:
        for url in ("/api/v1/experiments", KUBE):
            r = c.get(url)
            assert r.status_code == 200, r.text[:300]
            items = r.json()["items"]
            assert len(items) == 1001 and items[-1]["status"]["succeededTrialList"] == ["e1000-0"]
