"""spec.routing against the real API server with the Gateway API and Inference Extension CRDs from
their Go modules: everything Meridian creates applies and validates under those schemas, the pool
selects exactly the model's pods, the endpoint picker runs where the model may, the Gateway's verdict
reaches the model's status, and all of it goes when routing is removed or the model is deleted.

No Gateway controller runs here (there is no Envoy on this machine): the test writes the Gateway's
verdict into the route's and the pool's status itself, as Istio or NGINX Gateway Fabric would. The
end-to-end test sends requests through the real endpoint picker (built from its module) with a
stand-in Gateway that speaks ext_proc to it as Envoy does (hack/tools/epp/gateway), to replicas
served by real Triton processes on the pods' addresses.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.chart_helpers import tool
from tests.fixtures_operator import Mdeps, OperatorProcess, wait_for
from tests.fixtures_triton import PodBackerFactory, python_deployment, python_repository

from meridian.render.labels import ENGINE_LABEL, MD_LABEL, TRITON_ENGINE
from meridian.render.names import picker_name
from meridian.render.routing import CONFIG_FILE
from meridian.runtime.launch import OPENAI_PORT
from meridian.sim import binaries, cluster, processes
from meridian.sim.network import free_ports
from meridian.sim.triton import http_get, iter_metric

pytestmark = pytest.mark.integration

POOL = ("inference.networking.k8s.io", "v1", "inferencepools")
ROUTE = ("gateway.networking.k8s.io", "v1", "httproutes")
GATEWAY = ("gateway.networking.k8s.io", "v1", "gateways")
REGION_NODE_LABEL = "topology.kubernetes.io/region"
EPP = picker_name("llama")


@pytest.fixture(scope="module")
def gateway_crds(k8s: client.ApiClient) -> None:
    """Installed once and left: no other test asks for routing, and the session operator watches them."""
    crd_dir = binaries.gateway_crds()
    if crd_dir is None:
        message = "gateway-crds not in the build cache; run `hack/build-tools.sh gateway-crds`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    names = cluster.apply_crds(k8s, cluster.load_crds(crd_dir))
    assert "inferencepools.inference.networking.k8s.io" in names and "httproutes.gateway.networking.k8s.io" in names


def spec(**routing: Any) -> dict[str, Any]:
    return {
        "model": {
            "format": "tensorrt-llm",
            "storageUri": "s3://models/llama/engine",
            "tokenizerUri": "hf://meta/llama",
        },
        "runtime": {"openai": {"enabled": True}},
        "resources": {"cpu": "1", "memory": "1Gi"},
        "replicas": 2,
        "placement": {"residency": ["EU"], "regions": [{"name": "gra"}]},
        "routing": {"gateway": {"name": "inference"}, "path": "/llama", **routing},
    }


def custom(k8s: client.ApiClient, what: tuple[str, str, str], ns: str, name: str) -> dict[str, Any] | None:
    try:
        obj: dict[str, Any] = client.CustomObjectsApi(k8s).get_namespaced_custom_object(*what[:2], ns, what[2], name)
        return obj
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def report(k8s: client.ApiClient, what: tuple[str, str, str], ns: str, name: str, **conditions: str) -> None:
    """Write the Gateway's verdict on an object, as a Gateway controller does: one parent entry."""
    parent = {
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "inference", "namespace": ns},
        "conditions": [
            {
                "type": t,
                "status": s,
                "reason": "Accepted" if s == "True" else "BackendNotFound",
                "message": f"{t} {s} by the test's Gateway",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": 1,
            }
            for t, s in conditions.items()
        ],
    }
    if what == ROUTE:
        parent["controllerName"] = "example.com/test-gateway"
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object_status(
        *what[:2], ns, what[2], name, {"status": {"parents": [parent]}}, _content_type="application/merge-patch+json"
    )


def routing_status(mdeps: Mdeps, name: str) -> dict[str, Any]:
    return dict((mdeps.get(name).get("status") or {}).get("routing") or {})


