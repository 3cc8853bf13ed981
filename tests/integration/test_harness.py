"""The local control plane is a real cluster: scheduling, GC, CEL, RBAC and process cleanup all work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel
from tests.fixtures_cluster import SimCluster

from meridian.sim import cluster, processes
from meridian.sim import fleet as fm

pytestmark = pytest.mark.integration

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def eventually(probe: Callable[[], T | None], timeout: float = 60.0, what: str = "condition") -> T:
    """Poll probe until it returns something truthy; fail with what after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


def model(cls: type[M], manifest: dict[str, Any]) -> M:
    """A typed client model from a manifest written as YAML would be (camelCase keys)."""
    obj = cls.from_dict(manifest)  # type: ignore[attr-defined]
    assert isinstance(obj, cls)
    return obj


def create_deployment(k8s: client.ApiClient, namespace: str, manifest: dict[str, Any]) -> None:
    client.AppsV1Api(k8s).create_namespaced_deployment(namespace, model(client.V1Deployment, manifest))


def gpu_deployment(name: str, replicas: int, gpus: int, match: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """A Deployment of pods each limited to gpus GPUs, pinned by node affinity to label values in match."""
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "triton",
                "image": "nvcr.io/nvidia/tritonserver:25.10-py3",
                "resources": {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {},
            }
        ],
        "tolerations": [GPU_TOLERATION],
        "terminationGracePeriodSeconds": 0,
    }
    if match:
        terms = [{"key": k, "operator": "In", "values": v} for k, v in match.items()]
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": terms}]}
            }
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def pods(k8s: client.ApiClient, namespace: str, app: str) -> list[client.V1Pod]:
    return list(client.CoreV1Api(k8s).list_namespaced_pod(namespace, label_selector=f"app={app}").items)


def running(p: client.V1Pod) -> bool:
    return p.status is not None and p.status.phase == "Running"


def test_gpu_pods_run_only_in_the_requested_region_and_product(k8s: client.ApiClient, namespace: str) -> None:
    match = {fm.REGION_LABEL: ["gra"], fm.GPU_PRODUCT_LABEL: ["H100-80GB-HBM3"]}
    create_deployment(k8s, namespace, gpu_deployment("h100", replicas=4, gpus=4, match=match))

    def all_running() -> list[client.V1Pod] | None:
        ps = pods(k8s, namespace, "h100")
        return ps if len(ps) == 4 and all(running(p) for p in ps) else None

    ps = eventually(all_running, what="4 Running H100 pods")
    core = client.CoreV1Api(k8s)
    for p in ps:
        assert p.spec is not None and p.spec.node_name
        node = core.read_node(p.spec.node_name)
        assert node.metadata is not None and node.metadata.labels is not None
        assert node.metadata.labels[fm.REGION_LABEL] == "gra"
        assert node.metadata.labels[fm.GPU_PRODUCT_LABEL] == "H100-80GB-HBM3"
        # kwok gives pods addresses from a loopback range a local test server can bind to
        assert p.status is not None and p.status.pod_ip and p.status.pod_ip.startswith("127.40.")
    # the region table counts what the scheduler placed
    gra = [r for r in cluster.region_table(k8s) if r.region == "gra" and r.gpu_product == "H100-80GB-HBM3"]
    assert gra[0].requested >= 16


