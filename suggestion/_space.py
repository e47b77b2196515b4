"""A search space built from Katib parameter specs, honouring every distribution
(uniform, logUniform, normal, logNormal) and ``step`` quantisation.

Every numeric dimension maps to the unit interval through its distribution's quantile
function (``from_unit``): a uniform ``u`` gives a value distributed as the parameter's
prior, so random search, Sobol sequences and model-based samplers (TPE, CMA-ES, GP), which
all work on ``[0, 1]``, honour the same distributions. ``normal`` has mu = (min+max)/2 and
sigma = (max-min)/6, truncated to [min, max]; ``logNormal`` the same on the log scale.
Integers and stepped doubles snap to ``min + k·step``; ``discrete`` lists are ordered
numbers, ``categorical`` lists are choices.

Values come out as Katib strings: ints as integers, doubles in their shortest form (or
rounded to the step's decimals when quantised), list values exactly as written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from statistics import NormalDist
from typing import TYPE_CHECKING

from katib.spec import Experiment, ParameterSpec

if TYPE_CHECKING:  # numpy loads with the algorithms that sample, not with validation
    import numpy as np

_STD = NormalDist()
_LO, _HI = _STD.cdf(-3.0), _STD.cdf(3.0)  # the truncation: three sigmas either side


def _decimals(text: str) -> int:
    exponent = Decimal(text).normalize().as_tuple().exponent
    return max(0, -int(exponent))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Dimension:
    name: str
    type: str  # double | int | discrete | categorical
    distribution: str = "uniform"
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    step_text: str | None = None
    decimals: int = 0
    choices: tuple[str, ...] = ()

    @classmethod
    def from_spec(cls, p: ParameterSpec) -> Dimension:
        fs = p.feasible_space
        assert p.name and p.parameter_type and fs is not None
        if p.parameter_type in ("discrete", "categorical"):
            choices = tuple(fs.list_ or ())
            if p.parameter_type == "discrete":
                choices = tuple(sorted(choices, key=float))
            return cls(p.name, p.parameter_type, choices=choices)
        step_text = fs.step if fs.step is not None else ("1" if p.parameter_type == "int" else None)
        return cls(
            name=p.name,
            type=p.parameter_type,
            distribution=fs.distribution or "uniform",
            low=float(fs.min or 0),
            high=float(fs.max or 0),
            step=float(step_text) if step_text is not None else None,
            step_text=step_text,
            decimals=max(_decimals(step_text), _decimals(fs.min or "0")) if step_text else 0,
        )

    @property
    def categorical(self) -> bool:
        return self.type == "categorical"

    def size(self) -> float:
        if self.choices:
            return len(self.choices)
        if self.step is None:
            return math.inf
        return math.floor((self.high - self.low) / self.step + 1e-9) + 1

    def grid(self) -> list[str]:
        """Every value on this dimension's grid (lists, or min + k·step up to max). A list
        as long as the grid: ``SearchSpace.points`` walks a grid of any size without one."""
        return [self.grid_value(k) for k in range(int(self.size()))]

    def grid_value(self, k: int) -> str:
        """The ``k``-th value of this dimension's grid."""
        if self.choices:
            return self.choices[k]
        assert self.step is not None, f"{self.name}: a grid needs a step"
        return self.format(self.low + k * self.step)

    def format(self, value: float) -> str:
        if self.type == "int":
            return str(int(round(value)))
        if self.step_text is not None:
            return f"{value:.{self.decimals}f}"
        return repr(float(value))

    # -- the unit interval ------------------------------------------------------------

    def _bounds(self) -> tuple[float, float, bool]:
        lo, hi = self.low, self.high
        if self.type == "int" or self.step is not None:  # each grid point gets an equal cell
            half = (self.step or 1.0) / 2
            lo, hi = lo - half, self.low + (self.size() - 1) * (self.step or 1.0) + half
        log = self.distribution in ("logUniform", "logNormal")
        if log:
            lo = max(lo, self.low / 2, 1e-300)
            return math.log(lo), math.log(hi), True
        return lo, hi, False

    def from_unit(self, u: float) -> str:
        """The value at quantile ``u`` of this parameter's distribution."""
        u = min(max(float(u), 0.0), 1.0)
        if self.choices:
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        a, b, log = self._bounds()
        if self.distribution in ("normal", "logNormal"):
            mu, sigma = (a + b) / 2, (b - a) / 6
            q = min(max(_LO + u * (_HI - _LO), 1e-12), 1 - 1e-12)
            x = mu + sigma * _STD.inv_cdf(q)
        else:
            x = a + u * (b - a)
        value = math.exp(x) if log else x
        if self.step is not None:
            k = min(max(round((value - self.low) / self.step), 0), int(self.size()) - 1)
            value = self.low + k * self.step
        else:
            value = min(max(value, self.low), self.high)
        return self.format(value)

    def to_unit(self, value: str) -> float:
        """The quantile of ``value`` (the inverse of ``from_unit`` up to quantisation)."""
        if self.choices:
            try:
                i = self.choices.index(value)
            except ValueError:
                i = min(range(len(self.choices)), key=lambda j: abs(float(self.choices[j]) - float(value)))
            return (i + 0.5) / len(self.choices)
        a, b, log = self._bounds()
        if b <= a:  # min == max: one value, in the middle of the unit interval
            return 0.5
        x = float(value)
        x = math.log(max(x, 1e-300)) if log else x
        if self.distribution in ("normal", "logNormal"):
            mu, sigma = (a + b) / 2, (b - a) / 6
            u = (_STD.cdf((x - mu) / sigma) - _LO) / (_HI - _LO)
        else:
            u = (x - a) / (b - a)
        return min(max(u, 0.0), 1.0)

    def sample(self, rng: np.random.Generator) -> str:
        if self.categorical:
            return self.choices[int(rng.integers(len(self.choices)))]
        return self.from_unit(float(rng.random()))