def test_a_routed_model_gets_its_pool_picker_and_route_and_the_gateways_verdict(
    k8s: client.ApiClient, namespace: str, operator: OperatorProcess, mdeps: Mdeps, gateway_crds: None
) -> None:
    co, core, apps = client.CustomObjectsApi(k8s), client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "inference"},
        "spec": {"gatewayClassName": "test", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
    }
    co.create_namespaced_custom_object(*GATEWAY[:2], namespace, GATEWAY[2], gateway)
    mdeps.create("llama", spec())

    # the session operator hears of the CRDs from its watch on CustomResourceDefinitions
    pool = wait_for("the InferencePool", lambda: custom(k8s, POOL, namespace, "llama"), timeout=60)
    route = wait_for("the HTTPRoute", lambda: custom(k8s, ROUTE, namespace, "llama"), timeout=30)
    assert pool["spec"]["targetPorts"] == [{"number": 9000}]
    assert pool["spec"]["endpointPickerRef"]["name"] == EPP
    assert route["spec"]["rules"][0]["backendRefs"][0]["kind"] == "InferencePool"
    assert route["spec"]["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/llama"}}]
    picker_service = core.read_namespaced_service(EPP, namespace)
    assert {p.port for p in picker_service.spec.ports} == {9002, 9090}
    assert client.RbacAuthorizationV1Api(k8s).read_namespaced_role_binding(EPP, namespace).role_ref.name == (EPP)

    # the pool selects the model's replicas, all of them and nothing else (not the picker)
    selector = ",".join(f"{k}={v}" for k, v in pool["spec"]["selector"]["matchLabels"].items())

    def replicas_selected() -> list[str] | None:
        selected = sorted(p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector=selector).items)
        return selected if len(selected) == 2 else None

    selected = wait_for("the pool to select both replicas", replicas_selected)
    mine = core.list_namespaced_pod(namespace, label_selector=f"{MD_LABEL}=llama").items
    assert selected == sorted(p.metadata.name for p in mine)
    assert all(p.metadata.labels[ENGINE_LABEL] == TRITON_ENGINE for p in mine)

    # the picker sees every prompt: it runs on a node of the model's region, like the replicas
    def picker_pod() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector="serving.meridian.dev/endpoint-picker=llama").items
        return pods[0] if pods and pods[0].spec.node_name else None

    node = core.read_node(wait_for("the picker's pod to be scheduled", picker_pod).spec.node_name)
    assert node.metadata.labels[REGION_NODE_LABEL] == "gra"

    # once the operator has seen both objects, it waits for the Gateway's word on them
    status = wait_for(
        "status.routing to await the Gateway",
        lambda: (s := routing_status(mdeps, "llama")) and s["message"].count("has not reported") == 2 and s,
    )
    assert status["gateway"] == f"{namespace}/inference" and status["accepted"] == "Unknown"

    report(k8s, ROUTE, namespace, "llama", Accepted="True", ResolvedRefs="True")
    report(k8s, POOL, namespace, "llama", Accepted="True", ResolvedRefs="True")
    wait_for("routing accepted", lambda: routing_status(mdeps, "llama").get("accepted") == "True")
    report(k8s, ROUTE, namespace, "llama", Accepted="True", ResolvedRefs="False")
    refused = wait_for(
        "routing refused",
        lambda: (s := routing_status(mdeps, "llama")) and s.get("accepted") == "False" and s,
    )
    assert "ResolvedRefs=False (BackendNotFound)" in refused["message"]

    # routing removed: its objects are pruned, the replicas stay
    mdeps.patch("llama", {"spec": {"routing": None}})
    wait_for("the pool pruned", lambda: custom(k8s, POOL, namespace, "llama") is None)
    wait_for("the route pruned", lambda: custom(k8s, ROUTE, namespace, "llama") is None)
    wait_for("the picker pruned", lambda: EPP not in mdeps.deployments("llama"))
    assert len(mdeps.deployments("llama")) == 1

    # routing back, then the model deleted: nothing of either is left
    mdeps.patch("llama", {"spec": {"routing": spec()["routing"]}})
    wait_for("the pool again", lambda: custom(k8s, POOL, namespace, "llama"))
    mdeps.delete("llama")
    wait_for("the pool collected", lambda: custom(k8s, POOL, namespace, "llama") is None)
    wait_for("the route collected", lambda: custom(k8s, ROUTE, namespace, "llama") is None)
    wait_for("the picker collected", lambda: not apps.list_namespaced_deployment(namespace).items)

    def leftovers() -> list[str]:
        rbac = client.RbacAuthorizationV1Api(k8s)
        found = [
            *core.list_namespaced_service_account(namespace).items,
            *rbac.list_namespaced_role(namespace).items,
            *rbac.list_namespaced_role_binding(namespace).items,
            *core.list_namespaced_config_map(namespace).items,
            *core.list_namespaced_service(namespace).items,
        ]
        return [
            o.metadata.name
            for o in found
            if (o.metadata.labels or {}).get("app.kubernetes.io/managed-by") == "meridian"
        ]

    wait_for("every routing object collected", lambda: not leftovers())


