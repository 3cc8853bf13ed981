"""Residency proven from where pods run, on the simulated EU fleet, against the real control plane.

Each test edits what a regulated user fears being edited (a Region's jurisdictions or selector, a
node's labels, a namespace's label, a name taken by someone else, the Events quota, the API server
itself) and asserts where pods actually are, read from their nodes. Regions and nodes are shared by
the session, so every test puts back what it changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from tests.e2e.test_placement_eu import pod_regions, spec
from tests.fixtures_cluster import admission_refusing
from tests.fixtures_eu import EuCluster
from tests.fixtures_operator import Mdeps, wait_for

pytestmark = pytest.mark.e2e
GROUP, VERSION = "serving.meridian.dev", "v1alpha1"
NODE_LABEL = "node-restriction.kubernetes.io/region"
L4 = {"gpu": {"products": ["L4"]}}


def regions_api(eu: EuCluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(eu.api)


@contextlib.contextmanager
def region_edited(eu: EuCluster, name: str, spec_patch: dict[str, Any]) -> Iterator[None]:
    """Patch a Region's spec; put the original spec back afterwards (Regions are shared)."""
    api = regions_api(eu)
    before = api.get_cluster_custom_object(GROUP, VERSION, "regions", name)["spec"]
    api.patch_cluster_custom_object(GROUP, VERSION, "regions", name, {"spec": spec_patch})
    try:
        yield
    finally:
        restore = {k: before.get(k) for k in {*before, *spec_patch}}  # None removes an added field
        api.patch_cluster_custom_object(GROUP, VERSION, "regions", name, {"spec": restore})


def live_pods(m: Mdeps, name: str) -> list[Any]:
    sel = f"serving.meridian.dev/model-deployment={name}"
    return list(m.core.list_namespaced_pod(m.ns, label_selector=sel).items)


def pods_in(m: Mdeps, name: str, region: str) -> int:
    return pod_regions(m, name).get(region, 0)


class PodNodes:
    """Every node any pod of the namespace was ever bound to, from a watch (nothing is missed)."""

    def __init__(self, core: client.CoreV1Api, namespace: str) -> None:
        self.seen: dict[str, str] = {}
        self._w = watch.Watch()
        self._thread = threading.Thread(target=self._run, args=(core, namespace), daemon=True)
        self._thread.start()

    def _run(self, core: client.CoreV1Api, namespace: str) -> None:
        with contextlib.suppress(urllib3.exceptions.HTTPError):  # stop() closes the stream under it
            for event in self._w.stream(core.list_namespaced_pod, namespace, timeout_seconds=300):
                pod = event["object"]
                if pod.spec.node_name:
                    self.seen[pod.metadata.name] = pod.spec.node_name

    def stop(self) -> None:
        self._w.stop()


def checked_since(m: Mdeps, name: str, t0: float) -> bool:
    last = (m.get(name).get("status", {}).get("residency") or {}).get("lastChecked")
    return bool(last) and datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp() >= int(t0)  # same second


def test_a_region_losing_eu_while_serving_is_emptied_and_never_reported_compliant(
    eu: EuCluster, eu_mdeps: Mdeps
) -> None:
    placement = {"residency": ["EU"], "regions": [{"name": "waw"}]}  # nowhere else to go
    eu_mdeps.create("llm", spec(replicas=2, resources=L4, placement=placement))
    eu_mdeps.wait_condition("llm", "Ready", timeout=120)
    assert eu_mdeps.condition("llm", "ResidencyCompliant")["status"] == "True"  # type: ignore[index]
    # lastChecked has a resolution of one second: edit at the start of a second no status was written in
    time.sleep(1 + (1 - time.time() % 1))
    wall0 = time.time()
    with region_edited(eu, "waw", {"jurisdictions": ["EEA", "PL"]}):
        t0 = time.monotonic()
        while live_pods(eu_mdeps, "llm"):
            assert time.monotonic() - t0 < 30, "pods still running 30 s after waw lost EU"
            c = eu_mdeps.condition("llm", "ResidencyCompliant")
            if checked_since(eu_mdeps, "llm", wall0):  # once the operator has looked, never compliant
                assert c is not None and c["status"] == "False", c
            time.sleep(0.1)
        gone = time.monotonic() - t0
        stalled = eu_mdeps.wait_condition("llm", "Stalled")
        assert "EU" in stalled["message"]
        assert eu_mdeps.deployments("llm") == {}
        # Events come last, after the status write: wait for them rather than race them
        wait_for("an Evicted Event", lambda: "Evicted" in {e.reason for e in eu_mdeps.events("llm")}, timeout=10)
        log = eu.operator.log.read_text()
        assert '"event": "residency.eviction"' in log and '"region": "waw"' in log
    print(f"last pod gone {gone:.1f}s after the Region lost EU")


