"""Every spec the API server accepts, thrown at a running operator: it never crashes, and every model settles.

Specs are drawn (tests/openapi_strategies.py) from the generated CRD schema itself, the one the API
server validates with, with hints towards the fleet's region names, jurisdictions, GPU products,
storage schemes and quantities, so that placement and rendering are exercised, not only refusal.
Each goes to the API server with server-side dry-run: its verdict, not ours, decides what is
accepted, and every refusal must name the field. The accepted ones are then created for real, in
batches, while the session's operator runs; each must settle within 60 s: Ready, Stalled with a
reason, Paused as asked, or waiting for capacity that other models of the batch hold (the fleet is
small). The 60 s are the operator's, not the simulated cluster's: a model of hundreds of replicas
in the same batch keeps the scheduler and the ReplicaSet controller busy on two cores, and a pod
they get to at second 58 leaves the operator no time. So after the 60 s a model still unsettled
gets GRACE_SECONDS from the cluster's last word on it (a Deployment created, a pod created, a pod
condition changed), and one whose status agrees with pods the ReplicaSet controller, the scheduler
or kwok have yet to create, place or start is counted apart as ClusterBehind: the operator has
done its part and says so (`cluster_behind`). How many needed the grace is printed too. The
counts are printed as one JSON line.

MERIDIAN_FUZZ_SPECS (default 1000, about 4 minutes here; the issue's 10,000 take 20 to 40 minutes, past
the suite's 600 s per test, so run them with `--timeout=0`, and with a `--basetemp` of their own: a
second pytest session meanwhile rotates /tmp/pytest-of-*/ and deletes this run's control plane) and
MERIDIAN_FUZZ_SEED (default 0) set how many and which. The draw is reproducible for a seed in a
process of its own, not inside a pytest session (hypothesis' state there depends on what ran
before), so an unsettled model is reported with its whole spec.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, seed, settings
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.fixtures_cluster import fresh_namespace, wait_namespace_gone
from tests.fixtures_operator import GROUP, PLURAL, VERSION, Mdeps, OperatorProcess
from tests.openapi_strategies import from_openapi

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SPECS = int(os.environ.get("MERIDIAN_FUZZ_SPECS", "1000"))
SEED = int(os.environ.get("MERIDIAN_FUZZ_SEED", "0"))
BATCH = 100  # models at once: the simulated control plane has two cores
SETTLE_SECONDS = 60
GRACE_SECONDS = 10  # the operator's turn after the cluster's last word on a model's pods
FLEET = yaml.safe_load((ROOT / "examples/fleets/test.yaml").read_text())
QUANTITY = r"^[0-9]{1,4}(\.[0-9]{1,3})?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"

# Specs found to trip the operator once, kept so they keep being thrown at it.
REGRESSIONS: list[dict[str, Any]] = []


def crd_spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds/serving.meridian.dev_modeldeployments.yaml").read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def hinted(schema: Mapping[str, Any], *hints: dict[str, Any]) -> dict[str, Any]:
    """The field's own schema or one of the hints: generation leans towards values that mean something here."""
    return {"anyOf": [*hints, dict(schema)]}


def generation_schema() -> dict[str, Any]:
    s = copy.deepcopy(crd_spec_schema())
    p = s["properties"]
    regions = sorted(r["name"] for r in FLEET["regions"])
    tags = sorted({t for r in FLEET["regions"] for t in r["jurisdictions"]})
    products = sorted({n["gpuProduct"] for n in FLEET["nodePools"] if "gpuProduct" in n})
    model = p["model"]["properties"]
    for uri in ("storageUri", "tokenizerUri"):
        model[uri] = hinted(model[uri], {"type": "string", "pattern": r"^(s3|pvc|hf|oci)://[a-z0-9/._-]{1,40}$"})
    place = p["placement"]["properties"]
    place["residency"]["items"] = hinted(place["residency"]["items"], {"enum": tags})
    place["excludeRegions"]["items"] = hinted(place["excludeRegions"]["items"], {"enum": regions})
    region = place["regions"]["items"]["properties"]
    region["name"] = hinted(region["name"], {"enum": regions})
    gpu = p["resources"]["properties"]["gpu"]["properties"]
    gpu["products"]["items"] = hinted(gpu["products"]["items"], {"enum": products})
    for q in ("cpu", "memory", "sharedMemory"):
        res = p["resources"]["properties"][q]
        p["resources"]["properties"][q] = hinted(
            res, {"type": "string", "pattern": QUANTITY}, {"type": "integer", "minimum": 0, "maximum": 4096}
        )
    return s


