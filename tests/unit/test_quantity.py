"""Our quantity reader agrees with the Kubernetes client's on every string either accepts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.utils.quantity import parse_quantity as reference

from meridian.quantity import parse_quantity

pytestmark = pytest.mark.unit

SUFFIXES = ["", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "e3", "E-2", "e+1"]
numbers = st.from_regex(r"\A[+-]?(\d{1,6}(\.\d{0,4})?|\.\d{1,4})\Z")


@given(numbers, st.sampled_from(SUFFIXES))
def test_agrees_with_the_kubernetes_client(number: str, suffix: str) -> None:
    assert parse_quantity(number + suffix) == Decimal(reference(number + suffix))  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("text", ["", "Gi", "1GiB", "abc", "1.2.3", "--1", "1e"])
def test_refuses_what_is_not_a_quantity(text: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity(text)
    with pytest.raises((ValueError, TypeError, ArithmeticError)):
        reference(text)  # type: ignore[no-untyped-call]
