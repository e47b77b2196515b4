"""The namespace-wide lists and ``/metrics`` read what their answer holds, not every
experiment (security review, 2026-12-03): ``…/trials``, ``…/suggestions``, ``…/pods``,
``…/trainjobs``, ``…/optimizationjobs`` and ``…/events`` of a namespace decoded every
experiment's spec and status on each request, whatever ``limit``; ``/metrics`` did for
every namespace, for any caller with a token. Each list now reads experiments whole only
for the items on its page (a page of ``limit=1`` reads one or two, whatever the
namespace holds, an events page none), and about ``KATIB_MAX_LIST_BYTES`` of them at
most; ``/metrics`` counts by SQL and reads no spec."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from api import ServerLimits, create_app  # noqa: E402
from katib.spec import OPTIMIZATION_JOB_SOURCE  # noqa: E402
from katib.store import Store, TrialRecord, UserStore  # noqa: E402
from tests.api_tests.test_trainer_api import trainjob_experiment  # noqa: E402
from tests.conftest import experiment  # noqa: E402

KUBE = "/apis/kubeflow.org/v1beta1/namespaces/ns"
TRAINER = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/ns"
EXP = "katib.kubeflow.org/experiment"
N = 24  # experiments: a third each a plain Job, a TrainJob and an OptimizationJob, two trials each

# Each list, with how many experiments a page of one item may read whole: its own, and the
# next one's when the page's one item is its experiment's last (none: an event is made of
# its trial alone).
LISTS = {
    "trials": (f"{KUBE}/trials", 2),
    "pods": ("/api/v1/namespaces/ns/pods", 2),
    "suggestions": (f"{KUBE}/suggestions", 1),
    "trainjobs": (f"{TRAINER}/trainjobs", 2),
    "optimizationjobs": (f"{TRAINER}/optimizationjobs", 1),
    "events": ("/api/v1/namespaces/ns/events", 0),
}


def _doc(kind: str, name: str) -> dict:
    doc = trainjob_experiment() if kind == "tj" else experiment()
    doc["metadata"]["name"] = name
    annotations = doc["metadata"].setdefault("annotations", {})
    annotations["blob"] = "x" * 4096  # what makes a spec worth not reading: the review's were 1 MB
    if kind == "oj":
        annotations[OPTIMIZATION_JOB_SOURCE] = json.dumps({"apiVersion": "trainer.kubeflow.org/v1alpha1", "spec": {}})
    return doc


def _seed(store: Store, namespace: str = "ns", n: int = N) -> list[str]:
    names = []
    for i in range(n):
        kind = ("plain", "tj", "oj")[i % 3]
        name = f"{kind}{i}"
        rec = store.create_experiment(namespace, name, _doc(kind, name), {}, "/w")
        store.add_trials([TrialRecord(
            id=0, experiment_id=rec.id, name=f"{name}-{j}", state="Succeeded", assignments=[{"name": "x", "value": str(j)}],
            labels={EXP: name}, created_at=1000.0 + j, start_time=1000.5 + j, completion_time=1001.0 + j) for j in range(2)])
        names.append(name)
    return names


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the experiments read whole (spec decoded, status derived), in order."""
    real = Store._experiments
    seen: list[str] = []

    def counting(conn, rows):
        rows = list(rows)
        seen.extend(r.name for r in rows)
        return real(conn, rows)

    monkeypatch.setattr(Store, "_experiments", staticmethod(counting))
    return seen


def _names(body: dict) -> list[str]:
    return [(i.get("involvedObject") or i["metadata"])["name"] + ("/" + i["reason"] if "reason" in i else "") for i in body["items"]]


def _every_page(c: TestClient, url: str, **params: str) -> list[list[str]]:
    pages, token = [], None
    while True:
        r = c.get(url, params={**params, **({"continue": token} if token else {})})
        assert r.status_code == 200, r.text
        pages.append(_names(r.json()))
        token = r.json()["metadata"].get("continue")
        if not token:
            return pages
        assert len(pages) < 500, "the pages never end"


@pytest.mark.parametrize("listing", sorted(LISTS))
def test_a_page_of_one_reads_one_experiment_not_the_namespace(listing, sqlite_store, tmp_path, decoded):
    url, most = LISTS[listing]
    _seed(sqlite_store)
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as c:
        whole = _every_page(c, url)  # one page: the namespace fits in the server's page
        assert len(whole) == 1 and whole[0]
        token = None
        for page in range(6):  # the first pages, and pages further on by their tokens
            decoded.clear()
            r = c.get(url, params={"limit": "1", **({"continue": token} if token else {})})
            assert r.status_code == 200, r.text
            if listing == "events":
                assert len(r.json()["items"]) == 1
            else:
                assert _names(r.json()) == [whole[0][page]]
            # the old lists read all N experiments whole, on every page
            assert len(decoded) <= most, (listing, page, decoded)
            token = r.json()["metadata"]["continue"]
        # followed to the end, pages of one hold every item once, in the same order
        followed = _every_page(c, url, limit="1")
        assert all(len(p) == 1 for p in followed)
        if listing == "events":  # a page's events are sorted by time; across pages, by trial
            assert sorted(p[0] for p in followed) == sorted(whole[0])
        else:
            assert [p[0] for p in followed] == whole[0]


