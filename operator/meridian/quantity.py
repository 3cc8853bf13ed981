"""Kubernetes resource quantities ("500m", "1Gi", "1e3") as exact decimals (pure).

The grammar of k8s.io/apimachinery's resource.Quantity: a signed decimal number, then a binary
suffix (Ki … Ei), a decimal one (n, u, m, k, M … E) or an exponent (e3, E-2). The operator keeps
its own reader so that its process never loads the synchronous Kubernetes client, 40 MiB of
generated models it has no other use for.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_FORM = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))((?:[eE][+-]?\d+)|[KMGTPE]i|[numkMGTPE]?)")


def parse_quantity(text: str) -> Decimal:
    """The value of a quantity string; ValueError for anything else."""
    match = _FORM.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number, suffix = match.groups()
    try:
        value = Decimal(number)
    except InvalidOperation as e:
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from e
    if suffix in _BINARY:
        return value * Decimal(1024) ** _BINARY[suffix]
    if suffix in _DECIMAL:
        return value.scaleb(_DECIMAL[suffix])
    return value.scaleb(int(suffix[1:]))


def quantity_or_none(text: str | int) -> Decimal | None:
    """The value of a quantity, or None for what is not one (left for the API server to judge)."""
    try:
        return parse_quantity(str(text))
    except ValueError:
        return None
