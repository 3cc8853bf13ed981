"""In the steady state the operator lives on its watches: no LIST, no GET, no write.

Counted by the API server itself (its audit log, by user agent: `meridian/…` and kopf's `kopf/…`),
over a minute in which the models' runtime probes and resync timers run and the cluster churns
around them (someone else's pod comes and goes, every node heartbeats).
"""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client
from tests.e2e.test_placement_eu import spec
from tests.fixtures_eu import EuCluster
from tests.fixtures_operator import Mdeps, wait_for

from meridian.reconcile.regions import COUNTS_EVERY
from meridian.sim import audit

pytestmark = pytest.mark.e2e
MODELS = 20
WINDOW_SECONDS = 65  # longer than the runtime probe's 30 s period, twice over


def test_a_converged_fleet_costs_the_api_server_nothing_but_watches(eu: EuCluster, eu_mdeps: Mdeps) -> None:
    names = [f"s{i:02d}" for i in range(MODELS)]
    t0 = time.time()
    for name in names:
        eu_mdeps.create(name, spec(replicas=1, placement={"residency": ["EU"]}))
    for name in names:
        eu_mdeps.wait_condition(name, "Ready", timeout=120)
    converged = time.time()

    # writes settle (status of the last pods, Region capacity, whose GPU counts may be held back
    # for up to COUNTS_EVERY seconds) before the window opens
    def quiet() -> bool:
        before = eu.operator.writes()
        time.sleep(COUNTS_EVERY + 1)
        return eu.operator.writes() == before

    core = client.CoreV1Api(eu.api)

    def others_gone() -> bool:  # an earlier test's namespace still being deleted is not a steady state
        return all(n.status.phase != "Terminating" for n in core.list_namespace().items)

    wait_for("earlier tests' namespaces to be gone", others_gone, timeout=120)
    wait_for("the operator to stop writing", quiet, timeout=90, interval=0)
    start = time.time()
    bystander = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bystander"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "tolerations": [{"operator": "Exists"}]},
    }
    core.create_namespaced_pod(eu_mdeps.ns, bystander)
    time.sleep(WINDOW_SECONDS / 2)
    core.delete_namespaced_pod("bystander", eu_mdeps.ns, grace_period_seconds=0)
    time.sleep(WINDOW_SECONDS / 2)
    end = time.time()
    time.sleep(2)  # the audit log is written when a request completes

    during = audit.read(eu.control_plane.audit_log, start, end)
    steady = audit.summary(during)
    asked = [str(r) for r in audit.requests(eu.control_plane.audit_log, start, end) if r.verb != "watch"]
    convergence = audit.summary(audit.read(eu.control_plane.audit_log, t0, converged))
    print(json.dumps({"models": MODELS, "convergence": convergence, "steady_per_minute": steady}))
    assert convergence["write"] >= MODELS * 4, f"the audit log saw the operator create the children: {convergence}"
    assert steady["list"] == 0 and steady["get"] == 0, asked
    assert steady["write"] == 0, asked
