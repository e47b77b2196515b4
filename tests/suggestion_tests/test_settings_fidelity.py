"""Algorithm settings read as Katib's suggestion services read them."""

from __future__ import annotations

import pytest

from katib.controller import admit
from katib.errors import ValidationError
from tests.conftest import experiment


def _with(algorithm: str, **settings: str) -> dict:
    doc = experiment(algorithm={"algorithmName": algorithm,
                                "algorithmSettings": [{"name": k, "value": v} for k, v in settings.items()]})
    doc["spec"]["parameters"][0]["feasibleSpace"]["step"] = "0.1"  # grid's
    return doc


@pytest.mark.parametrize("algorithm", ["tpe", "random", "grid", "multivariate-tpe", "bayesianoptimization"])
def test_a_seed_past_numpys_range_is_refused_not_wrapped(algorithm):
    """numpy's RandomState takes seeds below 2**32 and Katib's hyperopt, optuna and skopt
    services fail on a larger one; here 4294967296 proposed exactly what seed 0 did."""
    with pytest.raises(ValidationError, match=r"random_state.*must be <= 4294967295"):
        admit(_with(algorithm, random_state="4294967296"))
    admit(_with(algorithm, random_state="4294967295"))


def test_gamma_says_its_open_bound():
    """gamma is in (0, 1): 1.5 was refused as 'must be <= 1', and 1 then as 'must be < 1'."""
    with pytest.raises(ValidationError, match=r"gamma.*must be < 1 \(got 1.5\)"):
        admit(_with("tpe", gamma="1.5"))
