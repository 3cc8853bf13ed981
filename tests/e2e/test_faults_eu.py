"""Control-plane faults while 100 models converge, on the simulated EU fleet.

A few seconds into the convergence of 100 ModelDeployments: the API server, or etcd under it, is
killed (SIGKILL, no grace) and started again 10 s later with the same data; or the operator's
requests are throttled by an API Priority and Fairness level for 30 s. Afterwards every model must
be Ready within 60 s of the fault ending (over the fault-free case), with exactly its children (no
orphan, no duplicate) and no pod outside the EU. The "none" case is the same convergence without a
fault: the baseline the recovery times compare with. Each case prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families
from tests.chart_helpers import service_account_token, token_kubeconfig
from tests.e2e.test_placement_eu import spec
from tests.fixtures_cluster import wait_namespace_gone
from tests.fixtures_eu import EuCluster
from tests.fixtures_operator import GROUP, PLURAL, VERSION, Mdeps, start_operator, stop_operator

pytestmark = pytest.mark.e2e
MODELS = 100
DOWN_SECONDS = 10
# the goal is 60 s after the fault; a fault-free convergence of these 100 models already takes about
# 55 s on a quiet 2-core machine, so the fault may cost at most 60 s over the "none" case of the same
# session (which runs first), or 120 s in all when run alone
FAULT_COST_SECONDS = 60
BASELINE: dict[str, float] = {}
A100 = {"gpu": {"products": ["A100-SXM4-80GB"]}}
# each model pinned to one region within its A100s (rbx 48, par 64, gra 32), so what is measured is
# recovery from the fault, not capacity spill while 100 first plans race for the same free GPUs
HOMES = ["rbx", "par", "rbx", "par", "gra"]


def ready_models(m: Mdeps) -> set[str]:
    items = m.co.list_namespaced_custom_object(GROUP, VERSION, m.ns, PLURAL)["items"]
    return {
        i["metadata"]["name"]
        for i in items
        if any(c["type"] == "Ready" and c["status"] == "True" for c in (i.get("status") or {}).get("conditions", []))
    }


def children_by_owner(m: Mdeps) -> tuple[Counter[tuple[str, str]], list[str]]:
    """(model, kind) → count of children it controls; and every Meridian object with no live owner."""
    uids = {
        i["metadata"]["uid"]: i["metadata"]["name"]
        for i in m.co.list_namespaced_custom_object(GROUP, VERSION, m.ns, PLURAL)["items"]
    }
    sel = "app.kubernetes.io/managed-by=meridian"
    found: list[tuple[str, Any]] = [
        *(("Deployment", d) for d in m.apps.list_namespaced_deployment(m.ns, label_selector=sel).items),
        *(("Service", s) for s in m.core.list_namespaced_service(m.ns, label_selector=sel).items),
        *(("ConfigMap", c) for c in m.core.list_namespaced_config_map(m.ns, label_selector=sel).items),
        *(
            ("PodDisruptionBudget", p)
            for p in client.PolicyV1Api(m.apps.api_client)
            .list_namespaced_pod_disruption_budget(m.ns, label_selector=sel)
            .items
        ),
    ]
    counts: Counter[tuple[str, str]] = Counter()
    orphans = []
    for kind, obj in found:
        owner = next((r for r in obj.metadata.owner_references or [] if r.controller), None)
        if owner is None or owner.uid not in uids:
            orphans.append(f"{kind}/{obj.metadata.name}")
        else:
            counts[(uids[owner.uid], kind)] += 1
    return counts, orphans


class Fault:
    """A fault during convergence: `begin` starts it a few seconds in, `end` lifts it."""

    def __init__(self, eu: EuCluster, tmp: Path, models: Mdeps) -> None:
        self.eu, self.tmp, self.models = eu, tmp, models

    def before(self) -> None:
        """Set-up before any model exists."""

    def begin(self) -> None:
        """The fault starts."""

    def end(self) -> dict[str, Any]:
        """The fault ends; what it did, for the report."""
        return {}

    def after(self) -> None:
        """Leave the cluster as the session's other tests expect it."""


