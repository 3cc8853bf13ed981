"""When a model needs a person: failing pods that a restart cannot fix, and when to say so again."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.placement.types import Problem
from meridian.runtime.failures import pod_failure

# Failures a restart cannot fix: stall at once. Anything else stalls after a few restarts.
PERMANENT_FAILURES = {
    "EngineMismatch",
    "ModelFetchFailed",
    "ModelRepositoryInvalid",
    "ModelLoadFailed",
    "StorageCredentialsInvalid",
    "ContainerConfigInvalid",
    "ImagePullFailed",
    "OutOfMemory",
}
RESTARTS_BEFORE_STALLED = 3


def pod_problems(pods: Iterable[Mapping[str, Any]]) -> list[Problem]:
    """What keeps this model's pods from serving that a person must fix, one Problem per reason."""
    found: dict[str, Problem] = {}
    for pod in pods:
        failure = pod_failure(pod)
        if failure is None or failure.reason in found:
            continue
        if failure.reason in PERMANENT_FAILURES or failure.restarts >= RESTARTS_BEFORE_STALLED:
            found[failure.reason] = Problem(failure.reason, f"pod {pod['metadata']['name']}: {failure.message}")
    return [found[r] for r in sorted(found)]


def newly_stalled(md: ModelDeployment, reason: str) -> bool:
    """The Stalled condition does not already say this: an Event is due (not one per reconcile)."""
    stalled = next((c for c in md.status.conditions if c.type == "Stalled"), None)
    return stalled is None or stalled.status != "True" or stalled.reason != reason
