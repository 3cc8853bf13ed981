"""Standing by under kopf peering: the same rule kopf applies, read from the same peering status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meridian.reconcile.peering import is_active

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def peer(priority: int, seconds_ago: float, lifetime: int = 60) -> dict[str, object]:
    seen = (NOW - timedelta(seconds=seconds_ago)).isoformat()
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen}


@pytest.mark.parametrize(
    ("status", "active"),
    [
        (None, True),  # no peering object yet: kopf has not paused either
        ({"me": peer(5, 1)}, True),
        ({"me": peer(5, 1), "standby": peer(3, 1)}, True),
        ({"me": peer(5, 1), "newer": peer(9, 1)}, False),  # a live peer above: stand by
        ({"me": peer(5, 1), "gone": peer(9, 120)}, True),  # its keep-alive expired: take over
        ({"me": peer(5, 1), "twin": peer(5, 1)}, False),  # same priority: kopf pauses both
        ({"me": peer(5, 1), "broken": {"priority": 9}}, True),  # no lastseen: not a peer
        ({"freeze": peer(100, 0, lifetime=3600)}, False),  # `kopf freeze` writes such an entry
    ],
)
def test_a_replica_is_active_only_with_no_live_peer_above_or_beside_it(
    status: dict[str, object] | None, active: bool
) -> None:
    assert is_active(status, 5, NOW.timestamp()) is active
