"""Every name the API server accepts for a model or Region yields valid child names and labels."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.sync_worlds import model, nodes_of, region, world

from meridian.render.names import DNS1035, LABEL_VALUE, model_service_name, picker_name, regional_name
from meridian.sync import sync

pytestmark = pytest.mark.unit

# a DNS-1123 subdomain, what the API server accepts for metadata.name of a custom resource
LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
SUBDOMAIN = st.lists(LABEL, min_size=1, max_size=12).map(".".join).filter(lambda s: len(s) <= 253)
SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def check_object(obj: dict[str, Any]) -> None:
    name = obj["metadata"]["name"]
    if obj["kind"] == "Service":
        assert DNS1035.match(name) and len(name) <= 63, name
    else:
        assert SUBDOMAIN_RE.match(name) and len(name) <= 253, name
    if obj["kind"] == "Deployment":
        assert len(name) <= 63, name  # its pods' hostnames derive from it
    labels = dict(obj["metadata"]["labels"])
    template = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
    for value in [*labels.values(), *template.values()]:
        assert len(value) <= 63 and LABEL_VALUE.match(value), value


ROUTED = {
    "model": {"format": "tensorrt-llm", "storageUri": "s3://m/e", "tokenizerUri": "hf://o/t"},
    "runtime": {"openai": {"enabled": True}},
    "routing": {"gateway": {"name": "gw"}},
}


@given(SUBDOMAIN, SUBDOMAIN, st.booleans())
def test_any_accepted_model_and_region_name_renders_valid_children(
    md_name: str, region_name: str, routed: bool
) -> None:
    md = model(
        name=md_name, placement={"residency": ["EU"], "regions": [{"name": region_name}]}, **(ROUTED if routed else {})
    )
    reg = region(region_name, ["EU"], {"node-restriction.kubernetes.io/region": "r"})
    d = sync(world(md, [reg], {"n": {"node-restriction.kubernetes.io/region": "r"}}))
    assert d.applies, d.problems
    for obj in d.applies:
        check_object(obj)


@given(SUBDOMAIN, SUBDOMAIN, SUBDOMAIN, SUBDOMAIN)
def test_two_different_pairs_never_share_a_child_name(a: str, r: str, b: str, s: str) -> None:
    if (a, r) != (b, s):
        assert regional_name(a, r) != regional_name(b, s)
    assert regional_name(a, r) != model_service_name(b)
    assert picker_name(a) not in (model_service_name(b), regional_name(b, s))
    if a != b:
        assert picker_name(a) != picker_name(b)


def test_the_example_from_the_issue_serves() -> None:
    md = model(name="llama-3.1-8b")
    d = sync(world(md, [region("gra", ["EU"])], nodes_of(gra=1)))
    assert not d.problems
    for obj in d.applies:
        check_object(obj)
