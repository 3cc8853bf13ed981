"""Start-up failures that waiting cannot fix end `meridian run` at once, non-zero, saying why."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_a_metrics_port_in_use_exits_non_zero_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "MERIDIAN_METRICS_PORT": str(port), "MERIDIAN_LOG_FORMAT": "json"}
        done = subprocess.run(
            [sys.executable, "-m", "meridian.cli", "run"], env=env, capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 1
    assert "cannot serve metrics" in done.stderr and str(port) in done.stderr
