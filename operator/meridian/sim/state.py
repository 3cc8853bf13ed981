"""workdir/state.json: what a running control plane consists of, for `status` and `down` in other processes."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from meridian.sim.processes import ProcessRecord

STATE_FILE = "state.json"


class State(BaseModel):
    """One control plane: its kubeconfig, ports, processes in start order, and the fleet applied."""

    kubeconfig: str
    existing_cluster: bool = False
    apiserver_url: str = ""
    ports: dict[str, int] = Field(default_factory=dict)
    processes: list[ProcessRecord] = Field(default_factory=list)
    fleet: str = ""
    members: list[str] = Field(
        default_factory=list, description="Workdirs of member control planes (fleet topology: clusters)."
    )


def path(workdir: Path) -> Path:
    return workdir / STATE_FILE


def load(workdir: Path) -> State | None:
    """The recorded state, or None when nothing was started in workdir."""
    p = path(workdir)
    if not p.is_file():
        return None
    return State.model_validate_json(p.read_text())


def save(workdir: Path, state: State) -> None:
    """Write atomically, so a concurrent `status` never reads half a file."""
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = path(workdir).with_suffix(".tmp")
    tmp.write_text(state.model_dump_json(indent=2))
    os.replace(tmp, path(workdir))


def remove(workdir: Path) -> None:
    path(workdir).unlink(missing_ok=True)
