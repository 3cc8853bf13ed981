"""A real Triton server for tests and the local demo, from the nvidia-pytriton wheel.

The wheel ships tritonserver 2.51 with the Python backend, which runs on CPU. Run directly (not
through pytriton), the binary needs:
  - LD_LIBRARY_PATH with the wheel's nvidia_pytriton.libs and the directory of this interpreter's
    shared libpython (the Python backend stub links against libpython3.X.so.1.0);
  - a backend directory holding libtriton_python.so, triton_python_backend_utils.py and the stub
    built for this Python version (the wheel keeps one stub per version in python_backend_stubs/),
    passed with --backend-directory. pytriton prepares the same layout in its workspace.
The stub then embeds this interpreter, so model.py sees this environment's packages (numpy).

Only the loopback address is used by default; ports are free ones unless given.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path

from meridian.runtime.failures import triton_failure_reason

READY_TIMEOUT = 90.0


class TritonNotAvailable(RuntimeError):
    """The Triton binary or what it needs is missing; the message says what."""


class TritonStartError(RuntimeError):
    """The server exited or never became ready; carries its exit code and log tail."""

    def __init__(self, message: str, exit_code: int | None, log_tail: str) -> None:
        super().__init__(f"{message}\n--- tritonserver log (tail) ---\n{log_tail}")
        self.exit_code = exit_code
        self.log_tail = log_tail


@dataclass(frozen=True)
class TritonInstall:
    """The pieces of the wheel tritonserver needs, found on disk."""

    binary: Path
    libs: Path
    python_backend: Path
    stub: Path
    libpython_dir: Path

    def library_path(self) -> str:
        return f"{self.libs}:{self.libpython_dir}"


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def find_triton() -> TritonInstall:
    """Locate the wheel's Triton pieces for this interpreter; raise TritonNotAvailable saying what is missing."""
    spec = importlib_util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonNotAvailable("the nvidia-pytriton wheel is not installed (pip install nvidia-pytriton)")
    root = Path(next(iter(spec.submodule_search_locations)))
    dist = root / "tritonserver"
    binary = dist / "bin" / "tritonserver"
    libs = root.parent / "nvidia_pytriton.libs"
    backend = dist / "backends" / "python"
    stub = dist / "python_backend_stubs" / python_version() / "triton_python_backend_stub"
    libdir = Path(str(sysconfig.get_config_var("LIBDIR") or ""))
    soname = str(sysconfig.get_config_var("INSTSONAME") or f"libpython{python_version()}.so.1.0")
    for path, what in (
        (binary, "the tritonserver binary"),
        (libs, "the wheel's shared libraries (nvidia_pytriton.libs)"),
        (backend / "libtriton_python.so", "the Python backend"),
        (stub, f"a Python backend stub for Python {python_version()}"),
    ):
        if not path.exists():
            raise TritonNotAvailable(f"{what} is missing: {path} does not exist")
    if not (libdir / soname).exists():
        raise TritonNotAvailable(
            f"no shared libpython ({soname}) in {libdir} (sysconfig LIBDIR): the Python backend stub needs "
            "a Python built with --enable-shared"
        )
    return TritonInstall(binary, libs, backend, stub, libdir)


def prepare_backends(install: TritonInstall, directory: Path) -> Path:
    """A --backend-directory with the Python backend and this Python's stub copied side by side."""
    python = directory / "python"
    python.mkdir(parents=True, exist_ok=True)
    for item in install.python_backend.iterdir():
        if item.is_file():
            shutil.copy2(item, python / item.name)
    shutil.copy2(install.stub, python / "triton_python_backend_stub")
    return directory


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, TimeoutError):
        return 0, ""


