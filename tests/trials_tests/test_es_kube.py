"""SetTrialStatus for a Katib control plane (issue 12): `katib suggestion serve` stands in
for Katib's medianstop pod, so, as upstream's service does
(pkg/earlystopping/v1beta1/medianstop/service.py), it appends an EarlyStopped condition
to the Trial object through the Kubernetes API; here the kmock emulator's."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

pytest.importorskip("kubernetes")
pytest.importorskip("kmock")

from suggestion import kube_trial_stopper, serve  # noqa: E402
from suggestion.grpc import api_pb2, api_pb2_grpc  # noqa: E402
from tests.trials_tests.kube_cluster import FakeCluster  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TRIAL = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial", "metadata": {"name": "demo-abc", "namespace": "team"},
         "spec": {"parameterAssignments": [{"name": "lr", "value": "0.1"}]}}
RUNNING = [{"type": "Created", "status": "True", "reason": "TrialCreated"},
           {"type": "Running", "status": "True", "reason": "TrialRunning"}]


def test_set_trial_status_marks_the_katib_trial_early_stopped(tmp_path):
    cluster = FakeCluster(REPO / "examples", tmp_path)
    server = serve("127.0.0.1", 0, set_trial_status=kube_trial_stopper("team", api_client=cluster.api))
    try:
        cluster.custom.create_namespaced_custom_object("kubeflow.org", "v1beta1", "team", "trials", TRIAL)
        cluster.custom.patch_namespaced_custom_object_status("kubeflow.org", "v1beta1", "team", "trials", "demo-abc",
                                                             {"status": {"conditions": RUNNING}})
        es = api_pb2_grpc.EarlyStoppingStub(grpc.insecure_channel(f"127.0.0.1:{server.bound_port}"))
        es.SetTrialStatus(api_pb2.SetTrialStatusRequest(trial_name="demo-abc"), timeout=30)
        trial = cluster.custom.get_namespaced_custom_object("kubeflow.org", "v1beta1", "team", "trials", "demo-abc")
        conditions = trial["status"]["conditions"]
        assert [c["type"] for c in conditions] == ["Created", "Running", "EarlyStopped"]  # appended, as upstream
        assert conditions[-1]["status"] == "True" and conditions[-1]["reason"] == "TrialEarlyStopped"
        assert conditions[-1]["message"] == "Trial is early stopped" and conditions[-1]["lastTransitionTime"].endswith("Z")
        assert trial["spec"] == TRIAL["spec"]
        with pytest.raises(grpc.RpcError) as missing:
            es.SetTrialStatus(api_pb2.SetTrialStatusRequest(trial_name="nothing"), timeout=30)
        assert missing.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "Get Trial: nothing in namespace: team failed: 404" in missing.value.details()
    finally:
        server.stop(0)
        cluster.close()


def test_without_a_kubernetes_configuration_it_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setattr("suggestion._es_kube.SA_NAMESPACE", tmp_path / "no-pod")
    error = kube_trial_stopper()("demo-abc")
    assert error is not None and error.startswith("SetTrialStatus: no Kubernetes configuration to reach the Trial with")
