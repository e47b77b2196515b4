"""Image data sets for the NAS trials, chosen by name (the loader is a parameter):

- ``digits``: scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes),
  offline, small enough to search on a CPU in minutes;
- ``cifar10``: CIFAR-10 from a folder holding the python pickles (``data_batch_1`` …
  ``data_batch_5``, ``test_batch``), e.g. ``cifar-10-batches-py``, when one is at hand;
- ``npz``: any ``.npz`` file with ``x_train``, ``y_train``, ``x_test``, ``y_test``
  (images as N×H×W×C or N×C×H×W).

Each gives float tensors N×C×H×W, standardised per channel, and integer labels.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

DATASETS = ("digits", "cifar10", "npz")


@dataclass
class ImageData:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width)."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def load(name: str, path: str | None = None, seed: int = 0) -> ImageData:
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = digits.images.astype(np.float32)[:, None] / 16.0
        y = digits.target.astype(np.int64)
        order = np.random.default_rng(seed).permutation(len(x))
        cut = int(0.8 * len(x))
        train, test = order[:cut], order[cut:]
        return _standardised(x[train], y[train], x[test], y[test])
    if name == "cifar10":
        if not path:
            raise ValueError("cifar10 needs --data-dir: the folder of CIFAR-10's python pickles (cifar-10-batches-py)")
        folder = Path(path)
        batches = [_unpickle(folder / f"data_batch_{i}") for i in range(1, 6)]
        held_out = _unpickle(folder / "test_batch")
        x_train = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32).astype(np.float32) / 255
        y_train = np.concatenate([b[b"labels"] for b in batches]).astype(np.int64)
        x_test = np.asarray(held_out[b"data"]).reshape(-1, 3, 32, 32).astype(np.float32) / 255
        return _standardised(x_train, y_train, x_test, np.asarray(held_out[b"labels"], dtype=np.int64))
    if name == "npz":
        if not path:
            raise ValueError("npz needs --data-dir: the .npz file with x_train, y_train, x_test, y_test")
        with np.load(path) as f:
            xs = [f["x_train"].astype(np.float32), f["x_test"].astype(np.float32)]
            ys = [f["y_train"].astype(np.int64), f["y_test"].astype(np.int64)]
        xs = [x if x.ndim == 4 else x[:, None] for x in xs]
        xs = [x.transpose(0, 3, 1, 2) if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3) else x for x in xs]
        scale = 255.0 if xs[0].max() > 1.5 else 1.0
        return _standardised(xs[0] / scale, ys[0], xs[1] / scale, ys[1])
    raise ValueError(f"unknown data set {name!r} (known: {', '.join(DATASETS)})")


def _unpickle(path: Path) -> dict[bytes, Any]:
    with path.open("rb") as f:
        return pickle.load(f, encoding="bytes")


def _standardised(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> ImageData:
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)
    std = x_train.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    return ImageData(torch.from_numpy((x_train - mean) / std), torch.from_numpy(y_train),
                     torch.from_numpy((x_test - mean) / std), torch.from_numpy(y_test))


def batches(x: torch.Tensor, y: torch.Tensor, size: int, generator: torch.Generator | None = None):
    """Shuffled mini-batches of (x, y)."""
    order = torch.randperm(len(x), generator=generator)
    for i in range(0, len(x), size):
        idx = order[i:i + size]
        yield x[idx], y[idx]


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, size: int = 512) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), size):
            correct += int((model(x[i:i + size]).argmax(1) == y[i:i + size]).sum())
    model.train()
    return correct / max(1, len(x))