def test_more_gpus_than_the_region_has_stay_pending_unschedulable(k8s: client.ApiClient, namespace: str) -> None:
    def lim_l4() -> cluster.RegionRow:
        return next(r for r in cluster.region_table(k8s) if r.region == "lim" and r.gpu_product == "L4")

    capacity = lim_l4().capacity
    assert capacity > 0
    # one GPU more than the region has in total: whatever else runs there, some pod cannot fit
    match = {fm.REGION_LABEL: ["lim"], fm.GPU_PRODUCT_LABEL: ["L4"]}
    create_deployment(k8s, namespace, gpu_deployment("l4", replicas=capacity + 1, gpus=1, match=match))

    def unschedulable(p: client.V1Pod) -> bool:
        return (
            p.status is not None
            and p.status.phase == "Pending"
            and any(
                c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"
                for c in p.status.conditions or []
            )
        )

    def settled() -> tuple[list[client.V1Pod], list[client.V1Pod]] | None:
        ps = pods(k8s, namespace, "l4")
        run = [p for p in ps if running(p)]
        stuck = [p for p in ps if unschedulable(p)]
        full = lim_l4().free == 0
        return (run, stuck) if full and stuck and len(run) + len(stuck) == capacity + 1 else None

    run, stuck = eventually(settled, what="lim's L4 GPUs all taken and the rest of the pods Unschedulable")
    assert len(run) <= capacity
    status = stuck[0].status
    assert status is not None
    message = next(c.message for c in status.conditions or [] if c.type == "PodScheduled")
    assert message is not None and "Insufficient nvidia.com/gpu" in message


def test_deleting_an_owner_garbage_collects_its_children(k8s: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(k8s)
    create_deployment(k8s, namespace, gpu_deployment("owner", replicas=2, gpus=0))
    eventually(lambda: len([p for p in pods(k8s, namespace, "owner") if running(p)]) == 2, what="2 Running pods")
    assert apps.list_namespaced_replica_set(namespace).items
    apps.delete_namespaced_deployment("owner", namespace, propagation_policy="Background")

    def gone() -> bool:
        return not apps.list_namespaced_replica_set(namespace).items and not pods(k8s, namespace, "owner")

    eventually(gone, what="ReplicaSet and pods garbage-collected")

    core = client.CoreV1Api(k8s)
    parent = core.create_namespaced_config_map(namespace, model(client.V1ConfigMap, {"metadata": {"name": "parent"}}))
    assert parent.metadata is not None and parent.metadata.uid
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "parent", "uid": parent.metadata.uid}
    core.create_namespaced_config_map(
        namespace, model(client.V1ConfigMap, {"metadata": {"name": "child", "ownerReferences": [ref]}})
    )
    core.delete_namespaced_config_map("parent", namespace)

    def child_gone() -> bool:
        return "child" not in {
            cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items if cm.metadata
        }

    eventually(child_gone, what="ConfigMap child garbage-collected")


def test_crd_cel_rule_rejects_with_its_message(k8s: client.ApiClient, namespace: str) -> None:
    message = "minReplicas must not be greater than maxReplicas"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.harness.meridian.dev"},
        "spec": {
            "group": "harness.meridian.dev",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "minReplicas": {"type": "integer"},
                                        "maxReplicas": {"type": "integer"},
                                    },
                                    "x-kubernetes-validations": [
                                        {"rule": "self.minReplicas <= self.maxReplicas", "message": message}
                                    ],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    cluster.apply_crds(k8s, [crd])
    custom = client.CustomObjectsApi(k8s)

    def widget(name: str, lo: int, hi: int) -> dict[str, Any]:
        return {
            "apiVersion": "harness.meridian.dev/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": {"minReplicas": lo, "maxReplicas": hi},
        }

    try:
        # discovery of a just-established CRD can lag a moment; retry only on 404
        def created() -> bool:
            try:
                custom.create_namespaced_custom_object(
                    "harness.meridian.dev", "v1", namespace, "widgets", widget("ok", 1, 2)
                )
            except ApiException as e:
                if e.status == 404:
                    return False
                raise
            return True

        eventually(created, timeout=20, what="the Widget resource to be served")
        with pytest.raises(ApiException) as err:
            custom.create_namespaced_custom_object(
                "harness.meridian.dev", "v1", namespace, "widgets", widget("bad", 3, 1)
            )
        assert err.value.status == 422
        body = json.loads(err.value.body or "{}")
        assert message in body["message"]
        assert body["details"]["causes"][0]["field"] == "spec"
    finally:
        client.ApiextensionsV1Api(k8s).delete_custom_resource_definition("widgets.harness.meridian.dev")


