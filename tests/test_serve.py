"""katib serve: `katib run examples/random.yaml && katib serve random` answers KServe's Open
Inference Protocol (v2 REST) with the best trial's model, to raw HTTP, Triton's client and
KServe's own client alike, with the predictions of the model loaded directly; bad input
gets the protocol's error body. katib export inferenceservice writes what KServe reads.
What the server refuses (web pages, large bodies, slow clients) is tests/test_serve_guard.py."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests._serving import digits, free_port, katib_cli, serving

pytest.importorskip("kserve")
httpx = pytest.importorskip("httpx")
np = pytest.importorskip("numpy")
pytest.importorskip("sklearn")


def test_the_protocols_health_and_metadata(served):
    assert httpx.get(f"{served.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{served.url}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{served.url}/v2/models/random/ready").json() == {"name": "random", "ready": True}
    meta = httpx.get(f"{served.url}/v2/models/random").json()
    assert meta["name"] == "random"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 64]}]
    assert meta["outputs"] == [{"name": "output-0", "datatype": "INT64", "shape": [-1]}]


def test_predictions_are_the_models_own_through_every_client(served):
    import joblib
    import tritonclient.http as triton
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    import katib

    x = digits()
    expected = joblib.load(served.folder / "model.joblib").predict(x)  # the model loaded directly
    assert (katib.load_model(served.folder).predict(x) == expected).all()
    assert len(set(expected)) > 3  # a real classifier, not a constant

    body = {"inputs": [{"name": "input-0", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    response = httpx.post(f"{served.url}/v2/models/random/infer", json=body)
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert output["shape"] == [len(x)] and output["data"] == expected.tolist()

    client = triton.InferenceServerClient(url=served.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("random")
    for binary in (False, True):  # JSON tensors, and Triton's binary tensor extension
        tensor = triton.InferInput("input-0", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        result = client.infer("random", [tensor], outputs=[triton.InferRequestedOutput("output-0", binary_data=binary)])
        assert (result.as_numpy("output-0") == expected).all(), binary
    client.close()

    async def kserve_client():
        rest = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            tensor = InferInput("input-0", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=False)
            result = await rest.infer(served.url, InferRequest(model_name="random", infer_inputs=[tensor]),
                                      model_name="random")
            ready = await rest.is_model_ready(served.url, "random")
        finally:
            await rest.close()
        return result.outputs[0].as_numpy(), ready

    predicted, ready = asyncio.run(kserve_client())
    assert ready and (predicted == expected).all()


BAD = {
    "too few features": {"inputs": [{"name": "input-0", "shape": [1, 10], "datatype": "FP32", "data": [0.0] * 10}]},
    "data and shape disagree": {"inputs": [{"name": "input-0", "shape": [3, 64], "datatype": "FP32", "data": [0.0] * 20}]},
    "text for numbers": {"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": ["seven"]}]},
    "an unknown datatype": {"inputs": [{"name": "input-0", "shape": [1, 64], "datatype": "FP99", "data": [0] * 64}]},
    "no inputs": {"inputs": []},
    "not an inference request": {"instances": [[0.0] * 64]},
    "data that is not a list": {"inputs": [{"name": "input-0", "shape": [1, 64], "datatype": "FP32", "data": "x"}]},
    "three dimensions": {"inputs": [{"name": "input-0", "shape": [1, 8, 8], "datatype": "FP32", "data": [0] * 64}]},
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gets_the_protocols_error_body(served, case):
    response = httpx.post(f"{served.url}/v2/models/random/infer", json=BAD[case])
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"} and response.json()["error"]


def test_not_json_and_unknown_models_are_not_server_errors(served):
    response = httpx.post(f"{served.url}/v2/models/random/infer", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert response.status_code == 400 and "error" in response.json()
    response = httpx.post(f"{served.url}/v2/models/other/infer", json=BAD["too few features"])
    assert response.status_code == 404 and "other" in response.json()["error"]


def test_export_inferenceservice_is_kserves_own(served, tmp_path):
    from kserve import ApiClient, V1beta1InferenceService

    done = katib_cli("export", "inferenceservice", "random", "-n", "kubeflow", "--db", str(served.db),
                      "--storage-uri", "s3://models/katib/random", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"# The model of trial {served.trial} (sklearn)")
    isvc = yaml.safe_load(done.stdout)
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    assert isvc["metadata"]["name"] == "random" and isvc["metadata"]["namespace"] == "kubeflow"
    assert isvc["spec"]["predictor"]["model"] == {"modelFormat": {"name": "sklearn"}, "protocolVersion": "v2",
                                                  "runtime": "kserve-sklearnserver",
                                                  "storageUri": "s3://models/katib/random"}

    from kubernetes.client import ApiClient as KubernetesApiClient

    class Response:  # the generated clients deserialize what a cluster answers
        def __init__(self, obj):
            self.data = json.dumps(obj)

    api = ApiClient()
    spec = api.deserialize(Response(isvc["spec"]), "V1beta1InferenceServiceSpec")
    metadata = KubernetesApiClient().deserialize(Response(isvc["metadata"]), "V1ObjectMeta")  # KServe uses Kubernetes'
    model = V1beta1InferenceService(api_version=isvc["apiVersion"], kind=isvc["kind"], metadata=metadata, spec=spec)
    _within(isvc, api.sanitize_for_serialization(model))  # every field is one of KServe's: nothing dropped

    missing = katib_cli("export", "inferenceservice", "random", "-n", "kubeflow", "--db", str(served.db), cwd=tmp_path)
    assert missing.returncode == 1 and "--storage-uri" in missing.stderr and "model.joblib" in missing.stderr


def _within(ours, theirs, path="") -> None:
    """Every field of ``ours`` is in ``theirs`` with the same value (KServe's models add
    their defaults, e.g. the predictor container's empty name)."""
    if isinstance(ours, dict):
        assert isinstance(theirs, dict), path
        for key, value in ours.items():
            assert key in theirs, f"{path}.{key} is not a field of KServe's model"
            _within(value, theirs[key], f"{path}.{key}")
    else:
        assert ours == theirs, path


def test_a_trial_without_a_model_is_named(tmp_path):
    from katib import KatibClient, search
    from katib.errors import KatibError
    from katib.serve import locate

    with KatibClient(db=str(tmp_path / "k.db"), workdir=tmp_path, tick=0.05) as client:
        result = client.tune("nomodel", lambda x: x, {"x": search.double(0, 1)}, objective_metric_name="loss",
                             max_trial_count=1, progress=False)
        store = client._backend.store  # type: ignore[union-attr]
        with pytest.raises(KatibError, match=f"trial {result.best_trial.name} saved no model"):
            locate(store, tmp_path / "runs", "default", "nomodel")


def test_pytorch_models_are_served_scripted_or_rebuilt(tmp_path, monkeypatch):
    """A module TorchScript compiles is saved as model.pt; one it cannot, as its state dict
    with the function that builds it; both answer v2 requests as the module itself would."""
    torch = pytest.importorskip("torch")
    from kserve import InferInput, InferRequest

    import katib
    from katib.serve import model as served_model

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = np.random.default_rng(0).random((5, 4))  # float64: cast to the module's float32
    expected = net(torch.from_numpy(x).float()).detach().numpy()

    def build():
        return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))

    monkeypatch.setenv("KATIB_ARTIFACT_DIR", str(tmp_path / "scripted"))
    assert katib.save_model(net).format == "torchscript"
    saved = katib.save_model(net, tmp_path / "state", factory=build)
    assert saved.format == "pytorch" and (tmp_path / "state" / "model.pth").exists()
    for folder in ("scripted", "state"):
        server_side = served_model("net", tmp_path / folder)
        tensor = InferInput("input-0", list(x.shape), "FP64")
        tensor.set_data_from_numpy(x, binary_data=False)
        response = asyncio.run(server_side.predict(InferRequest(model_name="net", infer_inputs=[tensor])))
        assert np.allclose(response.outputs[0].as_numpy(), expected, atol=1e-6), folder
    from kserve.errors import InvalidInput

    with pytest.raises(InvalidInput, match="cannot take this input"):
        wrong = InferInput("input-0", [2, 3], "FP32")
        wrong.set_data_from_numpy(np.zeros((2, 3), np.float32), binary_data=False)
        asyncio.run(server_side.predict(InferRequest(model_name="net", infer_inputs=[wrong])))


