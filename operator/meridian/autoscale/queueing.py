"""Erlang C (M/M/c): how long requests wait at a given load, so queue metrics can be predicted.

A Triton replica with in-flight batching runs up to c sequences at once, each for a service time S;
requests beyond c wait in Triton's queue. With offered load a = λ·S (sequences wanted at once) spread
over a replica's c slots, the queue/compute ratio is Wq/S = C(c, a) / (c − a) and the mean queue
length is Lq = C(c, a) · a / (c − a), where C is the Erlang C probability of waiting. Exponential
service is an approximation for LLM generation; the meridian policy corrects for it with what it
observes (see meridian.py).
"""

from __future__ import annotations

import math


def erlang_c(servers: int, load: float) -> float:
    """Probability that an arrival waits, for `servers` slots and offered load `load` (Erlangs)."""
    if load <= 0.0:
        return 0.0
    if load >= servers:
        return 1.0
    blocking = 1.0  # Erlang B by the stable recursion B(k) = a·B(k−1) / (k + a·B(k−1))
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return servers * blocking / (servers - load * (1.0 - blocking))


def wait_ratio(servers: int, load: float) -> float:
    """Mean queue wait over mean service time (Triton's queue/compute ratio) at this load."""
    if load >= servers:
        return math.inf
    return erlang_c(servers, load) / (servers - load)


def queue_length(servers: int, load: float) -> float:
    """Mean number of requests waiting (Triton's pending request count) at this load."""
    if load >= servers:
        return math.inf
    return erlang_c(servers, load) * load / (servers - load)
