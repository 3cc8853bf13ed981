"""Stopping a process a test started, by its own pid: politely first, then for sure."""

from __future__ import annotations

import subprocess


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, up to 10 s to exit, then SIGKILL; always reaped."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
