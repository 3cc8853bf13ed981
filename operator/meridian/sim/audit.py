"""What the operator asked of the API server, read from the simulated control plane's audit log.

The API server's own `apiserver_request_total` has no label for the client, so the count by user
agent comes from the audit log instead: every finished request with its verb, resource and agent.
Meridian's own client sends `meridian/<version>`; kopf's (ModelDeployment watches and handler
patches) sends `kopf/<version>`. Both are the operator.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

OPERATOR_AGENTS = ("meridian/", "kopf/")
WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def operator_requests(
    lines: Iterable[str], since: float = 0.0, until: float = float("inf"), agents: tuple[str, ...] = OPERATOR_AGENTS
) -> Counter[tuple[str, str]]:
    """(verb, resource[/subresource]) → count of the operator's requests received in [since, until)."""
    out: Counter[tuple[str, str]] = Counter()
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut by rotation
        if not str(event.get("userAgent", "")).startswith(agents):
            continue
        at = _seconds(str(event.get("requestReceivedTimestamp") or event.get("stageTimestamp")))
        if not since <= at < until:
            continue
        ref = event.get("objectRef") or {}
        resource = str(ref.get("resource") or event.get("requestURI", "?"))
        if ref.get("subresource"):
            resource += f"/{ref['subresource']}"
        out[(str(event.get("verb")), resource)] += 1
    return out


def read(path: Path, since: float = 0.0, until: float = float("inf")) -> Counter[tuple[str, str]]:
    """The operator's requests in the audit log at `path` (and its one rotated backup)."""
    files = [*sorted(path.parent.glob(f"{path.stem}-*{path.suffix}")), path]
    out: Counter[tuple[str, str]] = Counter()
    for f in files:
        if f.exists():
            with f.open(errors="replace") as handle:
                out += operator_requests(handle, since, until)
    return out


def summary(counts: Counter[tuple[str, str]]) -> dict[str, int]:
    """Totals by verb class: list, get, watch, write."""
    out = {"list": 0, "get": 0, "watch": 0, "write": 0}
    for (verb, _), n in counts.items():
        out["write" if verb in WRITES else verb if verb in out else "get"] += n
    return out