def test_a_selector_pointed_at_uk_nodes_never_gets_an_eu_pod_there(eu: EuCluster, eu_mdeps: Mdeps) -> None:
    placement = {"residency": ["EU"], "regions": [{"name": "waw"}, {"name": "sbg"}]}
    eu_mdeps.create("llm", spec(replicas=2, resources=L4, placement=placement))
    eu_mdeps.wait_condition("llm", "Ready", timeout=120)
    uk_nodes = {n["metadata"]["name"] for n in eu.node_manifests("eri")}
    nodes = PodNodes(eu_mdeps.core, eu_mdeps.ns)
    try:
        with region_edited(eu, "waw", {"nodeSelector": {NODE_LABEL: "eri"}}):
            wait_for(
                "waw Ready=False naming the shared node",
                lambda: _region_condition(eu, "waw", "Ready", "NodeClaimedByTwoRegions"),
                timeout=30,
            )
            wait_for(
                "replicas only in sbg, 2 ready",
                lambda: pod_regions(eu_mdeps, "llm") == {"sbg": 2} and not _deployment_in(eu_mdeps, "waw"),
                timeout=60,
            )
            time.sleep(2)  # a watch event for a pod bound in the last instant still arrives
            assert not set(nodes.seen.values()) & uk_nodes, nodes.seen
    finally:
        nodes.stop()


def test_a_node_relabelled_after_scheduling_loses_its_pod_and_the_status_names_it(
    eu: EuCluster, eu_mdeps: Mdeps
) -> None:
    eu_mdeps.create(
        "llm", spec(replicas=1, resources=L4, placement={"residency": ["EU"], "regions": [{"name": "sbg"}]})
    )
    eu_mdeps.wait_condition("llm", "Ready", timeout=120)
    (victim,) = [p for p in live_pods(eu_mdeps, "llm") if p.spec.node_name]
    node = victim.spec.node_name
    core = eu_mdeps.core
    core.patch_node(node, {"metadata": {"labels": {NODE_LABEL: "quarantine"}}})
    try:
        wait_for(
            f"pod {victim.metadata.name} deleted",
            lambda: victim.metadata.name not in {p.metadata.name for p in live_pods(eu_mdeps, "llm")},
            timeout=30,
        )
        last = wait_for(
            "the status naming the evicted pod",
            lambda: (eu_mdeps.get("llm")["status"].get("residency") or {}).get("lastViolation"),
            timeout=10,
        )
        assert (last["pod"], last["node"]) == (victim.metadata.name, node), last
        assert "no Region selects this node" in last["reason"]
        violation = wait_for(  # the Event follows the status write
            "a ResidencyViolation Event",
            lambda: [e for e in eu_mdeps.events("llm") if e.reason == "ResidencyViolation"],
            timeout=10,
        )
        assert victim.metadata.name in violation[0].message and node in violation[0].message
        eu_mdeps.wait_condition("llm", "Ready", timeout=60)  # replaced on a node that is sbg's
        where = {p.spec.node_name for p in live_pods(eu_mdeps, "llm") if p.spec.node_name}
        assert node not in where
    finally:
        core.patch_node(node, {"metadata": {"labels": {NODE_LABEL: "sbg"}}})


