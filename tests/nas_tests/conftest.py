from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from katib.controller import admit
from katib.spec import Experiment

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "nas"

# The controllers and networks here are tiny: one intra-op thread is faster than one per
# core on a shared 2-core machine, where extra threads only wait for each other (5x here).
torch.set_num_threads(1)


def example(name: str, **changes: Any) -> dict[str, Any]:
    doc = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    doc["spec"].update(changes)
    return doc


def enas_experiment(seed: str | None = "7", **settings: str) -> Experiment:
    doc = example("enas")
    given = {"controller_learning_rate": "0.005", "controller_train_steps": "10", **settings}
    if seed is not None:
        given["random_state"] = seed
    doc["spec"]["algorithm"]["algorithmSettings"] = [{"name": k, "value": v} for k, v in given.items()]
    return admit(doc)