def test_service_account_without_binding_is_forbidden(k8s: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_service_account(namespace, model(client.V1ServiceAccount, {"metadata": {"name": "nobody"}}))
    token_request = core.create_namespaced_service_account_token(
        "nobody", namespace, model(client.AuthenticationV1TokenRequest, {"spec": {"expirationSeconds": 600}})
    )
    assert token_request.status is not None
    cfg = client.Configuration()
    cfg.host = k8s.configuration.host
    cfg.ssl_ca_cert = k8s.configuration.ssl_ca_cert
    cfg.api_key = {"authorization": f"Bearer {token_request.status.token}"}
    sa = client.ApiClient(cfg)
    try:
        # authenticated (the token is valid) ...
        review = client.AuthenticationV1Api(sa).create_self_subject_review(client.V1SelfSubjectReview())
        assert review.status is not None and review.status.user_info is not None
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:nobody"
        # ... but not authorized: RBAC denies what no binding grants
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(sa).list_namespaced_pod(namespace)
        assert err.value.status == 403

        # and a RoleBinding is what changes that
        rbac = client.RbacAuthorizationV1Api(k8s)
        rbac.create_namespaced_role_binding(
            namespace,
            model(
                client.V1RoleBinding,
                {
                    "metadata": {"name": "nobody-view"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                    "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}],
                },
            ),
        )

        def allowed() -> bool:
            try:
                client.CoreV1Api(sa).list_namespaced_pod(namespace)
            except ApiException as e:
                if e.status == 403:
                    return False
                raise
            return True

        eventually(allowed, timeout=20, what="the RoleBinding to take effect")
    finally:
        sa.close()  # type: ignore[no-untyped-call]


def test_apiserver_version(k8s: client.ApiClient) -> None:
    if os.environ.get("USE_EXISTING_CLUSTER", "").lower() == "true":
        pytest.skip("version is that of the existing cluster")
    info = client.VersionApi(k8s).get_code()
    assert info.git_version == "v1.37.2"


def test_sim_down_leaves_no_process(tmp_path: Path, sim_cluster: SimCluster) -> None:
    """A second control plane via the CLI in subprocesses: up, status, down, and nothing left behind."""
    if os.environ.get("USE_EXISTING_CLUSTER", "").lower() == "true":
        pytest.skip("nothing is started against an existing cluster")
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "regions: [{name: tst, country: FR, jurisdictions: [EU]}]\n"
        "nodePools: [{region: tst, count: 2, gpuProduct: L4, gpusPerNode: 1}]\n"
    )
    workdir = tmp_path / "sim"
    cli = [sys.executable, "-m", "meridian.cli", "sim"]
    env = {k: v for k, v in os.environ.items() if k != "USE_EXISTING_CLUSTER"}
    try:
        up = subprocess.run(
            [*cli, "up", "--fleet", str(fleet), "--workdir", str(workdir)],
            capture_output=True, text=True, timeout=180, env=env,
        )  # fmt: skip
        assert up.returncode == 0, up.stderr
        assert f"export KUBECONFIG={workdir.resolve() / 'kubeconfig'}" in up.stdout
        assert "tst" in up.stdout
        state = json.loads((workdir / "state.json").read_text())
        recs = [processes.ProcessRecord.model_validate(p) for p in state["processes"]]
        assert [r.name for r in recs] == [
            "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"
        ]  # fmt: skip
        assert all(processes.alive(r) for r in recs)

        st = subprocess.run([*cli, "status", "--workdir", str(workdir)], capture_output=True, text=True, env=env)
        assert st.returncode == 0, st.stderr
        assert "running" in st.stdout
    finally:
        down = subprocess.run(
            [*cli, "down", "--workdir", str(workdir)], capture_output=True, text=True, timeout=120, env=env
        )
    assert down.returncode == 0, down.stderr
    for r in recs:
        assert not processes.alive(r), f"{r.name} (pid {r.pid}) still running"
        assert processes.group_members(r.pgid) == [], f"{r.name}'s process group not empty"
    assert not (workdir / "state.json").exists()