@pytest.mark.parametrize("listing", sorted(LISTS))
def test_a_page_reads_at_most_the_list_bytes_of_experiments(listing, sqlite_store, tmp_path, decoded):
    """KATIB_MAX_LIST_BYTES bounds what a page reads of experiments, as it bounds a page of
    the experiment list: here less than any one weighs, so a page reads one (at least one,
    whatever it weighs) and ends, with a continue token; an events page reads none."""
    url, most = LISTS[listing]
    _seed(sqlite_store, n=9)
    roomy = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(roomy, base_url="http://localhost") as c:
        [whole] = _every_page(c, url)
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False, limits=ServerLimits(list_bytes=1000))
    with TestClient(app, base_url="http://localhost") as c:
        decoded.clear()
        pages = _every_page(c, url)
        if listing == "events":
            assert pages == [whole] and decoded == []
            return
        # a page of each experiment's items (its trials, pods, TrainJobs; its one object)
        experiments = [p[0].split("-")[0] for p in pages]
        assert all({i.split("-")[0] for i in p} == {e} for p, e in zip(pages, experiments, strict=True)), pages
        assert len(set(experiments)) == len(experiments) > 1
        assert [i for p in pages for i in p] == whole
        assert decoded == experiments  # each read once, on its page; the old lists read them all each page


@pytest.mark.parametrize("listing", sorted(LISTS))
def test_a_whole_page_reads_its_experiments_a_chunk_at_a_time(listing, sqlite_store, tmp_path, decoded):
    """A page without ``limit`` reads its experiments (their lengths and trial counts, their
    rows, their first trials) a chunk of heads at a time, each once, not one by one: the
    first version read each alone, six or seven queries an experiment, and a whole page of
    2,000 took 3-5 times what reading them all at once did (review, 2026-12-03)."""
    import sqlalchemy as sa

    url, _ = LISTS[listing]
    n = 48
    _seed(sqlite_store, n=n)
    statements: list[str] = []
    listen = sa.event.listens_for(sqlite_store._engine, "before_cursor_execute")

    @listen
    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as c:
        statements.clear()
        decoded.clear()
        r = c.get(url)
    sa.event.remove(sqlite_store._engine, "before_cursor_execute", seen)
    assert r.status_code == 200 and "continue" not in r.json()["metadata"], r.text
    assert len(statements) <= n // 2, (len(statements), statements)  # 16 heads, then 32: a few queries each
    read = {i["metadata"]["name"].split("-")[0] for i in r.json()["items"]} if listing != "events" else set()
    assert sorted(decoded) == sorted(read)  # each on the page read once, and no other


def test_an_experiment_deleted_while_a_page_is_walked_is_passed_over(sqlite_store, tmp_path, monkeypatch):
    """Its head was read, then it was deleted before its spec was: left out, not a 404."""
    from katib.store import ExperimentHead

    names = _seed(sqlite_store, n=4)
    real = ExperimentHead.read
    victim = [names[1]]

    def read_after_delete(heads):  # the page's heads are read whole several at once
        for head in heads:
            if head.name in victim:
                victim.remove(head.name)
                sqlite_store.delete_experiment("ns", head.name)
        return real(heads)

    monkeypatch.setattr(ExperimentHead, "read", staticmethod(read_after_delete))
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as c:
        trials = c.get(f"{KUBE}/trials")
        assert trials.status_code == 200, trials.text
        assert _names(trials.json()) == [f"{n}-{j}" for n in (names[0], names[2], names[3]) for j in (0, 1)]
        assert victim == []
        victim[:] = [names[2]]
        suggestions = c.get(f"{KUBE}/suggestions")
        assert suggestions.status_code == 200, suggestions.text
        assert _names(suggestions.json()) == [names[0], names[3]]


