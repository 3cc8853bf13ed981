"""Residency across Karmada member clusters: a real Karmada control plane, three real member control
planes (gra and lim in the EU, eri in the UK), the operator against Karmada's API server.

Where a pod runs is read from each member's own API server, never through Karmada or the operator.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from tests.fixtures_karmada import KarmadaFleet
from tests.fixtures_operator import Mdeps, start_operator, wait_for

from meridian.render.labels import MD_LABEL
from meridian.render.names import regional_name

pytestmark = pytest.mark.e2e
POLICY = ("policy.karmada.io", "v1alpha1", "propagationpolicies")
BINDING = ("work.karmada.io", "v1alpha2", "resourcebindings")


def spec(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"format": "onnx", "storageUri": "s3://models/m"},
        "resources": {"cpu": "1", "memory": "1Gi", "gpu": {"count": 1}},
        "replicas": 2,
        "placement": {"residency": ["EU"]},
    }
    base.update(over)
    return base


def running(fleet: KarmadaFleet, ns: str, name: str, members: tuple[str, ...] = ()) -> Counter[str]:
    """Running, undeleted pods of the model, counted per member cluster (of `members`, else all)."""
    out: Counter[str] = Counter()
    for member, api in fleet.members.items():
        if members and member not in members:
            continue
        for pod in client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=f"{MD_LABEL}={name}").items:
            if pod.status.phase == "Running" and not pod.metadata.deletion_timestamp:
                out[member] += 1
    return out


def objects_in(api: client.ApiClient, ns: str, name: str) -> list[str]:
    """Every Deployment, Service, ConfigMap and PDB of the model in one cluster."""
    sel = f"{MD_LABEL}={name}"
    core, apps, policy = client.CoreV1Api(api), client.AppsV1Api(api), client.PolicyV1Api(api)
    found = [f"Deployment {d.metadata.name}" for d in apps.list_namespaced_deployment(ns, label_selector=sel).items]
    found += [f"Service {s.metadata.name}" for s in core.list_namespaced_service(ns, label_selector=sel).items]
    found += [f"ConfigMap {c.metadata.name}" for c in core.list_namespaced_config_map(ns, label_selector=sel).items]
    pdbs = policy.list_namespaced_pod_disruption_budget(ns, label_selector=sel).items
    return found + [f"PodDisruptionBudget {p.metadata.name}" for p in pdbs]


def settle(what: str, value: Callable[[], Any], expected: Any, timeout: float) -> None:
    """Until value() == expected; fail with the last value seen."""
    seen: list[Any] = [None]

    def probe() -> bool:
        seen[0] = value()
        return bool(seen[0] == expected)

    try:
        wait_for(what, probe, timeout)
    except pytest.fail.Exception:
        pytest.fail(f"{what}: wanted {expected!r}, last saw {seen[0]!r}")


def karmada_objects(fleet: KarmadaFleet, ns: str, name: str) -> list[str]:
    """The model's objects in Karmada: its children, their PropagationPolicies and ResourceBindings."""
    co = client.CustomObjectsApi(fleet.api)
    found = objects_in(fleet.api, ns, name)
    for group, version, plural in (POLICY, BINDING):
        for item in co.list_namespaced_custom_object(group, version, ns, plural)["items"]:
            if name in item["metadata"]["name"]:
                found.append(f"{item['kind']} {item['metadata']['name']}")
    return found


