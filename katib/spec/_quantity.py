"""Kubernetes resource quantities (``500m``, ``1.5Gi``, ``129e6``, ``2Pi``) without the
kubernetes package, so that ``katib validate`` stays light.

The values are those of ``kubernetes.utils.parse_quantity`` (kubernetes/utils/quantity.py
in the kubernetes Python client, Copyright 2019 The Kubernetes Authors, Apache-2.0), which
this follows. The grammar is the API server's (k8s.io/apimachinery
pkg/api/resource/quantity.go), which is a little stricter than the Python client: the
cluster is the judge a trial meets at launch, so what it refuses is refused here too::

    <quantity>        ::= <signedNumber><suffix>
    <signedNumber>    ::= <number> | +<number> | -<number>
    <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
    <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
    <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
    <decimalExponent> ::= "e" <signedDigits> | "E" <signedDigits>

(So ``1K``, ``1ki``, ``1e3Ki``, ``NaN`` and ``1_000``, which the Python client lets
through, are refused.) As in quantity.go, a magnitude above 2^63-1 is capped there.

>>> parse_quantity("1.5Gi")
Decimal('1610612736.0')
>>> parse_quantity("129e6") == 129_000_000
True
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, DecimalException, localcontext
from typing import Any

_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<binary>[KMGTPE])i|(?P<exponent>[eE][+-]?[0-9]+)|(?P<decimal>[numkMGTPE]))?"
)
_DECIMAL_SI = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SI = {"K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}
MAX = Decimal(2**63 - 1)  # quantity.go: "no quantity may represent a number greater than 2^63-1"
EXAMPLES = "500m, 1.5Gi or 129e6"


def parse_quantity(value: Any) -> Decimal:
    """The number a Kubernetes quantity stands for; ``ValueError`` if it is not one.

    YAML numbers (``cpu: 0.5``) are quantities too; booleans are not.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    text = str(value) if isinstance(value, int) else repr(value) if isinstance(value, float) else value
    m = _QUANTITY.fullmatch(text)
    if m is None:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    try:
        # An exponent of a million digits is legal text: compute exactly, then cap.
        with localcontext() as ctx:
            ctx.prec, ctx.Emax, ctx.Emin = 60, 10**9, -(10**9)
            number = Decimal(m["number"])
            if m["binary"]:
                number *= Decimal(2) ** _BINARY_SI[m["binary"]]
            elif m["exponent"]:
                number = number.scaleb(int(m["exponent"][1:]))
            elif m["decimal"]:
                number = number.scaleb(_DECIMAL_SI[m["decimal"]])
    except (DecimalException, ValueError):
        raise ValueError(f"not a Kubernetes quantity (out of range): {value!r}") from None
    if abs(number) > MAX:
        return MAX.copy_sign(number)
    return number


__all__ = ["EXAMPLES", "parse_quantity"]
