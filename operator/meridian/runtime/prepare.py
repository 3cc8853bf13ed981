"""The prepare-repository init container of a tensorrt-llm pod.

It runs in the Triton image itself, after the downloads, and
  1. copies the in-flight batcher's Python models (preprocessing, postprocessing, tensorrt_llm_bls)
     from the image into /models, so their code always matches the image's backend;
  2. creates the empty version directories of the ensemble and tensorrt_llm;
  3. checks that the engine was built for the spec's TP×PP and that every rank's engine file and the
     tokenizer are there. A mismatch ends the pod here with one clear sentence, instead of an MPI
     abort deep in Triton's log; reconcile turns that message into a Stalled reason.
"""

from __future__ import annotations

from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.runtime.layout import ENGINE_DIR, MODEL_REPOSITORY, REPOSITORY_VOLUME, TOKENIZER_DIR, TRTLLM_TEMPLATE_DIR
from meridian.runtime.shell import command, q, say, script
from meridian.runtime.storage import source_mount, sources
from meridian.runtime.trtllm import PYTHON_COMPONENTS, TENSORRT_LLM

# Run as `python3 -c ENGINE_CHECK <tp> <pp> <engine dir>` in the Triton image (which has python3).
# trtllm-build writes pretrained_config.mapping.{tp_size,pp_size}; engines from the older build.py
# carry builder_config.{tensor_parallel,pipeline_parallel} instead.
ENGINE_CHECK = r"""
import json, os, sys
want_tp, want_pp, engine = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def fail(msg):
    msg = "meridian: " + msg
    print(msg, file=sys.stderr, flush=True)
    try:
        with open(os.environ.get("TERMINATION_LOG", "/dev/termination-log"), "w") as f:
            f.write(msg)
    except OSError:
        pass
    sys.exit(1)
path = os.path.join(engine, "config.json")
try:
    with open(path) as f:
        cfg = json.load(f)
except FileNotFoundError:
    found = ", ".join(sorted(os.listdir(engine))[:8]) if os.path.isdir(engine) else "nothing"
    fail(f"no TensorRT-LLM engine in {engine}: config.json is missing (found: {found}); storageUri must be "
         "the directory trtllm-build wrote, holding config.json and rank<N>.engine")
except ValueError as e:
    fail(f"engine config {path} is not valid JSON: {e}")
mapping = (cfg.get("pretrained_config") or {}).get("mapping") or cfg.get("mapping") or {}
builder = cfg.get("builder_config") or {}
tp = mapping.get("tp_size", builder.get("tensor_parallel"))
pp = mapping.get("pp_size", builder.get("pipeline_parallel", 1))
if tp is None and mapping.get("world_size"):
    tp = mapping["world_size"] // pp
if tp is None:
    fail(f"{path} does not say which tensor parallelism the engine was built for "
         "(no pretrained_config.mapping.tp_size)")
if (tp, pp) != (want_tp, want_pp):
    fail(f"engine built for tp={tp} pp={pp} but spec asks tp={want_tp} pp={want_pp} "
         "(runtime.tensorParallelSize, runtime.pipelineParallelSize): rebuild the engine with "
         f"trtllm-build --tp_size {want_tp} --pp_size {want_pp}, or change the spec to match the engine")
missing = [f"rank{r}.engine" for r in range(tp * pp) if not os.path.isfile(os.path.join(engine, f"rank{r}.engine"))]
if missing:
    fail(f"engine in {engine} is built for tp={tp} pp={pp} but lacks {', '.join(missing)}")
print(f"[meridian] engine in {engine} is built for tp={tp} pp={pp}, as the spec asks", file=sys.stderr)
"""

TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model")


def engine_check_command(tp: int, pp: int, engine_dir: str = ENGINE_DIR, python: str = "python3") -> list[str]:
    return [python, "-c", ENGINE_CHECK, str(tp), str(pp), engine_dir]


def prepare_script(
    md: ModelDeployment,
    *,
    template_dir: str = TRTLLM_TEMPLATE_DIR,
    repository: str = MODEL_REPOSITORY,
    engine_dir: str = ENGINE_DIR,
    tokenizer_dir: str = TOKENIZER_DIR,
    python: str = "python3",
) -> str:
    """The shell program of prepare-repository; paths are parameters so tests can run it for real."""
    rt = md.spec.runtime
    lines = []
    for name in PYTHON_COMPONENTS:
        src, dst = f"{template_dir}/{name}/1", f"{repository}/{name}"
        wrong_image = f"the Triton image has no {src}: use a tritonserver *-trtllm-python-py3 image"
        lines += [
            f"[ -d {q(src)} ] || fail {q(wrong_image)}",
            f"mkdir -p {q(dst)} && rm -rf {q(dst + '/1')} && cp -R {q(src)} {q(dst + '/1')} "
            f"|| fail {q(f'cannot copy {src} into {dst}')}",
        ]
    for name in (md.model_name, TENSORRT_LLM):
        lines.append(f"mkdir -p {q(f'{repository}/{name}/1')} || fail {q(f'cannot create {repository}/{name}/1')}")
    tokenizer_uri = md.spec.model.tokenizer_uri or ""
    if not tokenizer_uri:
        lines.append(f"fail {q('spec.model.tokenizerUri is required for tensorrt-llm')}")
    tests = " || ".join(f"[ -f {q(f'{tokenizer_dir}/{f}')} ]" for f in TOKENIZER_FILES)
    no_tokenizer = f"{tokenizer_uri} holds no tokenizer: {tokenizer_dir} has none of {', '.join(TOKENIZER_FILES)}"
    lines += [
        f"{tests} || fail {q(no_tokenizer)}",
        command(engine_check_command(rt.tensor_parallel_size, rt.pipeline_parallel_size, engine_dir, python))
        + " || exit 1",
        say(f"repository in {repository} is ready"),
    ]
    return script(*lines)


def prepare_container(md: ModelDeployment, triton_image: str) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = [{"name": REPOSITORY_VOLUME, "mountPath": MODEL_REPOSITORY}]
    mounts += [source_mount(src) for src in sources(md)]
    return {
        "name": "prepare-repository",
        "image": triton_image,
        "command": ["/bin/sh", "-c", prepare_script(md)],
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
