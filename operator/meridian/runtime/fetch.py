"""Init containers that download storageUri (and tokenizerUri) into the pod before Triton starts.

The downloader image (operator setting downloader_image; images/model-fetch builds one) must provide
/bin/sh, tee, tail, tr, and the clients: `aws` (AWS CLI, for s3), `hf` (huggingface_hub's CLI, which
replaced `huggingface-cli` in 1.0, for hf) and `oras` (for oci).
pvc sources get no container: the claim is mounted read-only where the download would land.
A download that fails or finds nothing ends the container with a termination message naming the
URI, the tool's last output and what to check; a wrong URI ends it before any download.
"""

from __future__ import annotations

from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.runtime.layout import REGISTRY_CONFIG_DIR, REGISTRY_CONFIG_VOLUME
from meridian.runtime.prepare import prepare_container
from meridian.runtime.shell import MESSAGE_PREFIX, command, q, say, script
from meridian.runtime.storage import Location, Source, StorageUriError, secret_env, source_mount, sources

REGISTRY_CONFIG = f"{REGISTRY_CONFIG_DIR}/config.json"


def download_command(loc: Location, target: str, *, registry_config: bool = False) -> list[str]:
    """The client command line that copies one location into target."""
    if loc.scheme == "s3":
        return ["aws", "s3", "sync", "--no-progress", "--only-show-errors", loc.source, target]
    if loc.scheme == "hf":
        return ["hf", "download", loc.source, "--revision", loc.revision, "--local-dir", target]
    if loc.scheme == "oci":
        extra = ["--registry-config", REGISTRY_CONFIG] if registry_config else []
        return ["oras", "pull", loc.source, "--output", target, *extra]
    raise ValueError(f"{loc.scheme}:// is mounted, not downloaded")


def _hint(md: ModelDeployment, loc: Location) -> str:
    """What to check after a failed download, from what the spec says about credentials."""
    ref = md.spec.model.storage_secret_ref
    if ref is None:
        return {
            "s3": "no spec.model.storageSecretRef is set, so the pod's own identity was used; "
            "check it may read the bucket, or name a Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            "hf": "no spec.model.storageSecretRef is set; a gated or private repository needs a Secret with HF_TOKEN",
            "oci": "no spec.model.storageSecretRef is set; a private registry needs a dockerconfigjson Secret",
        }[loc.scheme]
    keys = {"s3": "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", "hf": "HF_TOKEN", "oci": ".dockerconfigjson"}[loc.scheme]
    return f"check {keys} in Secret {ref.name!r} (spec.model.storageSecretRef) and that {loc.uri} exists"


def fetch_script(md: ModelDeployment, src: Source) -> str:
    """The shell program of one fetch container; a pure function of the spec, readable in `kubectl get pod -o yaml`."""
    try:
        loc = src.location()
    except StorageUriError as e:
        return script(f"fail {q(str(e))}")
    registry_config = loc.scheme == "oci" and md.spec.model.storage_secret_ref is not None
    cmd = download_command(loc, src.target, registry_config=registry_config)
    # the message: what failed, the client's exit code and last output, then what to check
    failed = q(f"could not fetch {loc.uri} into {src.target} (exit ")
    output = "\"$status): $(tail -c 800 \"$out\" | tr '\\n' ' ')\""
    hint = q("; " + _hint(md, loc))
    return script(
        f"mkdir -p {q(src.target)} || fail {q(f'cannot create {src.target}')}",
        say(f"fetching {loc.uri} into {src.target}"),
        f"run {command(cmd)} || fail {failed}{output}{hint}",
        f'[ -n "$(ls -A {q(src.target)} 2>/dev/null)" ] || '
        f"fail {q(f'{loc.uri} is empty: nothing was fetched into {src.target}; check the path')}",
        say(f"fetched {loc.uri}"),
    )


def fetch_container(md: ModelDeployment, src: Source, image: str) -> dict[str, Any]:
    mounts = [source_mount(src, writable=True)]
    env: list[dict[str, Any]] = [
        {"name": "HF_HOME", "value": "/tmp/hf-home"},
        {"name": "HF_HUB_DISABLE_PROGRESS_BARS", "value": "1"},
    ]
    try:
        loc = src.location()
    except StorageUriError:
        loc = None
    if loc is not None:
        env += secret_env(md, loc, src.role)
        if loc.scheme == "oci" and md.spec.model.storage_secret_ref is not None:
            mounts.append({"name": REGISTRY_CONFIG_VOLUME, "mountPath": REGISTRY_CONFIG_DIR, "readOnly": True})
    return {
        "name": f"fetch-{src.role}",
        "image": image,
        "command": ["/bin/sh", "-c", fetch_script(md, src)],
        "env": env,
        "volumeMounts": mounts,
        # our messages go to /dev/termination-log; a crash of the shell itself still leaves its log tail
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _downloaded(src: Source) -> bool:
    try:
        return src.location().scheme != "pvc"
    except StorageUriError:
        return True  # the container reports the bad URI


def fetch_init_containers(md: ModelDeployment, image: str) -> list[dict[str, Any]]:
    """Init containers copying storageUri (and tokenizerUri) into the pod; none for pvc:// sources."""
    return [fetch_container(md, src, image) for src in sources(md) if _downloaded(src)]


def init_containers(md: ModelDeployment, downloader_image: str, triton_image: str) -> list[dict[str, Any]]:
    """Every init container of a Triton pod: downloads, then (tensorrt-llm) preparing the repository."""
    out = fetch_init_containers(md, downloader_image)
    if md.spec.model.format == "tensorrt-llm":
        out.append(prepare_container(md, triton_image))
    return out


__all__ = ["MESSAGE_PREFIX", "download_command", "fetch_init_containers", "fetch_script", "init_containers"]
