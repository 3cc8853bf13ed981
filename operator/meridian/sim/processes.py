"""Starting and stopping control-plane processes so that any later process can stop them too.

Each component runs in its own session (process group), so signals from a terminal do not reach it
and `sim down` can stop it and anything it forked as a group. A pid alone could be reused by the
time `down` runs, so each process is identified by pid plus its kernel start time.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel


class ProcessRecord(BaseModel):
    """What `down` needs to find and stop one component: its pid, group and start time."""

    name: str
    pid: int
    pgid: int
    start_time: int
    log: str
    args: list[str]


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot), or None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses; fields after it are plain
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[19])


def _state(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()[0]


def alive(rec: ProcessRecord) -> bool:
    """The recorded process still runs (not a zombie, and not a new process that reused the pid)."""
    st = _state(rec.pid)
    return st is not None and st not in ("Z", "X") and start_time(rec.pid) == rec.start_time


def group_members(pgid: int) -> list[int]:
    """Live pids in a process group, found by scanning /proc (works for groups we did not start)."""
    members: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


PR_SET_PDEATHSIG = 1


def tie_to_parent() -> None:
    """In the child before exec (a Popen preexec_fn): ask the kernel to SIGKILL us when the parent dies.

    A test session killed by a timeout then cannot leak a control plane or an operator; `meridian
    sim up` (which exits and leaves the cluster running) does not use it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(
    name: str,
    args: Sequence[str],
    log_dir: Path,
    env: dict[str, str] | None = None,
    die_with_parent: bool = False,
) -> ProcessRecord:
    """Start args in a new session with stdout and stderr appended to log_dir/<name>.log."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            close_fds=True,
            preexec_fn=tie_to_parent if die_with_parent else None,
        )
    started = start_time(proc.pid)
    return ProcessRecord(
        name=name,
        pid=proc.pid,
        pgid=proc.pid,
        start_time=started if started is not None else -1,
        log=str(log_path),
        args=list(args),
    )


def _reap(pid: int) -> None:
    """Collect the exit status if pid is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _signal_group(rec: ProcessRecord, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(rec.pgid, sig)


def kill(rec: ProcessRecord) -> None:
    """SIGKILL the process group at once and wait until its leader is gone."""
    for _ in range(200):
        _reap(rec.pid)
        if not alive(rec):
            return
        _signal_group(rec, signal.SIGKILL)
        time.sleep(0.05)


def stop(rec: ProcessRecord, grace: float = 10.0) -> bool:
    """SIGTERM the process group, wait up to grace seconds, then SIGKILL; True when nothing is left.

    The group is signalled only while its leader is the recorded process, so a reused pid of an
    unrelated program is never touched. After the leader exits, members it left in its group are
    killed too, then the group is checked to be empty.
    """
    _reap(rec.pid)
    if not alive(rec):
        return True
    _signal_group(rec, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(rec.pid)
        if not alive(rec):
            break
        time.sleep(0.05)
    for _ in range(100):
        _reap(rec.pid)
        if not alive(rec) and not group_members(rec.pgid):
            return True
        _signal_group(rec, signal.SIGKILL)
        time.sleep(0.05)
    return False


def rss_mib(pid: int) -> float | None:
    """Resident memory (VmRSS) of pid in MiB, or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
