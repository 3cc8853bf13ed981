"""Putting a fleet into a cluster and reading its GPU capacity back: nodes, CRDs, Regions, the region table.

Everything is applied with server-side apply under one field manager, so `sim up` can run again on
a live cluster and converge instead of failing on objects that already exist.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from meridian import GROUP, VERSION, log
from meridian.api.region import NODE_REGION_LABEL
from meridian.sim import fleet as fleetmod
from meridian.sim import kwok

FIELD_MANAGER = "meridian-sim"
APPLY = "application/apply-patch+yaml"
REGION_CRD = f"regions.{GROUP}"


def _log() -> Any:
    """Looked up per call: a logger bound at import would miss a later log.configure()."""
    return log.get("meridian.sim")


def api_client(kubeconfig: Path) -> k8s.ApiClient:
    """A sync ApiClient for kubeconfig, with enough pooled connections for parallel applies."""
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)  # type: ignore[no-untyped-call]
    cfg.connection_pool_maxsize = 16
    return k8s.ApiClient(cfg)


# -- nodes --------------------------------------------------------------------------------------------


def _discard(response: Any) -> None:
    """Read and release a raw response: applies need no typed result, and decoding one costs more than
    the request itself."""
    response.read()
    response.release_conn()


def _create_node(core: k8s.CoreV1Api, manifest: dict[str, Any]) -> bool:
    """Create the node with its status in one request; False if it already exists."""
    node = k8s.V1Node.from_dict(manifest)
    assert node is not None
    try:
        _discard(core.create_node(node, field_manager=FIELD_MANAGER, _preload_content=False))
    except ApiException as e:
        if e.status == 409:
            return False
        raise
    return True


def _update_node(core: k8s.CoreV1Api, manifest: dict[str, Any]) -> None:
    """Server-side apply metadata and spec, then capacity and addresses through the status subresource."""
    name = manifest["metadata"]["name"]
    body = {k: v for k, v in manifest.items() if k != "status"}
    opts: dict[str, Any] = {
        "field_manager": FIELD_MANAGER,
        "force": True,
        "_content_type": APPLY,
        "_preload_content": False,
    }
    _discard(core.patch_node(name, body, **opts))
    status = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": manifest["status"]}
    _discard(core.patch_node_status(name, status, **opts))


def up_to_date(node: k8s.V1Node, manifest: dict[str, Any]) -> bool:
    """The node already carries the manifest's labels, annotations, taints, capacity and allocatable.

    Extra labels or taints (a cordon, a test's NoExecute) are left alone, so re-applying an unchanged
    fleet writes nothing.
    """
    meta, spec, status = node.metadata, node.spec, node.status
    if meta is None or status is None:
        return False
    want_meta = manifest["metadata"]
    labels = meta.labels or {}
    annotations = meta.annotations or {}
    if any(labels.get(k) != v for k, v in want_meta.get("labels", {}).items()):
        return False
    if any(annotations.get(k) != v for k, v in want_meta.get("annotations", {}).items()):
        return False
    have_taints = {(t.key, t.value or "", t.effect) for t in (spec.taints if spec else None) or []}
    want_taints = {(t["key"], t.get("value", ""), t["effect"]) for t in manifest["spec"].get("taints", [])}
    if not want_taints <= have_taints:
        return False
    for field in ("capacity", "allocatable"):
        have = getattr(status, field) or {}
        if any(have.get(k) != v for k, v in manifest["status"][field].items()):
            return False
    return True


def _apply_node(core: k8s.CoreV1Api, manifest: dict[str, Any], existing: k8s.V1Node | None) -> None:
    if existing is None:
        if _create_node(core, manifest):
            return
    elif up_to_date(existing, manifest):
        return
    _update_node(core, manifest)


def apply_nodes(api: k8s.ApiClient, manifests: list[dict[str, Any]], prune: bool = False) -> None:
    """Create or update the fleet's nodes; with prune, delete simulated nodes no longer in the fleet.

    Nodes already as described are not written at all.
    """
    core = k8s.CoreV1Api(api)
    existing = {
        n.metadata.name: n
        for n in core.list_node(label_selector=fleetmod.POOL_LABEL).items
        if n.metadata and n.metadata.name
    }
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda m: _apply_node(core, m, existing.get(m["metadata"]["name"])), manifests))
    if prune:
        wanted = {m["metadata"]["name"] for m in manifests}
        for name in sorted(set(existing) - wanted):
            _log().info("deleting node no longer in the fleet", node=name)
            core.delete_node(name)


def is_ready(node: k8s.V1Node) -> bool:
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def wait_nodes_ready(api: k8s.ApiClient, names: Iterable[str], timeout: float = 120.0) -> float:
    """Wait until every named node is Ready (kwok's node-initialize stage); returns seconds waited."""
    core = k8s.CoreV1Api(api)
    want = set(names)
    t0 = time.monotonic()
    pending = want
    while time.monotonic() - t0 < timeout:
        nodes = core.list_node(label_selector=f"{kwok.NODE_TYPE_LABEL}={kwok.NODE_TYPE_VALUE}").items
        ready = {n.metadata.name for n in nodes if n.metadata and is_ready(n)}
        pending = want - ready
        if not pending:
            return time.monotonic() - t0
        time.sleep(0.25)
    shown = ", ".join(sorted(pending)[:10])
    raise TimeoutError(f"{len(pending)} nodes not Ready after {timeout:.0f}s: {shown}; is kwok running?")


# -- CRDs and Regions ---------------------------------------------------------------------------------


def load_crds(crd_dir: Path) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in crd_dir/*.yaml (multi-document files allowed)."""
    docs: list[dict[str, Any]] = []
    for f in sorted(crd_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                docs.append(doc)
    return docs


def crd_established(api: k8s.ApiClient, name: str) -> bool:
    try:
        crd = k8s.ApiextensionsV1Api(api).read_custom_resource_definition(name)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def apply_crds(api: k8s.ApiClient, crds: list[dict[str, Any]], timeout: float = 30.0) -> list[str]:
    """Server-side apply the CRDs and wait until each is Established; returns their names.

    Raises ApiException when the API server rejects a CRD (invalid schema or CEL rule).
    """
    ext = k8s.ApiextensionsV1Api(api)
    names: list[str] = []
    for crd in crds:
        name = crd["metadata"]["name"]
        _discard(
            ext.patch_custom_resource_definition(
                name, crd, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY, _preload_content=False
            )
        )
        names.append(name)
    deadline = time.monotonic() + timeout
    for name in names:
        while not crd_established(api, name):
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established after {timeout:.0f}s")
            time.sleep(0.1)
    return names


def apply_crds_tolerant(api: k8s.ApiClient, crds: list[dict[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """Apply each CRD on its own: one the API server rejects is logged and skipped, not fatal.

    The simulator must come up even while a CRD in crds/ is being worked on; returns the applied
    names and, per rejected CRD, the API server's message.
    """
    applied: list[str] = []
    rejected: dict[str, str] = {}
    for crd in crds:
        name = crd["metadata"]["name"]
        try:
            applied += apply_crds(api, [crd])
        except (ApiException, TimeoutError) as e:
            message = _api_message(e)
            rejected[name] = message
            _log().error("CRD rejected by the API server; skipped", crd=name, message=message)
    return applied, rejected


def _api_message(e: Exception) -> str:
    """The Status message of an ApiException (what kubectl would print), else str(e)."""
    if isinstance(e, ApiException) and e.body:
        try:
            body = json.loads(e.body)
        except ValueError:
            return str(e.body)
        if isinstance(body, dict) and "message" in body:
            return str(body["message"])
    return str(e)


def apply_regions(api: k8s.ApiClient, manifests: list[dict[str, Any]]) -> None:
    """Server-side apply Region objects (the Region CRD must be established)."""
    custom = k8s.CustomObjectsApi(api)
    for m in manifests:
        response = custom.patch_cluster_custom_object(
            GROUP,
            VERSION,
            "regions",
            m["metadata"]["name"],
            m,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=APPLY,
            _preload_content=False,
        )
        _discard(response)


def apply_crd_dir(api: k8s.ApiClient, crd_dir: Path | None) -> None:
    if crd_dir is None or not crd_dir.is_dir():
        return
    crds = load_crds(crd_dir)
    if crds:
        t = time.monotonic()
        applied, _ = apply_crds_tolerant(api, crds)
        _log().info("applied CRDs", crds=applied, dir=str(crd_dir), seconds=round(time.monotonic() - t, 2))


def apply_fleet(
    api: k8s.ApiClient,
    fleet: fleetmod.Fleet,
    crd_dir: Path | None = None,
    timeout: float = 120.0,
    prune: bool = False,
) -> float:
    """Nodes and, meanwhile, the CRDs of crd_dir (if it has any); then Regions (if their CRD is
    established); then wait for every node to be Ready. With prune, simulated nodes of an earlier
    fleet that this one lacks are deleted.

    Returns the seconds from the start until every node is Ready.
    """
    t0 = time.monotonic()
    nodes = fleetmod.node_manifests(fleet)
    with ThreadPoolExecutor(max_workers=1) as background:
        # CRDs wait on the API server's establishing controller, not on us: overlap that with the nodes
        crds_done = background.submit(apply_crd_dir, api, crd_dir)
        apply_nodes(api, nodes, prune=prune)
        _log().info("applied nodes", nodes=len(nodes), seconds=round(time.monotonic() - t0, 2))
        crds_done.result()
    if crd_established(api, REGION_CRD):
        apply_regions(api, fleetmod.region_manifests(fleet))
        _log().info("applied Regions", regions=[r.name for r in fleet.regions])
    else:
        _log().info("Region CRD not installed; Regions not created", crd=REGION_CRD)
    wait_nodes_ready(api, [n["metadata"]["name"] for n in nodes], timeout)
    total = time.monotonic() - t0
    _log().info("nodes ready", nodes=len(nodes), seconds=round(total, 2))
    return total


# -- the region table ---------------------------------------------------------------------------------


@dataclass
class RegionRow:
    """GPU capacity of one GPU product in one region ("-" for CPU-only nodes)."""

    region: str
    gpu_product: str
    nodes: int = 0
    ready: int = 0
    capacity: int = 0
    requested: int = 0

    @property
    def free(self) -> int:
        return self.capacity - self.requested


def _gpu(resources: dict[str, str] | None) -> Decimal:
    if not resources or fleetmod.GPU_RESOURCE not in resources:
        return Decimal(0)
    return Decimal(parse_quantity(resources[fleetmod.GPU_RESOURCE]))  # type: ignore[no-untyped-call]


def pod_gpu_request(pod: k8s.V1Pod) -> int:
    """GPUs a pod holds as the scheduler counts them: max(sum of containers, largest init container).

    Extended resources need not state requests; the limit is the request then.
    """
    if pod.spec is None:
        return 0

    def one(c: k8s.V1Container) -> Decimal:
        res = c.resources
        if res is None:
            return Decimal(0)
        req = _gpu(res.requests)
        return req if req else _gpu(res.limits)

    regular = sum((one(c) for c in pod.spec.containers), Decimal(0))
    init = max((one(c) for c in pod.spec.init_containers or []), default=Decimal(0))
    return int(max(regular, init) + _gpu(pod.spec.overhead))


def region_table(api: k8s.ApiClient) -> list[RegionRow]:
    """Per region and GPU product: nodes, Ready nodes, GPU capacity, GPUs requested by running pods, free.

    A node's region is its node-restriction.kubernetes.io/region label, the one Regions select by (the
    fleet's nodes also carry topology.kubernetes.io/region, which a kubelet could set on itself).
    """
    core = k8s.CoreV1Api(api)
    nodes = core.list_node().items
    pods = core.list_pod_for_all_namespaces(field_selector="status.phase!=Succeeded,status.phase!=Failed").items
    requested: dict[str, int] = {}
    for p in pods:
        node = p.spec.node_name if p.spec else None
        if node:
            requested[node] = requested.get(node, 0) + pod_gpu_request(p)
    rows: dict[tuple[str, str], RegionRow] = {}
    for n in nodes:
        labels = (n.metadata.labels if n.metadata else None) or {}
        name = (n.metadata.name if n.metadata else None) or ""
        region = labels.get(NODE_REGION_LABEL, "-")
        product = labels.get(fleetmod.GPU_PRODUCT_LABEL, "-")
        row = rows.setdefault((region, product), RegionRow(region=region, gpu_product=product))
        row.nodes += 1
        row.ready += int(is_ready(n))
        allocatable = (n.status.allocatable if n.status else None) or {}
        row.capacity += int(_gpu(allocatable))
        row.requested += requested.get(name, 0)
    return [rows[k] for k in sorted(rows)]


def format_table(rows: list[RegionRow]) -> str:
    """A kubectl-style table; the last line totals the GPUs."""
    header = ("REGION", "NODES", "READY", "GPU", "CAPACITY", "REQUESTED", "FREE")
    body = [
        (r.region, str(r.nodes), str(r.ready), r.gpu_product, str(r.capacity), str(r.requested), str(r.free))
        for r in rows
    ]
    total = (
        "TOTAL",
        str(sum(r.nodes for r in rows)),
        str(sum(r.ready for r in rows)),
        "",
        str(sum(r.capacity for r in rows)),
        str(sum(r.requested for r in rows)),
        str(sum(r.free for r in rows)),
    )
    table = [header, *body, total]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table)
