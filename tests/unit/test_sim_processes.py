"""Stopping a recorded process stops its whole group, and a reused pid is never mistaken for it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from meridian.sim import processes

pytestmark = pytest.mark.unit


def test_stop_kills_the_group_including_children_that_ignore_sigterm(tmp_path: Path) -> None:
    # the leader forks a child that ignores SIGTERM and stays in the group
    script = "trap '' TERM; sleep 300 & trap - TERM; sleep 300"
    rec = processes.spawn("sh", ["sh", "-c", script], tmp_path)
    deadline = time.monotonic() + 5
    while len(processes.group_members(rec.pgid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes.alive(rec)
    assert len(processes.group_members(rec.pgid)) >= 2
    assert processes.stop(rec, grace=1.0)
    assert not processes.alive(rec)
    assert processes.group_members(rec.pgid) == []


def test_a_record_with_another_start_time_is_not_alive(tmp_path: Path) -> None:
    rec = processes.spawn("sleep", ["sleep", "30"], tmp_path)
    try:
        impostor = rec.model_copy(update={"start_time": rec.start_time + 1})
        assert not processes.alive(impostor)
        assert processes.stop(impostor)  # not ours: nothing is signalled
        assert processes.alive(rec)
    finally:
        processes.stop(rec)