class Kill(Fault):
    """The component SIGKILLed (no grace, as when a machine dies), started again with the same data."""

    component = ""

    def begin(self) -> None:
        self.eu.control_plane.kill(self.component)
        time.sleep(DOWN_SECONDS)

    def end(self) -> dict[str, Any]:
        self.eu.control_plane.revive(self.component)
        return {"down_seconds": DOWN_SECONDS}


class KillApiserver(Kill):
    component = "kube-apiserver"


class KillEtcd(Kill):
    """A kubelet retries a status update until it lands; kwok (v0.8.0) drops a pod's stage when its
    patch fails with anything but connection refused, 429, 503 or 504, and etcd going away under the
    API server answers 500 ("connection reset by peer"). A pod bound as etcd died then stayed Pending
    for ever (found by this test: 99/100 Ready). So once etcd is back, each bound pod still Pending
    is touched (an annotation), which makes kwok look at it again, as a kubelet's retry would.
    Restarting kwok instead cost its node leases: the nodes went NotReady and their pods unready."""

    component = "etcd"

    def end(self) -> dict[str, Any]:
        report = super().end()
        core = client.CoreV1Api(self.eu.api)
        touch = {"metadata": {"annotations": {"meridian.test/kubelet-retry": "after-etcd"}}}
        stuck = [
            p
            for p in core.list_namespaced_pod(self.models.ns).items
            if p.spec.node_name and p.status.phase == "Pending"
        ]
        for pod in stuck:
            core.patch_namespaced_pod(pod.metadata.name, self.models.ns, touch)
        return {**report, "pods_touched": len(stuck)}


THROTTLE = "meridian-throttle"
THROTTLED_NS = "meridian-throttled"


class Throttle(Fault):
    """The operator's requests held to what an API Priority and Fairness level of its own admits:
    3 seats (1 share of the server's 600), one queue of 2, the excess refused with 429 and
    Retry-After. APF matches identities, so the operator runs as a ServiceAccount for it (with
    cluster-admin: what is tested is throttling, not RBAC); the FlowSchema outranks the
    service-accounts catch-all. Lifted after THROTTLE_SECONDS."""

    def before(self) -> None:
        api, core = self.eu.api, client.CoreV1Api(self.eu.api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=THROTTLED_NS)))
        core.create_namespaced_service_account(THROTTLED_NS, {"metadata": {"name": "meridian"}})
        client.RbacAuthorizationV1Api(api).create_cluster_role_binding(
            {
                "metadata": {"name": THROTTLE},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": "meridian", "namespace": THROTTLED_NS}],
            }
        )
        token = service_account_token(api, THROTTLED_NS, "meridian")
        kubeconfig = token_kubeconfig(self.eu.kubeconfig, token, self.tmp / "throttled.kubeconfig", "meridian")
        stop_operator(self.eu.operator)
        self.eu.operator = start_operator(kubeconfig, self.tmp / "throttled-operator.log")

    def begin(self) -> None:
        flow = client.FlowcontrolApiserverV1Api(self.eu.api)
        flow.create_priority_level_configuration(
            {
                "metadata": {"name": THROTTLE},
                "spec": {
                    "type": "Limited",
                    "limited": {
                        "nominalConcurrencyShares": 1,
                        "lendablePercent": 0,
                        "borrowingLimitPercent": 0,
                        "limitResponse": {
                            "type": "Queue",
                            "queuing": {"queues": 1, "handSize": 1, "queueLengthLimit": 2},
                        },
                    },
                },
            }
        )
        flow.create_flow_schema(
            {
                "metadata": {"name": THROTTLE},
                "spec": {
                    "priorityLevelConfiguration": {"name": THROTTLE},
                    "matchingPrecedence": 100,
                    "rules": [
                        {
                            "subjects": [
                                {
                                    "kind": "ServiceAccount",
                                    "serviceAccount": {"name": "meridian", "namespace": THROTTLED_NS},
                                }
                            ],
                            "resourceRules": [
                                {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "namespaces": ["*"]},
                                {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "clusterScope": True},
                            ],
                            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                        }
                    ],
                },
            }
        )
        self.began = time.monotonic()
        time.sleep(THROTTLE_SECONDS)

    def rejected(self) -> float:
        response = self.eu.api.call_api(*self.eu.api.param_serialize("GET", "/metrics", auth_settings=["BearerToken"]))
        response.read()  # type: ignore[no-untyped-call]
        text = response.data.decode()
        return sum(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "apiserver_flowcontrol_rejected_requests_total" and s.labels.get("priority_level") == THROTTLE
        )

    def end(self) -> dict[str, Any]:
        rejected, during = self.rejected(), len(ready_models(self.models))
        assert rejected > 0, "the throttle never refused a request of the operator's: it tested nothing"
        flow = client.FlowcontrolApiserverV1Api(self.eu.api)
        flow.delete_flow_schema(THROTTLE)
        flow.delete_priority_level_configuration(THROTTLE)
        return {"throttled_seconds": THROTTLE_SECONDS, "rejected_429": int(rejected), "ready_while_throttled": during}

    def after(self) -> None:
        stop_operator(self.eu.operator)
        self.eu.operator = start_operator(self.eu.kubeconfig, self.tmp / "operator.log")
        client.RbacAuthorizationV1Api(self.eu.api).delete_cluster_role_binding(THROTTLE)
        client.CoreV1Api(self.eu.api).delete_namespace(THROTTLED_NS)


