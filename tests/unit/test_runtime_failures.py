"""From a failed pod to one sentence for the Stalled condition.

The log excerpts are lines tritonserver 2.51 printed in these situations (the integration tests
check the same function against a live server).
"""

from __future__ import annotations

from typing import Any

import pytest

from meridian.runtime.failures import PodFailure, pod_failure, triton_failure_reason

pytestmark = pytest.mark.unit


def log(*lines: str) -> str:
    return "\n".join(lines) + "\n"


BAD_FIELD = log(
    'I1126 07:19:27.516035 17754 cuda_memory_manager.cc:117] "CUDA memory pool disabled"',
    "[libprotobuf ERROR /tmp/tritonbuild/tritonserver/build/_deps/repo-third-party-build/grpc-repo/src/grpc/"
    "third_party/protobuf/src/google/protobuf/text_format.cc:337] Error parsing text-format "
    'inference.ModelConfig: 7:25: Message type "inference.ModelDynamicBatching" has no field named "bogus".',
    "E1126 07:19:27.521970 17754 model_repository_manager.cc:1460] \"Poll failed for model directory 'bad': "
    'failed to read text proto from /tmp/tt/repo2/bad/config.pbtxt"',
    'I1126 07:19:27.523410 17754 server.cc:305] "Waiting for in-flight requests to complete."',
    "error: creating server: Internal - failed to load all models",
)

INIT_RAISES = log(
    'I1126 07:19:41.759144 18214 pb_stub.cc:366] "Failed to initialize Python stub: ValueError: weights '
    'missing\\n\\nAt:\\n  /tmp/tt/r3/m/1/model.py(3): initialize\\n"',
    'E1126 07:19:41.949136 18214 backend_model.cc:692] "ERROR: Failed to create instance: ValueError: weights '
    'missing\\n\\nAt:\\n  /tmp/tt/r3/m/1/model.py(3): initialize\\n"',
    "E1126 07:19:41.949341 18214 model_lifecycle.cc:642] \"failed to load 'm' version 1: Internal: ValueError: "
    'weights missing\\n\\nAt:\\n  /tmp/tt/r3/m/1/model.py(3): initialize\\n"',
    "| m     | 1       | UNAVAILABLE: Internal: ValueError: weights missing |",
    "error: creating server: Internal - failed to load all models",
)

NO_GPU = log(
    "E1126 07:19:36.517611 18020 model_lifecycle.cc:642] \"failed to load 'm' version 1: Invalid argument: "
    'instance group m_0 of model m has kind KIND_GPU but no GPUs are available"',
    "error: creating server: Internal - failed to load all models",
)

NO_VERSION = log(
    "E1126 07:19:34.081520 17869 model_repository_manager.cc:724] \"failed to load model 'm': at least one "
    "version must be available under the version policy of model 'm'\"",
    "error: creating server: Internal - failed to load all models",
)

TRTLLM = log(
    "[TensorRT-LLM][INFO] Engine version 0.17.0 found in the config file, assuming engine(s) built by new builder API.",
    "[TensorRT-LLM][ERROR] Assertion failed: mpiSize == tp * pp "
    "(/workspace/tensorrt_llm/cpp/tensorrt_llm/runtime/worldConfig.cpp:99)",
    "E1126 08:00:00.000000 1 model_lifecycle.cc:642] \"failed to load 'tensorrt_llm' version 1: Internal: "
    'unexpected error when creating modelInstanceState: [TensorRT-LLM][ERROR] Assertion failed: mpiSize == tp * pp"',
)


def test_a_config_that_does_not_parse_names_model_line_and_field() -> None:
    assert triton_failure_reason(BAD_FIELD) == (
        "config.pbtxt of model 'bad' does not parse: line 7 column 25: "
        'Message type "inference.ModelDynamicBatching" has no field named "bogus".'
    )


def test_a_model_py_that_raises_is_reduced_to_its_exception() -> None:
    assert triton_failure_reason(INIT_RAISES) == "model 'm' version 1 failed to load: ValueError: weights missing"


def test_backend_refusals_are_passed_on() -> None:
    assert triton_failure_reason(NO_GPU) == (
        "model 'm' version 1 failed to load: instance group m_0 of model m has kind KIND_GPU but no GPUs are available"
    )
    assert triton_failure_reason(NO_VERSION) == (
        "model 'm' failed to load: at least one version must be available under the version policy of model 'm'"
    )


