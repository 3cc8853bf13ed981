"""One reconcile pass as a pure function: `sync(World) -> Decision` (DESIGN §7)."""

from meridian.sync.decide import sync
from meridian.sync.decision import Decision
from meridian.sync.world import ApplyFailure, World

__all__ = ["ApplyFailure", "Decision", "World", "sync"]
