"""DARTS (Liu et al., 2019) in PyTorch: a supernet of cells whose every edge is a softmax-
weighted mixture of the candidate primitives, searched by bi-level optimisation: the
architecture weights (alphas) take a step on validation batches, the network weights on
training batches (the first-order approximation). The derived genotype keeps, for each node,
the two strongest incoming edges and their strongest primitive other than ``none``.

Primitives are named as Katib's DARTS service writes them: ``separable_convolution_3x3``,
``dilated_convolution_5x5``, ``avg_pooling_3x3``, ``max_pooling_3x3``, ``convolution_3x3``,
``depthwise_convolution_3x3``, ``skip_connection``; ``none`` is always added.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")

_PRIMITIVE = re.compile(r"^(?P<type>[a-z_]+?)_(?P<k>\d+)x(?P=k)$")


class _ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int, padding: int, dilation: int = 1,
                 groups: int = 1, affine: bool = False) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, padding, dilation=dilation, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


class _SepConv(nn.Sequential):
    def __init__(self, c: int, k: int, stride: int) -> None:
        pad = k // 2
        super().__init__(
            nn.ReLU(), nn.Conv2d(c, c, k, stride, pad, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=False),
            nn.ReLU(), nn.Conv2d(c, c, k, 1, pad, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=False),
        )


class _DilConv(nn.Sequential):
    def __init__(self, c: int, k: int, stride: int) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(c, c, k, stride, 2 * (k // 2), dilation=2, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=False))


class _Zero(nn.Module):
    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride, ::self.stride] * 0.0


class _FactorizedReduce(nn.Module):
    """Halves the resolution (two offset 1×1 strided convolutions, concatenated)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
        self.conv2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv1(x), self.conv2(shifted)], 1))