def residency_check(fleet: KarmadaFleet, ns: str) -> dict[str, Any]:
    env = {**os.environ, "KUBECONFIG": str(fleet.kubeconfig)}
    cmd = [sys.executable, "-m", "meridian.cli", "residency", "check", "-n", ns, "-o", "json"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_an_eu_model_runs_only_in_eu_members_split_by_its_weights(
    karmada_fleet: KarmadaFleet, karmada_mdeps: Mdeps
) -> None:
    m = karmada_mdeps
    placement = {"residency": ["EU"], "regions": [{"name": "gra", "weight": 1}, {"name": "lim", "weight": 1}]}
    m.create("llm", spec(replicas=4, placement=placement))
    m.wait_condition("llm", "Ready", timeout=180)
    assert running(karmada_fleet, m.ns, "llm") == Counter({"gra": 2, "lim": 2})
    assert objects_in(karmada_fleet.members["eri"], m.ns, "llm") == []  # nothing of it reaches the UK
    residency = m.get("llm")["status"]["residency"]
    assert residency["compliant"] is True
    assert {r["name"]: r["pods"] for r in residency["regions"]} == {"gra": 2, "lim": 2}
    audit = residency_check(karmada_fleet, m.ns)  # the auditor's command, against Karmada's API server
    assert audit["compliant"] is True
    assert Counter(p["node"].split("/")[0] for p in audit["pods"]) == Counter({"gra": 2, "lim": 2})
    policies = client.CustomObjectsApi(karmada_fleet.api).list_namespaced_custom_object(*POLICY[:2], m.ns, POLICY[2])
    for pp in policies["items"]:  # Karmada's scheduler checks the jurisdiction a second time
        affinity = pp["spec"]["placement"]["clusterAffinity"]
        assert affinity["labelSelector"]["matchLabels"] == {"jurisdiction.serving.meridian.dev/EU": "true"}
        assert "eri" not in affinity["clusterNames"]


def test_a_uk_only_model_runs_only_in_the_uk_member(karmada_fleet: KarmadaFleet, karmada_mdeps: Mdeps) -> None:
    m = karmada_mdeps
    m.create("uk", spec(replicas=2, placement={"residency": ["UK"]}))
    m.wait_condition("uk", "Ready", timeout=180)
    assert running(karmada_fleet, m.ns, "uk") == Counter({"eri": 2})
    for eu in ("gra", "lim"):
        assert objects_in(karmada_fleet.members[eu], m.ns, "uk") == []


def test_deleting_the_model_leaves_nothing_of_it_in_karmada_or_any_member(
    karmada_fleet: KarmadaFleet, karmada_mdeps: Mdeps
) -> None:
    m = karmada_mdeps
    m.create("llm", spec(replicas=2))
    m.wait_condition("llm", "Ready", timeout=180)
    assert sum(running(karmada_fleet, m.ns, "llm").values()) == 2
    m.delete("llm")

    def left() -> dict[str, list[str]]:
        where = {"karmada": karmada_objects(karmada_fleet, m.ns, "llm")}
        where |= {member: objects_in(api, m.ns, "llm") for member, api in karmada_fleet.members.items()}
        return {k: v for k, v in where.items() if v}

    wait_for("no object of the model anywhere", lambda: not left() or None, timeout=90)
    wait_for("no pod of the model in any member", lambda: not running(karmada_fleet, m.ns, "llm") or None, timeout=90)


def test_a_member_that_stops_answering_has_its_replicas_moved_to_the_other_eu_member_and_back(
    karmada_fleet: KarmadaFleet, karmada_mdeps: Mdeps
) -> None:
    m, hold = karmada_mdeps, 10
    placement = {
        "residency": ["EU"],
        "regions": [{"name": "gra", "weight": 1}, {"name": "lim", "weight": 1}],
        "failover": {"unschedulableSeconds": hold},
    }
    m.create("llm", spec(replicas=2, placement=placement))
    m.wait_condition("llm", "Ready", timeout=180)
    assert running(karmada_fleet, m.ns, "llm") == Counter({"gra": 1, "lim": 1})
    gra = karmada_fleet.planes["gra"]
    gra.kill("kube-apiserver")
    try:
        t0 = time.monotonic()
        wait_for(
            "both replicas Running in lim",
            lambda: running(karmada_fleet, m.ns, "llm", ("lim",))["lim"] == 2 or None,
            timeout=hold + 60,
        )
        moved = time.monotonic() - t0
        assert running(karmada_fleet, m.ns, "llm", ("eri",)) == Counter()  # never across residency
        m.wait_condition("llm", "Ready", timeout=30)
    finally:
        gra.revive("kube-apiserver")
    assert moved <= hold + 30, f"moved after {moved:.1f}s"
    settle("a replica back in gra", lambda: running(karmada_fleet, m.ns, "llm"), Counter({"gra": 1, "lim": 1}), 180)


def test_the_operator_killed_mid_convergence_leaves_exactly_the_expected_objects_in_every_member(
    karmada_fleet: KarmadaFleet, karmada_mdeps: Mdeps
) -> None:
    m = karmada_mdeps
    residency = {f"eu{i}": ["EU"] for i in range(4)} | {f"uk{i}": ["UK"] for i in range(2)}
    for name, tags in residency.items():
        m.create(name, spec(replicas=2, placement={"residency": tags}))
    apps = client.AppsV1Api(karmada_fleet.api)
    wait_for(
        "convergence under way",
        lambda: apps.list_namespaced_deployment(m.ns, label_selector=MD_LABEL).items or None,
        timeout=60,
    )
    op = karmada_fleet.operator
    op.proc.send_signal(signal.SIGKILL)  # the operator process itself: no wrapper shell in between
    op.proc.wait()
    karmada_fleet.operator = start_operator(karmada_fleet.kubeconfig, op.log)
    for name in residency:
        m.wait_condition(name, "Ready", timeout=180)

    expected: dict[str, Counter[str]] = {member: Counter() for member in karmada_fleet.members}
    for name in residency:
        for r in m.get(name)["status"]["regions"]:
            if r["desiredReplicas"]:
                expected[r["name"]][regional_name(name, r["name"])] = r["desiredReplicas"]
    for member, api in karmada_fleet.members.items():
        found = Counter(
            {
                d.metadata.name: d.spec.replicas
                for d in client.AppsV1Api(api).list_namespaced_deployment(m.ns, label_selector=MD_LABEL).items
            }
        )
        assert found == expected[member], member
    assert set(expected["eri"]) == {regional_name(n, "eri") for n in residency if n.startswith("uk")}
    for name in residency:
        assert sum(running(karmada_fleet, m.ns, name).values()) == 2, name
