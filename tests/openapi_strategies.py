"""hypothesis strategies for what a CRD's structural OpenAPI schema allows.

hypothesis-jsonschema would do this, but its last release no longer runs on current hypothesis (it
calls a private API since removed), and a CRD needs the Kubernetes extensions besides:
x-kubernetes-int-or-string and x-kubernetes-preserve-unknown-fields. CEL rules
(x-kubernetes-validations) are not modelled: the API server judges those, and what it refuses is
part of what a fuzz test learns.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

from hypothesis import strategies as st

INT64 = (-(2**63), 2**63 - 1)
LONGEST_STRING = 253  # where a schema sets no maxLength

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(*INT64) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def strings(schema: Mapping[str, Any]) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength", LONGEST_STRING)
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: low <= len(s) <= high)
    if schema.get("format") == "date-time":
        return st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z"))
    return st.text(min_size=low, max_size=high)


def from_openapi(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    if "anyOf" in schema:
        return st.one_of([from_openapi(branch) for branch in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if schema.get("x-kubernetes-int-or-string"):
        return st.integers(*INT64) | st.text(max_size=LONGEST_STRING)
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties")
        if props is None:
            values = json_values if schema.get("x-kubernetes-preserve-unknown-fields") else st.text()
            return st.dictionaries(st.text(max_size=63), values, max_size=8)
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: from_openapi(v) for k, v in props.items() if k in required},
            optional={k: from_openapi(v) for k, v in props.items() if k not in required},
        )
    if kind == "array":
        items = from_openapi(schema.get("items", {}))
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=schema.get("maxItems", 16))
    if kind == "string":
        return strings(schema)
    if kind == "integer":
        return st.integers(schema.get("minimum", INT64[0]), schema.get("maximum", INT64[1]))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    return json_values  # no type: anything JSON