def test_tensorrt_llm_errors_are_surfaced() -> None:
    reason = triton_failure_reason(TRTLLM)
    assert reason is not None
    assert "model 'tensorrt_llm' version 1 failed to load" in reason
    assert "TensorRT-LLM: Assertion failed: mpiSize == tp * pp" in reason


def test_a_port_in_use_is_named() -> None:
    line = (
        'E1126 07:35:29.686073 12617 main.cc:257] "failed to start HTTP service: Unavailable - '
        "Socket '127.0.0.1:18200' already in use \""
    )
    assert triton_failure_reason(line) == "HTTP endpoint did not start: Socket '127.0.0.1:18200' already in use"


def test_a_healthy_or_still_loading_log_has_no_reason() -> None:
    log = 'I1126 07:18:49.049156 16666 model_lifecycle.cc:472] "loading: double:1"\n'
    assert triton_failure_reason(log) is None
    assert triton_failure_reason("") is None


def pod(init: list[dict[str, Any]] | None = None, main: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"status": {"initContainerStatuses": init or [], "containerStatuses": main or []}}


def test_a_missing_secret_key_is_a_credentials_problem() -> None:
    waiting = {
        "reason": "CreateContainerConfigError",
        "message": "couldn't find key HF_TOKEN in Secret bank-a/hf",
    }
    failure = pod_failure(pod(init=[{"name": "fetch-model", "state": {"waiting": waiting}}]))
    assert failure == PodFailure(
        "StorageCredentialsInvalid",
        "container fetch-model: couldn't find key HF_TOKEN in Secret bank-a/hf",
        "fetch-model",
    )


def test_a_failed_download_reports_the_scripts_sentence() -> None:
    message = "meridian: could not fetch s3://models/llama/ into /engine (exit 1): InvalidAccessKeyId; check ..."
    status = {
        "name": "fetch-model",
        "restartCount": 2,
        "lastState": {"terminated": {"exitCode": 1, "message": message}},
    }
    failure = pod_failure(pod(init=[status]))
    assert failure is not None
    assert failure.reason == "ModelFetchFailed"
    assert failure.message == message.removeprefix("meridian: ")
    assert failure.restarts == 2


def test_triton_that_cannot_load_its_model_is_explained_from_its_log_tail() -> None:
    # the Triton container uses terminationMessagePolicy FallbackToLogsOnError: the message is the log tail
    status = {"name": "triton", "lastState": {"terminated": {"exitCode": 1, "message": INIT_RAISES}}}
    failure = pod_failure(pod(init=[{"name": "fetch-model", "state": {"terminated": {"exitCode": 0}}}], main=[status]))
    assert failure is not None
    assert (failure.reason, failure.container) == ("ModelLoadFailed", "triton")
    assert failure.message == "model 'm' version 1 failed to load: ValueError: weights missing"


def test_out_of_memory_and_image_pulls_are_named() -> None:
    oom = {"name": "triton", "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
    failure = pod_failure(pod(main=[oom]))
    assert failure is not None
    assert failure.reason == "OutOfMemory"
    assert "spec.resources.memory" in failure.message
    pull = {"name": "triton", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}
    failure = pod_failure(pod(main=[pull]))
    assert failure is not None
    assert failure.reason == "ImagePullFailed"


def test_an_unexplained_exit_keeps_the_last_lines() -> None:
    status = {"name": "triton", "state": {"terminated": {"exitCode": 139, "message": "a\nb\nSegmentation fault"}}}
    failure = pod_failure(pod(main=[status]))
    assert failure == PodFailure(
        "ContainerFailed", "container triton exited with code 139: a b Segmentation fault", "triton"
    )


def test_starting_and_running_pods_are_not_failures() -> None:
    assert pod_failure({"status": {}}) is None
    assert pod_failure(pod(init=[{"name": "fetch-model", "state": {"running": {}}}])) is None
    creating = {"name": "triton", "state": {"waiting": {"reason": "PodInitializing"}}}
    assert (
        pod_failure(pod(init=[{"name": "fetch-model", "state": {"terminated": {"exitCode": 0}}}], main=[creating]))
        is None
    )
    restarted_ok = {
        "name": "triton",
        "restartCount": 1,
        "state": {"running": {}},
        "lastState": {"terminated": {"exitCode": 0}},
    }
    assert pod_failure(pod(main=[restarted_ok])) is None
    recovered = {
        "name": "triton",
        "state": {"running": {}},
        "lastState": {"terminated": {"exitCode": 1, "message": "x"}},
    }
    assert pod_failure(pod(main=[recovered])) is None, "running again after a crash is not a failure"
