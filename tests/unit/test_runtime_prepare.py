"""The prepare-repository step: engine built for another TP×PP stops the pod with one clear sentence.

The check and the whole prepare script are run for real (sh and this Python) on engine
directories laid out as trtllm-build writes them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from meridian.api.modeldeployment import ModelDeployment
from meridian.runtime.failures import pod_failure
from meridian.runtime.prepare import engine_check_command, prepare_container, prepare_script

pytestmark = pytest.mark.unit


def deployment(tp: int = 2, pp: int = 1, name: str = "llama") -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": name, "namespace": "bank-a"},
            "spec": {
                "model": {
                    "format": "tensorrt-llm",
                    "storageUri": "s3://models/llama/engine/",
                    "tokenizerUri": "hf://meta-llama/Meta-Llama-3-8B-Instruct@5f0b02c",
                },
                "runtime": {"tensorParallelSize": tp, "pipelineParallelSize": pp},
            },
        }
    )


def engine(path: Path, tp: int, pp: int, *, ranks: int | None = None, config: dict[str, Any] | None = None) -> Path:
    """An engine directory as trtllm-build writes it (config.json and one rank<N>.engine per GPU)."""
    path.mkdir(parents=True)
    mapping = {"world_size": tp * pp, "tp_size": tp, "pp_size": pp}
    cfg = config if config is not None else {"version": "0.17.0", "pretrained_config": {"mapping": mapping}}
    (path / "config.json").write_text(json.dumps(cfg))
    for r in range(tp * pp if ranks is None else ranks):
        (path / f"rank{r}.engine").write_bytes(b"\0")
    return path


def check(tmp_path: Path, engine_dir: Path, tp: int, pp: int) -> tuple[int, str, str]:
    log = tmp_path / "termination-log"
    proc = subprocess.run(
        engine_check_command(tp, pp, str(engine_dir), sys.executable),
        env={"TERMINATION_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.returncode, proc.stderr, log.read_text() if log.exists() else ""


def test_an_engine_built_for_the_specs_tp_and_pp_passes(tmp_path: Path) -> None:
    code, stderr, message = check(tmp_path, engine(tmp_path / "e", 4, 2), 4, 2)
    assert code == 0, stderr
    assert message == ""


def test_an_engine_built_for_another_tp_fails_with_both_shapes_named(tmp_path: Path) -> None:
    code, stderr, message = check(tmp_path, engine(tmp_path / "e", 2, 1), 4, 1)
    assert code == 1
    assert message.startswith("meridian: engine built for tp=2 pp=1 but spec asks tp=4 pp=1")
    assert "trtllm-build --tp_size 4 --pp_size 1" in message
    assert message in stderr, "the same sentence is in the pod log"


def test_engines_from_the_older_build_script_are_understood(tmp_path: Path) -> None:
    old = {"builder_config": {"tensor_parallel": 2, "pipeline_parallel": 2}}
    assert check(tmp_path, engine(tmp_path / "e", 2, 2, config=old), 2, 2)[0] == 0
    code, _, message = check(tmp_path, engine(tmp_path / "f", 2, 2, config=old), 4, 1)
    assert code == 1
    assert "engine built for tp=2 pp=2 but spec asks tp=4 pp=1" in message


def test_a_missing_rank_engine_is_named(tmp_path: Path) -> None:
    code, _, message = check(tmp_path, engine(tmp_path / "e", 4, 1, ranks=3), 4, 1)
    assert code == 1
    assert "lacks rank3.engine" in message


def test_a_directory_without_an_engine_explains_the_expected_layout(tmp_path: Path) -> None:
    (tmp_path / "e" / "llama").mkdir(parents=True)  # e.g. storageUri pointing one level too high
    code, _, message = check(tmp_path, tmp_path / "e", 2, 1)
    assert code == 1
    assert "config.json is missing (found: llama)" in message
    assert "rank<N>.engine" in message


def template(root: Path) -> Path:
    """What the Triton trtllm image has under /app/all_models/inflight_batcher_llm."""
    for name in ("preprocessing", "postprocessing", "tensorrt_llm_bls"):
        (root / name / "1").mkdir(parents=True)
        (root / name / "1" / "model.py").write_text(f"# {name}\n")
        (root / name / "config.pbtxt").write_text("name: ${template}\n")
    (root / "tensorrt_llm_bls" / "1" / "lib").mkdir()
    (root / "tensorrt_llm_bls" / "1" / "lib" / "decode.py").write_text("")
    return root


def run_prepare(tmp_path: Path, md: ModelDeployment, engine_dir: Path) -> tuple[int, str, Path]:
    repo, tokenizer = tmp_path / "models", tmp_path / "tokenizer"
    tokenizer.mkdir(exist_ok=True)
    (tokenizer / "tokenizer.json").write_text("{}")
    text = prepare_script(
        md,
        template_dir=str(template(tmp_path / "template")),
        repository=str(repo),
        engine_dir=str(engine_dir),
        tokenizer_dir=str(tokenizer),
        python=sys.executable,
    )
    log = tmp_path / "termination-log"
    env = {"PATH": "/usr/bin:/bin", "TERMINATION_LOG": str(log), "TMPDIR": str(tmp_path)}
    proc = subprocess.run(["/bin/sh", "-c", text], env=env, capture_output=True, text=True, timeout=30, check=False)
    return proc.returncode, (log.read_text() if log.exists() else proc.stderr), repo


def test_prepare_lays_out_the_repository_from_the_image(tmp_path: Path) -> None:
    code, message, repo = run_prepare(tmp_path, deployment(2, 1, name="chat"), engine(tmp_path / "engine", 2, 1))
    assert code == 0, message
    assert (repo / "preprocessing" / "1" / "model.py").read_text() == "# preprocessing\n"
    assert (repo / "tensorrt_llm_bls" / "1" / "lib" / "decode.py").exists()
    assert (repo / "chat" / "1").is_dir()
    assert (repo / "tensorrt_llm" / "1").is_dir()
    # the image's template configs are not copied: Meridian's come from the ConfigMap
    assert not (repo / "preprocessing" / "config.pbtxt").exists()


def test_prepare_stops_on_an_engine_mismatch_and_reconcile_reads_it_as_engine_mismatch(tmp_path: Path) -> None:
    code, message, _ = run_prepare(tmp_path, deployment(4, 2), engine(tmp_path / "engine", 2, 1))
    assert code == 1
    pod = {
        "status": {
            "initContainerStatuses": [
                {"name": "fetch-model", "state": {"terminated": {"exitCode": 0}}},
                {
                    "name": "prepare-repository",
                    "restartCount": 3,
                    "lastState": {"terminated": {"exitCode": 1, "message": message}},
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                },
            ]
        }
    }
    failure = pod_failure(pod)
    assert failure is not None
    assert failure.reason == "EngineMismatch"
    assert failure.message.startswith("engine built for tp=2 pp=1 but spec asks tp=4 pp=2")
    assert (failure.container, failure.restarts) == ("prepare-repository", 3)


def test_prepare_refuses_an_image_without_the_in_flight_batcher_models(tmp_path: Path) -> None:
    text = prepare_script(deployment(), template_dir=str(tmp_path / "nothing"), repository=str(tmp_path / "m"))
    log = tmp_path / "log"
    proc = subprocess.run(
        ["/bin/sh", "-c", text], env={"PATH": "/usr/bin:/bin", "TERMINATION_LOG": str(log)}, check=False
    )
    assert proc.returncode == 1
    assert "use a tritonserver *-trtllm-python-py3 image" in log.read_text()


def test_prepare_container_sees_engine_and_tokenizer_read_only() -> None:
    container = prepare_container(deployment(), "triton:trtllm")
    assert container["image"] == "triton:trtllm"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/models"] == {"name": "model-repository", "mountPath": "/models"}
    assert mounts["/engine"]["readOnly"] is True
    assert mounts["/tokenizer"]["readOnly"] is True
