"""A real Prometheus (Debian's package) for tests: the binary, and one server per test scraping
what the test names, every second."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.fixtures_operator import free_port
from tests.fixtures_triton import in_ci
from tests.processes import stop


@pytest.fixture
def prometheus(tmp_path: Path) -> tuple[str, Path]:
    """The prometheus binary and a work directory; the test writes its scrape config by starting it."""
    binary = shutil.which("prometheus")
    if binary is None:
        message = "prometheus is not installed (Debian package `prometheus`; .ci/run installs it)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return binary, tmp_path


def start_prometheus(
    binary: str, workdir: Path, static_configs: list[dict[str, Any]], job: str = "triton"
) -> tuple[subprocess.Popen[bytes], str]:
    """Prometheus on a free port scraping `static_configs` every second; returns it and its URL once ready."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": job, "static_configs": static_configs}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/-/ready", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError((workdir / "prometheus.log").read_text()[-2000:])