class SearchSpace:
    """The dimensions of an experiment's ``parameters``."""

    def __init__(self, dims: list[Dimension]) -> None:
        self.dims = dims

    @classmethod
    def from_experiment(cls, experiment: Experiment) -> SearchSpace:
        return cls([Dimension.from_spec(p) for p in experiment.spec.parameters or []])

    def size(self) -> float:
        """How many points: ``math.inf``, or an exact int (which may pass what a float holds:
        ask ``infinite``, not ``math.isinf(size())``, which overflows on 2^1025 points)."""
        if self.infinite:  # first: an int past a float's range times inf overflows
            return math.inf
        return math.prod(d.size() for d in self.dims)

    @property
    def infinite(self) -> bool:
        return any(math.isinf(d.size()) for d in self.dims)

    def sample(self, rng: np.random.Generator) -> dict[str, str]:
        return {d.name: d.sample(rng) for d in self.dims}

    def point(self, index: int) -> dict[str, str]:
        """The ``index``-th point of the grid, in ``itertools.product``'s order (the last
        dimension fastest). Every dimension must be finite."""
        values: list[str] = []
        for d in reversed(self.dims):
            index, k = divmod(index, int(d.size()))
            values.append(d.grid_value(k))
        return dict(zip((d.name for d in self.dims), reversed(values), strict=True))

    def points(self, order: Iterable[int] | None = None) -> Iterator[dict[str, str]]:
        """The grid's points, in ``product`` order or in the order of the indices given,
        one at a time: a grid of 10⁹ points costs what the points taken from it cost."""
        for i in range(int(self.size())) if order is None else order:
            yield self.point(int(i))

    def first_free(self, seen: set) -> dict[str, str]:
        """The first grid point whose ``key`` is not in ``seen``."""
        for params in self.points():
            if self.key(params) not in seen:
                return params
        raise AssertionError("no free point left in a space that has one")

    def free_point(self, seen: set, rng: np.random.Generator) -> dict[str, str]:
        """A point whose ``key`` is not in ``seen``: sampled, else the first free grid point."""
        for _ in range(1000):
            params = self.sample(rng)
            if self.key(params) not in seen:
                return params
        return self.first_free(seen)

    def nearest_free(self, params: dict[str, str], seen: set, rng: np.random.Generator,
                     limit: int = 20_000) -> dict[str, str] | None:
        """An unseen point nearest ``params`` in grid steps, ties broken at random; None when
        none is found within ``limit`` points. One step moves one dimension: to the next
        or previous value of an ordered one (int, stepped double, discrete list), or to any
        other value of a categorical one. The dimensions must all be finite."""
        start = self.key(params)
        visited, frontier = {start}, [params]
        while frontier and len(visited) < limit:
            ring, free = [], []
            for point in frontier:
                for near in self.neighbours(point):
                    key = self.key(near)
                    if key not in visited:
                        visited.add(key)
                        ring.append(near)
                        if key not in seen:
                            free.append(near)
            if free:
                return free[int(rng.integers(len(free)))]
            frontier = ring
        return None

    def neighbours(self, point: dict[str, str]) -> list[dict[str, str]]:
        """The points one grid step from ``point`` (see ``nearest_free``)."""
        out: list[dict[str, str]] = []
        for d in self.dims:
            value = point[d.name]
            if d.categorical:
                moves = [c for c in d.choices if c != value]
            elif d.choices:  # discrete: ordered numbers
                i = d.choices.index(value) if value in d.choices else int(d.to_unit(value) * len(d.choices))
                moves = [d.choices[j] for j in (i - 1, i + 1) if 0 <= j < len(d.choices)]
            else:
                assert d.step is not None, f"{d.name}: a step needs a grid"
                k = round((float(value) - d.low) / d.step)
                moves = [d.format(d.low + j * d.step) for j in (k - 1, k + 1) if 0 <= j < d.size()]
            out.extend({**point, d.name: m} for m in moves)
        return out

    @staticmethod
    def key(parameters: dict[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(parameters.items()))
