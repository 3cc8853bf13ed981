"""pydantic JSON Schema → Kubernetes structural OpenAPI v3 schema.

The API server only accepts structural schemas: every node typed, no $ref, no nullable unions. This
module is the one translation between what pydantic emits and what a CRD may contain.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_DROP = {"title", "$defs", "discriminator"}


def structural(model: type[BaseModel], *, keep_defaults: bool = True) -> dict[str, Any]:
    """The structural schema of a pydantic model, defaults kept for spec and dropped for status."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(raw, raw.get("$defs", {}), keep_defaults)


def _convert(node: dict[str, Any], defs: dict[str, Any], keep_defaults: bool) -> dict[str, Any]:
    node = _resolve(node, defs)
    if "anyOf" in node:
        node = _collapse_any_of(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "anyOf":
            continue
        if key == "default":
            if value is not None and keep_defaults:
                out["default"] = value
        elif key == "properties":
            out["properties"] = {k: _convert(v, defs, keep_defaults) for k, v in value.items()}
        elif key == "items":
            out["items"] = _convert(value, defs, keep_defaults)
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out["additionalProperties"] = _convert(value, defs, keep_defaults)
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        else:
            out[key] = value
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    if out.get("type") == "object" and not out.get("properties") and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline a $ref; keys beside it (a field's description, default) win over the target's."""
    while "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _collapse_any_of(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """`X | None` becomes X (absent means unset); `int | str` becomes int-or-string."""
    options = [_resolve(o, defs) for o in node["anyOf"] if o.get("type") != "null"]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    types = {o.get("type") for o in options}
    if types == {"integer", "string"}:
        return {**rest, "x-kubernetes-int-or-string": True}
    if len(options) != 1:
        raise ValueError(f"cannot express union {node['anyOf']} in a structural schema")
    return {**options[0], **rest}
