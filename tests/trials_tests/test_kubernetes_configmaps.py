"""ConfigMap trial templates read from the cluster (`katib run --executor kubernetes`
without --configmaps), as Katib's controller reads spec.trialTemplate.configMap; run against
the kmock emulator (kube_cluster.py)."""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip("kmock")

from katib.cli._run import _with_configmap  # noqa: E402
from katib.configmaps import SOURCE_ANNOTATION  # noqa: E402
from katib.controller import Controller, admit  # noqa: E402
from katib.errors import ValidationError  # noqa: E402
from tests.conftest import REPO, experiment, python_command  # noqa: E402
from tests.trials_tests.kube_cluster import FakeCluster  # noqa: E402
from trials._kubernetes import KubernetesExecutor, manifest_errors  # noqa: E402


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = FakeCluster(REPO / "examples", tmp_path_factory.mktemp("pod-logs"))
    yield c
    c.close()


def kubeconfig(tmp_path, url: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "me", "user": {"token": "not-checked"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "me"}}],
    }))
    return str(path)


def with_configmap_ref(name: str, namespace: str = "default") -> dict:
    doc = experiment(name=f"cm-{name}", maxTrialCount=2, parallelTrialCount=2)
    tt = doc["spec"]["trialTemplate"]
    tt["configMap"] = {"configMapName": name, "configMapNamespace": namespace, "templatePath": "job.yaml"}
    del tt["trialSpec"]
    return doc


def test_the_template_is_read_from_the_clusters_configmap_and_runs(sqlite_store, tmp_path, cluster):
    from kubernetes import client

    template = experiment()["spec"]["trialTemplate"]["trialSpec"]
    template["spec"]["template"]["spec"]["containers"][0]["command"] = python_command(
        "print('loss=${trialParameters.x}')")
    client.CoreV1Api(cluster.api).create_namespaced_config_map("team", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "templates", "namespace": "team"},
        "data": {"job.yaml": yaml.safe_dump(template)}})
    doc = _with_configmap(with_configmap_ref("templates", "team"), None, "kubernetes",
                          kubeconfig(tmp_path, cluster.url))
    assert doc["spec"]["trialTemplate"]["trialSpec"] == template
    assert doc["metadata"]["annotations"][SOURCE_ANNOTATION] == "team/templates/job.yaml"
    executor = KubernetesExecutor(api_client=cluster.api, watch_timeout=5)
    ctl = Controller(sqlite_store, executor=executor, runs_root=tmp_path / "runs", tick=0.1)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    try:
        status = ctl.run(rec.namespace, rec.name).to_dict()
    finally:
        executor.close()
    assert status["trialsSucceeded"] == 2, status.get("conditions")
    jobs = [j for j in cluster.created if j["metadata"]["labels"].get("katib.kubeflow.org/experiment") == "cm-templates"]
    assert len(jobs) == 2 and all(manifest_errors(j) == [] for j in jobs)


def test_a_configmap_the_cluster_lacks_is_refused_naming_the_field(tmp_path, cluster):
    with pytest.raises(ValidationError, match=r"spec.trialTemplate.configMap.configMapName: ConfigMap "
                                              r"default/absent not found \(the cluster of "):
        _with_configmap(with_configmap_ref("absent"), None, "kubernetes", kubeconfig(tmp_path, cluster.url))


def test_other_executors_do_not_ask_a_cluster(tmp_path):
    doc = with_configmap_ref("anything")
    assert _with_configmap(doc, None, "local", str(tmp_path / "no-kubeconfig")) is doc
