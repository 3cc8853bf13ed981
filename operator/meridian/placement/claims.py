"""Which Region each node belongs to, from the Regions' selectors alone (pure).

Residency is proven from this map: a pod's node, the one Region that selects it, that Region's
jurisdictions. A node of a Karmada member cluster is named `<cluster>/<node>` (a node name cannot
hold a slash): a Region reached as member clusters claims only nodes of those clusters, and a Region
reached as nodes only nodes of the cluster Meridian runs against, so a member's node labelled like
another region's nodes is claimed by neither. A node selected by no Region belongs nowhere; a node
selected by two Regions is contested, and both Regions become unusable until an administrator fixes
their selectors, because either could then place a model on the other's hardware.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from meridian.api.region import Region

# Under the NodeRestriction admission plugin a kubelet may set these on its own Node, and any label
# outside the kubernetes.io and k8s.io namespaces; a Region selecting only by them trusts every kubelet.
KUBELET_SETTABLE_KEYS = frozenset(
    {
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    }
)
KUBELET_SETTABLE_PREFIXES = ("kubelet.kubernetes.io", "node.kubernetes.io")
MEMBER_SEPARATOR = "/"


def member_node(cluster: str, node: str) -> str:
    """The name Meridian knows a member cluster's node by."""
    return f"{cluster}{MEMBER_SEPARATOR}{node}"


def cluster_of(node: str) -> str:
    """The member cluster a node is in; "" for a node of the cluster Meridian runs against."""
    return node.partition(MEMBER_SEPARATOR)[0] if MEMBER_SEPARATOR in node else ""


def kubelet_settable(key: str) -> bool:
    """True when a kubelet may set this label on its own Node (NodeRestriction's rule)."""
    if key in KUBELET_SETTABLE_KEYS or "/" not in key:
        return True
    prefix = key.split("/", 1)[0]
    if prefix in KUBELET_SETTABLE_PREFIXES or any(prefix.endswith("." + p) for p in KUBELET_SETTABLE_PREFIXES):
        return True
    protected = ("kubernetes.io", "k8s.io")
    return not any(prefix == p or prefix.endswith("." + p) for p in protected)


def settable_keys(selector: Iterable[str]) -> list[str]:
    """The selector's keys a kubelet may set on its own Node, sorted."""
    return sorted(k for k in selector if kubelet_settable(k))


def protected(selector: Iterable[str]) -> bool:
    """True when some key is a label no kubelet can set: a node cannot join the Region by itself."""
    return any(not kubelet_settable(k) for k in selector)


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """An empty selector selects nothing: a Region must name its nodes."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@dataclass(frozen=True)
class NodeClaims:
    """Node name → the Regions whose selector matches it (sorted)."""

    claims: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def region_of(self, node: str) -> str | None:
        """The one Region that selects `node`, else None (no Region, or contested)."""
        owners = self.claims.get(node, ())
        return owners[0] if len(owners) == 1 else None

    def owners(self, node: str) -> tuple[str, ...]:
        return self.claims.get(node, ())

    def shared_with(self, region: str) -> dict[str, tuple[str, ...]]:
        """Nodes `region` selects that other Regions select too → those other Regions."""
        return {n: tuple(o for o in rs if o != region) for n, rs in self.claims.items() if len(rs) > 1 and region in rs}

    def contested(self) -> dict[str, tuple[str, ...]]:
        """Nodes selected by more than one Region."""
        return {n: rs for n, rs in self.claims.items() if len(rs) > 1}

    def conflicts(self) -> dict[str, tuple[str, str]]:
        """Region → (a contested node, another Region selecting it): the first by node name."""
        out: dict[str, tuple[str, str]] = {}
        for node in sorted(self.contested()):
            owners = self.claims[node]
            for r in owners:
                if r not in out:
                    out[r] = (node, next(o for o in owners if o != r))
        return out


def node_claims(regions: Sequence[Region], nodes: Iterable[tuple[str, Mapping[str, str]]]) -> NodeClaims:
    """Which Regions select each node; `nodes` are (name, labels) pairs. Every reconcile reads this
    map, so each selector is taken once and matched as a subset of the node's labels."""
    ordered = sorted(regions, key=lambda r: r.name)
    selectors = [(r.name, r.node_selector.items(), frozenset(r.spec.clusters or ("",))) for r in ordered]
    out: dict[str, tuple[str, ...]] = {}
    for name, labels in nodes:
        have = labels.items()
        cluster = cluster_of(name)
        owners = tuple(region for region, wanted, where in selectors if wanted and wanted <= have and cluster in where)
        if owners:
            out[name] = owners
    return NodeClaims(out)
