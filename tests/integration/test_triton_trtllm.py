"""The TensorRT-LLM repository Meridian generates, loaded and served by a real Triton on CPU.

The pod's start-up is replayed: the prepare-repository script lays out /models from an image-like
template and checks an engine directory, the generated configs are added as the ConfigMap would,
and tritonserver runs with the flags rank 0 gets. Only the parts that need a GPU or a tokenizer
are stand-ins (tests/models/trtllm): the tensorrtllm backend (as a Python-based backend that
insists on the parameters the real one reads unconditionally) and the image's model.py files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import tritonclient.http as httpclient
from tests.fixtures_triton import TritonFactory

from meridian.api.modeldeployment import ModelDeployment
from meridian.runtime.launch import rank_args
from meridian.runtime.prepare import prepare_script
from meridian.runtime.repository import model_repository
from meridian.runtime.trtllm import COMPONENTS, PYTHON_COMPONENTS
from meridian.sim.triton import TritonInstall, TritonServer, prepare_backends, write_repository

pytestmark = pytest.mark.integration

STAND_INS = Path(__file__).resolve().parents[1] / "models" / "trtllm"
SERVER_FLAGS = ("--model-repository=", "--http-port=", "--grpc-port=", "--metrics-port=")


def deployment(streaming: bool, batching: str = "inflight") -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "chat", "namespace": "bank-a"},
            "spec": {
                "model": {
                    "format": "tensorrt-llm",
                    "storageUri": "s3://models/chat/engine/",
                    "tokenizerUri": "hf://acme/chat-tokenizer@v1",
                },
                "runtime": {"maxBatchSize": 4, "streaming": streaming, "batching": batching},
            },
        }
    )


def pod_filesystem(root: Path) -> dict[str, Path]:
    """What the downloads and the Triton image would have put on disk: engine, tokenizer, template."""
    engine, tokenizer, template = root / "engine", root / "tokenizer", root / "template"
    engine.mkdir(parents=True)
    mapping = {"world_size": 1, "tp_size": 1, "pp_size": 1}
    (engine / "config.json").write_text(json.dumps({"pretrained_config": {"mapping": mapping}}))
    (engine / "rank0.engine").write_bytes(b"\0")
    tokenizer.mkdir()
    (tokenizer / "tokenizer.json").write_text("{}")
    for name in PYTHON_COMPONENTS:
        (template / name / "1").mkdir(parents=True)
        shutil.copy(STAND_INS / name / "model.py", template / name / "1" / "model.py")
    return {"engine": engine, "tokenizer": tokenizer, "template": template, "repository": root / "models"}


def start(md: ModelDeployment, triton_server: TritonFactory, install: TritonInstall, root: Path) -> TritonServer:
    paths = pod_filesystem(root)
    prepare = prepare_script(
        md,
        template_dir=str(paths["template"]),
        repository=str(paths["repository"]),
        engine_dir=str(paths["engine"]),
        tokenizer_dir=str(paths["tokenizer"]),
        python=sys.executable,
    )
    env = {"PATH": "/usr/bin:/bin", "TERMINATION_LOG": str(root / "termination-log"), "TMPDIR": str(root)}
    done = subprocess.run(["/bin/sh", "-c", prepare], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    write_repository(paths["repository"], model_repository(md))  # the ConfigMap's files

    backends = prepare_backends(install, root / "backends")
    (backends / "tensorrtllm").mkdir()
    shutil.copy(STAND_INS / "tensorrtllm_backend" / "model.py", backends / "tensorrtllm" / "model.py")
    server = triton_server(backends)
    flags = [a for a in rank_args(md, 0) if not a.startswith(SERVER_FLAGS)]
    assert "--disable-auto-complete-config" in flags, "the configs must be complete on their own"
    return server.start(paths["repository"], extra_args=flags)


def post(url: str, body: dict[str, Any]) -> str:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.read().decode())


@pytest.mark.parametrize("batching", ["inflight", "static"])
def test_the_generated_repository_loads_and_the_ensemble_generates(
    triton_server: TritonFactory, triton_install: TritonInstall, tmp_path: Path, batching: str
) -> None:
    server = start(deployment(streaming=False, batching=batching), triton_server, triton_install, tmp_path)
    client = httpclient.InferenceServerClient(server.http_address)
    try:
        for model in ("chat", *COMPONENTS):
            assert client.is_model_ready(model), f"{model} is not ready"
        assert client.get_model_config("chat")["platform"] == "ensemble"
    finally:
        client.close()
    answer = json.loads(
        post(f"{server.http_url}/v2/models/chat/generate", {"text_input": "hello world", "max_tokens": 5})
    )
    assert answer["text_output"] == "HELLO", "max_tokens reached the backend through preprocessing"


def test_streaming_makes_the_ensemble_decoupled_and_tokens_arrive_one_by_one(
    triton_server: TritonFactory, triton_install: TritonInstall, tmp_path: Path
) -> None:
    server = start(deployment(streaming=True), triton_server, triton_install, tmp_path)
    body = post(f"{server.http_url}/v2/models/chat/generate_stream", {"text_input": "hey", "max_tokens": 8})
    chunks = [json.loads(line[len("data: ") :]) for line in body.splitlines() if line.startswith("data: ")]
    assert [c["text_output"] for c in chunks] == ["H", "E", "Y"]
