"""bench/quality.py's runs, a few trials each: every family and the peers it compares with
(hyperopt's TPE among them) run after the install docs/benchmarks.md names."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import quality  # noqa: E402


@pytest.mark.parametrize("algorithm", ["tpe", "optuna-tpe", "hyperopt-tpe"])
@pytest.mark.parametrize("pid", ["bbob:1:2", "hpobench:car", "nasbench201:cifar10"])
def test_a_short_run_is_scored(pid, algorithm):
    got_pid, got_algorithm, seed, curve, spent = quality.run((pid, algorithm, 0, 12))
    assert (got_pid, got_algorithm, seed) == (pid, algorithm, 0)
    assert len(curve) == 12 and spent > 0
    assert all(math.isfinite(v) for v in curve)
    if pid.startswith("bbob"):  # noiseless: the incumbent only improves (a table's true value need not)
        assert all(b <= a for a, b in zip(curve, curve[1:], strict=False))
    else:
        assert all(0 < v <= 100 for v in curve)


def test_the_noisy_family_is_observed_with_noise_and_scored_by_the_noiseless_value():
    noisy, clean = quality.Problem("bbob-noisy:1:2", 0), quality.Problem("bbob:1:2", 0)
    x = {"x0": "1.0", "x1": "-2.0"}
    observed = [noisy.evaluate(x) for _ in range(5)]
    assert len(set(observed)) == 5
    assert noisy.true_value(x, observed[0]) == clean.evaluate(x)
    fopt = noisy.fopt
    assert fopt < clean.evaluate(x) and all(o > fopt for o in observed)  # the noise scales f - fopt
    _, _, _, curve, _ = quality.run(("bbob-noisy:1:2", "auto", 0, 12))
    assert len(curve) == 12 and all(v >= fopt for v in curve)
