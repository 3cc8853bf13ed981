"""Splitting a replica total over regions by weight, within each region's lower and upper bound.

Each region first gets its minimum; the rest is shared in proportion to weight (exact water-filling:
a region that reaches its upper bound keeps it and the others share what is left, which is how a
region at capacity spills to the others by weight). Weight-0 regions are standby: they take
replicas only when every weighted region is full. Rounding is largest remainder, except that a
region already running the rounded-up count keeps it, so a valid current split is never reshuffled.
All arithmetic is on integers: the same input gives the same split on every machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Split:
    """Replicas per region and how many of the total no region could take within its upper bound."""

    counts: dict[str, int]
    unplaced: int = 0


def weighted_split(
    total: int,
    weights: Mapping[str, int],
    lower: Mapping[str, int],
    upper: Mapping[str, int | None],
    prefer: Mapping[str, int],
) -> Split:
    """Split `total` over the regions of `weights`; `upper` None is unbounded, `prefer` is the current split."""
    names = sorted(weights)
    low = {n: _clamp(lower.get(n, 0), upper.get(n)) for n in names}
    if sum(low.values()) >= total:  # minimums use up the total: grant them in name order
        counts, budget = {}, total
        for n in names:
            counts[n] = min(low[n], budget)
            budget -= counts[n]
        return Split(counts)
    room: dict[str, int | None] = {}
    for n in names:
        cap = upper.get(n)
        room[n] = None if cap is None else max(0, cap - low[n])
    has_room = [n for n in names if room[n] != 0]
    weighted = [n for n in has_room if weights[n] > 0]
    standby = [n for n in has_room if weights[n] == 0]
    share = {n: weights[n] for n in names}
    if not any(weights[n] > 0 for n in names):  # all weights 0: equal shares, as if all were 1
        weighted, standby, share = has_room, [], dict.fromkeys(names, 1)
    counts = dict(low)
    rest = total - sum(low.values())
    added, rest = _fill(rest, weighted, share, room, low, prefer)
    if rest and standby:
        more, rest = _fill(rest, standby, dict.fromkeys(standby, 1), room, low, prefer)
        added.update(more)
    for n, k in added.items():
        counts[n] += k
    return Split(counts, rest)


def _clamp(value: int, upper: int | None) -> int:
    return value if upper is None else max(0, min(value, upper))


def _fill(
    amount: int,
    names: Sequence[str],
    weight: Mapping[str, int],
    room: Mapping[str, int | None],
    base: Mapping[str, int],
    prefer: Mapping[str, int],
) -> tuple[dict[str, int], int]:
    """Water-fill `amount` over `names` by weight within `room`; returns the additions and what did not fit."""
    added: dict[str, int] = {}
    active = list(names)
    while active:
        w_sum = sum(weight[n] for n in active)
        full = {n for n in active if (cap := room[n]) is not None and amount * weight[n] >= cap * w_sum}
        if not full:
            break
        for n in sorted(full):
            added[n] = room[n] or 0
            amount -= added[n]
        active = [n for n in active if n not in full]
    if not active:
        return added, amount
    w_sum = sum(weight[n] for n in active)
    whole = {n: amount * weight[n] // w_sum for n in active}
    frac = {n: amount * weight[n] % w_sum for n in active}
    extra = amount - sum(whole.values())

    def rank(n: str) -> tuple[bool, int, int, str]:
        # a region already holding the rounded-up count keeps it; then largest remainder, weight, name
        return (prefer.get(n, 0) < base[n] + whole[n] + 1, -frac[n], -weight[n], n)

    lucky = set(sorted((n for n in active if frac[n]), key=rank)[:extra])
    for n in active:
        added[n] = whole[n] + (n in lucky)
    return added, 0


def pend_at_home(counts: Mapping[str, int], home: Mapping[str, int], amount: int) -> dict[str, int]:
    """Put `amount` replicas that fit nowhere back in the regions they were taken from (they wait there).

    Largest gap between home and current count first, ties by name.
    """
    out = dict(counts)
    gaps = sorted(((home.get(n, 0) - out.get(n, 0), n) for n in home), key=lambda g: (-g[0], g[1]))
    for gap, n in gaps:
        if amount <= 0 or gap <= 0:
            break
        take = min(gap, amount)
        out[n] = out.get(n, 0) + take
        amount -= take
    return out
