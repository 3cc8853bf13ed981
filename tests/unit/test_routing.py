"""The way in from a Gateway: what Meridian renders for spec.routing and what the pure pass makes of
the cluster (CRDs missing, the Gateway's verdict, the endpoint picker kept apart from the replicas)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from tests.sync_worlds import deployment, region
from tests.sync_worlds import model as sync_model

from meridian.api.modeldeployment import ModelDeployment
from meridian.config import Settings
from meridian.placement.plan import Observed, plan
from meridian.render.children import children
from meridian.render.labels import ENGINE_LABEL, MD_LABEL, TRITON_ENGINE
from meridian.render.routing import picker_name
from meridian.sync import World, sync

pytestmark = pytest.mark.unit

GATEWAY = {"gateway": {"name": "inference", "namespace": "gateways", "sectionName": "https"}}
TRTLLM = {
    "format": "tensorrt-llm",
    "storageUri": "s3://models/llama/engine",
    "tokenizerUri": "hf://meta-llama/Llama-3.1-8B-Instruct",
}
REGIONS = (region("gra", ["EU"], {"topology.kubernetes.io/region": "gra"}), region("rbx", ["EU"], {"dc": "rbx"}))


def routed(**extra: Any) -> ModelDeployment:
    spec: dict[str, Any] = {
        "model": TRTLLM,
        "runtime": {"openai": {"enabled": True}},
        "routing": GATEWAY,
        "placement": {"residency": ["EU"], "regions": [{"name": "gra"}, {"name": "rbx"}]},
    }
    spec.update(extra)
    return sync_model("llama", **spec)


def rendered(md: ModelDeployment) -> dict[tuple[str, str], dict[str, Any]]:
    p = plan(md.spec, REGIONS, Observed())
    return {(o["kind"], o["metadata"]["name"]): o for o in children(md, p, Settings())}


def test_routing_renders_a_pool_over_the_model_pods_its_picker_and_a_route_from_the_gateway() -> None:
    objs = rendered(routed())
    epp = picker_name(routed())
    assert epp.startswith("llama-epp-")  # never the Service of a model named llama-epp
    for kind in ("ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment", "Service"):
        assert (kind, epp) in objs, kind
    pool = objs[("InferencePool", "llama")]
    assert pool["apiVersion"] == "inference.networking.k8s.io/v1"
    assert pool["spec"]["selector"]["matchLabels"] == {MD_LABEL: "llama", ENGINE_LABEL: TRITON_ENGINE}
    assert pool["spec"]["targetPorts"] == [{"number": 9000}]  # the OpenAI frontend, which serves /metrics too
    assert pool["spec"]["endpointPickerRef"] == {
        "kind": "Service",
        "name": epp,
        "port": {"number": 9002},
        "failureMode": "FailClose",
    }
    route = objs[("HTTPRoute", "llama")]["spec"]
    assert route["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "inference",
            "namespace": "gateways",
            "sectionName": "https",
        }
    ]
    assert route["rules"][0]["backendRefs"] == [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "llama"}
    ]
    assert route["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    # the replicas carry the engine label the pool selects and the picker reads their metrics by
    replicas = [o for (k, n), o in objs.items() if k == "Deployment" and n != epp]
    assert len(replicas) == 2
    for d in replicas:
        assert d["spec"]["template"]["metadata"]["labels"][ENGINE_LABEL] == TRITON_ENGINE


def test_the_picker_reads_only_what_it_needs_and_runs_only_where_the_model_may() -> None:
    objs = rendered(routed())
    epp = picker_name(routed())
    rules = objs[("Role", epp)]["rules"]
    assert all(set(r["verbs"]) == {"get", "list", "watch"} for r in rules)
    assert {res for r in rules for res in r["resources"]} == {
        "pods",
        "inferencepools",
        "inferenceobjectives",
        "inferencemodelrewrites",
    }
    d = objs[("Deployment", epp)]
    pod = d["spec"]["template"]
    assert MD_LABEL not in pod["metadata"]["labels"]  # not a replica: not in the pool, the PDB or the Service
    args = pod["spec"]["containers"][0]["args"]
    assert args[args.index("--pool-name") + 1] == "llama"
    assert not [a for a in args if a.endswith("-metric")]  # v1.5.0 refuses these flags: its engine config instead
    config = yaml.safe_load(objs[("ConfigMap", epp)]["data"]["default-plugins.yaml"])
    extractor = next(p for p in config["plugins"] if p["type"] == "core-metrics-extractor")
    assert extractor["parameters"] == {"defaultEngine": "triton-tensorrt-llm"}
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [
        {"matchExpressions": [{"key": "topology.kubernetes.io/region", "operator": "In", "values": ["gra"]}]},
        {"matchExpressions": [{"key": "dc", "operator": "In", "values": ["rbx"]}]},
    ]
    assert d["spec"]["replicas"] == 1


def test_without_routing_nothing_of_it_is_rendered() -> None:
    md = sync_model("plain", model=TRTLLM, runtime={"openai": {"enabled": True}}, placement={"residency": ["EU"]})
    kinds = {k for k, _ in rendered(md)}
    assert not kinds & {"InferencePool", "HTTPRoute", "Role", "RoleBinding", "ServiceAccount"}


def test_routing_needs_a_gateway_name_and_an_absolute_path() -> None:
    with pytest.raises(ValidationError, match="gateway"):
        routed(routing={"path": "/v1"})
    with pytest.raises(ValidationError, match="path"):
        routed(routing={**GATEWAY, "path": "v1"})


def test_a_cluster_without_the_crds_stalls_the_model_naming_them_and_writes_nothing() -> None:
    md = routed()
    decision = sync(World(model=md, regions=REGIONS, unserved=frozenset({"InferencePool"})))
    assert decision.applies == ()
    assert decision.problems and decision.problems[0].reason == "RoutingUnavailable"
    assert "InferencePool (inference.networking.k8s.io/v1)" in decision.problems[0].message
    assert "HTTPRoute" not in decision.problems[0].message
    stalled = {c["type"]: c for c in (decision.status or {})["conditions"]}["Stalled"]
    assert stalled["status"] == "True" and stalled["reason"] == "RoutingUnavailable"


def parent(gateway: str, namespace: str, **conditions: str) -> dict[str, Any]:
    return {
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway, "namespace": namespace},
        "controllerName": "example.com/gateway",
        "conditions": [{"type": t, "status": s, "reason": t, "message": f"{t} is {s}"} for t, s in conditions.items()],
    }


def owned_with(md: ModelDeployment, route_parents: list[Any], pool_parents: list[Any]) -> dict[Any, Any]:
    objs = rendered(md)
    objs[("HTTPRoute", "llama")]["status"] = {"parents": route_parents}
    objs[("InferencePool", "llama")]["status"] = {"parents": pool_parents}
    return objs


@pytest.mark.parametrize(
    ("route", "pool", "accepted"),
    [
        ([], [], "Unknown"),
        ([parent("inference", "gateways", Accepted="True")], [], "Unknown"),
        (
            [parent("inference", "gateways", Accepted="True")],
            [parent("inference", "gateways", Accepted="True")],
            "True",
        ),
        (
            [parent("inference", "gateways", Accepted="True", ResolvedRefs="False")],
            [parent("inference", "gateways", Accepted="True")],
            "False",
        ),
        # another Gateway's word is not this one's
        ([parent("other", "gateways", Accepted="True")], [parent("inference", "gateways", Accepted="True")], "Unknown"),
    ],
)
def test_status_says_whether_the_models_own_gateway_took_the_route_and_the_pool(
    route: list[Any], pool: list[Any], accepted: str
) -> None:
    md = routed()
    decision = sync(World(model=md, regions=REGIONS, owned=owned_with(md, route, pool)))
    status = (decision.status or {})["routing"]
    assert status["accepted"] == accepted, status["message"]
    assert status["gateway"] == "gateways/inference"
    assert status["httpRoute"] == status["inferencePool"] == "llama"
    if accepted == "False":
        assert "ResolvedRefs=False" in status["message"]


def test_the_picker_deployment_is_not_a_regional_replica() -> None:
    """It has no region: the pass neither evicts it as 'in no allowed region' nor counts its pods."""
    md = routed()
    owned = rendered(md)
    owned[("Deployment", picker_name(md))]["status"] = {"readyReplicas": 1}
    for r in ("gra", "rbx"):
        d = deployment(md, r, 1)
        owned[("Deployment", d["metadata"]["name"])] = {
            **owned[("Deployment", d["metadata"]["name"])],
            "status": d["status"],
        }
    decision = sync(World(model=md, regions=REGIONS, owned=owned))
    assert decision.evictions == ()
    assert not [p for p in decision.prunes if p.kind == "Deployment"]
    assert (decision.status or {})["routing"]["endpointPickerReady"] is True


def test_routing_removed_takes_status_routing_with_it() -> None:
    """Status is written only when it changed; a status.routing left over from a removed
    spec.routing is a change, not a field someone else set."""
    md = routed()
    first = sync(World(model=md, regions=REGIONS))
    assert first.status is not None and "routing" in first.status
    spec = md.spec.model_dump(by_alias=True, exclude_none=True)
    spec.pop("routing")
    gone = ModelDeployment.model_validate(
        {"metadata": md.metadata.model_dump(by_alias=True), "spec": spec, "status": first.status}
    )
    assert gone.status.routing is not None
    again = sync(World(model=gone, regions=REGIONS))
    assert again.status is not None and "routing" not in again.status
    settled = ModelDeployment.model_validate({**gone.model_dump(by_alias=True), "status": again.status})
    assert sync(World(model=settled, regions=REGIONS)).status is None  # and then nothing to write