THROTTLE_SECONDS = 30
FAULTS: dict[str, type[Fault]] = {
    "none": Fault,
    "kube-apiserver": KillApiserver,
    "etcd": KillEtcd,
    "apf-throttle": Throttle,
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_fault_mid_convergence_the_fleet_still_converges_exactly(
    eu: EuCluster, eu_mdeps: Mdeps, name: str, tmp_path: Path
) -> None:
    fault = FAULTS[name](eu, tmp_path, eu_mdeps)
    fault.before()
    try:
        names = [f"m{i:03d}" for i in range(MODELS)]
        for i, model in enumerate(names):
            placement = {"residency": ["EU"], "regions": [{"name": HOMES[i % len(HOMES)]}]}
            eu_mdeps.create(model, spec(replicas=1, resources=A100, placement=placement))
        time.sleep(3)  # mid-convergence: some models placed, most not yet
        fault.begin()
        report = fault.end()
        t0 = time.monotonic()
        bound = BASELINE.get("none", 60.0) + FAULT_COST_SECONDS if name != "none" else 120.0
        while len(ready := ready_models(eu_mdeps)) < MODELS:
            if time.monotonic() - t0 > bound:
                stuck = [eu_mdeps.explain(n, eu.operator) for n in names if n not in ready]
                pytest.fail(f"{len(ready)}/{MODELS} Ready after {bound:.0f}s; not Ready: {stuck[:3]}")
            assert eu.operator.proc.poll() is None, "the operator died:\n" + eu.operator.log_tail()
            time.sleep(0.5)
        recovered = time.monotonic() - t0
        BASELINE.setdefault(name, recovered)

        counts, orphans = children_by_owner(eu_mdeps)
        assert orphans == []
        expected = {"Deployment": 1, "Service": 2, "ConfigMap": 1, "PodDisruptionBudget": 1}
        wrong = {(n, k): counts[(n, k)] for n in names for k, want in expected.items() if counts[(n, k)] != want}
        assert wrong == {}, wrong  # no duplicate, nothing missing
        env = {**os.environ, "KUBECONFIG": str(eu.kubeconfig)}
        check = [sys.executable, "-m", "meridian.cli", "residency", "check", "-n", eu_mdeps.ns, "-o", "json"]
        proof = subprocess.run(check, env=env, capture_output=True, text=True, timeout=60)
        assert proof.returncode == 0, proof.stdout[-2000:] + proof.stderr
        assert len(json.loads(proof.stdout)["pods"]) == MODELS
        line = {"fault": name, **report, "converged_seconds": round(recovered, 1)}
        print(json.dumps(line))
    finally:
        fault.after()
        # the next case starts on a cluster as quiet as the baseline's: not while the garbage
        # collector and the namespace controller take these 100 models and their 500 children apart
        client.CoreV1Api(eu.api).delete_namespace(eu_mdeps.ns)
        wait_namespace_gone(client.CoreV1Api(eu.api), eu_mdeps.ns)
