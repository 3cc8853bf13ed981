"""A user applies a ModelDeployment and gets Triton pods per region, kept as declared.

Against the real control plane (scheduler, controller manager, kwok nodes) with `meridian run` as a
separate process, exactly as a user would run it.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.fixtures_cluster import admission_refusing
from tests.fixtures_operator import (
    GROUP,
    PLURAL,
    VERSION,
    Mdeps,
    OperatorProcess,
    start_operator,
    stop_operator,
    wait_for,
)

from meridian.render.names import regional_name
from meridian.sim import binaries

pytestmark = pytest.mark.integration


def spec(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"format": "onnx", "storageUri": "s3://models/m"},
        "resources": {"gpu": {"products": ["H100-80GB-HBM3", "A100-SXM4-80GB"]}, "cpu": "1", "memory": "1Gi"},
        "replicas": 2,
        "placement": {"residency": ["EU"], "regions": [{"name": "gra"}, {"name": "rbx"}]},
    }
    base.update(over)
    return base


def replicas_by_deployment(m: Mdeps, name: str) -> dict[str, int]:
    return {n: d.spec.replicas for n, d in m.deployments(name).items()}


def kubectl(kubeconfig: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    tool = binaries.locate().kubectl
    assert tool is not None, "kubectl is built with the control plane (make tools)"
    return subprocess.run(
        [str(tool), f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, timeout=timeout
    )


def test_create_places_ready_pods_in_each_region(mdeps: Mdeps, kubeconfig: Path) -> None:
    mdeps.create("llm", spec())
    done = kubectl(kubeconfig, "wait", "--for=condition=Ready", "mdep/llm", "-n", mdeps.ns, "--timeout=90s")
    assert done.returncode == 0, done.stderr
    assert replicas_by_deployment(mdeps, "llm") == {regional_name("llm", "gra"): 1, regional_name("llm", "rbx"): 1}

    pods = mdeps.core.list_namespaced_pod(mdeps.ns, label_selector="serving.meridian.dev/model-deployment=llm").items
    assert len(pods) == 2
    for pod in pods:
        node = mdeps.core.read_node(pod.spec.node_name)
        assert (
            node.metadata.labels["topology.kubernetes.io/region"] == pod.metadata.labels["serving.meridian.dev/region"]
        )
        assert pod.status.phase == "Running"

    status = mdeps.get("llm")["status"]
    assert status["readyReplicas"] == 2 and status["replicas"] == 2 and status["desiredReplicas"] == 2
    assert status["observedGeneration"] == mdeps.get("llm")["metadata"]["generation"]
    assert status["selector"] == "serving.meridian.dev/model-deployment=llm"
    assert status["endpoints"]["http"] == f"http://llm.{mdeps.ns}.svc:8000"
    assert {r["name"]: r["readyReplicas"] for r in status["regions"]} == {"gra": 1, "rbx": 1}
    assert mdeps.condition("llm", "Stalled")["status"] == "False"  # type: ignore[index]
    assert mdeps.condition("llm", "ResidencyCompliant")["status"] == "True"  # type: ignore[index]
    assert "Created" in {e.reason for e in mdeps.events("llm")}
    svc = mdeps.core.read_namespaced_service("llm", mdeps.ns)
    assert [p.port for p in svc.spec.ports] == [8000, 8001, 8002]


def test_update_replicas_image_and_regions(mdeps: Mdeps) -> None:
    mdeps.create("llm", spec())
    mdeps.wait_condition("llm", "Ready")

    mdeps.patch("llm", {"spec": {"replicas": 4}})
    wait_for(
        "4 replicas over two regions",
        lambda: (
            replicas_by_deployment(mdeps, "llm") == {regional_name("llm", "gra"): 2, regional_name("llm", "rbx"): 2}
        ),
    )

    mdeps.patch("llm", {"spec": {"runtime": {"image": "registry.example/triton:custom"}}})

    def images() -> set[str]:
        return {d.spec.template.spec.containers[0].image for d in mdeps.deployments("llm").values()}

    wait_for("new image in every region", lambda: images() == {"registry.example/triton:custom"})

    mdeps.patch("llm", {"spec": {"placement": {"regions": [{"name": "gra"}]}}})
    wait_for("rbx pruned", lambda: replicas_by_deployment(mdeps, "llm") == {regional_name("llm", "gra"): 4})
    wait_for("Pruned event", lambda: "Pruned" in {e.reason for e in mdeps.events("llm")})
    wait_for(
        "rbx service pruned",
        lambda: (
            {s.metadata.name for s in mdeps.core.list_namespaced_service(mdeps.ns).items}
            == {"llm", regional_name("llm", "gra")}
        ),
    )
    mdeps.wait_condition("llm", "Ready", timeout=90)


def test_delete_garbage_collects_children(mdeps: Mdeps) -> None:
    mdeps.create("llm", spec())
    wait_for("deployments", lambda: len(mdeps.deployments("llm")) == 2)
    mdeps.delete("llm")

    def gone() -> bool:
        sel = "serving.meridian.dev/model-deployment=llm"
        return (
            not mdeps.deployments("llm")
            and not mdeps.core.list_namespaced_service(mdeps.ns, label_selector=sel).items
            and not mdeps.core.list_namespaced_config_map(mdeps.ns, label_selector=sel).items
        )

    wait_for("children garbage-collected", gone, timeout=60)


def test_drift_is_repaired(mdeps: Mdeps) -> None:
    mdeps.create("llm", spec())
    mdeps.wait_condition("llm", "Ready")

    mdeps.core.delete_namespaced_service(regional_name("llm", "gra"), mdeps.ns)
    wait_for(
        "deleted service restored", lambda: mdeps.core.read_namespaced_service(regional_name("llm", "gra"), mdeps.ns)
    )

    mdeps.apps.patch_namespaced_deployment_scale(regional_name("llm", "gra"), mdeps.ns, {"spec": {"replicas": 5}})
    wait_for(
        "hand-scaled deployment restored",
        lambda: replicas_by_deployment(mdeps, "llm")[regional_name("llm", "gra")] == 1,
    )

    key = sorted(mdeps.core.read_namespaced_config_map("llm-model-repository", mdeps.ns).data)[0]
    mdeps.core.patch_namespaced_config_map("llm-model-repository", mdeps.ns, {"data": {key: "edited by hand"}})

    def config_restored() -> bool:
        cm = mdeps.core.read_namespaced_config_map("llm-model-repository", mdeps.ns)
        return "edited by hand" not in (cm.data or {}).values()

    wait_for("hand-edited config restored", config_restored)


def test_reconcile_with_nothing_changed_writes_nothing(
    k8s: client.ApiClient, private_namespace: str, kubeconfig: Path, tmp_path: Path
) -> None:
    # the only operator watching this namespace, so its write counter sees this model alone
    mdeps = Mdeps(k8s, private_namespace)
    own = start_operator(kubeconfig, tmp_path / "operator.log", {"MERIDIAN_NAMESPACES": json.dumps([mdeps.ns])})
    try:
        mdeps.create("llm", spec())
        mdeps.wait_condition("llm", "Ready")
        wait_for("writes to settle", lambda: _settled(own), timeout=30)

        writes = own.metric("meridian_api_writes_total")
        reconciles = sum(own.metric("meridian_reconciles_total").values())
        # an annotation only a human would add: it triggers a reconcile, but nothing Meridian owns changed
        mdeps.core.patch_namespaced_service("llm", mdeps.ns, {"metadata": {"annotations": {"note": "hello"}}})
        wait_for("a reconcile to run", lambda: sum(own.metric("meridian_reconciles_total").values()) > reconciles)
        after = own.metric("meridian_api_writes_total")
        changed = {k: v - writes.get(k, 0) for k, v in after.items() if v != writes.get(k, 0)}
        # Region capacity is refreshed on its own schedule from node and pod churn anywhere in the cluster
        assert {k: v for k, v in changed.items() if ("kind", "Region/status") not in k} == {}
    finally:
        stop_operator(own)


def test_models_go_when_deleted_after_the_operator_is_gone(
    k8s: client.ApiClient, private_namespace: str, kubeconfig: Path, tmp_path: Path
) -> None:
    """Meridian puts no finalizer on a model, so uninstalling it never leaves models (or their
    namespace) stuck in deletion; one an earlier version left is taken off."""
    mdeps = Mdeps(k8s, private_namespace)
    legacy = {
        "finalizers": ["serving.meridian.dev/finalizer", "example.com/keep"],
        "annotations": {"serving.meridian.dev/last-handled-configuration": "{}", "note": "mine"},
    }
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "spec": spec()}
    mdeps.co.create_namespaced_custom_object(
        GROUP, VERSION, mdeps.ns, PLURAL, {**body, "metadata": {"name": "old", **legacy}}
    )
    own = start_operator(kubeconfig, tmp_path / "operator.log", {"MERIDIAN_NAMESPACES": json.dumps([mdeps.ns])})
    try:
        mdeps.create("new", spec())
        mdeps.wait_condition("new", "Ready")
        mdeps.wait_condition("old", "Ready")
        old = wait_for(
            "the earlier version's finalizer taken off",
            lambda: (m := mdeps.get("old")["metadata"]).get("finalizers") == ["example.com/keep"] and m,
        )
        assert old["annotations"] == {"note": "mine"}, "only the earlier version's bookkeeping is removed"
        new = mdeps.get("new")["metadata"]
        assert not new.get("finalizers"), new.get("finalizers")
        assert not any(k.startswith("serving.meridian.dev/") for k in new.get("annotations") or {})
    finally:
        stop_operator(own)
    mdeps.patch("old", {"metadata": {"finalizers": None}})  # the other finalizer's owner lets go
    for name in ("new", "old"):
        mdeps.delete(name)

    def gone() -> bool:
        names = {
            m["metadata"]["name"]
            for m in mdeps.co.list_namespaced_custom_object(GROUP, VERSION, mdeps.ns, PLURAL)["items"]
        }
        return not names

    wait_for("both models deleted with no operator running", gone, timeout=30)


def _settled(op: OperatorProcess) -> bool:
    before = op.writes()
    time.sleep(2)
    return op.writes() == before


def test_kubectl_scale_modeldeployment(mdeps: Mdeps, kubeconfig: Path) -> None:
    mdeps.create("llm", spec())
    mdeps.wait_condition("llm", "Ready")
    out = kubectl(kubeconfig, "scale", "mdep/llm", "--replicas=3", "-n", mdeps.ns)
    assert out.returncode == 0, out.stderr
    wait_for("3 replicas", lambda: sum(replicas_by_deployment(mdeps, "llm").values()) == 3)
    wait_for("status.replicas follows", lambda: mdeps.get("llm")["status"].get("readyReplicas") == 3, timeout=90)
    scale = mdeps.co.get_namespaced_custom_object_scale(
        "serving.meridian.dev", "v1alpha1", mdeps.ns, "modeldeployments", "llm"
    )
    assert scale["status"]["replicas"] == 3
    assert scale["status"]["selector"] == "serving.meridian.dev/model-deployment=llm"


def test_operator_side_problems_stall_only_that_object(mdeps: Mdeps) -> None:
    mdeps.create("good", spec())
    mdeps.create("nowhere", spec(placement={"regions": [{"name": "atlantis"}]}))
    mdeps.create("swiss", spec(placement={"residency": ["CH"]}))

    unknown = mdeps.wait_condition("nowhere", "Stalled")
    assert unknown["reason"] == "UnknownRegion" and "atlantis" in unknown["message"]
    swiss = mdeps.wait_condition("swiss", "Stalled")
    assert swiss["reason"] == "NoQualifyingRegion" and "CH" in swiss["message"]
    assert mdeps.condition("swiss", "Ready")["status"] == "False"  # type: ignore[index]
    warnings = [e for e in mdeps.events("nowhere") if e.type == "Warning"]
    assert warnings and "atlantis" in warnings[0].message
    assert mdeps.deployments("nowhere") == {} and mdeps.deployments("swiss") == {}
    mdeps.wait_condition("good", "Ready")

    mdeps.patch("nowhere", {"spec": {"placement": {"regions": [{"name": "gra"}]}}})
    mdeps.wait_condition("nowhere", "Ready")
    assert mdeps.condition("nowhere", "Stalled")["status"] == "False"  # type: ignore[index]


def test_a_replica_larger_than_any_node_stalls_and_creates_nothing(mdeps: Mdeps) -> None:
    # the test fleet's largest GPU nodes have 192 CPUs: pods asking 500 would stay Pending everywhere
    big = spec(resources={"gpu": {"products": ["H100-80GB-HBM3", "A100-SXM4-80GB"]}, "cpu": "500", "memory": "1Gi"})
    mdeps.create("huge", big)
    stalled = mdeps.wait_condition("huge", "Stalled")
    assert stalled["reason"] == "NoNodeFits"
    assert "one replica requests 1 GPU, cpu 500, memory 1Gi" in stalled["message"]
    assert "gra: H100-80GB-HBM3 node: 8 GPUs, cpu 192" in stalled["message"]
    assert mdeps.deployments("huge") == {}

    mdeps.patch("huge", {"spec": {"resources": {"cpu": "100"}}})
    mdeps.wait_condition("huge", "Ready")


def test_engine_mismatch_in_a_pod_stalls_with_its_message(mdeps: Mdeps) -> None:
    mdeps.create("llm", spec(replicas=1, placement={"regions": [{"name": "gra"}]}))
    mdeps.wait_condition("llm", "Ready")
    pod = mdeps.core.list_namespaced_pod(mdeps.ns, label_selector="serving.meridian.dev/model-deployment=llm").items[0]
    message = "meridian: engine built for tp=2 pp=1 but spec asks tp=1 pp=1; rebuild the engine or fix spec.runtime"
    # what the kubelet reports when the prepare step exits with our message in /dev/termination-log
    mdeps.core.patch_namespaced_pod_status(
        pod.metadata.name,
        mdeps.ns,
        {
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "Ready", "status": "False"}],
                "initContainerStatuses": [
                    {
                        "name": "prepare-repository",
                        "image": "triton",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 1,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": message}},
                    }
                ],
            }
        },
    )
    stalled = mdeps.wait_condition("llm", "Stalled")
    assert stalled["reason"] == "EngineMismatch"
    assert "engine built for tp=2 pp=1 but spec asks tp=1 pp=1" in stalled["message"]
    # Events follow the status write (status is the contract; Events are best-effort, posted last)
    wait_for(
        "an EngineMismatch Warning",
        lambda: "EngineMismatch" in {e.reason for e in mdeps.events("llm") if e.type == "Warning"},
        timeout=10,
    )


def test_a_namespace_being_deleted_gets_no_new_children_and_no_alarm(
    mdeps: Mdeps, operator: OperatorProcess, k8s: client.ApiClient
) -> None:
    """While a namespace is deleted, a model can outlive its children for a while (here, an admission
    policy of the test's own refuses to delete it): re-creating them is refused with 403, which is no
    problem of the model's. No Stalled, no warnings; the operator says so at info level."""
    mdeps.create("llm", spec(replicas=1))
    mdeps.wait_condition("llm", "Ready")
    rule = {"apiGroups": [GROUP], "apiVersions": ["*"], "operations": ["DELETE"], "resources": [PLURAL]}
    log_start = operator.log.stat().st_size
    with admission_refusing(k8s, mdeps.ns, f"keep-models-{mdeps.ns}", rule, "kept by the test"):
        wait_for(
            "the policy in force",
            lambda: _refused(
                lambda: mdeps.co.delete_namespaced_custom_object(GROUP, VERSION, mdeps.ns, PLURAL, "llm", dry_run="All")
            ),
        )
        # a finalizer of the test's own holds the model's Service, so its deletion comes after the
        # first refusal (the namespace controller deletes pods first, then the rest together)
        service = mdeps.core.list_namespaced_service(mdeps.ns).items[0].metadata.name
        hold = {"metadata": {"finalizers": ["meridian.test/hold"]}}
        mdeps.core.patch_namespaced_service(service, mdeps.ns, hold)
        skipped = operator.metric("meridian_reconciles_total").get((("result", "namespace_terminating"),), 0.0)
        mdeps.core.delete_namespace(mdeps.ns)

        def noticed() -> int:  # the session operator's log is shared with other tests' namespaces
            text = operator.log.read_bytes()[log_start:].decode(errors="replace")
            return sum(
                "namespace is being deleted" in ln and f'"namespace": "{mdeps.ns}"' in ln for ln in text.splitlines()
            )

        wait_for("the operator noticing the namespace is being deleted", noticed, timeout=90)
        mdeps.core.patch_namespaced_service(
            service, mdeps.ns, [{"op": "remove", "path": "/metadata/finalizers"}],
            _content_type="application/json-patch+json",
        )  # fmt: skip
        wait_for(
            "the Service's deletion reconciled without a write",
            lambda: (
                operator.metric("meridian_reconciles_total").get((("result", "namespace_terminating"),), 0.0) > skipped
            ),
        )
        wait_for("the children gone", lambda: not mdeps.deployments("llm"), timeout=90)
        assert not mdeps.get("llm")["metadata"].get("deletionTimestamp")
        stalled = mdeps.condition("llm", "Stalled")
        assert stalled is not None and stalled["status"] == "False", stalled
        said = [
            line
            for line in operator.log.read_bytes()[log_start:].decode(errors="replace").splitlines()
            if f'"namespace": "{mdeps.ns}"' in line
        ]
        loud = [line for line in said if '"level": "warning"' in line or '"level": "error"' in line]
        assert not loud, loud[:3]
        # the Service's deletion requeued the model; after the first refusal nothing is written or said
        assert sum("namespace is being deleted" in line for line in said) == 1, said[-5:]


def _refused(call: Any) -> bool:
    """True once the API server refuses the call by admission (422 or 403), not for lack of the object."""
    try:
        call()
    except client.ApiException as e:
        return e.status in (403, 422)
    return False