class _Pool(nn.Module):
    def __init__(self, kind: str, k: int, stride: int, c: int) -> None:
        super().__init__()
        self.pool = (nn.MaxPool2d(k, stride, k // 2) if kind == "max_pooling"
                     else nn.AvgPool2d(k, stride, k // 2, count_include_pad=False))
        self.bn = nn.BatchNorm2d(c, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pool(x))


def make_primitive(name: str, c: int, stride: int) -> nn.Module:
    if name == "none":
        return _Zero(stride)
    if name == "skip_connection":
        return nn.Identity() if stride == 1 else _FactorizedReduce(c, c)
    m = _PRIMITIVE.match(name)
    if m is None:
        raise ValueError(f"unknown DARTS primitive {name!r}")
    kind, k = m["type"], int(m["k"])
    if kind == "separable_convolution":
        return _SepConv(c, k, stride)
    if kind == "dilated_convolution":
        return _DilConv(c, k, stride)
    if kind == "convolution":
        return _ReLUConvBN(c, c, k, stride, k // 2)
    if kind == "depthwise_convolution":
        return _ReLUConvBN(c, c, k, stride, k // 2, groups=c)
    if kind in ("avg_pooling", "max_pooling"):
        return _Pool(kind, k, stride, c)
    raise ValueError(f"unknown DARTS primitive {name!r}")


class _MixedOp(nn.Module):
    def __init__(self, primitives: list[str], c: int, stride: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(make_primitive(p, c, stride) for p in primitives)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops, strict=True))  # type: ignore[return-value]


class _Cell(nn.Module):
    def __init__(self, primitives: list[str], nodes: int, c_pp: int, c_p: int, c: int,
                 reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction, self.nodes = reduction, nodes
        self.pre0 = _FactorizedReduce(c_pp, c) if reduction_prev else _ReLUConvBN(c_pp, c, 1, 1, 0)
        self.pre1 = _ReLUConvBN(c_p, c, 1, 1, 0)
        self.edges = nn.ModuleList()
        for i in range(nodes):
            for j in range(2 + i):
                self.edges.append(_MixedOp(primitives, c, 2 if reduction and j < 2 else 1))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        offset = 0
        for _ in range(self.nodes):
            s = sum(self.edges[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            offset += len(states)
            states.append(s)  # type: ignore[arg-type]
        return torch.cat(states[2:], 1)


def _stem(in_channels: int, channels: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels))


def _layout(layers: int, init_channels: int, stem_multiplier: int, nodes: int) -> list[tuple[int, int, int, bool, bool]]:
    """Each cell's (channels of its two inputs, its own channels, reduction?, previous a
    reduction?): reduction cells at 1/3 and 2/3 of the depth double the channels."""
    c_pp = c_p = stem_multiplier * init_channels
    c, reduction_prev, out = init_channels, False, []
    for i in range(layers):
        reduction = layers >= 3 and i in (layers // 3, 2 * layers // 3)
        if reduction:
            c *= 2
        out.append((c_pp, c_p, c, reduction, reduction_prev))
        reduction_prev = reduction
        c_pp, c_p = c_p, nodes * c
    return out


class Supernet(nn.Module):
    """The DARTS search network: a stem, ``layers`` cells (reduction cells at 1/3 and 2/3),
    a classifier, and the alphas of normal and reduction cells."""

    def __init__(self, primitives: list[str], in_channels: int, classes: int, layers: int,
                 init_channels: int = 16, nodes: int = 4, stem_multiplier: int = 3) -> None:
        super().__init__()
        self.primitives = list(primitives) + ([] if "none" in primitives else ["none"])
        self.nodes = nodes
        self.stem = _stem(in_channels, stem_multiplier * init_channels)
        layout = _layout(layers, init_channels, stem_multiplier, nodes)
        self.cells = nn.ModuleList(_Cell(self.primitives, nodes, c_pp, c_p, c, reduction, reduction_prev)
                                   for c_pp, c_p, c, reduction, reduction_prev in layout)
        self.classifier = nn.Linear(nodes * layout[-1][2], classes)
        edges = sum(2 + i for i in range(nodes))
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(edges, len(self.primitives)))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(edges, len(self.primitives)))

    def weights(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("alpha_")]

    def alphas(self) -> list[nn.Parameter]:
        return [self.alpha_normal, self.alpha_reduce]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        normal, reduce = F.softmax(self.alpha_normal, -1), F.softmax(self.alpha_reduce, -1)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))

    def genotype(self) -> Genotype:
        def parse(alpha: torch.Tensor) -> list[list[tuple[str, int]]]:
            weights = F.softmax(alpha, -1).detach()
            none = self.primitives.index("none")
            gene, offset = [], 0
            for i in range(self.nodes):
                rows = weights[offset:offset + 2 + i]
                strength = [(max(float(w) for k, w in enumerate(row) if k != none), j) for j, row in enumerate(rows)]
                chosen = sorted(strength, reverse=True)[:2]
                node = []
                for _, j in sorted(chosen, key=lambda t: t[1]):
                    best = max((k for k in range(len(self.primitives)) if k != none), key=lambda k: float(rows[j][k]))
                    node.append((self.primitives[best], j))
                gene.append(node)
                offset += 2 + i
            return gene

        concat = range(2, 2 + self.nodes)
        return Genotype(normal=parse(self.alpha_normal), normal_concat=concat,
                        reduce=parse(self.alpha_reduce), reduce_concat=concat)


class _DiscreteCell(nn.Module):
    """A cell of a derived network: each node sums its two chosen edges' operations."""

    def __init__(self, gene: list[list[tuple[str, int]]], c_pp: int, c_p: int, c: int,
                 reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction, self.gene = reduction, gene
        self.pre0 = _FactorizedReduce(c_pp, c) if reduction_prev else _ReLUConvBN(c_pp, c, 1, 1, 0, affine=True)
        self.pre1 = _ReLUConvBN(c_p, c, 1, 1, 0, affine=True)
        self.ops = nn.ModuleList(make_primitive(name, c, 2 if reduction and j < 2 else 1) for node in gene for name, j in node)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        k = 0
        for node in self.gene:
            out = 0
            for _, j in node:
                out = out + self.ops[k](states[j])
                k += 1
            states.append(out)  # type: ignore[arg-type]
        return torch.cat(states[2:], 1)


class Network(nn.Module):
    """The network a genotype describes (the architecture DARTS found), to train from scratch."""

    def __init__(self, genotype: Genotype, in_channels: int, classes: int, layers: int,
                 init_channels: int = 16, stem_multiplier: int = 3) -> None:
        super().__init__()
        nodes = len(genotype.normal)
        self.stem = _stem(in_channels, stem_multiplier * init_channels)
        layout = _layout(layers, init_channels, stem_multiplier, nodes)
        self.cells = nn.ModuleList(
            _DiscreteCell(genotype.reduce if reduction else genotype.normal, c_pp, c_p, c, reduction, reduction_prev)
            for c_pp, c_p, c, reduction, reduction_prev in layout)
        self.classifier = nn.Linear(nodes * layout[-1][2], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))


@dataclass
class SearchSettings:
    """Katib's DARTS algorithm settings (the ones the search uses)."""

    num_epochs: int = 50
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    w_grad_clip: float = 5.0
    alpha_lr: float = 3e-4
    alpha_weight_decay: float = 1e-3
    batch_size: int = 128

    @classmethod
    def from_dict(cls, settings: dict) -> SearchSettings:
        known = {k: v for k, v in settings.items() if k in cls.__dataclass_fields__ and v is not None}
        return cls(**{k: type(getattr(cls, k))(v) for k, v in known.items()})


class Search:
    """The bi-level search: ``step`` updates the alphas on a validation batch, then the
    weights on a training batch."""

    def __init__(self, net: Supernet, s: SearchSettings) -> None:
        self.net, self.s = net, s
        self.w_optimizer = torch.optim.SGD(net.weights(), s.w_lr, momentum=s.w_momentum, weight_decay=s.w_weight_decay)
        self.alpha_optimizer = torch.optim.Adam(net.alphas(), s.alpha_lr, betas=(0.5, 0.999), weight_decay=s.alpha_weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_optimizer, s.num_epochs, eta_min=s.w_lr_min)

    def step(self, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
             loss_fn: Callable[..., torch.Tensor] = F.cross_entropy) -> float:
        self.alpha_optimizer.zero_grad()
        loss_fn(self.net(val[0]), val[1]).backward()
        self.alpha_optimizer.step()
        self.w_optimizer.zero_grad()
        loss = loss_fn(self.net(train[0]), train[1])
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.weights(), self.s.w_grad_clip)
        self.w_optimizer.step()
        return float(loss.detach())

    def end_epoch(self) -> None:
        self.scheduler.step()
