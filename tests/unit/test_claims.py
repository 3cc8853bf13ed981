"""Which Region each node belongs to, from the Regions' selectors alone, and which labels a kubelet can forge."""

from __future__ import annotations

from typing import Any

import pytest

from meridian.api.region import NODE_REGION_LABEL, Region
from meridian.placement.claims import (
    NodeClaims,
    kubelet_settable,
    node_claims,
    protected,
    selects,
    settable_keys,
)

pytestmark = pytest.mark.unit


def region(name: str, selector: dict[str, str] | None = None) -> Region:
    spec: dict[str, Any] = {"country": "FR"} | ({"nodeSelector": selector} if selector is not None else {})
    return Region.model_validate({"metadata": {"name": name}, "spec": spec})


@pytest.mark.parametrize(
    "key",
    [
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "kubernetes.io/hostname",
        "kubernetes.io/os",
        "node.kubernetes.io/instance-type",
        "node.kubernetes.io/anything",  # the node.kubernetes.io namespace is the kubelet's
        "kubelet.kubernetes.io/anything",
        "foo.node.kubernetes.io/x",  # and its subdomains
        "region",  # no prefix: anyone's
        "example.com/region",  # outside kubernetes.io and k8s.io: the kubelet may set it
        "nvidia.com/gpu.product",
    ],
)
def test_labels_a_kubelet_may_set_on_its_own_node(key: str) -> None:
    assert kubelet_settable(key)


@pytest.mark.parametrize(
    "key",
    [
        NODE_REGION_LABEL,
        "node-restriction.kubernetes.io/team",
        "kubernetes.io/region",  # kubernetes.io itself, not a listed key
        "example.k8s.io/region",
        "serving.kubernetes.io/region",
    ],
)
def test_labels_node_restriction_forbids_a_kubelet(key: str) -> None:
    assert not kubelet_settable(key)


def test_a_selector_is_protected_by_one_label_a_kubelet_cannot_set() -> None:
    assert protected({NODE_REGION_LABEL: "gra"})
    assert protected({NODE_REGION_LABEL: "gra", "topology.kubernetes.io/region": "gra"})
    assert not protected({"topology.kubernetes.io/region": "gra", "kubernetes.io/os": "linux"})
    assert not protected({})
    assert settable_keys({"topology.kubernetes.io/zone": "a", NODE_REGION_LABEL: "gra", "b.example/x": "1"}) == [
        "b.example/x",
        "topology.kubernetes.io/zone",
    ]


def test_an_empty_selector_selects_nothing() -> None:
    assert not selects({}, {"anything": "x"})
    assert selects({"a": "1"}, {"a": "1", "b": "2"})
    assert not selects({"a": "1", "b": "3"}, {"a": "1", "b": "2"})
    assert not selects({"a": "1"}, {})


NODES = [
    ("n1", {NODE_REGION_LABEL: "gra", "pool": "h100"}),
    ("n2", {NODE_REGION_LABEL: "gra", "pool": "l4"}),
    ("n3", {NODE_REGION_LABEL: "rbx", "pool": "h100"}),
    ("n4", {"pool": "h100"}),  # no Region label: belongs to "h100" only
    ("n5", {"pool": "cpu"}),  # selected by nobody
]


def test_each_node_belongs_to_the_one_region_that_selects_it() -> None:
    claims = node_claims([region("rbx"), region("gra")], NODES)
    assert claims.claims == {"n1": ("gra",), "n2": ("gra",), "n3": ("rbx",)}
    assert [claims.region_of(n) for n in ("n1", "n3", "n5")] == ["gra", "rbx", None]
    assert claims.owners("n5") == ()
    assert claims.contested() == {} and claims.conflicts() == {}
    assert claims.shared_with("gra") == {}


def test_a_node_selected_by_two_regions_belongs_to_neither() -> None:
    # "h100" selects by pool and so overlaps gra (n1) and rbx (n3); "z" overlaps gra on n1 too
    regions = [region("rbx"), region("h100", {"pool": "h100"}), region("gra"), region("z", {"pool": "h100"})]
    claims = node_claims(regions, NODES)
    assert claims.owners("n1") == ("gra", "h100", "z")  # sorted by Region name
    assert claims.region_of("n1") is None and claims.region_of("n2") == "gra"
    assert claims.contested() == {"n1": ("gra", "h100", "z"), "n3": ("h100", "rbx", "z"), "n4": ("h100", "z")}
    # every Region involved names its first contested node (by node name) and another Region on it
    assert claims.conflicts() == {
        "gra": ("n1", "h100"),
        "h100": ("n1", "gra"),
        "z": ("n1", "gra"),
        "rbx": ("n3", "h100"),
    }
    assert claims.shared_with("gra") == {"n1": ("h100", "z")}
    assert claims.shared_with("rbx") == {"n3": ("h100", "z")}
    assert sorted(claims.shared_with("h100")) == ["n1", "n3", "n4"]


def test_claims_default_empty() -> None:
    claims = NodeClaims()
    assert claims.region_of("n1") is None and claims.contested() == {} and claims.conflicts() == {}
