"""Pytest fixtures for a real Triton server (meridian.sim.triton). Register with pytest_plugins.

Without the Triton binary the tests that use these fixtures are skipped, with the reason; under
CI (CI=true) they fail instead, so a broken install can never turn the suite green.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from meridian.api.modeldeployment import ModelDeployment
from meridian.runtime.layout import VERSION
from meridian.runtime.repository import model_repository
from meridian.sim.triton import (
    TritonInstall,
    TritonNotAvailable,
    TritonServer,
    doubling_model,
    find_triton,
    prepare_backends,
    write_repository,
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def triton_install() -> TritonInstall:
    """The wheel's Triton for this interpreter; skip (or fail under CI) when it is not there."""
    try:
        return find_triton()
    except TritonNotAvailable as e:
        if in_ci():
            pytest.fail(f"Triton is required in CI: {e}")
        pytest.skip(f"no Triton server available: {e}")


@pytest.fixture(scope="session")
def triton_backends(triton_install: TritonInstall, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One prepared --backend-directory shared by every server of the session."""
    return prepare_backends(triton_install, tmp_path_factory.mktemp("triton-backends"))


class TritonFactory(Protocol):
    """Makes a TritonServer (not yet started); `backends` replaces the shared --backend-directory."""

    def __call__(self, backends: Path | None = None) -> TritonServer: ...


@pytest.fixture
def triton_server(triton_install: TritonInstall, triton_backends: Path, tmp_path: Path) -> Iterator[TritonFactory]:
    """A factory of TritonServer objects (not yet started); every one is stopped at teardown."""
    servers: list[TritonServer] = []

    def make(backends: Path | None = None) -> TritonServer:
        server = TritonServer(tmp_path / f"triton-{len(servers)}", triton_install, backends or triton_backends)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def python_deployment(name: str = "double", max_batch_size: int = 8) -> ModelDeployment:
    """A python-format ModelDeployment, as a user would write it."""
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": name, "namespace": "test"},
            "spec": {
                "model": {"format": "python", "storageUri": f"pvc://models/{name}"},
                "runtime": {"maxBatchSize": max_batch_size},
            },
        }
    )


def python_repository(root: Path, md: ModelDeployment, model_py: str | None = None) -> Path:
    """The repository a pod would hold: Meridian's configs plus the model.py storageUri would bring."""
    files = dict(model_repository(md))
    files[f"{md.model_name}/{VERSION}/model.py"] = model_py if model_py is not None else doubling_model()
    return write_repository(root, files)


@pytest.fixture
def doubling_server(triton_server: TritonFactory, tmp_path: Path) -> TritonServer:
    """A started server serving the python-format model "double" (OUTPUT0 = 2 × INPUT0)."""
    repo = python_repository(tmp_path / "repository", python_deployment())
    return triton_server().start(repo)
