"""What kubectl needs of the server, beside the Katib SDK's endpoints: discovery (and an
openapi document it can read), Tables with Katib's printer columns, field selectors, and
watches (``kubectl get -w``, ``kubectl wait``). The last test drives the real kubectl."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from api import _auth, _watch
from api._state import ServerLimits
from api._tables import human_duration
from api.routes.discovery import RESOURCES
from katib.store import UserStore
from tests.api_tests.conftest import LiveServer, count_experiment_reads
from tests.conftest import experiment, python_command

KUBE = "/apis/kubeflow.org/v1beta1/namespaces/default"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"


def _quick(name: str = "demo", trials: int = 2, sleep: float = 0.0) -> dict:
    code = f"import time; time.sleep({sleep}); print('loss=0.5')" if sleep else "print('loss=0.5')"
    return experiment(name=name, maxTrialCount=trials, parallelTrialCount=trials, command=python_command(code))


def test_discovery_names_only_what_is_served(live):
    c = live.client
    assert c.get("/api").json()["versions"] == ["v1"]
    groups = {g["name"]: g["preferredVersion"]["groupVersion"] for g in c.get("/apis").json()["groups"]}
    assert groups == {"kubeflow.org": "kubeflow.org/v1beta1", "trainer.kubeflow.org": "trainer.kubeflow.org/v1alpha1"}
    assert c.get("/apis/kubeflow.org").json()["preferredVersion"]["version"] == "v1beta1"
    katib = {r["name"]: r for r in c.get("/apis/kubeflow.org/v1beta1").json()["resources"]}
    assert set(katib) == {"experiments", "trials", "suggestions"}
    assert katib["experiments"]["verbs"] == ["create", "delete", "get", "list", "patch", "watch"]
    assert katib["trials"]["categories"] == ["all", "kubeflow", "katib"]  # kubectl get katib
    assert c.get("/apis/kubeflow.org/v1").status_code == 404
    assert c.get("/apis/example.com").status_code == 404
    version = c.get("/version").json()
    assert version["gitVersion"].startswith(f"v{version['major']}.{version['minor']}.")
    # kubectl reads /openapi/v2 as protocol buffers before it validates what it sends
    r = c.get("/openapi/v2", headers={"accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert r.content == b"\x0a\x032.0" and "@" not in r.headers["content-type"]

    # OpenAPI v3: the Experiment's schema (kubectl explain), and a patch that validates
    root = c.get("/openapi/v3").json()["paths"]
    assert list(root) == ["apis/kubeflow.org/v1beta1"]
    doc = c.get(root["apis/kubeflow.org/v1beta1"]["serverRelativeURL"]).json()
    [patch] = [p["patch"] for p in doc["paths"].values() if "patch" in p]
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Experiment"
    assert "fieldValidation" in [q["name"] for q in patch["parameters"]]
    spec = doc["components"]["schemas"]["ExperimentSpec"]["properties"]
    assert spec["maxTrialCount"]["type"] == "integer" and spec["maxTrialCount"]["nullable"] is True
    assert "anyOf" not in json.dumps(doc["components"]["schemas"]["ExperimentSpec"])

    # every resource listed answers the verbs it is listed with, where it would be
    for gv, resources in RESOURCES.items():
        root = "/api/v1" if gv == "v1" else f"/apis/{gv}"
        for resource in resources:
            if "/" in resource["name"] or "list" not in resource["verbs"]:
                continue
            path = f"{root}/namespaces/default/{resource['name']}" if resource["namespaced"] else f"{root}/{resource['name']}"
            r = c.get(path)
            assert r.status_code == 200, (path, r.text)
            assert r.json()["kind"] == resource["kind"] + "List", path
            # a selector is applied or refused, never dropped (kubectl deletes what a list
            # with -l or --field-selector answers); a watch is served or refused, by discovery
            for selector in ({"labelSelector": "app=none-such"}, {"fieldSelector": "metadata.name=none-such"}):
                r = c.get(path, params=selector)
                assert r.status_code == 422 or (r.status_code == 200 and r.json()["items"] == []), (path, selector, r.text)
            r = c.get(path, params={"watch": "true", "timeoutSeconds": "1"})
            assert (r.status_code == 200) == ("watch" in resource["verbs"]), (path, r.status_code, r.text[:200])
            if r.status_code != 200:  # 405, which kubectl prints (it reads no body of a failed watch)
                assert r.status_code == 405 and r.json()["kind"] == "Status", (path, r.text)
            r = c.get(path, params={"watch": "true", "sendInitialEvents": "true"})  # client-go's watch-list
            assert r.status_code in (405, 422), (path, r.status_code)  # refused: client-go lists, then watches


def test_lists_across_namespaces_are_refused_by_name(live):
    r = live.client.get("/apis/kubeflow.org/v1beta1/experiments")
    assert r.status_code == 422 and "one namespace at a time" in r.json()["message"]
    assert live.client.get("/apis/kubeflow.org/v1beta1/nothings").status_code == 404
    # kubectl get events -A asks the event stream's path for a list: an answer, not a stream
    # that never ends (a browser's EventSource asks for text/event-stream, and gets it)
    events = live.client.get("/api/v1/events", params={"limit": "500"}, headers={"accept": TABLE}, timeout=10)
    assert events.status_code == 422 and events.json()["kind"] == "Status" and "-n NAMESPACE" in events.json()["message"]
    with live.client.stream("GET", "/api/v1/events", headers={"accept": "text/event-stream"}) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    # the catch-all shadows no route: a cluster-scoped list still answers
    assert live.client.get("/apis/trainer.kubeflow.org/v1alpha1/clustertrainingruntimes").json()["kind"] == \
        "ClusterTrainingRuntimeList"


def test_tables_carry_katibs_printer_columns(live):
    c = live.client
    assert c.post(f"{KUBE}/experiments", json=_quick()).status_code == 201
    live.wait_for("default", "demo")
    table = c.get(f"{KUBE}/experiments", headers={"accept": TABLE})
    assert table.headers["content-type"].startswith("application/json;as=Table")
    body = table.json()
    assert body["kind"] == "Table" and body["apiVersion"] == "meta.k8s.io/v1"
    assert [col["name"] for col in body["columnDefinitions"]] == ["Name", "Type", "Status", "Age"]
    [row] = body["rows"]
    assert row["cells"][:3] == ["demo", "Succeeded", "True"] and row["cells"][3].endswith("s")
    assert row["object"]["kind"] == "PartialObjectMetadata" and row["object"]["metadata"]["name"] == "demo"

    one = c.get(f"{KUBE}/suggestions/demo", headers={"accept": TABLE}).json()
    assert [col["name"] for col in one["columnDefinitions"]] == ["Name", "Type", "Status", "Requested", "Assigned", "Age"]
    # kubectl get --sort-by asks each row's whole object; includeObject=None, none
    whole = c.get(f"{KUBE}/trials", params={"includeObject": "Object"}, headers={"accept": TABLE}).json()
    assert all(r["object"]["kind"] == "Trial" and r["object"]["status"]["startTime"] for r in whole["rows"])
    bare = c.get(f"{KUBE}/trials", params={"includeObject": "None"}, headers={"accept": TABLE}).json()
    assert bare["rows"] and all("object" not in r for r in bare["rows"])
    assert one["rows"][0]["cells"][3:5] == [2, 2] and one["rows"][0]["cells"][5] != "<unknown>"
    trials = c.get(f"{KUBE}/trials", headers={"accept": TABLE}).json()
    assert sorted(r["cells"][1] for r in trials["rows"]) == ["Succeeded", "Succeeded"]
    pods = c.get("/api/v1/namespaces/default/pods", headers={"accept": TABLE}).json()
    assert [col["name"] for col in pods["columnDefinitions"]] == ["Name", "Ready", "Status", "Restarts", "Age"]
    events = c.get("/api/v1/namespaces/default/events", headers={"accept": TABLE}).json()
    assert {r["cells"][3] for r in events["rows"]} == {"JobCreated", "JobRunning", "JobSucceeded"}
    # without the Table in Accept, the objects as before; a kind without columns as it is
    assert c.get(f"{KUBE}/experiments").json()["kind"] == "ExperimentList"
    assert c.get("/api/v1/namespaces/default/configmaps", headers={"accept": TABLE}).json()["kind"] == "ConfigMapList"


@pytest.mark.parametrize(("seconds", "shown"), [(5, "5s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600 + 60, "3h1m"),
                                                (9 * 3600, "9h"), (50 * 3600, "2d2h"), (400 * 86400, "400d"),
                                                (3 * 365 * 86400, "3y"), (-5, "<invalid>")])
def test_ages_read_as_kubectl_writes_them(seconds, shown):
    assert human_duration(seconds) == shown


def test_field_selectors_pick_by_name_and_refuse_other_fields(live):
    c = live.client
    for name in ("one", "two"):
        assert c.post(f"{KUBE}/experiments", json=_quick(name, trials=1)).status_code == 201
    live.wait_for("default", "one")
    live.wait_for("default", "two")
    names = lambda r: [i["metadata"]["name"] for i in r.json()["items"]]  # noqa: E731
    assert names(c.get(f"{KUBE}/experiments", params={"fieldSelector": "metadata.name=two"})) == ["two"]
    assert names(c.get(f"{KUBE}/experiments", params={"fieldSelector": "metadata.name!=two"})) == ["one"]
    assert names(c.get(f"{KUBE}/suggestions", params={"fieldSelector": "metadata.name==one"})) == ["one"]
    trial = names(c.get(f"{KUBE}/trials", params={"labelSelector": "katib.kubeflow.org/experiment=one"}))[0]
    assert names(c.get(f"{KUBE}/trials", params={"fieldSelector": f"metadata.name={trial}"})) == [trial]
    assert names(c.get("/api/v1/namespaces/default/pods", params={"fieldSelector": f"metadata.name={trial}"})) == [trial]
    # kubectl describe's question: the events of one object
    events = c.get("/api/v1/namespaces/default/events",
                   params={"fieldSelector": f"involvedObject.name={trial},involvedObject.namespace=default,"
                                            "involvedObject.kind=Trial,involvedObject.uid="}).json()["items"]
    assert {e["reason"] for e in events} == {"JobCreated", "JobRunning", "JobSucceeded"}
    assert all(e["involvedObject"]["name"] == trial for e in events)
    bad = c.get(f"{KUBE}/experiments", params={"fieldSelector": "spec.maxTrialCount=1"})
    assert bad.status_code == 422
    assert "fieldSelector" in bad.text and "field label not supported" in bad.text and "metadata.name" in bad.text
    assert c.get(f"{KUBE}/trials", params={"fieldSelector": "metadata.name"}).status_code == 422
    # a trial's pod, by name, as kubectl logs reads it first
    assert c.get(f"/api/v1/namespaces/default/pods/{trial}").json()["status"]["phase"] == "Succeeded"
    assert c.get("/api/v1/namespaces/default/pods/nothing-node-1").status_code == 404


def _events(c: httpx.Client, path: str, params: dict, until, timeout: float = 60) -> list[dict]:
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    with c.stream("GET", path, params={**params, "watch": "true"}) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line:
                seen.append(json.loads(line))
            if until(seen) or time.monotonic() > deadline:
                break
    return seen


def test_a_watch_from_a_list_sends_what_changed_since(live):
    c = live.client
    assert c.post(f"{KUBE}/experiments", json=_quick(sleep=1.0)).status_code == 201
    listed = c.get(f"{KUBE}/experiments", params={"fieldSelector": "metadata.name=demo"}).json()
    version = listed["metadata"]["resourceVersion"]
    assert version  # a list a watch can start from (with the same selectors, as kubectl watches)
    [before] = listed["items"]

    def done(seen: list[dict]) -> bool:
        return any(e["object"]["status"].get("completionTime") for e in seen)

    seen = _events(c, f"{KUBE}/experiments", {"resourceVersion": version, "fieldSelector": "metadata.name=demo"}, done)
    assert seen and done(seen)
    # nothing is ADDED again: the list already held it; every event is a change of it
    assert {e["type"] for e in seen} == {"MODIFIED"}
    assert all(e["object"] != before for e in seen)
    assert all(a["object"] != b["object"] for a, b in zip(seen, seen[1:], strict=False))

    # from "" (or a version this server does not remember), every object first, as Kubernetes does
    first = _events(c, f"{KUBE}/trials", {}, lambda s: len(s) >= 2)
    assert [e["type"] for e in first] == ["ADDED", "ADDED"]
    any_version = _events(c, f"{KUBE}/trials", {"resourceVersion": "0"}, lambda s: len(s) >= 2)
    assert [e["type"] for e in any_version] == ["ADDED", "ADDED"]
    # a version this server does not remember: 410 Expired, and client-go lists again
    gone = c.get(f"{KUBE}/trials", params={"watch": "true", "resourceVersion": "1"})
    assert gone.status_code == 410 and gone.json()["reason"] == "Expired"
    # a Table per event for kubectl get -w, the columns with the first only
    with c.stream("GET", f"{KUBE}/trials", params={"watch": "1"}, headers={"accept": TABLE}) as r:
        lines = [json.loads(line) for _, line in zip(range(2), r.iter_lines(), strict=False)]
    assert "columnDefinitions" in lines[0]["object"] and "columnDefinitions" not in lines[1]["object"]
    assert lines[0]["object"]["rows"][0]["cells"][1] == "Succeeded"

    # an experiment created and deleted while a watch is open: ADDED, then DELETED
    listed = c.get(f"{KUBE}/experiments").json()["metadata"]["resourceVersion"]
    seen: list[dict] = []
    with c.stream("GET", f"{KUBE}/experiments", params={"watch": "true", "resourceVersion": listed}) as r:
        lines = r.iter_lines()
        assert c.post(f"{KUBE}/experiments", json=_quick("other", trials=1)).status_code == 201
        for line in lines:
            seen.append(json.loads(line))
            if seen[-1]["object"]["metadata"]["name"] == "other":
                break
        assert seen[-1]["type"] == "ADDED"
        assert c.delete(f"{KUBE}/experiments/other").status_code == 200
        for line in lines:
            seen.append(json.loads(line))
            if seen[-1]["type"] == "DELETED":
                break
    assert (seen[-1]["type"], seen[-1]["object"]["metadata"]["name"]) == ("DELETED", "other")
    assert all(e["object"]["metadata"]["name"] == "other" for e in seen)  # demo did not change

    # a deletion between a list and its watch: DELETED first, from the list that held it
    listed = c.get(f"{KUBE}/experiments").json()["metadata"]["resourceVersion"]
    assert c.delete(f"{KUBE}/experiments/demo").status_code == 200
    gone = _events(c, f"{KUBE}/experiments", {"resourceVersion": listed}, lambda s: bool(s))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in gone] == [("DELETED", "demo")]


def test_pods_and_events_are_watched_from_their_lists(live):
    """kubectl get pods -w and get events -w: the list's version, then each pod's phase as
    it changes, and each new event (before, a 405: both could be listed, not watched)."""
    c = live.client
    pods = "/api/v1/namespaces/default/pods"
    assert c.post(f"{KUBE}/experiments", json=_quick(sleep=1.5, trials=1)).status_code == 201
    deadline = time.monotonic() + 60
    while not (listed := c.get(pods, params={"labelSelector": "katib.kubeflow.org/experiment=demo"}).json())["items"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    version = listed["metadata"]["resourceVersion"]
    assert version
    [pod] = listed["items"]
    phases = _events(c, pods, {"resourceVersion": version, "labelSelector": "katib.kubeflow.org/experiment=demo"},
                     lambda seen: bool(seen) and seen[-1]["object"]["status"]["phase"] == "Succeeded")
    assert {e["type"] for e in phases} == {"MODIFIED"}  # the list held it: never ADDED again
    assert phases[-1]["object"]["status"]["phase"] == "Succeeded" != pod["status"]["phase"]
    assert all(e["object"]["metadata"]["name"] == pod["metadata"]["name"] for e in phases)
    # and from nothing, every pod ADDED first
    assert [e["type"] for e in _events(c, pods, {}, lambda seen: len(seen) >= 1)] == ["ADDED"]
    # events too (kubectl get events -w): the trial's three, then what comes
    events = "/api/v1/namespaces/default/events"
    listed = c.get(events).json()
    assert [e["reason"] for e in listed["items"]] == ["JobCreated", "JobRunning", "JobSucceeded"]
    seen = _events(c, events, {}, lambda seen: len(seen) >= 3)
    assert [(e["type"], e["object"]["reason"]) for e in seen] == [("ADDED", r) for r in ("JobCreated", "JobRunning", "JobSucceeded")]
    assert c.post(f"{KUBE}/experiments", json=_quick("again", trials=1)).status_code == 201
    new = _events(c, events, {"resourceVersion": listed["metadata"]["resourceVersion"]},
                  lambda seen: any(e["object"]["reason"] == "JobSucceeded" for e in seen))
    assert {e["type"] for e in new} == {"ADDED"} and all(e["object"]["involvedObject"]["name"].startswith("again-") for e in new)


def test_a_watch_reads_at_most_twice_a_second_and_says_when_it_cannot_read(live, monkeypatch):
    c = live.client
    for name in ("idle", "busy"):
        assert c.post(f"{KUBE}/experiments", json=_quick(name, trials=1)).status_code == 201
    live.wait_for("default", "idle")
    reads = count_experiment_reads(monkeypatch, live.store)
    # noisy's trials make events in the namespace all along: each one nudges the watch
    assert c.post(f"{KUBE}/experiments", json=_quick("noisy", trials=4, sleep=0.3)).status_code == 201
    with c.stream("GET", f"{KUBE}/experiments", params={"watch": "true", "fieldSelector": "metadata.name=idle",
                                                        "timeoutSeconds": "3"}) as r:
        assert [json.loads(line)["type"] for line in r.iter_lines() if line] == ["ADDED"]
    assert 2 <= reads.count("idle") <= 1 + 3 / _watch.MIN_GAP + 1, reads.count("idle")

    def broken(namespace: str, name: str):
        raise RuntimeError("the database is busy")

    with c.stream("GET", f"{KUBE}/experiments", params={"watch": "true", "fieldSelector": "metadata.name=idle",
                                                        "timeoutSeconds": "10"}) as r:
        lines = r.iter_lines()
        assert json.loads(next(lines))["type"] == "ADDED"
        monkeypatch.setattr(live.store, "get_experiment", broken)
        error = json.loads(next(lines))
    assert error["type"] == "ERROR" and error["object"]["kind"] == "Status" and error["object"]["code"] == 500


def test_an_object_made_again_between_readings_is_deleted_then_added():
    differ = _watch._Differ("Experiment", "default", table=False, include="Metadata")
    first = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "e", "uid": "1"}}
    assert [json.loads(x)["type"] for x in differ.first([first], None)] == ["ADDED"]
    again = {**first, "metadata": {"name": "e", "uid": "2"}}
    events = [json.loads(x) for x in differ.next([again])]
    assert [(e["type"], e["object"]["metadata"]["uid"]) for e in events] == [("DELETED", "1"), ("ADDED", "2")]
    assert differ.next([again]) == []


def test_a_suggestions_watch_embeds_at_most_a_page_as_its_list_does(sqlite_store, tmp_path):
    with LiveServer(sqlite_store, tmp_path, limits=ServerLimits(page=2)) as live:
        c = live.client
        for name in ("one", "two"):
            assert c.post(f"{KUBE}/experiments", json=_quick(name, trials=2)).status_code == 201
            live.wait_for("default", name)
        r = c.get(f"{KUBE}/suggestions", params={"watch": "true", "timeoutSeconds": "1"})
        assert json.loads(r.text.splitlines()[0])["type"] == "ERROR"  # 4 embedded trials, a page of 2
        one = c.get(f"{KUBE}/suggestions", params={"watch": "true", "timeoutSeconds": "1", "fieldSelector": "metadata.name=one"})
        assert [json.loads(line)["type"] for line in one.text.splitlines()] == ["ADDED"]


def test_a_watch_with_a_table_is_streamed_whatever_spells_true(live):
    assert live.client.post(f"{KUBE}/experiments", json=_quick(trials=1)).status_code == 201
    started = time.monotonic()
    with live.client.stream("GET", f"{KUBE}/experiments", params={"watch": "on", "timeoutSeconds": "30"},
                            headers={"accept": TABLE}) as r:
        first = json.loads(next(r.iter_lines()))
    assert time.monotonic() - started < 10  # sent as it came, not held until the watch ended
    assert first["type"] == "ADDED" and first["object"]["kind"] == "Table"


def test_a_watch_ends_when_told_and_is_bounded(sqlite_store, tmp_path, monkeypatch):
    with LiveServer(sqlite_store, tmp_path, limits=ServerLimits(streams_per_client=1)) as live:
        c = live.client
        for name in ("one", "two"):
            assert c.post(f"{KUBE}/experiments", json=_quick(name, trials=1)).status_code == 201
        started = time.monotonic()
        with c.stream("GET", f"{KUBE}/experiments", params={"watch": "true", "timeoutSeconds": "1"}) as r:
            seen = [json.loads(line) for line in r.iter_lines() if line]
            assert time.monotonic() - started < 10
        assert {e["object"]["metadata"]["name"] for e in seen} >= {"one", "two"}
        # one stream per client here: a second watch is refused while the first is open
        with c.stream("GET", f"{KUBE}/trials", params={"watch": "true", "timeoutSeconds": "5"}) as held:
            assert held.status_code == 200
            refused = c.get(f"{KUBE}/experiments", params={"watch": "true"})
            assert refused.status_code == 429 and refused.json()["kind"] == "Status"
        monkeypatch.setattr(_watch, "MAX_OBJECTS", 1)
        # too wide: said in the stream, as an ERROR event kubectl prints
        wide = c.get(f"{KUBE}/experiments", params={"watch": "true"})
        [error] = [json.loads(line) for line in wide.text.splitlines()]
        assert error["type"] == "ERROR" and error["object"]["code"] == 422
        assert "narrow it with labelSelector or fieldSelector" in error["object"]["message"]
        assert c.get(f"{KUBE}/experiments", params={"watch": "true", "fieldSelector": "metadata.name=one",
                                                    "timeoutSeconds": "1"}).status_code == 200
        # a label selector narrows it too: only the experiments it matches count
        labelled = _quick("three", trials=1)
        labelled["metadata"]["labels"] = {"team": "a"}
        assert c.post(f"{KUBE}/experiments", json=labelled).status_code == 201
        narrow = c.get(f"{KUBE}/experiments", params={"watch": "true", "labelSelector": "team=a", "timeoutSeconds": "1"})
        events = [(e["type"], e["object"]["metadata"]["name"]) for e in map(json.loads, narrow.text.splitlines())]
        assert events[0] == ("ADDED", "three") and {name for _, name in events} == {"three"}  # it may change meanwhile
        # a label named twice keeps what both terms allow (the last one alone would widen a delete)
        both = c.get(f"{KUBE}/experiments", params={"labelSelector": "team=b,team=a"}).json()["items"]
        assert both == []
        assert [i["metadata"]["name"] for i in c.get(f"{KUBE}/experiments",
                                                     params={"labelSelector": "team in (a, b),team=a"}).json()["items"]] == ["three"]


def test_a_watch_looks_at_a_bounded_number_of_trials_however_few_it_keeps(live, monkeypatch):
    """Each trial a pods, events or trials watch looks at is made into objects (or read)
    before a selector drops it: a reading looks at most WATCH_SCAN of them."""
    from api.routes import _kubelists

    assert live.client.post(f"{KUBE}/experiments", json=_quick(trials=2)).status_code == 201
    live.wait_for("default", "demo")
    monkeypatch.setattr(_kubelists, "WATCH_SCAN", 1)
    for path, params in (("/api/v1/namespaces/default/pods", {"fieldSelector": "status.phase=Running"}),
                         ("/api/v1/namespaces/default/events", {"fieldSelector": "reason=Nothing"}),
                         (f"{KUBE}/trials", {"labelSelector": "none=such"})):
        r = live.client.get(path, params={**params, "watch": "true", "timeoutSeconds": "5"})
        [error] = [json.loads(line) for line in r.text.splitlines()]
        assert (error["type"], error["object"]["code"]) == ("ERROR", 422), (path, error)


def test_a_watch_reads_only_what_its_caller_may(sqlite_store, tmp_path, monkeypatch):
    users = UserStore(sqlite_store)
    admin, vic = users.add_user("admin", admin=True), users.add_user("vic")
    users.grant("vic", "team-a", "viewer")
    with LiveServer(sqlite_store, tmp_path, auth=True) as live:
        c = live.client
        assert c.get("/apis").status_code == 401  # discovery too needs a token
        c.headers["authorization"] = f"Bearer {admin}"
        assert c.get("/apis/kubeflow.org/v1beta1").status_code == 200
        assert c.post("/apis/kubeflow.org/v1beta1/namespaces/team-b/experiments",
                      json=_quick() | {"metadata": {"name": "demo", "namespace": "team-b"}}).status_code == 201
        names = lambda: [n["metadata"]["name"] for n in c.get("/api/v1/namespaces").json()["items"]]  # noqa: E731
        assert names() == ["team-b"]  # kubectl get namespaces: those holding an experiment
        c.headers["authorization"] = f"Bearer {vic}"
        assert names() == []  # none vic may read: team-b's name is not shown to vic
        r = c.get("/apis/kubeflow.org/v1beta1/namespaces/team-b/experiments", params={"watch": "true"})
        assert r.status_code == 403
        ok = c.get("/apis/kubeflow.org/v1beta1/namespaces/team-a/trials", params={"watch": "true", "timeoutSeconds": "1"})
        assert ok.status_code == 200 and ok.text == ""
        # a role taken away while a watch is open ends it at its next reading
        monkeypatch.setattr(_auth, "RECHECK_SECONDS", 0.0)
        started = time.monotonic()
        with c.stream("GET", "/apis/kubeflow.org/v1beta1/namespaces/team-a/trials",
                      params={"watch": "true", "timeoutSeconds": "60"}) as open_watch:
            assert open_watch.status_code == 200
            users.ungrant("vic", "team-a")
            assert list(open_watch.iter_lines()) == []
        assert time.monotonic() - started < 20


# -- the real kubectl ----------------------------------------------------------------------

KUBECTL = shutil.which("kubectl")


@pytest.fixture
def kubectl(tmp_path):
    if KUBECTL is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install kubectl (.ci/run installs Debian's kubernetes-client)")
        pytest.skip("kubectl is not installed")

    def run(server: LiveServer, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        config = tmp_path / "kubeconfig"
        config.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "katib",
            "clusters": [{"name": "katib", "cluster": {"server": server.url}}],
            "contexts": [{"name": "katib", "context": {"cluster": "katib", "user": "me", "namespace": "default"}}],
            "users": [{"name": "me", "user": {}}]}))
        env = {**os.environ, "KUBECONFIG": str(config), "HOME": str(tmp_path)}
        return subprocess.run([KUBECTL, "--cache-dir", str(tmp_path / "cache"), *args], capture_output=True, text=True,
                              timeout=timeout, env=env)

    return run


def version_of(kubectl, live) -> tuple[int, int]:
    client = json.loads(kubectl(live, "version", "--client", "-o", "json").stdout)["clientVersion"]
    return int(client["major"]), int(client["minor"].rstrip("+"))


def test_kubectl_applies_gets_waits_for_describes_and_deletes_an_experiment(kubectl, live, tmp_path):
    manifest = tmp_path / "demo.yaml"
    doc = _quick(trials=2)
    doc["metadata"]["namespace"] = "default"
    manifest.write_text(yaml.safe_dump(doc))

    def ok(*args: str) -> str:
        done = kubectl(live, *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    assert "experiment.kubeflow.org/demo created" in ok("apply", "-f", str(manifest))
    assert "condition met" in ok("wait", "--for=condition=Succeeded", "experiment/demo", "--timeout=90s")
    header, row = ok("get", "experiments").splitlines()
    assert header.split() == ["NAME", "TYPE", "STATUS", "AGE"] and row.split()[:3] == ["demo", "Succeeded", "True"]
    # get -w: the list, then a watch from its version: each trial once, nothing repeated
    with pytest.raises(subprocess.TimeoutExpired) as watching:
        kubectl(live, "get", "trials", "-w", timeout=4)
    shown = watching.value.output
    shown = (shown.decode() if isinstance(shown, bytes) else shown or "").splitlines()
    assert shown[0].split() == ["NAME", "TYPE", "STATUS", "AGE"] and len(shown) == 3, shown
    assert all(line.split()[1:3] == ["Succeeded", "True"] for line in shown[1:])
    trials = ok("get", "trials", "-l", "katib.kubeflow.org/experiment=demo", "-o", "name").split()
    assert len(trials) == 2 and all(t.startswith("trial.kubeflow.org/demo-") for t in trials)
    assert ok("get", "experiment", "demo", "-o", "jsonpath={.status.trials}") == "2"
    assert "loss=0.5" in ok("logs", trials[0].split("/")[1])
    with pytest.raises(subprocess.TimeoutExpired) as watching_pods:  # get pods -w: the list, then its changes
        kubectl(live, "get", "pods", "-w", timeout=4)
    pods_shown = watching_pods.value.output
    pods_shown = (pods_shown.decode() if isinstance(pods_shown, bytes) else pods_shown or "").splitlines()
    assert pods_shown[0].split()[:3] == ["NAME", "READY", "STATUS"] and len(pods_shown) == 3, pods_shown
    assert ok("logs", "-f", "--tail=1", trials[0].split("/")[1]) == "loss=0.5\n"  # followed: it ends with the trial
    timed = kubectl(live, "logs", "--timestamps", trials[0].split("/")[1])
    assert timed.returncode != 0 and "timestamps" in timed.stderr  # not the log without them
    described = ok("describe", "trial", trials[0].split("/")[1])
    assert "JobSucceeded" in described
    explained = kubectl(live, "explain", "experiment.spec.algorithm")
    if version_of(kubectl, live) >= (1, 27):  # explained from OpenAPI v3 (before, from v2, which holds none here)
        assert explained.returncode == 0, explained.stderr
        assert "algorithmName\t<string>" in explained.stdout and "algorithmSettings" in explained.stdout
        assert "parameterAssignments\t<[]ParameterAssignment>" in ok("explain", "trial.spec")  # trials too
    assert ok("api-resources", "--api-group=kubeflow.org", "-o", "name").split() == \
        ["experiments.kubeflow.org", "suggestions.kubeflow.org", "trials.kubeflow.org"]
    assert "experiment.kubeflow.org/demo" in ok("get", "katib", "-o", "name").split()  # Katib's category
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**doc, "metadata": {"name": "bad", "namespace": "default"},
                                   "spec": {**doc["spec"], "maxTrialCount": -1}}))
    refused = kubectl(live, "apply", "-f", str(bad))
    assert refused.returncode != 0 and "spec.maxTrialCount" in refused.stderr
    # a selector this server does not apply to ConfigMaps is refused, so nothing is deleted
    cm = tmp_path / "cm.yaml"
    cm.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept", "namespace": "default"},
                                  "data": {"a": "b"}}))
    ok("create", "-f", str(cm))
    assert kubectl(live, "delete", "configmaps", "-l", "app=none-such").returncode != 0
    assert ok("get", "configmaps", "-o", "name").split() == ["configmap/kept"]
    # A server dry run changes nothing: before, the patch was made and the experiment deleted.
    # (kubectl before 1.27 refuses a dry run itself: its OpenAPI v2 here holds no dryRun.)
    patched = kubectl(live, "patch", "experiment", "demo", "--dry-run=server", "--type=merge",
                      "-p", '{"spec":{"maxTrialCount":9}}')
    # ended with resumePolicy Never: refused as the patch itself would be
    assert patched.returncode != 0 and "resumePolicy" in patched.stderr or "support dry-run" in patched.stderr
    deleted = kubectl(live, "delete", "experiment", "demo", "--dry-run=server")
    assert "(server dry run)" in deleted.stdout or "support dry-run" in deleted.stderr, deleted
    assert ok("get", "experiment", "demo", "-o", "jsonpath={.spec.maxTrialCount}") == "2"
    # labels change as on any object (before: "labeled", and nothing was stored)
    assert "labeled" in ok("label", "experiment", "demo", "team=a")
    assert ok("get", "experiments", "-l", "team=a", "-o", "name").split() == ["experiment.kubeflow.org/demo"]
    assert kubectl(live, "delete", "configmap", "kept", "--dry-run=server").returncode != 0  # no dry run there: refused
    assert ok("get", "configmaps", "-o", "name").split() == ["configmap/kept"]
    assert 'experiment.kubeflow.org "demo" deleted' in ok("delete", "-f", str(manifest))
    assert ok("get", "experiments") == "" and "No resources found" in kubectl(live, "get", "experiments").stderr


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM)."""
    import datetime
    import ipaddress
    from pathlib import Path  # noqa: F401  (the annotation's)

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "katib-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_kubectl_sends_its_token_to_a_server_under_auth_over_https(tmp_path):
    """kubectl sends no bearer token over plain HTTP, so the README's kubeconfig with
    `token:` could not drive a server under --auth at all (an operator's walk); over
    `katib server --tls-cert/--tls-key` it does, and no token crosses the network in the clear."""
    if KUBECTL is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install kubectl (.ci/run installs Debian's kubernetes-client)")
        pytest.skip("kubectl is not installed")
    import socket as _socket
    import sys

    import httpx

    cert, key = _self_signed(tmp_path)
    db = tmp_path / "k.db"
    cli = [sys.executable, "-m", "katib"]
    assert subprocess.run([*cli, "user", "add", "alice", "--db", str(db)], capture_output=True, timeout=60).returncode == 0
    token = subprocess.run([*cli, "user", "token", "alice", "--db", str(db)], capture_output=True, text=True,
                           timeout=60).stdout.strip().split()[-1]
    assert subprocess.run([*cli, "user", "grant", "alice", "default", "editor", "--db", str(db)],
                          capture_output=True, timeout=60).returncode == 0
    for flags, why in ((["--tls-cert", str(cert)], "--tls-cert and --tls-key go together"),
                       (["--tls-cert", str(key), "--tls-key", str(key)], "do not load as a certificate and its key")):
        bad = subprocess.run([*cli, "server", "--db", str(db), *flags], capture_output=True, text=True, timeout=60)
        assert bad.returncode != 0 and why in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([*cli, "server", "--auth", "--allow-unfenced-trials", "--no-sandbox", "--port", str(port),
                               "--db", str(db), "--tls-cert", str(cert), "--tls-key", str(key)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", verify=str(cert), timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, server.stdout.read() if server.poll() else ""
            time.sleep(0.2)
        experiments = url + "/apis/kubeflow.org/v1beta1/namespaces/default/experiments"
        assert httpx.get(experiments, verify=str(cert)).status_code == 401
        assert httpx.get(experiments, verify=str(cert), headers={"Authorization": f"Bearer {token}"}).status_code == 200
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served beside it
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        config = tmp_path / "kubeconfig"
        config.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "katib",
            "clusters": [{"name": "katib", "cluster": {"server": url, "certificate-authority": str(cert)}}],
            "contexts": [{"name": "katib", "context": {"cluster": "katib", "user": "alice", "namespace": "default"}}],
            "users": [{"name": "alice", "user": {"token": token}}]}))
        env = {**os.environ, "KUBECONFIG": str(config), "HOME": str(tmp_path)}
        done = subprocess.run([KUBECTL, "--cache-dir", str(tmp_path / "cache"), "get", "experiments"],
                              capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert "No resources found" in done.stdout + done.stderr
        # Our CLI (and KatibClient): the system's CAs, or SSL_CERT_FILE.
        ours = subprocess.run([*cli, "--server", url, "get", "experiments"], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "SSL_CERT_FILE": str(cert), "KATIB_TOKEN": token})
        assert ours.returncode == 0, ours.stderr
    finally:
        server.terminate()
        server.wait(30)
