"""`meridian residency check [-n NS] [-o table|json]`: where every Meridian-managed pod runs, proven.

For an auditor or a cron job: each pod with its node, the one Region selecting that node, the
Region's jurisdictions and the ones its model requires (spec.placement.residency plus the namespace
label). The proof is the operator's own (sync/residency.py), read straight from the cluster, so it
holds even when the operator is not running. Against Karmada's API server, the pods and nodes of
every member cluster a Region names are read through Karmada's cluster proxy. Exit 0 when every pod
is compliant, 1 on any violation, 2 when the cluster (or a member) cannot be read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from meridian import GROUP, VERSION
from meridian.api.modeldeployment import ModelDeployment
from meridian.api.region import Region
from meridian.placement.claims import member_node, node_claims
from meridian.render.labels import MANAGED_BY, MD_LABEL
from meridian.render.names import label_value
from meridian.render.reach import CLUSTER_PROXY
from meridian.render.routing import PICKER_LABEL
from meridian.sync.residency import NAMESPACE_RESIDENCY_LABEL, bound_node, place, required_tags


@dataclass(frozen=True)
class Row:
    namespace: str
    model: str
    pod: str
    node: str
    region: str
    jurisdictions: tuple[str, ...]
    required: tuple[str, ...]
    violation: str

    def wire(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "model": self.model,
            "pod": self.pod,
            "node": self.node,
            "region": self.region,
            "jurisdictions": list(self.jurisdictions),
            "required": list(self.required),
            "compliant": not self.violation,
            "violation": self.violation,
        }


def check(
    pods: Sequence[Mapping[str, Any]],
    models: Sequence[ModelDeployment],
    regions: Sequence[Region],
    nodes: Mapping[str, Mapping[str, str]],
    namespace_tags: Mapping[str, str],
) -> list[Row]:
    """One Row per bound pod; pure, so the same proof is unit-tested without a cluster."""
    claims = node_claims(regions, nodes.items())
    by_name = {r.name: r for r in regions}
    by_label = {(m.metadata.namespace, label_value(m.metadata.name)): m for m in models}
    rows = []
    for pod in pods:
        node = bound_node(pod)
        if not node:
            continue
        meta = pod["metadata"]
        ns = meta.get("namespace", "")
        labels = meta.get("labels") or {}
        # a model's endpoint picker reads its prompts: audited under the model's residency too
        label = labels.get(MD_LABEL) or labels.get(PICKER_LABEL, "")
        md = by_label.get((ns, label))
        residency = md.spec.placement.residency if md else []
        required = required_tags(residency, namespace_tags.get(ns, ""))
        where = place(meta["name"], node, required, claims, by_name)
        why = where.why if required else ""
        model = md.metadata.name if md else label
        rows.append(Row(ns, model, where.pod, node, where.region, where.jurisdictions, required, why))
    return sorted(rows, key=lambda r: (r.namespace, r.model, r.pod))


def read_cluster(namespace: str | None) -> list[Row]:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    loader: Any = config  # the sync client is untyped
    try:
        loader.load_kube_config()
    except ConfigException:
        loader.load_incluster_config()
    core: Any = client.CoreV1Api()
    custom: Any = client.CustomObjectsApi()
    selector = f"{MANAGED_BY}=meridian"
    if namespace:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).to_dict()["items"]
        mds = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments")["items"]
    else:
        pods = core.list_pod_for_all_namespaces(label_selector=selector).to_dict()["items"]
        mds = custom.list_cluster_custom_object(GROUP, VERSION, "modeldeployments")["items"]
    regions = [Region.model_validate(r) for r in custom.list_cluster_custom_object(GROUP, VERSION, "regions")["items"]]
    nodes = {n.metadata.name: dict(n.metadata.labels or {}) for n in core.list_node().items}
    tags = {
        n.metadata.name: (n.metadata.labels or {}).get(NAMESPACE_RESIDENCY_LABEL, "")
        for n in core.list_namespace().items
    }
    pods = [_camel_pod(p) for p in pods]
    for cluster in sorted({c for r in regions for c in r.spec.clusters or ()}):
        try:
            member_pods, member_nodes = _read_member(client, cluster, namespace, selector)
        except Exception as e:  # an unread member is an unproven one: never a silent pass
            raise RuntimeError(f"member cluster {cluster}, through Karmada's cluster proxy: {e}") from e
        pods += member_pods
        nodes |= member_nodes
    return check(pods, [ModelDeployment.model_validate(m) for m in mds], regions, nodes, tags)


def _read_member(
    client: Any, cluster: str, namespace: str | None, selector: str
) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """A Karmada member's Meridian pods and its nodes' labels, read through Karmada's cluster proxy,
    with node names as `<cluster>/<node>`."""
    cfg = client.Configuration.get_default_copy()
    cfg.host = cfg.host.rstrip("/") + CLUSTER_PROXY.format(cluster)
    with client.ApiClient(cfg) as api:
        core = client.CoreV1Api(api)
        if namespace:
            raw = core.list_namespaced_pod(namespace, label_selector=selector).to_dict()["items"]
        else:
            raw = core.list_pod_for_all_namespaces(label_selector=selector).to_dict()["items"]
        nodes = {member_node(cluster, n.metadata.name): dict(n.metadata.labels or {}) for n in core.list_node().items}
    pods = []
    for p in raw:
        pod = _camel_pod(p)
        if pod["spec"]["nodeName"]:
            pod["spec"]["nodeName"] = member_node(cluster, pod["spec"]["nodeName"])
        pods.append(pod)
    return pods, nodes


def _camel_pod(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The sync client's to_dict() is snake_case; the proof reads the API's own field names."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    return {
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"), "labels": meta.get("labels")},
        "spec": {"nodeName": spec.get("node_name")},
        "status": {"phase": status.get("phase")},
    }


def print_rows(rows: Sequence[Row], output: str, out: TextIO) -> None:
    bad = [r for r in rows if r.violation]
    if output == "json":
        checked = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        doc = {"checkedAt": checked, "compliant": not bad, "violations": len(bad), "pods": [r.wire() for r in rows]}
        json.dump(doc, out, indent=2)
        out.write("\n")
        return
    header = ("NAMESPACE", "MODEL", "POD", "NODE", "REGION", "JURISDICTIONS", "REQUIRED", "RESULT")
    table = [header] + [
        (
            r.namespace,
            r.model,
            r.pod,
            r.node,
            r.region or "-",
            ",".join(r.jurisdictions) or "-",
            ",".join(r.required) or "-",
            f"VIOLATION: {r.violation}" if r.violation else "ok",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1] + "\n")
    out.write(f"{len(rows)} pod(s), {len(bad)} violation(s)\n")


def residency_command(namespace: str | None, output: str) -> int:
    try:
        rows = read_cluster(namespace)
    except Exception as e:  # no cluster, no permission: the auditor must see why, not a traceback
        print(f"meridian residency check: cannot read the cluster: {e}", file=sys.stderr)
        return 2
    print_rows(rows, output, sys.stdout)
    return 1 if any(r.violation for r in rows) else 0
