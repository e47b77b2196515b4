"""katib serve: `katib run examples/random.yaml && katib serve random` answers KServe's Open
Inference Protocol (v2 REST) with the best trial's model, to raw HTTP, Triton's client and
KServe's own client alike, with the predictions of the model loaded directly; bad input
gets the protocol's error body. katib export inferenceservice writes what KServe reads."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytest.importorskip("kserve")
httpx = pytest.importorskip("httpx")
np = pytest.importorskip("numpy")
pytest.importorskip("sklearn")


@dataclass
class Served:
    url: str
    db: Path
    folder: Path
    trial: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _katib(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "katib", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


MAX_BODY = 65536  # the served model's --max-body: the requests below are a few KiB


@contextlib.contextmanager
def _server(command: list[str], url: str, log_path: Path, cwd: Path, env: dict[str, str] | None = None):
    """A server process, once it answers ready; stopped as Ctrl-C or SIGTERM stops it."""
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    try:
        deadline = time.monotonic() + 180  # importing kserve takes seconds on a busy machine
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.5)
        yield proc
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()  # Ctrl-C or SIGTERM ends it cleanly
    finally:
        proc.kill()
        proc.wait()
        log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, example_run):
    tmp = tmp_path_factory.mktemp("serve")
    run, db = example_run(REPO / "examples" / "random.yaml")  # the examples test's own run, when it ran first
    assert run.returncode == 0, run.stdout + run.stderr
    from katib.names import RunLayout
    from katib.store import Store

    store = Store(str(db))
    trial = store.get_experiment("kubeflow", "random").status.to_dict()["currentOptimalTrial"]["bestTrialName"]
    store.close()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "katib", "serve", "random", "-n", "kubeflow", "--db", str(db), "--port", str(port),
               "--max-body", str(MAX_BODY)]
    with _server(command, url, tmp / "serve.log", tmp):
        yield Served(url, db, RunLayout(db.parent / "runs").artifacts("kubeflow", "random", trial), trial)


def _digits(count: int = 12):
    from sklearn.datasets import load_digits

    x, _ = load_digits(return_X_y=True)
    return x[-count:].astype(np.float32)  # raw pixels: the saved pipeline scales them itself


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

    x = _digits()
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

    done = _katib("export", "inferenceservice", "random", "-n", "kubeflow", "--db", str(served.db),
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

    missing = _katib("export", "inferenceservice", "random", "-n", "kubeflow", "--db", str(served.db), cwd=tmp_path)
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


def test_web_pages_cannot_use_a_model_served_on_loopback(served):
    """A DNS-rebinding page (its own name, resolved to 127.0.0.1) could read predictions
    and unload the model; another site's page could send it work."""
    body = {"inputs": [{"name": "input-0", "shape": [1, 64], "datatype": "FP32", "data": _digits(1).ravel().tolist()}]}
    rebinding = {"host": "evil.example:8080"}
    assert httpx.get(f"{served.url}/v2/models/random", headers=rebinding).status_code == 403
    assert httpx.post(f"{served.url}/v2/models/random/infer", json=body, headers=rebinding).status_code == 403
    assert httpx.post(f"{served.url}/v2/repository/models/random/unload", headers=rebinding).status_code == 403
    page = {"sec-fetch-site": "cross-site", "content-type": "text/plain"}
    assert httpx.post(f"{served.url}/v2/models/random/infer", content=__import__("json").dumps(body),
                      headers=page).status_code == 403
    assert httpx.get(f"{served.url}/v2/models/random/ready").json()["ready"] is True  # still served
    assert httpx.get(f"{served.url}/v2/models/random", headers={"host": "localhost"}).status_code == 200


def _one_digit() -> dict:
    return {"inputs": [{"name": "input-0", "shape": [1, 64], "datatype": "FP32", "data": _digits(1).ravel().tolist()}]}


def test_a_page_of_another_origin_cannot_send_work_or_unload_the_model(served):
    """Any page may POST a form or a "simple" fetch (text/plain) to localhost: one of another
    origin, a page of another port on this machine included, is refused before KServe's routes
    (it unloaded the model: ready and infer then said it did not exist). Reads and requests
    from programs, which send no Origin, are served; so is the server's own origin."""
    infer = f"{served.url}/v2/models/random/infer"
    simple = {"content-type": "text/plain"}
    for origin in ("http://evil.example", "http://127.0.0.1:1", "null"):
        response = httpx.post(infer, content=json.dumps(_one_digit()), headers={**simple, "origin": origin})
        assert response.status_code == 403 and "Origin" in response.json()["error"], (origin, response.text)
        response = httpx.post(f"{served.url}/v2/repository/models/random/unload", headers={**simple, "origin": origin})
        assert response.status_code == 403, (origin, response.text)
    assert httpx.post(infer, json=_one_digit(), headers={"origin": served.url}).status_code == 200
    assert httpx.get(f"{served.url}/v2/models/random", headers={"origin": "http://evil.example"}).status_code == 200
    assert httpx.get(f"{served.url}/v2/models/random/ready").json() == {"name": "random", "ready": True}


def test_the_model_repository_api_is_not_served(served):
    """KServe's model repository API would unload the server's only model (and load none):
    katib serve serves one, for as long as it runs, and /v2/health/ready says so."""
    for path in ("models/random/load", "models/random/unload", "index"):
        response = httpx.post(f"{served.url}/v2/repository/{path}")
        assert response.status_code == 404 and "one model" in response.json()["error"], (path, response.text)
    assert httpx.get(f"{served.url}/v2/models/random/ready").json() == {"name": "random", "ready": True}
    assert httpx.get(f"{served.url}/v2/health/ready").json() == {"ready": True}
    assert httpx.post(f"{served.url}/v2/models/random/infer", json=_one_digit()).status_code == 200


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


