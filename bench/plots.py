"""PNG plots of the autoscaling benchmark (matplotlib): each family's frontier, and a day of each policy.

- autoscale-frontiers-<trace>.png: replica-hours against SLO-violation minutes for every setting, the
  frontier of each family drawn as a line, Meridian's documented setting ringed.
- autoscale-day-<trace>.png: over the day, the request rate, the replicas and the p95 time to first
  token (10-minute maxima of the per-minute p95) of Meridian's documented setting and, for the
  in-flight (concurrency), GPU and KV-cache baselines and the clairvoyant reference, the cheapest setting that
  misses the SLO for no more minutes (else the one that misses it least). The HPA on the queue
  metrics swings between its bounds and would flatten the others' lines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import frontier

SWINGING = ("hpa-pendingRequests", "hpa-queueComputeRatio")  # between their bounds at any target
REFERENCE_LABELS = {
    "nowcast": " (reference: knows the work in flight now)",
    "clairvoyant": " (reference: knows it a cold start ahead)",
}
COLORS = {
    "meridian": "#d62728",
    "hpa-inFlightRequests": "#1f77b4",
    "hpa-gpuUtilization": "#2ca02c",
    "hpa-kvCacheUtilization": "#9467bd",
    "hpa-pendingRequests": "#8c564b",
    "hpa-queueComputeRatio": "#e377c2",
    "clairvoyant": "#7f7f7f",
    "nowcast": "#000000",
}


def _representatives(results: Sequence[Any], default_target: float) -> list[Any]:
    chosen = [r for r in results if r.setup.family == "meridian" and r.setup.target == default_target]
    budget = chosen[0].slo_violation_minutes if chosen else 0
    out = list(chosen)
    for family in sorted({r.setup.family for r in results} - {"meridian"}):
        mine = [r for r in results if r.setup.family == family]
        within = [r for r in mine if r.slo_violation_minutes <= budget]
        pick = (
            min(within, key=lambda r: r.replica_hours)
            if within
            else min(mine, key=lambda r: (r.slo_violation_minutes, r.replica_hours))
        )
        out.append(pick)
    return out


def frontiers(path: Path, trace: str, results: Sequence[Any], default_target: float) -> None:
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for family in sorted({r.setup.family for r in results}):
        mine = [r for r in results if r.setup.family == family]
        color = COLORS.get(family, "black")
        dashed = family in ("nowcast", "clairvoyant")
        ax.scatter([r.replica_hours for r in mine], [r.slo_violation_minutes for r in mine], color=color, s=14)
        front = frontier.frontier(r.point for r in mine)
        ax.plot(
            [p.replica_hours for p in front],
            [p.violation_minutes for p in front],
            color=color,
            linestyle="--" if dashed else "-",
            label=family + (REFERENCE_LABELS.get(family, "")),
        )
        for r in mine:
            if family == "meridian" and r.setup.target == default_target:
                ax.scatter([r.replica_hours], [r.slo_violation_minutes], s=120, facecolors="none", edgecolors=color)
    near = [r.replica_hours for r in results if r.setup.family not in SWINGING]
    if near:  # the HPA rule on the queue metrics costs several times the rest: say so, keep the rest legible
        ax.set_xlim(0.9 * min(near), 1.1 * max(near))
        ax.annotate(
            "HPA on pendingRequests and queueComputeRatio: off to the right",
            (0.02, 0.02),
            xycoords="axes fraction",
            fontsize=8,
        )
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("replica-hours (GPU replicas × hours billed)")
    ax.set_ylabel("SLO-violation minutes (p95 TTFT > 2 s)")
    ax.set_title(f"Autoscaling frontiers, {trace} trace (lower left is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def day(
    path: Path,
    trace: Any,
    results: Sequence[Any],
    simulate: Callable[..., Any],
    seed: int,
    default_target: float,
) -> None:
    skip = (*SWINGING, "nowcast")  # off the scale / a reference
    picks = [r for r in _representatives(results, default_target) if r.setup.family not in skip]
    fig, (ax_rate, ax_rep, ax_wait) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    hours = [i / 60 for i in range(len(trace.rate_per_minute))]
    ax_rate.plot(hours, trace.rate_per_minute, color="black", linewidth=0.8)
    ax_rate.set_ylabel("requests/s")
    for r in picks:
        timeline: list[dict[str, Any]] = []
        simulate(trace, r.setup, seed, timeline)
        evals = [e for e in timeline if "t" in e]
        minutes = [e for e in timeline if "minute" in e]
        color = COLORS.get(r.setup.family, "black")
        label = f"{r.setup.label}: {r.replica_hours:.0f} replica-h, {r.slo_violation_minutes} min over SLO"
        every = evals[::4]  # one point a minute
        ax_rep.plot([e["t"] / 3600 for e in every], [e["replicas"] for e in every], color=color, lw=0.8, label=label)
        worst = [max((m["p95_ttft"] for m in minutes[i : i + 10]), default=0.0) for i in range(0, len(minutes), 10)]
        ax_wait.plot([i / 60 for i in range(0, len(minutes), 10)], [min(w, 60.0) for w in worst], color=color, lw=0.8)
    ax_rep.set_ylabel("replicas")
    ax_rep.legend(fontsize=7, loc="upper left")
    ax_wait.axhline(2.0, color="black", linestyle=":", linewidth=0.8)
    ax_wait.set_yscale("log")
    ax_wait.set_ylabel("p95 TTFT, s (10-min max)")
    ax_wait.set_xlabel("hour of day")
    ax_rate.set_title(f"A day of autoscaling, {trace.name} trace")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def draw(
    out: Path, trace: Any, results: Sequence[Any], simulate: Callable[..., Any], seed: int, default_target: float
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    frontiers(out / f"autoscale-frontiers-{trace.name}.png", trace.name, results, default_target)
    day(out / f"autoscale-day-{trace.name}.png", trace, results, simulate, seed, default_target)