class TritonServer:
    """One tritonserver process serving a model repository, logging to a file in workdir.

    Use as a context manager or call start() and stop(). start() returns once /v2/health/ready
    answers 200, or raises TritonStartError (with the exit code, log tail and, when Triton says
    why, a one-line reason) when the server exits or is not ready in time.
    """

    def __init__(self, workdir: Path, install: TritonInstall | None = None, backends: Path | None = None) -> None:
        self.workdir = Path(workdir)
        self.install = install or find_triton()
        self.backends = backends or prepare_backends(self.install, self.workdir / "backends")
        self.log_path = self.workdir / "tritonserver.log"
        self.host = "127.0.0.1"
        self.http_port = self.grpc_port = self.metrics_port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    # addresses ("host:port", as tritonclient takes them) and URLs
    @property
    def http_address(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_address(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.http_address}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def exit_code(self) -> int | None:
        """None while running (or never started)."""
        return None if self._proc is None else self._proc.poll()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def command(self, repository: Path, extra_args: Sequence[str] = ()) -> list[str]:
        return [
            str(self.install.binary),
            f"--model-repository={repository}",
            f"--backend-directory={self.backends}",
            f"--http-address={self.host}",
            f"--grpc-address={self.host}",
            f"--metrics-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            *extra_args,
        ]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = ":".join(filter(None, [self.install.library_path(), env.get("LD_LIBRARY_PATH")]))
        return env

    def start(
        self,
        repository: Path,
        *,
        http_port: int = 0,
        grpc_port: int = 0,
        metrics_port: int = 0,
        host: str = "127.0.0.1",
        extra_args: Sequence[str] = (),
        ready_timeout: float = READY_TIMEOUT,
        wait: bool = True,
    ) -> TritonServer:
        """Start serving repository; ports of 0 are picked free on host. Retries once on a port clash."""
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError("this TritonServer is already running")
        self.host = host
        attempts = 1 if (http_port and grpc_port and metrics_port) else 3
        for attempt in range(attempts):
            self.http_port = http_port or free_port(host)
            self.grpc_port = grpc_port or free_port(host)
            self.metrics_port = metrics_port or free_port(host)
            self._spawn(repository, extra_args)
            if not wait:
                return self
            try:
                self.wait_ready(ready_timeout)
                return self
            except TritonStartError as e:
                clash = "already in use" in e.log_tail.lower()  # a free port taken meanwhile
                if not clash or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _spawn(self, repository: Path, extra_args: Sequence[str]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                self.command(Path(repository), extra_args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                start_new_session=True,  # its Python stubs are stopped with it, as a group
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.exit_code
            if code is not None:
                reason = triton_failure_reason(self.log_text()) or "no reason found in its log"
                raise TritonStartError(f"tritonserver exited with code {code}: {reason}", code, self.log_tail())
            if http_get(f"{self.http_url}/v2/health/ready", timeout=1.0)[0] == 200:
                return
            time.sleep(0.2)
        self.stop()
        raise TritonStartError(f"tritonserver was not ready within {timeout:.0f}s", self.exit_code, self.log_tail())

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the server to exit on its own (e.g. a model that fails to load); its exit code."""
        if self._proc is None:
            raise RuntimeError("not started")
        return self._proc.wait(timeout)

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM the server's process group (Triton then unloads models), SIGKILL after grace seconds."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self._signal(proc.pid, signal.SIGKILL)  # stubs left behind in the group, if any
        return proc.returncode

    @staticmethod
    def _signal(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# A Python-backend model for tests and the simulated fleet: OUTPUT0 = 2 × INPUT0, after sleeping
# `sleep_seconds` per batch so that queueing (and so autoscaling signals) can be produced on purpose.
# It declares its own inputs and outputs in auto_complete_config, as Meridian's python configs expect.
DOUBLING_MODEL = """\
import time

import numpy as np
import triton_python_backend_utils as pb_utils

SLEEP_SECONDS = {sleep!r}


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(config):
        config.add_input({{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [-1]}})
        config.add_output({{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [-1]}})
        return config

    def execute(self, requests):
        if SLEEP_SECONDS:
            time.sleep(SLEEP_SECONDS)
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            out = pb_utils.Tensor("OUTPUT0", (x * 2).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses
"""


def doubling_model(sleep_seconds: float = 0.0) -> str:
    """Source of a model.py that doubles its FP32 input, sleeping sleep_seconds per batch."""
    return DOUBLING_MODEL.format(sleep=float(sleep_seconds))


def write_repository(root: Path, files: dict[str, str]) -> Path:
    """Write {relative path: content} (e.g. runtime.repository.model_repository(md) plus model files)."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def iter_metric(text: str, name: str) -> Iterator[tuple[str, float]]:
    """(labels, value) of every sample of a Prometheus metric in /metrics text."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, _, value = line.rpartition(" ")
            labels = head[len(name) :]
            yield labels, float(value)