def infer(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
    """POST JSON; (status, body, the endpoint the stand-in Gateway says the picker chose)."""
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read()), resp.headers.get("X-Picked-Endpoint", "")
    except urllib.error.HTTPError as e:
        return e.code, {"error": e.read().decode(errors="replace")}, ""
    except (urllib.error.URLError, OSError) as e:  # the stand-in Gateway is not listening yet
        return 0, {"error": str(e)}, ""


def served(ip: str) -> float:
    """Successful inferences the Triton on this pod address has served, from its own /metrics."""
    _, text = http_get(f"http://{ip}:8002/metrics")
    return sum(v for labels, v in iter_metric(text, "nv_inference_request_success") if 'model="double"' in labels)


@pytest.mark.e2e
def test_a_request_through_the_endpoint_picker_is_served_by_a_replica_it_chose(
    gateway_crds: None,
    mdeps: Mdeps,
    k8s: client.ApiClient,
    kubeconfig: Path,
    pod_backer: PodBackerFactory,
    tmp_path: Path,
) -> None:
    """The picker runs as Meridian renders it (its arguments and configuration read back from the
    cluster; only its ports, plaintext serving and the kubeconfig are the test's), finds the model's
    replicas through the InferencePool, and sends each request to one of them."""
    epp, gateway = tool("epp"), tool("extproc-gateway")
    ns = mdeps.ns
    mdeps.create("llama", spec())
    repository = python_repository(tmp_path / "repository", python_deployment())
    backer = pod_backer(ns, f"{MD_LABEL}=llama", repository, http_port=OPENAI_PORT)
    backed = wait_for("both replicas served by Triton", lambda: backer.backed() if len(backer.backed()) == 2 else None)

    container = client.AppsV1Api(k8s).read_namespaced_deployment(EPP, ns).spec.template.spec.containers[0]
    args = list(container.args)
    config = tmp_path / CONFIG_FILE
    config.write_text(client.CoreV1Api(k8s).read_namespaced_config_map(EPP, ns).data[CONFIG_FILE])
    args[args.index("--config-file") + 1] = str(config)
    grpc, health, metrics, http = free_ports(4)
    args += [f"--grpc-port={grpc}", f"--grpc-health-port={health}", f"--metrics-port={metrics}"]
    args += ["--secure-serving=false", "--metrics-endpoint-auth=false", "--enable-pprof=false"]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NAMESPACE": ns, "POD_NAME": EPP}
    picker = processes.spawn("epp", [str(epp), *args], tmp_path, env, die_with_parent=True)
    front = [str(gateway), f"--listen=127.0.0.1:{http}", f"--picker=127.0.0.1:{grpc}"]
    stand_in = processes.spawn("gateway", front, tmp_path, die_with_parent=True)
    try:
        url = f"http://127.0.0.1:{http}/v2/models/double/infer"
        body = {
            "model": "llama",  # what the picker reads of an OpenAI-style body
            "prompt": "Where may this model run?",
            "inputs": [{"name": "INPUT0", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}],
        }
        endpoints = {f"{ip}:{OPENAI_PORT}" for ip in backed.values()}
        before = {ip: served(ip) for ip in backed.values()}

        def answered() -> tuple[int, dict[str, Any], str] | None:  # until the picker has found the pods
            got = infer(url, body)
            return got if got[0] == 200 else None

        status, answer, picked = wait_for("a request answered through the picker", answered, timeout=60)
        picks = [picked]
        for _ in range(5):
            status, answer, picked = infer(url, body)
            assert status == 200, answer
            picks.append(picked)
        assert answer["outputs"][0]["data"] == [2.0, 4.0, 6.0]
        assert set(picks) <= endpoints, f"the picker chose {set(picks) - endpoints}, not a replica of the model"
        after = {ip: served(ip) for ip in backed.values()}
        assert sum(after.values()) - sum(before.values()) == len(picks), "each request served once, by Triton"
        for ip in backed.values():  # and by the replica the picker named
            assert after[ip] - before[ip] == picks.count(f"{ip}:{OPENAI_PORT}")
    finally:
        processes.stop(stand_in)
        processes.stop(picker)