def draw_specs(n: int) -> list[dict[str, Any]]:
    drawn: list[dict[str, Any]] = []

    @seed(SEED)
    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(spec=from_openapi(generation_schema()))
    def collect(spec: dict[str, Any]) -> None:
        drawn.append(spec)

    collect()
    return drawn


def body(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": name}, "spec": spec}


def verdict(co: client.CustomObjectsApi, ns: str, name: str, spec: Mapping[str, Any]) -> list[str] | None:
    """None if the API server accepts the spec; else the fields its refusal names ('' for none)."""
    try:
        co.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body(name, spec), dry_run="All")
        return None
    except ApiException as e:
        if e.status != 422:
            raise
        causes = json.loads(e.body or "{}").get("details", {}).get("causes") or [{}]
        return [str(c.get("field") or "") for c in causes]


def outcome(obj: Mapping[str, Any]) -> str | None:
    """How the model settled, or None while the operator has not said (for this generation)."""
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return None
    conds = {c["type"]: c for c in status.get("conditions") or []}
    ready, stalled, placement = conds.get("Ready", {}), conds.get("Stalled", {}), conds.get("PlacementSatisfied", {})
    if ready.get("status") == "True":
        return "Ready"
    if stalled.get("status") == "True" and stalled.get("reason") and stalled.get("message"):
        return f"Stalled/{stalled['reason']}"
    if ready.get("reason") == "Paused":
        return "Paused"
    waiting = ("InsufficientCapacity", "ReplicasUnschedulable", "ReplicasDisplaced")
    if placement.get("reason") in waiting and placement.get("message"):
        return "WaitingForCapacity"
    return None


def cluster_last_word(k8s: client.ApiClient, ns: str) -> dict[str, float]:
    """Model name → when (epoch seconds) the cluster last acted on its children: a Deployment or
    pod created, a pod condition changed. The operator's answer to it is due GRACE_SECONDS later."""
    label = "serving.meridian.dev/model-deployment"
    last: dict[str, float] = {}
    deployments = client.AppsV1Api(k8s).list_namespaced_deployment(ns, label_selector=label).items
    pods = client.CoreV1Api(k8s).list_namespaced_pod(ns, label_selector=label).items
    for obj in [*deployments, *pods]:
        times = [obj.metadata.creation_timestamp]
        conditions = getattr(obj.status, "conditions", None) or []
        times += [c.last_transition_time for c in conditions if getattr(c, "last_transition_time", None)]
        name = obj.metadata.labels[label]
        last[name] = max(last.get(name, 0.0), *(t.timestamp() for t in times if t is not None))
    return last


def cluster_behind(explained: Mapping[str, Any]) -> bool:
    """The operator did its part and says so, and the simulated cluster has not done its own yet:
    the model's Deployments want replicas, its status says Progressing (not Stalled) with as many
    ready replicas as there are ready pods, and no pod is refused by the scheduler; its pods are
    still to be created, scheduled or started by the ReplicaSet controller, scheduler or kwok."""
    status = explained["status"] or {}
    conditions = {c["type"]: c.get("status") for c in status.get("conditions") or []}
    pods = explained["pods"]
    ready = sum(1 for _, _, conds in pods if any(c[:2] == ("Ready", "True") for c in conds))
    refused = any(c[:2] == ("PodScheduled", "False") for _, _, conds in pods for c in conds)
    return (
        any(wanted for _, _, _, wanted, _ in explained["deployments"])
        and conditions.get("Reconciling") == "True"
        and conditions.get("Stalled") == "False"
        and int(status.get("readyReplicas") or 0) == ready
        and not refused
    )


