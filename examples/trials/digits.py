"""A real training program for Katib examples: an MLP on scikit-learn's digits.

The 8x8 digit images ship with scikit-learn, so nothing is downloaded. Each epoch is one
pass of ``partial_fit``; after each, the program reports ``Train-accuracy``,
``Validation-accuracy`` and ``loss`` in the way ``--report`` asks:

- ``stdout``: ``Validation-accuracy=0.9523`` lines (Katib's default StdOut filter);
- ``file``: timestamped lines ``2026-01-01T10:00:00Z INFO {metricName: loss, metricValue: 0.21}``
  appended to ``--log-path`` (the format of Katib's file-metrics-collector example);
- ``json``: one JSON object per epoch appended to ``--log-path``;
- ``push``: ``katib.report_metrics({...})``.

Run by katib, a trial saves its model (the scaler and the network, as one scikit-learn
pipeline that takes raw 8x8 images as 64 pixel values) with ``katib.save_model``, so
``katib serve <experiment>`` answers predictions with the best trial's model. It saves the
epoch whose value Katib reads as the trial's (``--keep-best``: the highest
``Validation-accuracy`` by default, the lowest ``loss``, or the ``last`` epoch's where the
metric is read at its latest value), so the model served scores what its trial shows.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import pickle
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--num-units", type=int, default=32)
    parser.add_argument("--optimizer", default="adam", choices=["sgd", "adam"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", default="stdout", choices=["stdout", "file", "json", "push"])
    parser.add_argument("--log-path", default="/var/log/katib/metrics.log")
    parser.add_argument("--keep-best", default="Validation-accuracy", choices=["Validation-accuracy", "loss", "last"],
                        help="the model katib serves is the epoch's whose value of this metric Katib reads as the "
                             "trial's (its best: the highest accuracy, the lowest loss), or the last epoch's "
                             "('last', for a metric read at its latest value)")
    parser.add_argument("--checkpoint", default=None,
                        help="a folder: continue from the model saved there, save it there after training")
    args = parser.parse_args()

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    model = MLPClassifier(
        hidden_layer_sizes=(args.num_units,) * args.num_layers,
        solver=args.optimizer,
        learning_rate_init=args.lr,
        batch_size=args.batch_size,
        random_state=args.seed,
    )
    classes = np.unique(y)
    saved = Path(args.checkpoint) / "model.pkl" if args.checkpoint else None
    if saved is not None and saved.exists():  # population based training: go on from the parent
        with open(saved, "rb") as f:
            model = pickle.load(f)
        model.set_params(learning_rate_init=args.lr)
        print(f"resumed from {saved}", flush=True)
    rng = np.random.default_rng(args.seed)
    print(f"training {args.num_layers}x{args.num_units} MLP, {args.optimizer}, lr={args.lr}", flush=True)
    kept, kept_value = None, None  # the epoch Katib's default strategy (max or min) reads: its model is served
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)  # the last batch is smaller
            for start in range(0, len(order), args.batch_size):
                idx = order[start:start + args.batch_size]
                model.partial_fit(x_train[idx], y_train[idx], classes=classes)
        metrics = {
            "Train-accuracy": model.score(x_train, y_train),
            "Validation-accuracy": model.score(x_val, y_val),
            "loss": log_loss(y_val, model.predict_proba(x_val), labels=classes),
        }
        report(args, epoch, metrics)
        if args.keep_best != "last":  # 'last': the model as training ends is the one saved
            value = metrics[args.keep_best] * (1 if args.keep_best == "loss" else -1)  # lower is better
            if kept_value is None or value < kept_value:
                kept, kept_value = copy.deepcopy(model), value
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        with open(saved, "wb") as f:
            pickle.dump(model, f)
    if os.environ.get("KATIB_ARTIFACT_DIR"):  # run by katib: keep the model for katib serve
        import katib

        katib.save_model(make_pipeline(scaler, kept if kept is not None else model))


def report(args: argparse.Namespace, epoch: int, metrics: dict[str, float]) -> None:
    if args.report == "stdout":
        print(f"Epoch {epoch}: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()), flush=True)
    elif args.report == "file":
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with open(args.log_path, "a") as f:
            for name, value in metrics.items():
                f.write(f"{stamp} INFO {{metricName: {name}, metricValue: {value:.4f}}}\n")
        print(f"epoch {epoch} done", flush=True)
    elif args.report == "json":
        with open(args.log_path, "a") as f:
            f.write(json.dumps({"timestamp": time.time(), **{k: f"{v:.4f}" for k, v in metrics.items()}}) + "\n")
        print(f"epoch {epoch} done", flush=True)
    else:
        import katib

        katib.report_metrics(metrics)
        print(f"epoch {epoch} reported", flush=True)


if __name__ == "__main__":
    main()
