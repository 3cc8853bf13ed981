"""The Argo CD health check for ModelDeployment, run by a real Lua interpreter on sample objects.

Argo CD runs health scripts in gopher-lua, a Lua 5.1, with the live object as the global `obj`
(JSON numbers become Lua numbers, JSON null becomes nil); lupa's Lua 5.1 runtime does the same here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "argocd" / "modeldeployment-health.lua"
CM_PATCH = REPO / "deploy" / "argocd" / "argocd-cm-patch.yaml"
CM_KEY = "resource.customizations.health.serving.meridian.dev_ModelDeployment"


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """Run the script as Argo CD does and return (status, message)."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(SCRIPT.read_text())
    return hs["status"], hs["message"]


def cond(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def mdep(
    *,
    generation: int = 2,
    observed: int | None = 2,
    conditions: list[dict[str, Any]] | None = None,
    paused: bool | None = None,
    status: bool = True,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": {"format": "onnx", "storageUri": "s3://models/m"}, "replicas": 2}
    if paused is not None:
        spec["paused"] = paused
    obj: dict[str, Any] = {
        "apiVersion": "serving.meridian.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "llm", "namespace": "bank-a", "generation": generation},
        "spec": spec,
    }
    if status:
        obj["status"] = {"conditions": conditions or []}
        if observed is not None:
            obj["status"]["observedGeneration"] = observed
    return obj


READY = [
    cond("Ready", "True", "AllReplicasReady", "2/2 replicas ready"),
    cond("Reconciling", "False", "UpToDate"),
    cond("Stalled", "False", "Reconciled"),
]
ROLLING = [
    cond("Ready", "False", "ReplicasNotReady", "1/2 replicas ready"),
    cond("Reconciling", "True", "Progressing", "1/2 replicas ready"),
    cond("Stalled", "False", "Reconciled"),
]
STALLED = [
    cond("Ready", "False", "NoQualifyingRegion", "no region carries jurisdiction CH"),
    cond("Reconciling", "False", "NoQualifyingRegion"),
    cond("Stalled", "True", "NoQualifyingRegion", "no region carries jurisdiction CH"),
]


def test_ready_is_healthy() -> None:
    assert health(mdep(conditions=READY)) == ("Healthy", "2/2 replicas ready")


def test_scaled_to_zero_on_purpose_is_healthy() -> None:
    """Idle (minReplicas 0) is what was asked for; as Knative's scaled-to-zero Service, it stays Ready."""
    idle = [
        cond("Ready", "True", "ScaledToZero", "idle since 2025-01-01T00:00:00Z: no replicas until woken by ..."),
        cond("Reconciling", "False", "UpToDate"),
        cond("Stalled", "False", "Reconciled"),
    ]
    status, message = health(mdep(conditions=idle))
    assert status == "Healthy" and message.startswith("idle since")


def test_stalled_is_degraded_with_the_operators_reason() -> None:
    assert health(mdep(conditions=STALLED)) == ("Degraded", "no region carries jurisdiction CH")


def test_stalled_without_message_falls_back_to_reason() -> None:
    stalled = [cond("Stalled", "True", "RegionNotFound"), cond("Ready", "False", "RegionNotFound")]
    assert health(mdep(conditions=stalled)) == ("Degraded", "RegionNotFound")


def test_reconciling_is_progressing() -> None:
    assert health(mdep(conditions=ROLLING)) == ("Progressing", "1/2 replicas ready")


def test_not_ready_without_reconciling_is_still_progressing() -> None:
    status, message = health(mdep(conditions=[cond("Ready", "False", "ReplicasNotReady", "0/2 replicas ready")]))
    assert (status, message) == ("Progressing", "0/2 replicas ready")


@pytest.mark.parametrize("conditions", [READY, STALLED], ids=["ready", "stalled"])
def test_lagging_observed_generation_is_progressing_whatever_the_conditions_say(
    conditions: list[dict[str, Any]],
) -> None:
    # the conditions describe generation 2; the user just applied generation 3
    status, message = health(mdep(generation=3, observed=2, conditions=conditions))
    assert status == "Progressing"
    assert "generation 3" in message


def test_missing_observed_generation_is_progressing() -> None:
    assert health(mdep(observed=None, conditions=READY))[0] == "Progressing"


def test_no_status_yet_is_progressing() -> None:
    assert health(mdep(status=False)) == ("Progressing", "Waiting for Meridian to report status")


def test_no_conditions_yet_is_progressing() -> None:
    assert health(mdep(conditions=[])) == ("Progressing", "Waiting for the Ready condition")


def test_paused_is_suspended_even_when_ready() -> None:
    assert health(mdep(paused=True, conditions=READY))[0] == "Suspended"


def test_paused_false_is_not_suspended() -> None:
    assert health(mdep(paused=False, conditions=READY))[0] == "Healthy"


def test_status_as_meridian_writes_it_for_a_paused_object() -> None:
    # what reconcile/status.py writes on pause: Ready=False reason Paused; the spec decides
    paused = [cond("Ready", "False", "Paused", "spec.paused is true"), cond("Stalled", "False", "Paused")]
    assert health(mdep(paused=True, conditions=paused))[0] == "Suspended"


def test_argocd_cm_patch_carries_the_same_script() -> None:
    patch = yaml.safe_load(CM_PATCH.read_text())
    assert patch["metadata"]["name"] == "argocd-cm"
    assert patch["data"][CM_KEY] == SCRIPT.read_text()