def test_a_namespace_labelled_after_the_model_was_created_is_enforced_without_a_policy(
    eu: EuCluster, eu_mdeps: Mdeps
) -> None:
    eu_mdeps.create("free", spec(replicas=1, resources=L4, placement={"residency": []}))
    eu_mdeps.wait_condition("free", "Ready", timeout=120)
    eu_mdeps.core.patch_namespace(eu_mdeps.ns, {"metadata": {"labels": {"serving.meridian.dev/residency": "EU"}}})
    stalled = eu_mdeps.wait_condition("free", "Stalled", timeout=30)
    assert stalled["reason"] == "NamespaceResidency"
    assert eu_mdeps.ns in stalled["message"] and "EU" in stalled["message"]
    wait_for("its pods evicted", lambda: not live_pods(eu_mdeps, "free"), timeout=30)


def test_a_users_own_service_named_like_the_model_is_left_untouched(eu_mdeps: Mdeps) -> None:
    mine = client.V1Service(
        metadata=client.V1ObjectMeta(name="llm", labels={"team": "a"}),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)], selector={"app": "mine"}),
    )
    before = eu_mdeps.core.create_namespaced_service(eu_mdeps.ns, mine)
    eu_mdeps.create("llm", spec(replicas=1, resources=L4))
    stalled = eu_mdeps.wait_condition("llm", "Stalled", timeout=30)
    assert stalled["reason"] == "NameConflict" and "Service llm" in stalled["message"]
    after = eu_mdeps.core.read_namespaced_service("llm", eu_mdeps.ns)
    assert after.metadata.resource_version == before.metadata.resource_version
    assert not after.metadata.owner_references
    assert eu_mdeps.deployments("llm") == {}


def test_a_dotted_model_name_serves(eu_mdeps: Mdeps) -> None:
    eu_mdeps.create("llama-3.1-8b", spec(replicas=1, resources=L4))
    eu_mdeps.wait_condition("llama-3.1-8b", "Ready", timeout=120)
    endpoint = eu_mdeps.get("llama-3.1-8b")["status"]["endpoints"]["http"]
    service = endpoint.split("//")[1].split(".")[0]
    assert eu_mdeps.core.read_namespaced_service(service, eu_mdeps.ns).metadata.owner_references


def test_events_refused_in_the_namespace_do_not_stop_an_eviction(eu: EuCluster, eu_mdeps: Mdeps) -> None:
    # Kubernetes' quota system ignores Events (an Events quota of zero is never enforced), so the
    # refusal comes from an admission policy: every Event post in the namespace fails with a 403
    placement = {"residency": ["EU"], "regions": [{"name": "waw"}]}
    eu_mdeps.create("llm", spec(replicas=2, resources=L4, placement=placement))
    eu_mdeps.wait_condition("llm", "Ready", timeout=120)
    with events_refused(eu, eu_mdeps.ns):
        dropped_before = sum(eu.operator.metric("meridian_events_dropped_total").values())
        with region_edited(eu, "waw", {"jurisdictions": ["PL"]}):
            wait_for("pods gone despite the refused Events", lambda: not live_pods(eu_mdeps, "llm"), timeout=30)
            assert eu_mdeps.deployments("llm") == {}
            wait_for(  # the Events come last, and fail: the eviction above did not wait for them
                "the refused Events counted",
                lambda: sum(eu.operator.metric("meridian_events_dropped_total").values()) > dropped_before,
                timeout=10,
            )


@contextlib.contextmanager
def events_refused(eu: EuCluster, namespace: str) -> Iterator[None]:
    """A ValidatingAdmissionPolicy that refuses every Event created in `namespace`."""
    rule = {"apiGroups": ["", "events.k8s.io"], "apiVersions": ["*"], "operations": ["CREATE"], "resources": ["events"]}
    probe = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name="probe."),
        involved_object=client.V1ObjectReference(kind="ConfigMap", name="probe", namespace=namespace),
        reason="Probe",
        message="probe",
    )

    def refused() -> bool:
        try:
            client.CoreV1Api(eu.api).create_namespaced_event(namespace, probe)
        except client.ApiException as e:
            return "Events are refused here" in str(e.body)
        return False

    with admission_refusing(eu.api, namespace, f"no-events-{namespace}", rule, "Events are refused here"):
        wait_for("Events refused in the namespace", refused, timeout=30)
        yield


