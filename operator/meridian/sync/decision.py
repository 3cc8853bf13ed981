"""Everything one reconcile pass writes, in the order the shell carries it out.

Evictions come first and nothing after them can undo or block them; Events and log records are
best-effort and come last.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from meridian.placement.types import Hold, Problem


@dataclass(frozen=True)
class Eviction:
    """A Deployment scaled to zero and deleted, or a pod deleted at once (grace 0)."""

    kind: Literal["Deployment", "Pod"]
    name: str
    region: str
    reason: str
    cluster: str = ""  # the Karmada member cluster a pod runs in; "" for this cluster


@dataclass(frozen=True)
class Prune:
    api_version: str
    kind: str
    name: str


@dataclass(frozen=True)
class Note:
    """An Event on the model: what a person reads in `kubectl describe`."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Record:
    """A structured log line; `event` is one of the documented `residency.*` names."""

    event: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Decision:
    evictions: tuple[Eviction, ...] = ()
    applies: tuple[dict[str, Any], ...] = ()
    prunes: tuple[Prune, ...] = ()
    status: dict[str, Any] | None = None  # None: the live status is already right
    notes: tuple[Note, ...] = ()
    records: tuple[Record, ...] = ()
    problems: tuple[Problem, ...] = ()
    held: Mapping[str, Hold] | None = None  # failover memory for the next pass; None keeps the old
    regions: frozenset[str] = frozenset()  # regions planned or running: their changes requeue the model
    satisfied: bool = True  # Ready and PlacementSatisfied
    # seconds until the clock alone changes the plan (a failover wait or hold ends); None: only an event can
    wake_in: float | None = None
