"""The best trial's model: katib serve, katib export inferenceservice."""

from __future__ import annotations

import re
import sys

import typer
import yaml

from katib.cli._app import (
    DbOption,
    NamespaceOption,
    _locate,
    _runs_root,
    _store,
    app,
    err,
    export_app,
)
from katib.errors import KatibError
from katib.serve import DEFAULT_MAX_BODY

# A model name is one segment of the model's URLs (/v2/models/NAME/infer), left as it is.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")


@app.command()
def serve(
    experiment: str = typer.Argument(..., help="Experiment name."),
    trial: str | None = typer.Option(None, "--trial", help="Serve this trial's model instead of the best trial's."),
    namespace: str | None = NamespaceOption,
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, min=0, max=65535, help="Port."),
    model_name: str | None = typer.Option(None, "--model-name", help="The model's name in the URLs (default: the experiment's)."),
    db: str | None = DbOption,
    trust_pickles: bool = typer.Option(False, "--trust-model-code", "--trust-pickles",
                                       help="Load a model from a katib server --auth store: a tenant's file, which "
                                       "acts as you (a pickle runs its code, a TorchScript model reads and writes "
                                       "files, an ONNX model names files to read)."),
    max_body: int = typer.Option(DEFAULT_MAX_BODY, "--max-body", min=1, help="The largest request body accepted, in bytes "
                                 "(larger ones get 413)."),
    allowed_host: list[str] = typer.Option(
        [], "--allowed-host", help="Served on an address other than loopback: a name the Host header may carry besides "
        "loopback names and IP addresses (others are refused: DNS rebinding)."),
) -> None:
    """Serve the best trial's model (katib.save_model) with KServe's own model server.

    KServe's Open Inference Protocol, v2 REST (/v2/models/NAME/infer): pip install 'katib\\[serve]'."""
    from katib._model import shared_store
    from katib.serve import locate
    from katib.serve import serve as serve_model

    if model_name is not None and not MODEL_NAME.fullmatch(model_name):
        raise KatibError(f"--model-name {model_name[:80]!r} must be letters, digits, '.', '_' and '-', starting with a "
                         "letter or digit, at most 253 characters: it is a segment of the model's URLs")
    store = _store(db, create=False)
    namespace = _locate(store, experiment, namespace)
    trial_name, folder = locate(store, _runs_root(store), namespace, experiment, trial)
    allow_pickle = trust_pickles or not shared_store(store)
    store.close()
    name = model_name or experiment
    from katib.cli._server import listening_sockets

    for sock in listening_sockets(host, port):  # a busy port is one error line, before anything is said
        sock.close()
    err.print(f"serving trial {trial_name}'s model ({folder}) as {name}: POST http://{host}:{port}/v2/models/{name}/infer",
              highlight=False, markup=False)
    serve_model(folder, name, host, port, allow_pickle, max_body, allowed_host)


@export_app.command("inferenceservice")
def export_inferenceservice(
    experiment: str = typer.Argument(..., help="Experiment name."),
    storage_uri: str | None = typer.Option(None, "--storage-uri", help="Where the cluster finds the model (s3://, gs://, pvc://…)."),
    trial: str | None = typer.Option(None, "--trial", help="This trial's model instead of the best trial's."),
    namespace: str | None = NamespaceOption,
    db: str | None = DbOption,
) -> None:
    """Print the serving.kserve.io/v1beta1 InferenceService that serves the best trial's model
    in a cluster (KServe's sklearn or Triton runtime, Open Inference Protocol v2)."""
    from katib._inferenceservice import inference_service, notes
    from katib._model import find_model
    from katib.serve import locate

    store = _store(db, create=False)
    namespace = _locate(store, experiment, namespace)
    trial_name, folder = locate(store, _runs_root(store), namespace, experiment, trial)
    saved = find_model(folder)
    if not storage_uri:
        raise KatibError(f"--storage-uri is needed: copy {saved.file_path} to storage your cluster reads (s3://, gs://, "
                         "pvc://…) and name that folder")
    rec = store.get_experiment(namespace, experiment)
    metric = rec.spec.get("spec", {}).get("objective", {}).get("objectiveMetricName")
    _, t = store.get_trial(namespace, trial_name)
    from katib.views import shown_value, strategies_of

    value = shown_value(t.observation, metric, strategies_of(rec)) if metric else None
    isvc = inference_service(experiment, namespace, trial_name, saved, storage_uri, metric, value)
    header = [f"The model of trial {trial_name} ({saved.format}), served as KServe serves it.",
              *notes(saved, storage_uri, experiment)]
    sys.stdout.write("".join(f"# {line}\n" for line in header) + yaml.safe_dump(isvc, sort_keys=False))
