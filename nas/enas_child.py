"""The ENAS child network of a Katib architecture, in PyTorch.

Layer ``l`` applies its operation (from ``nn_config``'s embedding) to layer ``l-1``'s
output (the stem's for the first layer), then adds the outputs of the earlier layers its
skip bits choose, each average-pooled to the layer's size and projected by a 1×1
convolution to its channels when they differ. A global average pool and a linear layer
give the ``output_sizes[0]`` classes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._space import parse_katib_text


class _Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


class _Pool(nn.Module):
    def __init__(self, kind: str, size: int, stride: int) -> None:
        super().__init__()
        self.kind, self.size, self.stride = kind, size, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = min(self.size, x.shape[-1])
        s = min(self.stride, x.shape[-1])
        pool = F.max_pool2d if self.kind.startswith("max") else F.avg_pool2d
        pad = k // 2 if s == 1 else 0
        if pad and self.kind.startswith("max"):
            x = F.pad(x, (pad, pad, pad, pad), value=float("-inf"))
            return pool(x, k, s)
        return pool(x, k, s, padding=pad) if pad else pool(x, k, s)


def _int(params: dict[str, Any], name: str, default: int) -> int:
    return int(float(params.get(name, default)))


def make_operation(op_type: str, params: dict[str, Any], channels: int) -> tuple[nn.Module, int]:
    """One layer's operation and its output channels, given its input channels."""
    k, stride = _int(params, "filter_size", 3), _int(params, "stride", 1)
    out = _int(params, "num_filter", channels)
    pad = k // 2
    if op_type == "convolution":
        return nn.Sequential(nn.Conv2d(channels, out, k, stride, pad, bias=False), nn.BatchNorm2d(out), nn.ReLU()), out
    if op_type == "dilated_convolution":
        return nn.Sequential(nn.Conv2d(channels, out, k, stride, 2 * pad, dilation=2, bias=False),
                             nn.BatchNorm2d(out), nn.ReLU()), out
    if op_type == "separable_convolution":
        mid = channels * _int(params, "depth_multiplier", 1)
        return nn.Sequential(nn.Conv2d(channels, mid, k, stride, pad, groups=channels, bias=False),
                             nn.Conv2d(mid, out, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU()), out
    if op_type == "depthwise_convolution":
        mid = channels * _int(params, "depth_multiplier", 1)
        return nn.Sequential(nn.Conv2d(channels, mid, k, stride, pad, groups=channels, bias=False),
                             nn.BatchNorm2d(mid), nn.ReLU()), mid
    if op_type == "reduction":
        size = _int(params, "pool_size", 2)
        return _Pool(str(params.get("reduction_type", "max_pooling")), size, size), channels
    if op_type in ("avg_pooling", "max_pooling"):
        return _Pool(op_type, k, stride), channels
    if op_type == "skip_connection":
        return nn.Identity(), channels
    if op_type == "none":
        return _Zero(), channels
    raise ValueError(f"unknown operation type {op_type!r}")


class EnasChild(nn.Module):
    """The network of one ENAS proposal; see the module docstring."""

    def __init__(self, architecture: list[list[int]] | str, nn_config: dict[str, Any] | str,
                 stem_channels: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        arc = parse_katib_text(architecture) if isinstance(architecture, str) else architecture
        config = parse_katib_text(nn_config) if isinstance(nn_config, str) else nn_config
        sizes = list(config["input_sizes"])
        h, w, c = (sizes + [1, 1, 1])[:3] if len(sizes) >= 3 else (sizes[0], sizes[-1], 1)
        self.arc = arc
        self.stem = nn.Sequential(nn.Conv2d(c, stem_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_channels), nn.ReLU())
        self.ops = nn.ModuleList()
        self.projections = nn.ModuleDict()
        shapes: list[tuple[int, int, int]] = []
        x = torch.zeros(2, c, h, w)
        self.stem.eval()
        with torch.no_grad():
            x = self.stem(x)
            for layer, choice in enumerate(arc):
                entry = config["embedding"][str(choice[0])]
                op, _ = make_operation(entry["opt_type"], entry["opt_params"], x.shape[1])
                op.eval()
                x = op(x)
                self.ops.append(op)
                for j, bit in enumerate(choice[1:layer + 1]):
                    if bit and shapes[j][0] != x.shape[1]:
                        self.projections[f"{j}_{layer}"] = nn.Conv2d(shapes[j][0], x.shape[1], 1, bias=False)
                shapes.append((int(x.shape[1]), int(x.shape[2]), int(x.shape[3])))
        self.train()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(shapes[-1][0] if shapes else stem_channels, int(config["output_sizes"][0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        outputs: list[torch.Tensor] = []
        for layer, (choice, op) in enumerate(zip(self.arc, self.ops, strict=True)):
            y = op(x)
            for j, bit in enumerate(choice[1:layer + 1]):
                if not bit:
                    continue
                z = outputs[j]
                if z.shape[-2:] != y.shape[-2:]:
                    z = F.adaptive_avg_pool2d(z, y.shape[-2:])
                key = f"{j}_{layer}"
                if key in self.projections:
                    z = self.projections[key](z)
                y = y + z
            outputs.append(y)
            x = y
        x = F.adaptive_avg_pool2d(F.relu(x), 1).flatten(1)
        return self.classifier(self.dropout(x))
