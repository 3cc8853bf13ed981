"""The Triton container's command: one server process per GPU rank, rank 0 facing clients."""

from __future__ import annotations

from typing import Any

import pytest

from meridian.api.modeldeployment import ModelDeployment
from meridian.config import Settings
from meridian.placement.plan import RegionTarget
from meridian.render.deployment import deployment as render_deployment
from meridian.render.service import endpoints, service
from meridian.runtime.launch import metrics_port, triton_command, world_size

pytestmark = pytest.mark.unit


def deployment(
    fmt: str = "tensorrt-llm", tp: int = 1, pp: int = 1, extra_args: list[str] | None = None
) -> ModelDeployment:
    model: dict[str, Any] = {"format": fmt, "storageUri": "s3://models/llama/engine/"}
    if fmt == "tensorrt-llm":
        model["tokenizerUri"] = "hf://meta-llama/Meta-Llama-3-8B-Instruct"
    runtime = {"tensorParallelSize": tp, "pipelineParallelSize": pp, "extraArgs": extra_args or []}
    return ModelDeployment.model_validate(
        {"metadata": {"name": "llama", "namespace": "bank-a"}, "spec": {"model": model, "runtime": runtime}}
    )


def ranks(args: list[str]) -> list[list[str]]:
    """Split mpirun's args into one list per application context (separated by ':')."""
    contexts: list[list[str]] = [[]]
    for arg in args[1:]:  # args[0] is --allow-run-as-root
        if arg == ":":
            contexts.append([])
        else:
            contexts[-1].append(arg)
    return contexts


def triton_pod(md: ModelDeployment) -> dict[str, Any]:
    rendered = render_deployment(md, RegionTarget(region="gra", replicas=1, reason="test"), Settings())
    pod: dict[str, Any] = rendered["spec"]["template"]["spec"]
    return pod


def test_one_gpu_runs_tritonserver_itself_as_pid_1() -> None:
    command, args = triton_command(deployment(tp=1))
    assert command == ["tritonserver"]
    assert "--model-repository=/models" in args
    assert {"--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"} <= set(args)
    assert "--disable-auto-complete-config" in args  # Meridian writes complete tensorrt-llm configs


@pytest.mark.parametrize(("tp", "pp"), [(2, 1), (4, 2)])
def test_multi_gpu_tensorrt_llm_runs_one_mpi_rank_per_gpu(tp: int, pp: int) -> None:
    md = deployment(tp=tp, pp=pp)
    command, args = triton_command(md)
    assert command == ["mpirun"]
    assert args[0] == "--allow-run-as-root"
    contexts = ranks(args)
    assert len(contexts) == tp * pp == world_size(md)
    for rank, ctx in enumerate(contexts):
        assert ctx[:3] == ["-n", "1", "tritonserver"], "each rank is exactly one tritonserver process"
        assert f"--id=rank{rank}" in ctx
        assert f"--backend-config=python,shm-region-prefix-name=prefix{rank}_" in ctx
        assert "--model-repository=/models" in ctx
        assert "--disable-auto-complete-config" in ctx
    leader, *workers = contexts
    assert {"--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"} <= set(leader)
    assert not any(a.startswith("--load-model") or a.startswith("--model-control-mode") for a in leader)
    for ctx in workers:
        assert "--model-control-mode=explicit" in ctx
        assert [a for a in ctx if a.startswith("--load-model")] == ["--load-model=tensorrt_llm"]
        assert {"--allow-http=false", "--allow-grpc=false", "--allow-metrics=false"} <= set(ctx)
        assert not any(a.startswith("--http-port") for a in ctx), "only rank 0 listens"


@pytest.mark.parametrize(("tp", "pp"), [(2, 1), (4, 2)])
def test_rendered_pod_asks_for_one_gpu_per_rank(tp: int, pp: int) -> None:
    pod = triton_pod(deployment(tp=tp, pp=pp))
    (triton,) = pod["containers"]
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == str(tp * pp)
    assert triton["command"] == ["mpirun"]
    assert sum(1 for a in triton["args"] if a == "tritonserver") == tp * pp


def test_extra_args_reach_every_rank() -> None:
    _, args = triton_command(deployment(tp=2, extra_args=["--log-verbose=1"]))
    assert all("--log-verbose=1" in ctx for ctx in ranks(args))


@pytest.mark.parametrize("fmt", ["onnx", "pytorch", "tensorrt", "python"])
def test_single_model_formats_run_one_server_and_keep_auto_complete(fmt: str) -> None:
    command, args = triton_command(deployment(fmt, tp=2))
    assert command == ["tritonserver"], "one process places an instance on every GPU of the pod"
    assert "--disable-auto-complete-config" not in args, "inputs and outputs come from auto-complete"


# --- the OpenAI-compatible frontend --------------------------------------------------------------


def openai_deployment() -> ModelDeployment:
    md = deployment()
    md.spec.runtime.openai.enabled = True
    return md


def test_the_openai_frontend_runs_the_server_in_process_with_the_downloaded_tokenizer() -> None:
    command, args = triton_command(openai_deployment())
    assert command == ["python3", "/opt/tritonserver/python/openai/openai_frontend/main.py"]
    assert {"--model-repository=/models", "--tokenizer=/tokenizer", "--backend=tensorrtllm"} <= set(args)
    assert {"--openai-port=9000", "--enable-kserve-frontends", "--kserve-http-port=8000"} <= set(args)
    assert not any(a.startswith("--metrics-port") for a in args), "the frontend takes no tritonserver flags"


def test_with_the_openai_frontend_the_pod_is_probed_and_scraped_on_its_port() -> None:
    md = openai_deployment()
    (triton,) = triton_pod(md)["containers"]
    assert {p["name"]: p["containerPort"] for p in triton["ports"]} == {"http": 8000, "grpc": 8001, "openai": 9000}
    assert triton["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "openai"}
    assert triton["startupProbe"]["httpGet"] == {"path": "/health/ready", "port": "openai"}
    assert triton["livenessProbe"]["tcpSocket"] == {"port": "openai"}
    assert metrics_port(md) == 9000 and metrics_port(deployment()) == 8002
    assert [p["name"] for p in service(md)["spec"]["ports"]] == ["http", "grpc", "openai"]
    assert endpoints(md)["openai"] == "http://llama.bank-a.svc:9000/v1"
    assert "openai" not in endpoints(deployment()), "no OpenAI endpoint unless asked for"
    (plain,) = triton_pod(deployment())["containers"]
    assert [p["name"] for p in plain["ports"]] == ["http", "grpc", "metrics"]
    assert plain["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
