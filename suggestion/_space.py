"""A search space built from Katib parameter specs: sampling and grids, honouring every
distribution (uniform, logUniform, normal, logNormal) and ``step`` quantisation.

Values come out as Katib strings: ints as integers, doubles in their shortest form (or
rounded to the step's decimals when quantised), list values exactly as written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from katib.spec import Experiment, ParameterSpec


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
            return cls(p.name, p.parameter_type, choices=tuple(fs.list_ or ()))
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
    def finite(self) -> bool:
        return self.type in ("discrete", "categorical") or self.step is not None

    def grid(self) -> list[str]:
        """Every value on this dimension's grid (lists, or min + k·step up to max)."""
        if self.choices:
            return list(self.choices)
        assert self.step is not None, f"{self.name}: a grid needs a step"
        n = int(math.floor((self.high - self.low) / self.step + 1e-9))
        return [self.format(self.low + k * self.step) for k in range(n + 1)]

    def size(self) -> float:
        if self.choices:
            return len(self.choices)
        if self.step is None:
            return math.inf
        return math.floor((self.high - self.low) / self.step + 1e-9) + 1

    def format(self, value: float) -> str:
        if self.type == "int":
            return str(int(round(value)))
        if self.step_text is not None:
            return f"{value:.{self.decimals}f}"
        return repr(float(value))

    def _continuous(self, rng: np.random.Generator) -> float:
        lo, hi = self.low, self.high
        if self.type == "int":  # widen so both ends are as likely as the inner integers
            lo, hi = lo - 0.5 + 1e-9, hi + 0.5 - 1e-9
        log = self.distribution in ("logUniform", "logNormal")
        a, b = (math.log(max(lo, 1e-300)), math.log(hi)) if log else (lo, hi)
        if self.distribution in ("normal", "logNormal"):
            mu, sigma = (a + b) / 2, (b - a) / 6
            for _ in range(1000):  # truncated normal: resample until inside the space
                x = rng.normal(mu, sigma)
                if a <= x <= b:
                    break
            else:
                x = min(max(x, a), b)
        else:
            x = rng.uniform(a, b)
        value = math.exp(x) if log else x
        return min(max(value, lo), hi)

    def sample(self, rng: np.random.Generator) -> str:
        if self.choices:
            return self.choices[int(rng.integers(len(self.choices)))]
        value = self._continuous(rng)
        if self.step is not None:
            k = round((value - self.low) / self.step)
            k = min(max(k, 0), int(self.size()) - 1)
            value = self.low + k * self.step
        return self.format(value)


class SearchSpace:
    """The dimensions of an experiment's ``parameters``."""

    def __init__(self, dims: list[Dimension]) -> None:
        self.dims = dims

    @classmethod
    def from_experiment(cls, experiment: Experiment) -> SearchSpace:
        return cls([Dimension.from_spec(p) for p in experiment.spec.parameters or []])

    def size(self) -> float:
        return math.prod(d.size() for d in self.dims)

    def sample(self, rng: np.random.Generator) -> dict[str, str]:
        return {d.name: d.sample(rng) for d in self.dims}

    @staticmethod
    def key(parameters: dict[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(parameters.items()))
