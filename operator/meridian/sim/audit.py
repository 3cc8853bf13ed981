"""What the operator asked of the API server, read from the simulated control plane's audit log.

The API server's own `apiserver_request_total` has no label for the client, so the count by user
agent comes from the audit log instead: every finished request with its verb, resource and agent.
Meridian's own client sends `meridian/<version>`; kopf's (ModelDeployment watches and handler
patches) sends `kopf/<version>`. Both are the operator.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

OPERATOR_AGENTS = ("meridian/", "kopf/")
WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Request:
    """One finished request of the operator, as the audit log recorded it."""

    verb: str
    resource: str  # resource[/subresource]
    namespace: str
    name: str
    agent: str
    at: float

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.verb} {self.resource} {where} ({self.agent.split(' ')[0]})"


def operator_requests(
    lines: Iterable[str], since: float = 0.0, until: float = float("inf"), agents: tuple[str, ...] = OPERATOR_AGENTS
) -> Iterator[Request]:
    """The operator's requests received in [since, until)."""
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut by rotation
        agent = str(event.get("userAgent", ""))
        if not agent.startswith(agents):
            continue
        at = _seconds(str(event.get("requestReceivedTimestamp") or event.get("stageTimestamp")))
        if not since <= at < until:
            continue
        ref = event.get("objectRef") or {}
        resource = str(ref.get("resource") or event.get("requestURI", "?"))
        if ref.get("subresource"):
            resource += f"/{ref['subresource']}"
        yield Request(
            str(event.get("verb")), resource, str(ref.get("namespace", "")), str(ref.get("name", "")), agent, at
        )


def requests(path: Path, since: float = 0.0, until: float = float("inf")) -> list[Request]:
    """The operator's requests in the audit log at `path` (and its rotated backups), oldest first."""
    files = [*sorted(path.parent.glob(f"{path.stem}-*{path.suffix}")), path]
    out: list[Request] = []
    for f in files:
        if f.exists():
            with f.open(errors="replace") as handle:
                out.extend(operator_requests(handle, since, until))
    return sorted(out, key=lambda r: r.at)


def read(path: Path, since: float = 0.0, until: float = float("inf")) -> Counter[tuple[str, str]]:
    """(verb, resource[/subresource]) → count of the operator's requests in the audit log at `path`."""
    return Counter((r.verb, r.resource) for r in requests(path, since, until))


def summary(counts: Counter[tuple[str, str]]) -> dict[str, int]:
    """Totals by verb class: list, get, watch, write."""
    out = {"list": 0, "get": 0, "watch": 0, "write": 0}
    for (verb, _), n in counts.items():
        out["write" if verb in WRITES else verb if verb in out else "get"] += n
    return out
