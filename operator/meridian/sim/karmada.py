"""A real Karmada control plane as local processes, and member clusters joined to it in Push mode.

Karmada's API server is a plain kube-apiserver (a node-less ControlPlane) with Karmada's CRDs; beside
it run karmada-aggregated-apiserver (it serves `Cluster` and the cluster proxy, an APIService behind an
ExternalName Service), karmada-webhook (defaults and permanent-id labels on policies and bindings),
karmada-controller-manager and karmada-scheduler. Each gets ports of its own. The manifests that need
our addresses (webhook configurations, the APIService) come from Karmada's module and are filled in
here. Karmada's own failover stays off: Meridian decides moves.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from meridian import log
from meridian.sim import binaries, cluster, network, pki
from meridian.sim.controlplane import ControlPlane, ControlPlaneError

KARMADA_SYSTEM = "karmada-system"
CLUSTER_NAMESPACE = "karmada-cluster"  # where a member's credentials live, in Karmada and in the member
SYSTEM_LABEL = {"karmada.io/system": "true"}
CLUSTER_API = "cluster.karmada.io/v1alpha1"
WEBHOOK_SERVICE = f"karmada-webhook.{KARMADA_SYSTEM}.svc"
AGGREGATED_SERVICE = "karmada-aggregated-apiserver"
KARMADA_COMPONENTS = (
    "karmada-aggregated-apiserver",
    "karmada-webhook",
    "karmada-controller-manager",
    "karmada-scheduler",
)
KARMADA_THROUGHPUT = ("--kube-api-qps=400", "--kube-api-burst=800")  # requests to Karmada's API server


def _log() -> Any:
    return log.get("meridian.sim")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def apply(api: k8s.ApiClient, manifest: dict[str, Any]) -> None:
    """Server-side apply any object, as the simulator's field manager."""
    dyn = DynamicClient(api)  # type: ignore[no-untyped-call]
    resource = dyn.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
    ns = manifest["metadata"].get("namespace")
    resource.server_side_apply(body=manifest, namespace=ns, field_manager=cluster.FIELD_MANAGER, force_conflicts=True)


@dataclass(frozen=True)
class Member:
    """A member cluster as Karmada sees it: its name, API endpoint, CA and the labels it carries."""

    name: str
    control_plane: ControlPlane
    region: str
    zones: list[str]
    labels: dict[str, str]