def test_onnx_models_are_served_with_onnxruntime(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from kserve import InferInput, InferRequest
    from onnx import TensorProto, helper, numpy_helper

    import katib
    from katib.serve import model as served_model

    weights, bias = np.arange(12, dtype=np.float32).reshape(4, 3) / 10, np.array([1, 2, 3], np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    assert isinstance(proto, onnx.ModelProto) and katib.save_model(proto, tmp_path).format == "onnx"
    x = np.random.default_rng(0).random((2, 4))
    tensor = InferInput("input-0", [2, 4], "FP64")
    tensor.set_data_from_numpy(x, binary_data=False)
    response = asyncio.run(served_model("linear", tmp_path).predict(InferRequest(model_name="linear",
                                                                                 infer_inputs=[tensor])))
    assert np.allclose(response.outputs[0].as_numpy(), x @ weights + bias, atol=1e-5)


def test_the_server_is_ready_only_while_its_model_is(served):
    """/v2/health/ready answered ready with no model left to serve."""
    from kserve.model_repository import ModelRepository

    from katib._served_model import OneModelDataPlane
    from katib.serve import model as served_model

    server_side = served_model("random", served.folder)
    models = ModelRepository()
    models.update(server_side)
    plane = OneModelDataPlane(model_registry=models)
    assert asyncio.run(plane.ready())
    server_side.stop()  # what an unload, or the server's own stop, does to a model
    assert not asyncio.run(plane.ready())
    models.unload("random")
    assert not asyncio.run(plane.ready())


SLOW_MODEL = """
import time
from pathlib import Path


class Slow:
    \"\"\"A model that takes its time, as a large one computes: it answers x's row sums once
    ``release`` exists beside this file (or two minutes have passed).\"\"\"

    def predict(self, x):
        here = Path(__file__)
        here.with_name("predicting").touch()
        given_up = time.monotonic() + 120
        while not here.with_name("release").exists() and time.monotonic() < given_up:
            time.sleep(0.01)
        return x.sum(axis=1)
"""


def test_health_answers_while_a_prediction_runs(tmp_path, monkeypatch):
    """KServe runs a model's synchronous predict on its event loop: while one request was
    answered, /v2/health/live (a Kubernetes probe) and every other request waited for it.
    katib serve predicts in the model's worker thread: health answers while a prediction
    runs, one the test lets finish only afterwards."""
    from katib import save_model

    (tmp_path / "slowmodel.py").write_text(SLOW_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    from slowmodel import Slow  # type: ignore[import-not-found]

    save_model(Slow(), tmp_path / "model", format="sklearn")
    with serving(tmp_path / "model", "slow", tmp_path) as url:
        request = {"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP32", "data": [1.5, 2.0]}]}
        answer = {}
        worker = threading.Thread(target=lambda: answer.update(r=httpx.post(f"{url}/v2/models/slow/infer",
                                                                               json=request, timeout=180)))
        worker.start()
        try:
            deadline = time.monotonic() + 60
            while not (tmp_path / "predicting").exists():
                assert time.monotonic() < deadline and worker.is_alive(), answer
                time.sleep(0.05)
            # The prediction waits for "release": health answered now is answered while it runs.
            assert httpx.get(f"{url}/v2/health/live", timeout=30).json() == {"live": True}
            assert worker.is_alive() and not answer
        finally:
            (tmp_path / "release").touch()
            worker.join(timeout=180)
        assert answer["r"].status_code == 200 and answer["r"].json()["outputs"][0]["data"] == [3.5], answer["r"].text


class _Planted:
    """A "model" whose unpickling runs code of its writer's choosing."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_tenants_pickled_model_is_not_loaded_from_a_shared_store_unless_trusted(tmp_path):
    """A trial of a katib server --auth store is a tenant's: its model.pkl, unpickled by the
    operator's katib serve (or load_model), ran the tenant's code as the operator."""
    import joblib

    from katib import KatibClient, search
    from katib.errors import KatibError
    from katib.serve import locate
    from katib.store import UserStore

    marker = tmp_path / "PWNED"
    db = tmp_path / "k.db"
    with KatibClient(db=str(db), workdir=tmp_path, tick=0.05) as client:
        client.tune("planted", lambda x: x, {"x": search.double(0, 1)}, objective_metric_name="loss",
                    max_trial_count=1, progress=False)
        store = client._backend.store  # type: ignore[union-attr]
        best = client.get_experiment_result("planted").best_trial.name
        folder = tmp_path / "runs" / "default" / "planted" / best / "artifacts"
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(_Planted(str(marker)), folder / "model.pkl")
        assert locate(store, tmp_path / "runs", "default", "planted")[1] == folder
        UserStore(store).add_user("alice")  # now a shared (--auth) store
        with pytest.raises(KatibError, match="--trust-model-code"):
            client.load_model("planted")
        assert not marker.exists()
        served = katib_cli("serve", "planted", "--db", str(db), "--port", str(free_port()), cwd=tmp_path, timeout=120)
        assert served.returncode != 0 and "--trust-model-code" in served.stderr, served.stderr
        assert not marker.exists()
        client.load_model("planted", trust_pickles=True)  # the operator's explicit choice (its older name)
        assert marker.exists()


def test_a_tenants_torchscript_model_is_not_run_from_a_shared_store_unless_trusted(tmp_path):
    """A TorchScript model is a program: torch.from_file in its forward read any file the
    operator could (and with shared=True wrote it), and katib serve loaded it unasked."""
    torch = pytest.importorskip("torch")

    from katib import KatibClient, search
    from katib.errors import KatibError
    from katib.store import UserStore

    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"OPERATOR-SECRET")

    class Reader(torch.nn.Module):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.from_file(self.path, shared=False, size=15, dtype=torch.uint8).to(torch.float32) + x * 0

    db = tmp_path / "k.db"
    with KatibClient(db=str(db), workdir=tmp_path, tick=0.05) as client:
        client.tune("scripted", lambda x: x, {"x": search.double(0, 1)}, objective_metric_name="loss",
                    max_trial_count=1, progress=False)
        best = client.get_experiment_result("scripted").best_trial.name
        folder = tmp_path / "runs" / "default" / "scripted" / best / "artifacts"
        folder.mkdir(parents=True, exist_ok=True)
        torch.jit.save(torch.jit.script(Reader(str(secret))), str(folder / "model.pt"))
        assert bytes(client.load_model("scripted")(torch.zeros(1)).to(torch.uint8).tolist()) == b"OPERATOR-SECRET"
        UserStore(client._backend.store).add_user("alice")  # type: ignore[union-attr]  # now a tenant's model
        with pytest.raises(KatibError, match="is a program: its forward can read and write any file"):
            client.load_model("scripted")
        client.load_model("scripted", trust_model_code=True)  # the operator's explicit choice


class _UsersNet:  # a user's own torch.nn.Module subclass, defined outside torch (made on demand)
    @staticmethod
    def make():
        import torch

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.fc = torch.nn.Linear(4, 2)

            def forward(self, x):
                return self.fc(x)

        return Net


def test_a_users_own_module_is_saved_and_served(tmp_path):
    # save_model decided "PyTorch" by the class's module name (torch.*): a user's subclass
    # (in __main__ or their package) was refused, with a hint that failed the same way.
    torch = pytest.importorskip("torch")
    from kserve import InferInput, InferRequest

    import katib
    from katib.serve import model as served_model

    net_class = _UsersNet.make()
    torch.manual_seed(0)
    net = net_class()
    assert katib.save_model(net, tmp_path / "scripted").format == "torchscript"
    assert katib.save_model(net, tmp_path / "state", factory=net_class).format == "pytorch"
    x = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    expected = net(torch.from_numpy(x)).detach().numpy()
    for folder in ("scripted", "state"):
        tensor = InferInput("input-0", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=False)
        response = asyncio.run(served_model("net", tmp_path / folder).predict(
            InferRequest(model_name="net", infer_inputs=[tensor])))
        assert np.allclose(response.outputs[0].as_numpy(), expected, atol=1e-6), folder


def test_a_classifier_with_text_labels_answers_bytes(tmp_path):
    # A scikit-learn classifier trained on string labels predicts numpy text ('<U3'): KServe
    # failed to encode it, and every request was a bare 500 (the metadata said BYTES).
    from kserve import InferInput, InferRequest
    from sklearn.linear_model import LogisticRegression

    import katib
    from katib.serve import model as served_model

    clf = LogisticRegression().fit([[0.0], [0.2], [1.8], [2.0]], ["cat", "cat", "dog", "dog"])
    katib.save_model(clf, tmp_path / "m")
    server_side = served_model("pets", tmp_path / "m")
    tensor = InferInput("input-0", [2, 1], "FP32")
    tensor.set_data_from_numpy(np.array([[0.1], [1.9]], np.float32), binary_data=False)
    response = asyncio.run(server_side.predict(InferRequest(model_name="pets", infer_inputs=[tensor])))
    output = response.outputs[0]
    assert output.datatype == "BYTES"
    assert [v.decode() if isinstance(v, bytes) else v for v in output.as_numpy().tolist()] == ["cat", "dog"]


def test_serve_says_in_one_line_what_it_cannot_serve(tmp_path):
    # A model file that does not load was a 50-line traceback; a --db that is not there made
    # an empty store; a port past 65535 was a traceback; a failed trial's model was served
    # without a word.
    from katib import KatibClient, search

    def objective(x):
        import json
        import os
        from pathlib import Path

        folder = Path(os.environ["KATIB_ARTIFACT_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.joblib").write_bytes(b"not a joblib file")
        (folder / "katib-model.json").write_text(json.dumps({"format": "sklearn", "file": "model.joblib"}))
        if x > 0.5:
            raise RuntimeError("diverged after saving")
        return 0.5

    db = tmp_path / "k.db"
    with KatibClient(db=str(db), workdir=tmp_path, tick=0.05) as client:
        result = client.tune("garbage", objective, {"x": search.discrete([0.25, 0.75])}, "score", algorithm_name="grid",
                             max_trial_count=2, max_failed_trial_count=2, progress=False)
        failed = next(t.name for t in result.trials if t.state == "Failed")
    port = str(free_port())
    done = katib_cli("serve", "garbage", "--db", str(db), "--port", port, cwd=tmp_path, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "sklearn model in" in done.stderr and "does not load" in done.stderr
    done = katib_cli("serve", "garbage", "--db", str(db), "--trial", failed, "--port", port, cwd=tmp_path, timeout=120)
    assert f"warning: trial {failed} ended Failed" in " ".join(done.stderr.split()), done.stderr
    done = katib_cli("serve", "garbage", "--db", str(tmp_path / "typo.db"), cwd=tmp_path)
    assert done.returncode == 1 and "no katib store there" in done.stderr and not (tmp_path / "typo.db").exists()
    done = katib_cli("serve", "garbage", "--db", str(db), "--port", "99999", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "65535" in done.stderr


def test_the_served_model_scores_what_its_trial_shows(served):
    # The best trial is ranked by its best epoch's Validation-accuracy (Katib's max), and the
    # example saved its last epoch's model: the served model scored less than the value shown.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from katib import load_model
    from katib.store import Store

    store = Store(str(served.db))
    try:
        rec = store.get_experiment("kubeflow", "random")
        (trial,) = [t for t in store.list_trials(rec.id) if t.name == served.trial]
        shown = float(trial.observation["Validation-accuracy"]["max"])
    finally:
        store.close()
    x, y = load_digits(return_X_y=True)
    _, x_val, _, y_val = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    model = load_model(served.folder)
    assert round(float((model.predict(x_val) == y_val).mean()), 4) == shown
