"""ConfigMap trial templates: Katib's example whose template lives in a ConfigMap runs
with ``katib run --configmaps`` (and $KATIB_CONFIGMAPS), and every way of getting the
ConfigMap wrong is a clear error naming the field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from katib.configmaps import SOURCE_ANNOTATION, read_configmaps, resolve_trial_template
from katib.errors import ValidationError
from tests.conftest import REPO

EXAMPLES = REPO / "tests" / "data" / "katib-examples"
EXAMPLE = EXAMPLES / "trial-configmap-source.yaml"
TEMPLATES = EXAMPLES / "trial-templates.yaml"


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcd", "bcde", strict=True)) + "kind: Job\n"


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def test_the_template_is_read_into_trial_spec():
    doc = resolve_trial_template(example(), read_configmaps(TEMPLATES))
    tt = doc["spec"]["trialTemplate"]
    assert "configMap" not in tt and tt["trialSpec"]["kind"] == "Job"
    assert doc["metadata"]["annotations"][SOURCE_ANNOTATION] == "kubeflow/trial-templates/defaultTrialTemplate.yaml"
    assert "configMap" in example()["spec"]["trialTemplate"]  # the input is left as it was


def test_a_folder_and_a_list_are_read(tmp_path: Path):
    cm = yaml.safe_load(TEMPLATES.read_text())
    (tmp_path / "list.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [cm]}))
    (tmp_path / "notes.txt").write_text("not read")
    assert [c["metadata"]["name"] for c in read_configmaps(tmp_path)] == ["trial-templates"]


@pytest.mark.parametrize(("change", "field", "message"), [
    (lambda cm: cm["metadata"].update(name="other"), "configMapName", "ConfigMap kubeflow/trial-templates not found"),
    (lambda cm: cm.update(data={"x.yaml": "a: 1"}), "templatePath", "has no key 'defaultTrialTemplate.yaml' (keys: x.yaml)"),
    (lambda cm: cm.update(data={"defaultTrialTemplate.yaml": "a: [1"}), "templatePath", "is not YAML"),
    (lambda cm: cm.update(data={"defaultTrialTemplate.yaml": "- a"}), "templatePath", "is not a trial spec"),
    # The template is YAML inside a string: bounded as the experiment's own YAML is (it
    # was parsed unbounded: a 600-byte alias bomb took the server minutes, deep nesting a 500).
    (lambda cm: cm.update(data={"defaultTrialTemplate.yaml": BOMB}), "templatePath", "aliases expand"),
    (lambda cm: cm.update(data={"defaultTrialTemplate.yaml": "x: " + "[" * 3000 + "]" * 3000}), "templatePath",
     "nests deeper than 64 levels"),
    (lambda cm: cm.update(data={"defaultTrialTemplate.yaml": "kind: Job\nkind: Pod\n"}), "templatePath", "duplicate"),
])
def test_wrong_configmaps_name_the_field(change, field, message):
    cm = yaml.safe_load(TEMPLATES.read_text())
    change(cm)
    with pytest.raises(ValidationError) as info:
        resolve_trial_template(example(), [cm])
    [error] = info.value.errors
    assert error.path == f"spec.trialTemplate.configMap.{field}" and message in error.message


def katib(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "katib", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_katibs_configmap_example_runs(tmp_path: Path):
    db = str(tmp_path / "k.db")
    refused = katib("run", str(EXAMPLE), "--db", db)
    assert refused.returncode == 2 and "--configmaps" in refused.stderr
    result = katib("run", str(EXAMPLE), "--db", db, env={"KATIB_CONFIGMAPS": str(TEMPLATES)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Succeeded (ExperimentMaxTrialsReached)" in result.stdout
    from katib.store import Store

    store = Store(db)
    rec = store.get_experiment("kubeflow", "trial-configmap-source")
    trials = store.list_trials(rec.id)
    assert len(trials) == 4 and {t.state for t in trials} == {"Succeeded"}
    assert {m["name"] for m in rec.status.to_dict()["currentOptimalTrial"]["observation"]["metrics"]} == {
        "Validation-accuracy", "Train-accuracy"}


def test_the_server_serves_configmaps_and_runs_the_example(sqlite_store, tmp_path: Path):
    from tests.api_tests.conftest import LiveServer

    cm = yaml.safe_load(TEMPLATES.read_text())
    with LiveServer(sqlite_store, tmp_path) as server:
        base = "/api/v1/namespaces/kubeflow/configmaps"
        missing = server.client.post("/apis/kubeflow.org/v1beta1/namespaces/kubeflow/experiments", json=example())
        assert missing.status_code == 422 and "ConfigMap kubeflow/trial-templates not found" in missing.text
        assert server.client.post(base, json=cm).status_code == 201
        assert server.client.post(base, json=cm).status_code == 409
        assert [c["metadata"]["name"] for c in server.client.get(base).json()["items"]] == ["trial-templates"]
        assert server.client.get(f"{base}/trial-templates").json()["data"] == cm["data"]
        bad = server.client.post(base, json={"kind": "ConfigMap", "metadata": {"name": "Bad_Name"}})
        assert bad.status_code == 422 and "DNS subdomain" in bad.text and "invalid ConfigMap" in bad.text
        # the longest names a file holds are served; longer ones were a 500 (the file name too long)
        for name, status in (("a" * 250, 201), ("b" * 251, 422), ("c" * 253, 422)):
            answer = server.client.post(base, json={"kind": "ConfigMap", "metadata": {"name": name}, "data": {}})
            assert answer.status_code == status, (len(name), answer.text[:300])
        assert server.client.get(f"{base}/{'a' * 250}").status_code == 200
        assert server.client.get(f"{base}/{'c' * 253}").status_code == 422
        assert server.client.delete(f"{base}/{'a' * 250}").status_code == 200
        paged = server.client.get(f"{base}?continue=../x")
        assert paged.status_code == 422 and "continue" in paged.text, paged.text
        created = server.client.post("/apis/kubeflow.org/v1beta1/namespaces/kubeflow/experiments", json=example())
        assert created.status_code == 201, created.text
        server.wait_for("kubeflow", "trial-configmap-source")
        assert server.client.delete(f"{base}/trial-templates").status_code == 200
        assert server.client.get(f"{base}/trial-templates").status_code == 404


def test_a_configmap_list_is_paged_by_count_and_bytes(sqlite_store, tmp_path: Path, monkeypatch):
    """The list read every ConfigMap of the namespace whole into one answer: 60 of 1 MB
    were a 60 MB answer in 1.75 s, and a few viewers listing at once held the server. It
    now pages as Kubernetes does (``limit``, ``continue``), within the server's page and
    list bytes; creating an experiment reads the one ConfigMap it names."""
    from tests.api_tests.conftest import LiveServer

    monkeypatch.setenv("KATIB_MAX_PAGE", "4")
    monkeypatch.setenv("KATIB_MAX_LIST_BYTES", str(3 * 20_000))
    with LiveServer(sqlite_store, tmp_path) as server:
        base = "/api/v1/namespaces/team/configmaps"
        for i in range(9):
            body = {"kind": "ConfigMap", "metadata": {"name": f"cm-{i}"}, "data": {"k": "x" * (10_000 if i < 5 else 25_000)}}
            assert server.client.post(base, json=body).status_code == 201
        pages, token = [], None
        while True:
            reply = server.client.get(base, params={"continue": token} if token else {}).json()
            pages.append([c["metadata"]["name"] for c in reply["items"]])
            token = reply["metadata"].get("continue")
            if token is None:
                break
        assert pages == [["cm-0", "cm-1", "cm-2", "cm-3"], ["cm-4", "cm-5"], ["cm-6", "cm-7"], ["cm-8"]]
        assert [c["metadata"]["name"] for c in server.client.get(base, params={"limit": 2}).json()["items"]] == ["cm-0", "cm-1"]
        bad = server.client.get(base, params={"continue": "../x"})
        assert bad.status_code == 422 and "DNS subdomain" in bad.text


def test_two_creates_of_one_configmap_at_once_are_one_create_and_a_conflict(tmp_path: Path, monkeypatch):
    """Both passed the 'already exists' check and the last write won (and a reader could
    read half a file): the name is now taken by a link, which fails if it is there."""
    from types import SimpleNamespace

    import api._configmaps as configmaps
    from katib.errors import ConflictError

    state = SimpleNamespace(runs_root=tmp_path / "runs")
    first = {"metadata": {"name": "tpl"}, "data": {"a.yaml": "first"}}
    configmaps.create(state, "default", first)
    monkeypatch.setattr(Path, "exists", lambda self: False)  # the second create's check ran before the first wrote
    with pytest.raises(ConflictError, match='configmaps "tpl" already exists'):
        configmaps.create(state, "default", {"metadata": {"name": "tpl"}, "data": {"a.yaml": "second"}})
    monkeypatch.undo()
    assert configmaps.get(state, "default", "tpl")["data"] == {"a.yaml": "first"}
    assert [p.name for p in (tmp_path / "configmaps" / "default").iterdir()] == ["tpl.json"]