class Karmada:
    """Karmada's processes, rooted at workdir (a ControlPlane's workdir: they share its state.json)."""

    def __init__(self, workdir: Path, die_with_parent: bool = False) -> None:
        self.host = ControlPlane(workdir, die_with_parent=die_with_parent, nodes=False)
        self.kubeconfig = self.host.kubeconfig

    def start(self, timeout: float = 120.0) -> Path:
        """Start the API server, Karmada's CRDs and components; return once Clusters can be created."""
        kb = binaries.karmada()
        t0 = time.monotonic()
        kubeconfig = self.host.start(timeout)
        try:
            self._start_karmada(kb, kubeconfig, timeout)
        except BaseException:
            self.host.stop()
            raise
        _log().info("karmada ready", seconds=round(time.monotonic() - t0, 2))
        return kubeconfig

    def stop(self) -> bool:
        return self.host.stop()

    def _start_karmada(self, kb: binaries.KarmadaBinaries, kubeconfig: Path, timeout: float) -> None:
        assert self.host.state is not None
        workdir = self.host.workdir
        ca = pki.KeyPair(cert=workdir / "pki" / "ca.crt", key=workdir / "pki" / "ca.key")
        ca_bundle = _b64(ca.cert.read_bytes())
        etcd = f"http://127.0.0.1:{self.host.state.ports['etcd']}"
        (aggregated_port, webhook_port, *probe_ports) = network.free_ports(8)
        self.host.state.ports.update({"karmada-aggregated-apiserver": aggregated_port, "karmada-webhook": webhook_port})

        webhook_dir = workdir / "pki" / "karmada-webhook"
        pki.issue(ca, webhook_dir, "tls", "karmada-webhook", dns=[WEBHOOK_SERVICE, "localhost"])
        aggregated = pki.issue(
            ca,
            workdir / "pki",
            "karmada-aggregated-apiserver",
            AGGREGATED_SERVICE,
            dns=[f"{AGGREGATED_SERVICE}.{KARMADA_SYSTEM}.svc", "localhost"],
        )
        api = cluster.api_client(kubeconfig)
        for ns in (KARMADA_SYSTEM, CLUSTER_NAMESPACE):
            apply(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": SYSTEM_LABEL}})
        cluster.apply_crds(api, cluster.load_crds(kb.crds), timeout=timeout)

        probes = iter(probe_ports)

        def local(port: int) -> str:
            return f"127.0.0.1:{port}"

        self.host.spawn(
            "karmada-aggregated-apiserver",
            [
                str(kb.aggregated_apiserver),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--etcd-servers={etcd}",
                f"--tls-cert-file={aggregated.cert}",
                f"--tls-private-key-file={aggregated.key}",
                "--bind-address=127.0.0.1",
                f"--secure-port={aggregated_port}",
                "--v=1",
            ],
        )
        self.host.spawn(
            "karmada-webhook",
            [
                str(kb.webhook),
                f"--kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={webhook_port}",
                f"--cert-dir={webhook_dir}",
                f"--metrics-bind-address={local(next(probes))}",
                f"--health-probe-bind-address={local(next(probes))}",
                "--v=1",
            ],
        )
        ctx = network.tls_context(ca.cert, self.host_admin())
        self.host.wait_ok("karmada-webhook", f"https://127.0.0.1:{webhook_port}/readyz", ctx, timeout)
        self.host.wait_ok("karmada-aggregated-apiserver", f"https://127.0.0.1:{aggregated_port}/readyz", ctx, timeout)
        for doc in _deploy_docs(kb.deploy / "webhook-configuration.yaml", ca_bundle):
            for hook in doc.get("webhooks", []):
                url = hook["clientConfig"]["url"]
                hook["clientConfig"]["url"] = url.replace(f"{WEBHOOK_SERVICE}:443", local(webhook_port))
            apply(api, doc)
        for doc in _deploy_docs(kb.deploy / "karmada-aggregated-apiserver-apiservice.yaml", ca_bundle):
            if doc["kind"] == "Service":
                doc["spec"]["externalName"] = "localhost"
            else:
                doc["spec"]["service"]["port"] = aggregated_port
            apply(api, doc)
        self.host.wait_ok(
            "karmada-aggregated-apiserver", f"{self.host.state.apiserver_url}/apis/{CLUSTER_API}", ctx, timeout
        )

        self.host.spawn(
            "karmada-controller-manager",
            [
                str(kb.controller_manager),
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                f"--metrics-bind-address={local(next(probes))}",
                f"--health-probe-bind-address={local(next(probes))}",
                "--cluster-status-update-frequency=5s",
                "--feature-gates=Failover=false",
                # tuned for hundreds of workloads, as Karmada's users tune it: the defaults (40 requests
                # a second to Karmada and to each member, 5 workers a queue) make it propagate about
                # one model a second
                *KARMADA_THROUGHPUT,
                "--concurrent-resource-template-syncs=20",
                "--concurrent-resourcebinding-syncs=20",
                "--concurrent-work-syncs=20",
                "--cluster-api-qps=400",
                "--cluster-api-burst=800",
                "--v=1",
            ],
        )
        self.host.spawn(
            "karmada-scheduler",
            [
                str(kb.scheduler),
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                f"--metrics-bind-address={local(next(probes))}",
                f"--health-probe-bind-address={local(next(probes))}",
                # a region drained to 0 replicas must reach its member as 0, not stay at its old count
                "--enable-empty-workload-propagation",
                *KARMADA_THROUGHPUT,
                "--v=1",
            ],
        )

    def host_admin(self) -> pki.KeyPair:
        d = self.host.workdir / "pki"
        return pki.KeyPair(cert=d / "admin.crt", key=d / "admin.key")


def _deploy_docs(path: Path, ca_bundle: str) -> list[dict[str, Any]]:
    text = path.read_text().replace("{{caBundle}}", ca_bundle)
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


# -- joining a member (what `karmadactl join` does, in Push mode) --------------------------------------


def _service_account_token(core: k8s.CoreV1Api, name: str, timeout: float) -> tuple[bytes, bytes]:
    """(token, ca.crt) of a long-lived token Secret for the ServiceAccount name, once the controller fills it."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": name,
            "namespace": CLUSTER_NAMESPACE,
            "labels": SYSTEM_LABEL,
            "annotations": {"kubernetes.io/service-account.name": name},
        },
    }
    apply(core.api_client, secret)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = core.read_namespaced_secret(name, CLUSTER_NAMESPACE).data or {}
        if data.get("token") and data.get("ca.crt"):
            return base64.b64decode(data["token"]), base64.b64decode(data["ca.crt"])
        time.sleep(0.2)
    raise ControlPlaneError(f"no token for ServiceAccount {CLUSTER_NAMESPACE}/{name} after {timeout:.0f}s")


def join(karmada_api: k8s.ApiClient, member: Member, timeout: float = 60.0) -> None:
    """Register member as a Push-mode Cluster: a ServiceAccount with full rights in the member (Karmada
    applies and deletes there), one for impersonation (the cluster proxy), their tokens in Karmada."""
    st = member.control_plane.state
    assert st is not None and st.apiserver_url, "join needs a member control plane this process started"
    api = cluster.api_client(member.control_plane.kubeconfig)
    core = k8s.CoreV1Api(api)
    sa, impersonator = f"karmada-{member.name}", "karmada-impersonator"
    apply(
        api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CLUSTER_NAMESPACE, "labels": SYSTEM_LABEL}}
    )
    for name in (sa, impersonator):
        meta = {"name": name, "namespace": CLUSTER_NAMESPACE, "labels": SYSTEM_LABEL}
        apply(api, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
    rbac = "rbac.authorization.k8s.io/v1"
    role = f"system:karmada:{sa}"
    rules = [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["get"]},
    ]
    apply(
        api,
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": role, "labels": SYSTEM_LABEL}, "rules": rules},
    )
    apply(
        api,
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role, "labels": SYSTEM_LABEL},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": CLUSTER_NAMESPACE}],
        },
    )
    # Karmada's cluster proxy sends each request as its requester, impersonated by this account. Its
    # unified-auth controller lets it impersonate only whom Karmada's RBAC grants clusters/proxy; the
    # simulated fleet's one user is the admin (system:masters, bound by no role), so here it may
    # impersonate anyone: the operator then reads member pods and nodes with the admin's kubeconfig
    impersonate = f"meridian-sim:{impersonator}"
    rules = [
        {"apiGroups": [""], "resources": ["users", "groups", "serviceaccounts"], "verbs": ["impersonate"]},
        {"apiGroups": ["authentication.k8s.io"], "resources": ["userextras/*", "uids"], "verbs": ["impersonate"]},
    ]
    apply(
        api,
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": impersonate, "labels": SYSTEM_LABEL},
            "rules": rules,
        },
    )
    apply(
        api,
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": impersonate, "labels": SYSTEM_LABEL},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": impersonate},
            "subjects": [{"kind": "ServiceAccount", "name": impersonator, "namespace": CLUSTER_NAMESPACE}],
        },
    )
    token, ca = _service_account_token(core, sa, timeout)
    impersonator_token, _ = _service_account_token(core, impersonator, timeout)

    for name, data in (
        (member.name, {"caBundle": _b64(ca), "token": _b64(token)}),
        (f"{member.name}-impersonator", {"token": _b64(impersonator_token)}),
    ):
        meta = {"name": name, "namespace": CLUSTER_NAMESPACE, "labels": SYSTEM_LABEL}
        apply(karmada_api, {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": data})
    apply(
        karmada_api,
        {
            "apiVersion": CLUSTER_API,
            "kind": "Cluster",
            "metadata": {"name": member.name, "labels": member.labels},
            "spec": {
                "syncMode": "Push",
                "apiEndpoint": st.apiserver_url,
                "secretRef": {"namespace": CLUSTER_NAMESPACE, "name": member.name},
                "impersonatorSecretRef": {"namespace": CLUSTER_NAMESPACE, "name": f"{member.name}-impersonator"},
                "region": member.region,
                "zones": member.zones,
            },
        },
    )


def cluster_ready(karmada_api: k8s.ApiClient, name: str) -> bool:
    try:
        obj: Any = k8s.CustomObjectsApi(karmada_api).get_cluster_custom_object(
            "cluster.karmada.io", "v1alpha1", "clusters", name
        )
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def wait_clusters_ready(karmada_api: k8s.ApiClient, names: list[str], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending and time.monotonic() < deadline:
        pending = [n for n in pending if not cluster_ready(karmada_api, n)]
        if pending:
            time.sleep(0.5)
    if pending:
        raise ControlPlaneError(f"Karmada Clusters not Ready after {timeout:.0f}s: {', '.join(pending)}")