def test_the_operator_converges_after_the_api_server_was_frozen_mid_reconcile(eu: EuCluster, eu_mdeps: Mdeps) -> None:
    eu_mdeps.create(
        "llm", spec(replicas=1, resources=L4, placement={"residency": ["EU"], "regions": [{"name": "sbg"}]})
    )
    eu_mdeps.wait_condition("llm", "Ready", timeout=120)
    (apiserver,) = [p for p in eu.control_plane.processes if p.name == "kube-apiserver"]
    eu_mdeps.patch("llm", {"spec": {"replicas": 3}})
    os.kill(apiserver.pid, signal.SIGSTOP)
    try:
        time.sleep(40)  # the outage itself: what is measured is what happens after it
    finally:
        os.kill(apiserver.pid, signal.SIGCONT)
    t0 = time.monotonic()
    wait_for(
        "3 replicas Ready after the outage",
        lambda: _ready_condition(eu_mdeps, "llm", 3),
        timeout=30,
    )
    assert eu.operator.proc.poll() is None, "the operator died during the outage"
    print(f"converged {time.monotonic() - t0:.1f}s after the API server came back")


def test_residency_check_is_clean_then_flags_a_pod_placed_by_hand_in_the_uk(eu: EuCluster, eu_mdeps: Mdeps) -> None:
    eu_mdeps.create("llm", spec(replicas=1, resources=L4))
    eu_mdeps.wait_condition("llm", "Ready", timeout=120)
    env = {**os.environ, "KUBECONFIG": str(eu.kubeconfig)}
    everywhere = [sys.executable, "-m", "meridian.cli", "residency", "check", "-o", "json"]
    clean = subprocess.run(everywhere, env=env, capture_output=True, text=True, timeout=60)
    assert clean.returncode == 0, clean.stdout + clean.stderr  # the whole fleet, after the e2e tests before this
    mine = [p for p in json.loads(clean.stdout)["pods"] if p["namespace"] == eu_mdeps.ns]
    assert [p["region"] in {"gra", "rbx", "sbg", "par", "lim", "waw"} for p in mine] == [True]
    cmd = [*everywhere[:-2], "-n", eu_mdeps.ns, "-o", "json"]
    uk_node = eu.node_manifests("eri", "L4")[0]["metadata"]["name"]
    smuggled = client.V1Pod(
        metadata=client.V1ObjectMeta(
            name="smuggled",
            labels={"app.kubernetes.io/managed-by": "meridian", "serving.meridian.dev/model-deployment": "llm"},
        ),
        spec=client.V1PodSpec(
            node_name=uk_node,
            containers=[client.V1Container(name="c", image="x")],
            tolerations=[client.V1Toleration(operator="Exists")],
        ),
    )
    eu_mdeps.core.create_namespaced_pod(eu_mdeps.ns, smuggled)
    dirty = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert dirty.returncode == 1, dirty.stdout + dirty.stderr
    bad = [p for p in json.loads(dirty.stdout)["pods"] if not p["compliant"]]
    assert [(p["pod"], p["node"], p["region"]) for p in bad] == [("smuggled", uk_node, "eri")]
    # the operator leaves a pod it does not own alone: proving is the auditor's job here
    assert eu_mdeps.core.read_namespaced_pod("smuggled", eu_mdeps.ns).metadata.deletion_timestamp is None


def _region_condition(eu: EuCluster, name: str, type_: str, reason: str) -> bool:
    status = regions_api(eu).get_cluster_custom_object(GROUP, VERSION, "regions", name).get("status") or {}
    return any(c["type"] == type_ and c["reason"] == reason for c in status.get("conditions") or [])


def _deployment_in(m: Mdeps, region: str) -> bool:
    return any(
        (d.metadata.labels or {}).get("serving.meridian.dev/region") == region for d in m.deployments("llm").values()
    )


def _ready_condition(m: Mdeps, name: str, replicas: int) -> bool:
    status = m.get(name).get("status", {})
    ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
    return ready.get("status") == "True" and status.get("readyReplicas") == replicas