def chunks(items: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def operator_errors(op: OperatorProcess, since: int) -> list[str]:
    """Error-level lines the operator logged since byte `since`: a handler that failed unexpectedly."""
    text = op.log.read_bytes()[since:].decode(errors="replace")
    return [line for line in text.splitlines() if '"level": "error"' in line or "Traceback" in line]


def test_every_accepted_spec_settles_and_the_operator_survives(
    k8s: client.ApiClient, namespace: str, operator: OperatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    co, core = client.CustomObjectsApi(k8s), client.CoreV1Api(k8s)
    log_start = operator.log.stat().st_size
    specs = REGRESSIONS + draw_specs(SPECS)
    with ThreadPoolExecutor(4) as pool:
        verdicts = list(pool.map(lambda ix: verdict(co, namespace, f"fz-{ix[0]}", ix[1]), enumerate(specs)))
    unnamed = [(s, f) for s, f in zip(specs, verdicts, strict=True) if f is not None and not all(f)]
    assert not unnamed, f"refusals that name no field: {unnamed[:3]}"
    refused_fields = Counter(field for f in verdicts if f is not None for field in f)
    accepted = [s for s, f in zip(specs, verdicts, strict=True) if f is None]

    outcomes: Counter[str] = Counter()
    unsettled: list[tuple[dict[str, Any], dict[str, Any]]] = []
    graced: set[str] = set()
    for number, batch in enumerate(chunks(accepted, BATCH), 1):
        with fresh_namespace(k8s, "t-fz-") as ns:
            for i, spec in enumerate(batch):
                co.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body(f"fz-{i}", spec))
            deadline = time.monotonic() + SETTLE_SECONDS
            while True:
                items = co.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
                settled = {i["metadata"]["name"]: outcome(i) for i in items}
                if all(settled.values()):
                    break
                if time.monotonic() > deadline:
                    late, since = cluster_last_word(k8s, ns), time.time() - GRACE_SECONDS
                    recent = [n for n, o in settled.items() if o is None and late.get(n, 0.0) > since]
                    if not recent or time.monotonic() > deadline + SETTLE_SECONDS:
                        break
                    graced.update(recent)
                time.sleep(1)
            assert operator.proc.poll() is None, f"operator exited ({operator.proc.returncode}):\n{operator.log_tail()}"
            outcomes.update(o for o in settled.values() if o)
            models = Mdeps(k8s, ns)
            for n in [n for n, o in settled.items() if o is None]:
                explained = models.explain(n, operator)
                settled_now = outcome(models.get(n))
                if settled_now:  # in the moment since the last look: in the grace, not outside it
                    outcomes[settled_now] += 1
                    graced.add(n)
                    continue
                if cluster_behind(explained):
                    outcomes["ClusterBehind"] += 1
                    continue
                unsettled.append((batch[int(n[3:])], explained))
                with capsys.disabled():  # at once: a long run's findings are read before it ends
                    print(json.dumps({"fuzz_unsettled": {"spec": batch[int(n[3:])], **explained}}, default=str))
        wait_namespace_gone(core, ns)
        with capsys.disabled():  # progress of a long run, one line per batch
            done = {"batch": number, "models": sum(outcomes.values()) + len(unsettled), "unsettled": len(unsettled)}
            print(json.dumps({"fuzz_progress": {**done, "operator_errors": len(operator_errors(operator, log_start))}}))

    counts = {
        "generated": len(specs),
        "accepted": len(accepted),
        "refused": len(specs) - len(accepted),
        "refused_fields": dict(refused_fields.most_common(12)),
        "outcomes": dict(sorted(outcomes.items())),
        "unsettled": len(unsettled),
        "settled_in_grace": len(graced),
        "operator_exits": 0 if operator.proc.poll() is None else 1,
        "operator_errors": len(operator_errors(operator, log_start)),
    }
    with capsys.disabled():
        print(json.dumps({"fuzz_specs": counts}))
    assert not unsettled, f"{len(unsettled)} models neither Ready nor Stalled after {SETTLE_SECONDS}s: {unsettled[:3]}"
    assert operator.proc.poll() is None
    assert not operator_errors(operator, log_start), "\n".join(operator_errors(operator, log_start)[:5])
    assert outcomes["Ready"] and any(o.startswith("Stalled/") for o in outcomes), outcomes