METRICS = """\
# HELP katib_experiments Experiments by phase.
# TYPE katib_experiments gauge
katib_experiments{namespace="ns",phase="Running"} 1
katib_experiments{namespace="ns",phase="Unknown"} 1
katib_experiments{namespace="ns-b",phase="Succeeded"} 1
# HELP katib_trials Trials by experiment and state.
# TYPE katib_trials gauge
katib_trials{namespace="ns",experiment="run",state="EarlyStopped"} 0
katib_trials{namespace="ns",experiment="run",state="Failed"} 1
katib_trials{namespace="ns",experiment="run",state="Killed"} 1
katib_trials{namespace="ns",experiment="run",state="MetricsUnavailable"} 1
katib_trials{namespace="ns",experiment="run",state="Pending"} 2
katib_trials{namespace="ns",experiment="run",state="Running"} 1
katib_trials{namespace="ns",experiment="run",state="Succeeded"} 3
katib_trials{namespace="ns",experiment="we\\"ird",state="EarlyStopped"} 0
katib_trials{namespace="ns",experiment="we\\"ird",state="Failed"} 0
katib_trials{namespace="ns",experiment="we\\"ird",state="Killed"} 0
katib_trials{namespace="ns",experiment="we\\"ird",state="MetricsUnavailable"} 0
katib_trials{namespace="ns",experiment="we\\"ird",state="Pending"} 0
katib_trials{namespace="ns",experiment="we\\"ird",state="Running"} 0
katib_trials{namespace="ns",experiment="we\\"ird",state="Succeeded"} 0
katib_trials{namespace="ns-b",experiment="done",state="EarlyStopped"} 1
katib_trials{namespace="ns-b",experiment="done",state="Failed"} 0
katib_trials{namespace="ns-b",experiment="done",state="Killed"} 0
katib_trials{namespace="ns-b",experiment="done",state="MetricsUnavailable"} 0
katib_trials{namespace="ns-b",experiment="done",state="Pending"} 0
katib_trials{namespace="ns-b",experiment="done",state="Running"} 0
katib_trials{namespace="ns-b",experiment="done",state="Succeeded"} 0
# HELP katib_controllers_running Experiments whose controller runs in this server.
# TYPE katib_controllers_running gauge
katib_controllers_running 0
"""


def _seed_metrics(store: Store) -> None:
    created = {"type": "Created", "status": "True", "reason": "ExperimentCreated"}
    running = {"type": "Running", "status": "True", "reason": "ExperimentRunning"}
    run = store.create_experiment("ns", "run", _doc("plain", "run"), {"conditions": [created, running]}, "/w")
    store.create_experiment("ns", 'we"ird', _doc("plain", "weird"), {}, "/w")
    done = store.create_experiment("ns-b", "done", _doc("tj", "done"), {"conditions": [
        created, {**running, "status": "False"}, {"type": "Succeeded", "status": "True", "reason": "ExperimentMaxTrialsReached"}]}, "/w")
    states = ["Succeeded"] * 3 + ["Failed", "Killed", "Created", "Created", "Running", "MetricsUnavailable", "Unheard"]
    store.add_trials([TrialRecord(id=0, experiment_id=run.id, name=f"run-{i}", state=s, assignments=[]) for i, s in enumerate(states)])
    store.add_trials([TrialRecord(id=0, experiment_id=done.id, name="done-0", state="EarlyStopped", assignments=[])])


def test_metrics_count_by_sql_and_read_no_spec(sqlite_store, tmp_path, decoded):
    """The same Prometheus text as before, byte for byte, with no experiment read whole."""
    _seed_metrics(sqlite_store)
    _seed(sqlite_store, "ns-c", n=6)
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as c:
        decoded.clear()
        text = c.get("/metrics").text
    assert decoded == []
    ours = "\n".join(line for line in text.splitlines() if 'namespace="ns-c"' not in line) + "\n"
    assert ours == METRICS
    assert 'katib_experiments{namespace="ns-c",phase="Unknown"} 6' in text
    assert text.count('katib_trials{namespace="ns-c",') == 6 * 7


def test_metrics_of_a_caller_without_a_role_read_nothing_of_any_namespace(sqlite_store, tmp_path, decoded):
    _seed_metrics(sqlite_store)
    users = UserStore(sqlite_store)
    nobody, viewer = users.add_user("nobody"), users.add_user("vic")
    users.grant("vic", "ns-b", "viewer")
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False, auth=True)
    with TestClient(app, base_url="http://localhost") as c:
        decoded.clear()
        empty = c.get("/metrics", headers={"Authorization": f"Bearer {nobody}"})
        assert empty.status_code == 200 and "namespace=" not in empty.text and "katib_controllers_running 0" in empty.text
        own = c.get("/metrics", headers={"Authorization": f"Bearer {viewer}"}).text
        assert decoded == []
    assert [line for line in own.splitlines() if "namespace=" in line] == [
        line for line in METRICS.splitlines() if 'namespace="ns-b"' in line]
