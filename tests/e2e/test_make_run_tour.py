"""`make run` on a fresh machine: the tour it prints works as printed, step by step, in a second
terminal; Ctrl-C then stops the operator and the simulated fleet, leaving no process behind.

It runs hack/run.sh (what `make run` runs after installing) with no KUBECONFIG, as a new user does,
and each printed command in a fresh shell that has only the tour's own `export` line."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.fixtures_cluster import REPO, unavailable
from tests.fixtures_operator import free_port

from meridian.sim import binaries, processes

pytestmark = pytest.mark.e2e
TOUR_START = "A tour, in another terminal"


def printed_tour(out: Path, run: subprocess.Popen[bytes], timeout: float = 300) -> list[str]:
    """The tour's command lines, once run.sh has printed all of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = out.read_text(errors="replace")
        if TOUR_START in text:
            block = text.split(TOUR_START, 1)[1].split("\n\n", 2)
            if len(block) == 3:  # the blank line after the heading, then the commands up to the next
                return [line.strip() for line in block[1].splitlines() if line.strip()]
        assert run.poll() is None, f"make run exited ({run.returncode}):\n{text[-3000:]}"
        time.sleep(0.5)
    pytest.fail(f"no tour printed within {timeout:.0f}s:\n{out.read_text()[-3000:]}")


def test_the_tour_make_run_prints_works_as_printed(tmp_path: Path) -> None:
    if os.environ.get("USE_EXISTING_CLUSTER", "").lower() == "true":
        pytest.skip("make run against an existing cluster prints no tour")
    try:
        bin_dir = binaries.locate().kubectl.parent
    except binaries.BinariesMissing as e:
        unavailable(str(e))
    workdir = tmp_path / "sim"
    out = tmp_path / "make-run.out"
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "USE_EXISTING_CLUSTER")}
    env |= {"MERIDIAN_BIN_DIR": str(bin_dir), "MERIDIAN_METRICS_PORT": str(free_port())}
    with out.open("wb") as sink:
        run = subprocess.Popen(
            ["hack/run.sh", "examples/fleets/eu.yaml", str(workdir)],
            cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    shell_env = {k: v for k, v in env.items() if not k.startswith("MERIDIAN_")}
    try:
        tour = printed_tour(out, run)
        export, steps = tour[0], tour[1:]
        assert export.startswith("export KUBECONFIG="), tour
        said: dict[str, str] = {}
        for step in steps:
            command = step.split("  #", 1)[0].strip()
            done = subprocess.run(
                ["bash", "-c", f"{export}\n{command}"],
                cwd=REPO, env=shell_env, capture_output=True, text=True, timeout=240,
            )  # fmt: skip
            output = done.stdout + done.stderr
            if "# refused" in step:
                assert done.returncode != 0, f"{command!r} was not refused:\n{output}"
                assert "residency" in output, output
            else:
                assert done.returncode == 0, f"{command!r} failed ({done.returncode}):\n{output}"
            said[command] = output
            assert run.poll() is None, f"make run exited ({run.returncode}):\n{out.read_text()[-3000:]}"

        deploys = said["kubectl get deploy -n bank-a -o wide"]
        assert "llama-3-8b-gra-" in deploys and "llama-3-8b-rbx-" in deploys, deploys
        check = said["meridian residency check -n bank-a"]
        assert check.count("llama-3-8b") >= 2 and "gra" in check, check
        assert "gra" in said["kubectl get events -n bank-a --field-selector involvedObject.name=llama-3-8b"]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)  # Ctrl-C in make run's terminal
        try:
            run.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
            subprocess.run(["meridian", "sim", "down", "--workdir", str(workdir)], env=env, timeout=120)
    assert run.returncode in (0, 130, -signal.SIGINT), out.read_text()[-3000:]
    assert not (workdir / "state.json").exists(), "Ctrl-C left the simulated fleet running"
    assert processes.group_members(run.pid) == [], "Ctrl-C left a process of make run behind"
