"""kopf's own settings: peering for HA, timeouts. It keeps no bookkeeping: it runs only event handlers."""

from __future__ import annotations

import logging
import random

import kopf

from meridian.config import Settings


def configure_kopf(ks: kopf.OperatorSettings, settings: Settings) -> None:
    # kopf logs every watch-event handler call ("Handler 'node_changed' succeeded") at INFO; with node
    # heartbeats that is a line per node every few seconds. Meridian logs its own decisions instead.
    logging.getLogger("kopf.objects").setLevel(max(logging.WARNING, logging.getLogger().level))
    ks.posting.level = logging.WARNING  # kopf turns warnings into Events; our own Events say the rest
    ks.watching.server_timeout = 300
    ks.networking.request_timeout = 15  # a hung API server must not hold a handler for long
    # retry a restarting API server often, for about a minute, instead of kopf's 1..21 s (54 s, 8 tries):
    # a watch that waits 21 s for its last try leaves every model it feeds unreconciled that long
    ks.networking.error_backoffs = (1, 1, 1, 2, 2, 2, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5)
    if settings.peering:
        ks.peering.name = settings.peering
        ks.peering.clusterwide = not settings.namespaces
        ks.peering.mandatory = True
        # kopf pauses every replica that sees a peer of the same priority: give each process its own,
        # so the one with the highest priority is active and the others stand by
        ks.peering.priority = settings.peering_priority or random.SystemRandom().randint(1, 2**31 - 1)
    else:
        ks.peering.standalone = True
