"""Moving replicas between regions without losing ready capacity.

Two things live here. Failover: replicas unschedulable for longer than failover.unschedulableSeconds
mean the region cannot run them, whatever its status says; the planner then bounds that region by
what is scheduled there, the rest go elsewhere, and a Hold keeps the bound (the pods that showed the
problem are gone on the next pass) until the region's capacity grows or a probe is due.
Transition: from what runs now to the target, surge first. Replicas that are not ready
(unschedulable, starting) may go at once; a ready replica is removed only when enough replicas are
ready elsewhere, so ready capacity never drops. A region is raised before another is lowered, at
most `surge` extra replicas at a time, which is what makes a return (capacity back) or a drain
(cordon) gradual. Residency and excludeRegions are the exception: those regions are emptied at
once, because compliance outranks availability.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from meridian.api.modeldeployment import Failover
from meridian.placement.types import Hold, Move, MoveKind, Observed

# order in which intended shrinks are matched to new replicas: the most urgent reason first
KIND_ORDER: tuple[MoveKind, ...] = ("Evict", "Failover", "Drain", "Capacity", "Rebalance", "Scale")
# a hold whose region never reports more capacity is lifted after this long, to try again (surge first)
PROBE_AFTER_MIN_SECONDS = 300
PROBE_AFTER_FACTOR = 5


@dataclass(frozen=True)
class Unschedulable:
    """Replicas of one region the scheduler cannot place, for how long, and whether failover is due."""

    count: int
    seconds: int
    overdue: bool

    def describe(self) -> str:
        return f"{self.count} replica{'' if self.count == 1 else 's'} unschedulable for {self.seconds}s"


def unschedulable(failover: Failover, observed: Observed) -> dict[str, Unschedulable]:
    """Per region: unschedulable replicas, and overdue when failover is enabled and the wait is over.

    A region without a `since` time is taken as having just started waiting.
    """
    out: dict[str, Unschedulable] = {}
    for region in sorted(observed.unschedulable):
        count = min(observed.unschedulable[region], observed.replicas.get(region, 0))
        if count <= 0:
            continue
        elapsed = max(0.0, observed.now - observed.unschedulable_since.get(region, observed.now))
        due = failover.enabled and elapsed >= failover.unschedulable_seconds
        out[region] = Unschedulable(count, int(elapsed), due)
    return out


def hold_seconds(failover: Failover) -> float:
    """How long a hold lasts when no capacity is seen coming back: then the region is tried again."""
    return max(PROBE_AFTER_MIN_SECONDS, PROBE_AFTER_FACTOR * failover.unschedulable_seconds)


def next_change(failover: Failover, observed: Observed, held: Mapping[str, Hold]) -> float | None:
    """Seconds until the clock alone changes the plan: a wait in `observed` runs out, or one of the
    `held` regions is tried again. No event says so, so the caller looks again then."""
    if not failover.enabled:
        return None
    ends = [
        observed.unschedulable_since[region] + failover.unschedulable_seconds - observed.now
        for region, count in observed.unschedulable.items()
        if count and region in observed.unschedulable_since
    ]
    ends += [hold.since + hold_seconds(failover) - observed.now for hold in held.values()]
    left = [t for t in ends if t > 0]
    return min(left) if left else None


def holds(
    failover: Failover,
    observed: Observed,
    waits: Mapping[str, Unschedulable],
    capacity: Mapping[str, int | None],
    scheduled: Mapping[str, int],
) -> dict[str, Hold]:
    """Failover holds after this pass: kept ones, minus those whose capacity came back, plus new ones.

    `capacity` is replicas that fit per qualifying region (None: unknown); regions not in it lose
    their hold (no longer qualifying: draining takes over).
    """
    if not failover.enabled:
        return {}
    probe_after = hold_seconds(failover)
    out: dict[str, Hold] = {}
    for region, hold in sorted(observed.held.items()):
        if region not in capacity:
            continue
        fits = capacity[region]
        if fits is not None and (hold.capacity is None or fits > hold.capacity):
            continue  # capacity came back
        if observed.now - hold.since >= probe_after:
            continue
        out[region] = hold
    for region, wait in waits.items():
        if wait.overdue and region in capacity:
            keep = scheduled.get(region, 0)
            if region in out:
                keep = min(keep, out[region].replicas)
            out[region] = Hold(keep, capacity[region], observed.now)
    return out


def transition(
    current: Mapping[str, int],
    target: Mapping[str, int],
    ready: Mapping[str, int],
    *,
    evict: Collection[str],
    drain_first: Collection[str],
    surge: int,
) -> dict[str, int]:
    """The next step from `current` toward `target` that keeps ready capacity (see the module docstring).

    `ready` is per region (at most `current`); regions in `evict` go to 0 now; shrinking regions in
    `drain_first` are lowered before the others.
    """
    names = sorted(set(current) | set(target))
    goal = sum(target.values())
    step: dict[str, int] = {}
    for n in names:
        cur, want = current.get(n, 0), target.get(n, 0)
        if n in evict:
            step[n] = 0
        elif want >= cur:
            step[n] = cur  # raised below, within the surge allowance
        else:  # replicas that are not ready go now: removing them costs no ready capacity
            step[n] = max(want, min(cur, ready.get(n, 0)))

    # lower first, only as far as enough stays ready and no further than the goal; then raise
    keep = min(goal, sum(ready.get(n, 0) for n in names if n not in evict))
    budget = sum(min(ready.get(n, 0), step[n]) for n in names) - keep
    shrinking = sorted(
        (n for n in names if step[n] > target.get(n, 0)),
        key=lambda n: (n not in drain_first, -(step[n] - target.get(n, 0)), n),
    )
    for n in shrinking:
        over = sum(step.values()) - goal
        if budget <= 0 or over <= 0:
            break
        cut = min(step[n] - target.get(n, 0), budget, over)
        step[n] -= cut
        budget -= cut

    deficits = {n: target.get(n, 0) - step[n] for n in names if target.get(n, 0) > step[n]}
    allowance = max(0, goal + surge - sum(step.values()))
    for n, k in _level(deficits, allowance).items():
        step[n] += k
    return {n: k for n, k in step.items() if k > 0}


def _level(deficits: Mapping[str, int], amount: int) -> dict[str, int]:
    """Give `amount` to the largest deficits first (leveling them down), ties by name."""
    if amount >= sum(deficits.values()):
        return dict(deficits)
    if amount <= 0:
        return {}
    lo, hi = 0, max(deficits.values())  # smallest level L with sum(max(0, d - L)) <= amount
    while lo < hi:
        mid = (lo + hi) // 2
        if sum(max(0, d - mid) for d in deficits.values()) <= amount:
            hi = mid
        else:
            lo = mid + 1
    give = {n: max(0, d - lo) for n, d in deficits.items()}
    left = amount - sum(give.values())
    for n in sorted(n for n, d in deficits.items() if d >= lo):
        if left <= 0:
            break
        give[n] += 1
        left -= 1
    return {n: k for n, k in give.items() if k > 0}


def moves(
    current: Mapping[str, int],
    step: Mapping[str, int],
    target: Mapping[str, int],
    why: Mapping[str, tuple[MoveKind, str]],
) -> tuple[Move, ...]:
    """What this step changes, as moves for Events: new replicas are matched to the regions meant to
    shrink (most urgent reason first, then name), whether or not those have shrunk yet.

    `why` gives, for every region meant to shrink, the kind of move and a sentence.
    """
    names = sorted(set(current) | set(step))
    grown = {n: step.get(n, 0) - current.get(n, 0) for n in names if step.get(n, 0) > current.get(n, 0)}
    lowered = {n: current.get(n, 0) - step.get(n, 0) for n in names if current.get(n, 0) > step.get(n, 0)}
    meant = {n: current.get(n, 0) - target.get(n, 0) for n in names if current.get(n, 0) > target.get(n, 0)}
    sources = sorted(meant, key=lambda n: (KIND_ORDER.index(why.get(n, ("Rebalance", ""))[0]), n))
    out: list[Move] = []
    for dst in sorted(grown):
        need = grown[dst]
        for src in sources:
            n = min(need, meant[src])
            if n <= 0:
                continue
            meant[src] -= n
            need -= n
            now = min(n, lowered.get(src, 0))
            lowered[src] = lowered.get(src, 0) - now
            kind, reason = why.get(src, ("Rebalance", f"rebalance from {src}"))
            if now < n:
                reason += f"; {src} keeps {n - now} until {dst} has them ready (surge first)"
            out.append(Move(src, dst, n, reason, kind))
            if need == 0:
                break
        if need:
            out.append(Move("", dst, need, f"{need} new replica{'' if need == 1 else 's'} in {dst}", "Scale"))
    for src in sorted(n for n, k in lowered.items() if k > 0):
        kind, reason = why.get(src, ("Scale", "scale down"))
        out.append(Move(src, "", lowered[src], f"{lowered[src]} removed from {src}: {reason}", kind))
    return tuple(out)