def _padded(body: dict, size: int) -> bytes:
    """``body`` as JSON, padded with spaces to ``size`` bytes."""
    text = json.dumps(body).encode()
    return text + b" " * (size - len(text))


def test_a_body_over_max_body_gets_413(served):
    """A body over --max-body is refused, whether it says its size (refused before it is
    read) or comes in chunks (refused as it passes the limit): a 20 MB body held the whole
    server for 13-24 s. One of exactly the limit is served."""
    infer = f"{served.url}/v2/models/random/infer"
    json_type = {"content-type": "application/json"}

    def chunks(data: bytes):
        for start in range(0, len(data), 4096):
            yield data[start:start + 4096]

    response = httpx.post(infer, content=_padded(_one_digit(), MAX_BODY + 1), headers=json_type)
    assert response.status_code == 413, response.text
    assert f"{MAX_BODY + 1} bytes" in response.json()["error"] and "--max-body" in response.json()["error"]
    response = httpx.post(infer, content=chunks(_padded(_one_digit(), MAX_BODY + 1)), headers=json_type)
    assert response.status_code == 413 and "--max-body" in response.json()["error"], response.text
    for body in (_padded(_one_digit(), MAX_BODY), chunks(_padded(_one_digit(), MAX_BODY))):
        response = httpx.post(infer, content=body, headers=json_type)
        assert response.status_code == 200 and response.headers["content-type"] == "application/json", response.text
        assert len(response.json()["outputs"][0]["data"]) == 1
    assert httpx.get(f"{served.url}/v2/health/live").json() == {"live": True}


def _binary(header: dict, data: bytes, header_length: str | None = None) -> tuple[bytes, dict[str, str]]:
    text = json.dumps(header).encode()
    return text + data, {"inference-header-content-length": header_length or str(len(text))}


_TENSOR = {"name": "input-0", "datatype": "FP32", "parameters": {"binary_data_size": 16}}
MALFORMED = {
    "a shape larger than the data": _binary({"inputs": [{**_TENSOR, "shape": [1000000000, 4]}]}, b"\0" * 16),
    "fewer bytes than binary_data_size": _binary({"inputs": [{**_TENSOR, "shape": [1, 4]}]}, b"\0" * 8),
    "a header without inputs": _binary({"outputs": []}, b"\0" * 16),
    "a header length that is not a number": _binary({"inputs": [{**_TENSOR, "shape": [1, 4]}]}, b"\0" * 16, "x"),
    "a header length past the body": _binary({"inputs": [{**_TENSOR, "shape": [1, 4]}]}, b"\0" * 16, "100000"),
    "a header that is not JSON": (b"{inputs" + b"\0" * 16, {"inference-header-content-length": "7"}),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_binary_tensors_get_400(served, case):
    """Binary tensors their header does not describe were a 500 ("cannot reshape array of size
    4 into shape (1000000000,4)"), raised while KServe decoded them."""
    body, headers = MALFORMED[case]
    response = httpx.post(f"{served.url}/v2/models/random/infer", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"} and response.json()["error"]


SLOW_MODEL = """
import time
from pathlib import Path


class Slow:
    \"\"\"A model that takes its time, as a large one computes: x's sum, in seconds.\"\"\"

    def predict(self, x):
        Path(__file__).with_name("predicting").touch()
        time.sleep(float(x.sum()))
        return x.sum(axis=1)
"""


def test_health_answers_while_a_prediction_runs(tmp_path, monkeypatch):
    """KServe runs a model's synchronous predict on its event loop: while one request was
    answered, /v2/health/live (a Kubernetes probe) and every other request waited for it.
    katib serve predicts in the model's worker thread."""
    from katib import save_model

    (tmp_path / "slowmodel.py").write_text(SLOW_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    from slowmodel import Slow  # type: ignore[import-not-found]

    save_model(Slow(), tmp_path / "model", format="sklearn")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-c", "import sys; from pathlib import Path; from katib.serve import serve; "
               f"serve(Path(sys.argv[1]), 'slow', port={port})", str(tmp_path / "model")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    with _server(command, url, tmp_path / "serve.log", tmp_path, env):
        seconds = 4.0
        slow = {"inputs": [{"name": "input-0", "shape": [1, 1], "datatype": "FP32", "data": [seconds]}]}
        answer = {}
        worker = threading.Thread(target=lambda: answer.update(r=httpx.post(f"{url}/v2/models/slow/infer", json=slow,
                                                                               timeout=60)))
        worker.start()
        try:
            deadline = time.monotonic() + 30
            while not (tmp_path / "predicting").exists():
                assert time.monotonic() < deadline and worker.is_alive(), answer
                time.sleep(0.05)
            began = time.monotonic()
            assert httpx.get(f"{url}/v2/health/live", timeout=30).json() == {"live": True}
            assert time.monotonic() - began < seconds / 2  # not after the prediction
            assert worker.is_alive()
        finally:
            worker.join(timeout=60)
        assert answer["r"].status_code == 200 and answer["r"].json()["outputs"][0]["data"] == [seconds], answer["r"].text


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
        with pytest.raises(KatibError, match="--trust-pickles"):
            client.load_model("planted")
        assert not marker.exists()
        served = _katib("serve", "planted", "--db", str(db), "--port", str(_free_port()), cwd=tmp_path, timeout=120)
        assert served.returncode != 0 and "--trust-pickles" in served.stderr, served.stderr
        assert not marker.exists()
        client.load_model("planted", trust_pickles=True)  # the operator's explicit choice
        assert marker.exists()
