"""``katib export inferenceservice``: the ``serving.kserve.io/v1beta1`` InferenceService that
serves an experiment's best trial's model in a cluster, as KServe's own examples write it.

The model's format picks the runtime: scikit-learn → KServe's sklearn server
(``kserve-sklearnserver``, which loads the folder's one ``model.joblib``); TorchScript and
ONNX → Triton (``kserve-tritonserver``), whose storage must be a Triton model repository
(``<storageUri>/<name>/1/model.pt`` or ``model.onnx``, with a ``config.pbtxt`` for
TorchScript). Every one speaks the Open Inference Protocol (``protocolVersion: v2``), as
``katib serve`` does, so a client of one is a client of the other. A state dict with a
Python factory needs katib's own code to rebuild and has no KServe runtime.
"""

from __future__ import annotations

from typing import Any

from ._model import SavedModel
from .errors import KatibError

API_VERSION = "serving.kserve.io/v1beta1"
# format -> (KServe's modelFormat name, the ClusterServingRuntime that serves it)
RUNTIMES = {"sklearn": ("sklearn", "kserve-sklearnserver"), "torchscript": ("pytorch", "kserve-tritonserver"),
            "onnx": ("onnx", "kserve-tritonserver")}


def inference_service(name: str, namespace: str, trial: str, saved: SavedModel, storage_uri: str,
                      metric: str | None = None, value: str | None = None) -> dict[str, Any]:
    """The InferenceService object (a plain dict, in KServe's field names)."""
    if saved.format not in RUNTIMES:
        raise KatibError(f"trial {trial} saved a {saved.format} model (a state dict and a Python factory), which no "
                         "KServe runtime loads: save a TorchScript module (katib.save_model(module) scripts it) to "
                         "serve it with Triton")
    model_format, runtime = RUNTIMES[saved.format]
    annotations = {"katib.kubeflow.org/trial": trial}
    if metric and value:
        annotations["katib.kubeflow.org/objective"] = f"{metric}={value}"
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace, "labels": {"katib.kubeflow.org/experiment": name},
                     "annotations": annotations},
        "spec": {"predictor": {"model": {
            "modelFormat": {"name": model_format},
            "protocolVersion": "v2",
            "runtime": runtime,
            "storageUri": storage_uri,
        }}},
    }


def notes(saved: SavedModel, storage_uri: str, name: str) -> list[str]:
    """What to put at ``storageUri`` for this runtime (comment lines for the YAML)."""
    if saved.format == "sklearn":
        return [f"storageUri holds {saved.file_path.name} as {saved.file_path} does (copy that folder's file there)"]
    layout = f"{storage_uri.rstrip('/')}/{name}/1/{saved.file}"
    lines = [f"Triton reads a model repository: put {saved.file_path} at {layout}"]
    if saved.format == "torchscript":
        lines.append(f"and a config.pbtxt (platform: \"pytorch_libtorch\", its inputs and outputs) in {name}/")
    return lines
