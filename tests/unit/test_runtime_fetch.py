"""Model download: each scheme's command line, credentials wiring, and what a failed download says.

The fetch scripts are run for real with /bin/sh; here the download clients (aws, hf, oras) are small
stand-ins that behave like them on success and on an authentication failure.
tests/integration/test_fetch_clients.py runs the real clients against local stores.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from meridian.api.modeldeployment import ModelDeployment
from meridian.runtime.fetch import download_command, fetch_init_containers, fetch_script, init_containers
from meridian.runtime.storage import (
    StorageUriError,
    claim_volume_name,
    credentials_problem,
    parse_uri,
    sources,
    storage_volumes,
    triton_volume_mounts,
)

pytestmark = pytest.mark.unit


def deployment(
    uri: str, fmt: str = "tensorrt-llm", secret: str | None = None, tokenizer: str | None = None
) -> ModelDeployment:
    model: dict[str, Any] = {"format": fmt, "storageUri": uri}
    if fmt == "tensorrt-llm":
        model["tokenizerUri"] = tokenizer or "hf://meta-llama/Meta-Llama-3-8B-Instruct@5f0b02c"
    if secret:
        model["storageSecretRef"] = {"name": secret}
    return ModelDeployment.model_validate(
        {"metadata": {"name": "llama", "namespace": "bank-a"}, "spec": {"model": model}}
    )


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


# --- command lines -----------------------------------------------------------------------------


def test_s3_syncs_the_prefix_into_the_engine_directory() -> None:
    loc = parse_uri("s3://models/llama-3-8b/engine-tp2/")
    assert " ".join(download_command(loc, "/engine")) == (
        "aws s3 sync --no-progress --only-show-errors s3://models/llama-3-8b/engine-tp2/ /engine"
    )


def test_hf_downloads_a_pinned_revision() -> None:
    pinned = download_command(parse_uri("hf://meta-llama/Meta-Llama-3-8B@5f0b02c"), "/tokenizer")
    assert " ".join(pinned) == ("hf download meta-llama/Meta-Llama-3-8B --revision 5f0b02c --local-dir /tokenizer")
    unpinned = download_command(parse_uri("hf://org/repo"), "/t")
    assert unpinned[unpinned.index("--revision") + 1] == "main"


def test_oci_pulls_with_the_registry_config_from_the_secret() -> None:
    md = deployment("oci://registry.example.eu/models/llama:tp2", secret="registry")
    fetch, *_ = fetch_init_containers(md, "fetcher:1")
    assert "oras pull registry.example.eu/models/llama:tp2 --output /engine" in fetch["command"][2]
    assert "--registry-config /var/run/secrets/meridian/registry/config.json" in fetch["command"][2]
    volumes = {v["name"]: v for v in storage_volumes(md)}
    assert volumes["registry-config"]["secret"] == {
        "secretName": "registry",
        "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
    }
    assert {"name": "registry-config", "mountPath": "/var/run/secrets/meridian/registry", "readOnly": True} in fetch[
        "volumeMounts"
    ]


def test_pvc_is_mounted_read_only_without_any_download() -> None:
    md = deployment("pvc://llm-engines/llama/tp2", tokenizer="pvc://llm-engines/llama/tokenizer")
    assert fetch_init_containers(md, "fetcher:1") == []
    (volume,) = storage_volumes(md)  # one volume for the claim, whatever the number of paths
    assert volume == {
        "name": "claim-llm-engines",
        "persistentVolumeClaim": {"claimName": "llm-engines", "readOnly": True},
    }
    mounts = triton_volume_mounts(md)
    assert {"name": "claim-llm-engines", "mountPath": "/engine", "subPath": "llama/tp2", "readOnly": True} in mounts
    assert {
        "name": "claim-llm-engines",
        "mountPath": "/tokenizer",
        "subPath": "llama/tokenizer",
        "readOnly": True,
    } in mounts


def test_pvc_of_a_single_model_format_is_its_version_directory() -> None:
    md = deployment("pvc://models/resnet", fmt="onnx")
    assert fetch_init_containers(md, "fetcher:1") == []
    assert triton_volume_mounts(md) == [
        {"name": "claim-models", "mountPath": "/models/llama/1", "subPath": "resnet", "readOnly": True}
    ]


def test_downloads_of_a_single_model_format_land_in_its_version_directory() -> None:
    md = deployment("s3://models/resnet/", fmt="onnx")
    (fetch,) = fetch_init_containers(md, "fetcher:1")
    assert "aws s3 sync --no-progress --only-show-errors s3://models/resnet/ /models/llama/1" in fetch["command"][2]
    assert fetch["volumeMounts"] == [{"name": "model-repository", "mountPath": "/models"}]
    assert storage_volumes(md) == []  # the model-repository emptyDir is render's
    assert triton_volume_mounts(md) == []


def test_tensorrt_llm_fetches_engine_and_tokenizer_then_prepares_the_repository() -> None:
    md = deployment("s3://models/llama/engine/")
    containers = init_containers(md, "fetcher:1", "nvcr.io/nvidia/tritonserver:25.10-trtllm-python-py3")
    assert [(c["name"], c["image"]) for c in containers] == [
        ("fetch-model", "fetcher:1"),
        ("fetch-tokenizer", "fetcher:1"),
        ("prepare-repository", "nvcr.io/nvidia/tritonserver:25.10-trtllm-python-py3"),
    ]
    assert all(c["terminationMessagePolicy"] == "FallbackToLogsOnError" for c in containers)
    assert {v["name"] for v in storage_volumes(md)} == {"engine", "tokenizer"}
    assert {(m["mountPath"], m.get("readOnly")) for m in triton_volume_mounts(md)} == {
        ("/engine", True),
        ("/tokenizer", True),
    }


def test_claim_names_longer_than_a_volume_name_stay_valid_and_distinct() -> None:
    for a, b in (("x" * 200 + ".a", "x" * 200 + ".b"), ("models.eu", "models-eu")):
        assert len(claim_volume_name(a)) <= 63
        assert claim_volume_name(a) != claim_volume_name(b)
        assert "." not in claim_volume_name(a)


@pytest.mark.parametrize(
    "uri", ["s3://", "hf://just-a-name", "hf://org/repo@", "pvc://Bad_Claim/x", "pvc://c/../etc", "ftp://x/y"]
)
def test_bad_uris_are_refused_with_a_message_naming_the_field(uri: str) -> None:
    with pytest.raises(StorageUriError, match="storageUri"):
        parse_uri(uri)


# --- credentials -------------------------------------------------------------------------------


def test_s3_secret_keys_are_wired_and_required() -> None:
    (fetch, _tok) = fetch_init_containers(deployment("s3://models/llama/", secret="models-s3"), "fetcher:1")
    env = env_of(fetch)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "models-s3", "key": key, "optional": False}
    assert env["AWS_ENDPOINT_URL"]["valueFrom"]["secretKeyRef"]["optional"] is True  # S3-compatible stores
    assert "HF_TOKEN" not in env


def test_hf_token_comes_from_the_secret() -> None:
    md = deployment("hf://acme/llama-engine@v1", secret="hf")
    model, tokenizer = fetch_init_containers(md, "fetcher:1")
    assert env_of(model)["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "hf",
        "key": "HF_TOKEN",
        "optional": False,
    }
    # the tokenizer shares the Secret but may be public, so its token is optional
    assert env_of(tokenizer)["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True


def test_without_a_secret_no_credentials_are_wired() -> None:
    (fetch, _tok) = fetch_init_containers(deployment("s3://models/llama/"), "fetcher:1")
    assert not any("valueFrom" in e for e in fetch["env"])


def test_credentials_problems_name_the_secret_and_the_missing_keys() -> None:
    md = deployment("s3://models/llama/", secret="models-s3")
    assert credentials_problem(md, None) == (
        "Secret 'models-s3' named in spec.model.storageSecretRef does not exist in namespace 'bank-a'"
    )
    message = credentials_problem(md, {"data": {"AWS_ACCESS_KEY_ID": "QUtJQQ=="}})
    assert message is not None
    assert "lacks AWS_SECRET_ACCESS_KEY" in message
    assert "s3://models/llama/" in message
    ok = {"data": {"AWS_ACCESS_KEY_ID": "QQ==", "AWS_SECRET_ACCESS_KEY": "Qg=="}}
    assert credentials_problem(md, ok) is None
    assert credentials_problem(md, {"stringData": {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}}) is None
    hf = deployment("hf://acme/llama-engine@v1", secret="hf")
    assert "lacks HF_TOKEN" in (credentials_problem(hf, {"data": {}}) or "")
    assert credentials_problem(deployment("s3://models/llama/"), None) is None, "no Secret named, nothing to check"


# --- running the scripts -----------------------------------------------------------------------


def stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


AWS_OK = 'eval target=\\${$#}; echo weights > "$target/rank0.engine"; echo \'{}\' > "$target/config.json"\n'
AWS_DENIED = (
    "echo 'fatal error: An error occurred (InvalidAccessKeyId) when calling the ListObjectsV2 operation: "
    "The AWS Access Key Id you provided does not exist in our records.' >&2\nexit 1\n"
)
AWS_NOTHING = "exit 0\n"


def run_fetch(md: ModelDeployment, tmp_path: Path, tool: str, body: str) -> tuple[int, str, str, Path]:
    """Run the fetch-model script with target in tmp_path; (exit code, stderr, termination message, target)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub(bin_dir, tool, body)
    target = tmp_path / "target"
    src = dataclasses.replace(sources(md)[0], target=str(target))
    log = tmp_path / "termination-log"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "TERMINATION_LOG": str(log), "TMPDIR": str(tmp_path)}
    proc = subprocess.run(
        ["/bin/sh", "-c", fetch_script(md, src)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    return proc.returncode, proc.stderr, log.read_text() if log.exists() else "", target


def test_a_successful_download_fills_the_target(tmp_path: Path) -> None:
    code, stderr, message, target = run_fetch(deployment("s3://models/llama/"), tmp_path, "aws", AWS_OK)
    assert code == 0, stderr
    assert (target / "rank0.engine").read_text() == "weights\n"
    assert message == ""
    assert "[meridian] fetched s3://models/llama/" in stderr


def test_bad_credentials_end_the_container_with_the_clients_error_and_what_to_check(tmp_path: Path) -> None:
    md = deployment("s3://models/llama/", secret="models-s3")
    code, stderr, message, _ = run_fetch(md, tmp_path, "aws", AWS_DENIED)
    assert code == 1
    assert message.startswith("meridian: could not fetch s3://models/llama/ into ")
    assert "(exit 1)" in message
    assert "InvalidAccessKeyId" in message
    assert "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in Secret 'models-s3'" in message
    assert message in stderr, "the same sentence is in the pod log"


def test_a_download_that_finds_nothing_is_a_failure_not_an_empty_model(tmp_path: Path) -> None:
    code, _, message, _ = run_fetch(deployment("s3://models/typo/"), tmp_path, "aws", AWS_NOTHING)
    assert code == 1
    assert "s3://models/typo/ is empty" in message


def test_a_gated_hf_repository_without_a_token_says_so(tmp_path: Path) -> None:
    denied = "echo '401 Client Error: Unauthorized for url: https://hf.co/api/models/meta-llama/x' >&2\nexit 1\n"
    code, _, message, _ = run_fetch(deployment("hf://meta-llama/x@abc"), tmp_path, "hf", denied)
    assert code == 1
    assert "401 Client Error" in message
    assert "a gated or private repository needs a Secret with HF_TOKEN" in message


def test_an_unusable_uri_fails_the_container_before_any_download(tmp_path: Path) -> None:
    md = deployment("hf://not-a-repo")
    (fetch, _tok) = fetch_init_containers(md, "fetcher:1")
    log = tmp_path / "log"
    env = {"PATH": "/usr/bin:/bin", "TERMINATION_LOG": str(log), "TMPDIR": str(tmp_path)}
    proc = subprocess.run(fetch["command"], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1
    assert log.read_text() == "meridian: storageUri 'hf://not-a-repo' must be hf://<org>/<repo>[@revision]"


def test_quotes_in_uris_cannot_break_out_of_the_script(tmp_path: Path) -> None:
    md = deployment("s3://models/it's; touch pwned #/")
    code, stderr, _, target = run_fetch(md, tmp_path, "aws", AWS_OK)
    assert code == 0, stderr
    assert not (Path(os.getcwd()) / "pwned").exists()
    assert not (tmp_path / "pwned").exists()
    assert (target / "config.json").exists()


@pytest.mark.parametrize(
    ("uri", "fmt", "secret"),
    [
        ("s3://models/llama/", "tensorrt-llm", "models-s3"),
        ("hf://acme/llama-engine@v1", "tensorrt-llm", None),
        ("oci://registry.example.eu/llama:tp2", "tensorrt-llm", "registry"),
        ("pvc://engines/llama", "tensorrt-llm", None),
        ("oci://registry.example.eu/resnet:1", "onnx", "registry"),
        ("pvc://models/resnet", "onnx", None),
        ("s3://models/m/", "python", None),
    ],
)
def test_every_mount_refers_to_a_declared_volume(uri: str, fmt: str, secret: str | None) -> None:
    """What the pod spec needs to be accepted: volumes named once, as DNS labels, and all mounts resolvable."""
    md = deployment(uri, fmt, secret)
    declared = [v["name"] for v in storage_volumes(md)]
    assert len(declared) == len(set(declared))
    assert all(len(n) <= 63 and n.replace("-", "").isalnum() and n == n.lower() for n in declared)
    available = {*declared, "model-repository"}  # model-repository is declared by render/
    containers = init_containers(md, "fetcher:1", "triton:1")
    assert len({c["name"] for c in containers}) == len(containers)
    for mount in [m for c in containers for m in c["volumeMounts"]] + triton_volume_mounts(md):
        assert mount["name"] in available, f"{mount['name']} is mounted but not declared"
