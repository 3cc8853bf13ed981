"""Where model files come from (storageUri, tokenizerUri) and where they land in the pod.

s3, hf and oci locations are downloaded by an init container into an emptyDir; a pvc location is
mounted read-only where the download would have landed, so the Triton side is the same either way.

Credentials come from spec.model.storageSecretRef, one Secret per ModelDeployment:
    s3   AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (required once a Secret is named), and optionally
         AWS_SESSION_TOKEN, AWS_REGION, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL (S3-compatible stores).
         Without a Secret the pod's own identity is used (IRSA, node role).
    hf   HF_TOKEN (required once a Secret is named; without one only public repositories work),
         optionally HF_ENDPOINT for a mirror.
    oci  .dockerconfigjson (a kubernetes.io/dockerconfigjson Secret), used as oras' registry config.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from meridian.api.modeldeployment import ModelDeployment
from meridian.runtime.layout import (
    ENGINE_DIR,
    ENGINE_VOLUME,
    MODEL_REPOSITORY,
    REGISTRY_CONFIG_VOLUME,
    REPOSITORY_VOLUME,
    TOKENIZER_DIR,
    TOKENIZER_VOLUME,
    version_dir,
)

Scheme = Literal["s3", "hf", "oci", "pvc"]
Role = Literal["model", "tokenizer"]

DEFAULT_HF_REVISION = "main"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_HF_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
S3_OPTIONAL_KEYS = ("AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
HF_KEYS = ("HF_TOKEN",)
HF_OPTIONAL_KEYS = ("HF_ENDPOINT",)
OCI_KEYS = (".dockerconfigjson",)
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {"s3": S3_KEYS, "hf": HF_KEYS, "oci": OCI_KEYS, "pvc": ()}


class StorageUriError(ValueError):
    """A storage URI Meridian cannot fetch; the message is meant for the user."""


@dataclass(frozen=True)
class Location:
    """A parsed storage URI. `source` is what the download tool is given."""

    scheme: Scheme
    uri: str
    source: str = ""
    revision: str = ""
    claim: str = ""
    path: str = ""


def parse_uri(uri: str, field: str = "storageUri") -> Location:
    """Parse s3://bucket/prefix, hf://org/repo[@revision], oci://ref or pvc://claim[/path]."""
    scheme, sep, rest = uri.partition("://")
    if not sep or not rest:
        raise StorageUriError(f"{field} {uri!r} is not a URI: expected s3://, hf://, oci:// or pvc://")
    if scheme == "s3":
        bucket = rest.split("/", 1)[0]
        if not bucket:
            raise StorageUriError(f"{field} {uri!r} names no bucket: expected s3://<bucket>/<prefix>")
        return Location("s3", uri, source=uri)
    if scheme == "hf":
        repo, at, revision = rest.partition("@")
        parts = repo.strip("/").split("/")
        if len(parts) != 2 or not all(_HF_PART.match(p) for p in parts):
            raise StorageUriError(f"{field} {uri!r} must be hf://<org>/<repo>[@revision]")
        if at and not revision:
            raise StorageUriError(f"{field} {uri!r} has an empty revision after '@'")
        return Location("hf", uri, source="/".join(parts), revision=revision or DEFAULT_HF_REVISION)
    if scheme == "oci":
        if any(c.isspace() for c in rest):
            raise StorageUriError(f"{field} {uri!r} is not an image reference")
        return Location("oci", uri, source=rest)
    if scheme == "pvc":
        claim, _, path = rest.partition("/")
        if not _DNS_SUBDOMAIN.match(claim) or len(claim) > 253:
            raise StorageUriError(f"{field} {uri!r} must be pvc://<claim>/<path> with a valid claim name")
        path = path.strip("/")
        if ".." in path.split("/"):
            raise StorageUriError(f"{field} {uri!r} may not leave the claim with '..'")
        return Location("pvc", uri, claim=claim, path=path)
    raise StorageUriError(f"{field} {uri!r} has unknown scheme {scheme!r}: use s3, hf, oci or pvc")


@dataclass(frozen=True)
class Source:
    """One thing the pod needs on disk: the model (or engine) or the tokenizer."""

    role: Role
    field: str
    uri: str
    target: str
    volume: str  # emptyDir the download lands in (unused for pvc)

    def location(self) -> Location:
        return parse_uri(self.uri, self.field)


def sources(md: ModelDeployment) -> list[Source]:
    """What to fetch or mount: the engine and tokenizer for tensorrt-llm, the version directory otherwise."""
    model = md.spec.model
    if model.format != "tensorrt-llm":
        return [Source("model", "storageUri", model.storage_uri, version_dir(md.model_name), REPOSITORY_VOLUME)]
    out = [Source("model", "storageUri", model.storage_uri, ENGINE_DIR, ENGINE_VOLUME)]
    if model.tokenizer_uri:
        out.append(Source("tokenizer", "tokenizerUri", model.tokenizer_uri, TOKENIZER_DIR, TOKENIZER_VOLUME))
    return out


def _try_location(src: Source) -> Location | None:
    try:
        return src.location()
    except StorageUriError:
        return None


def claim_volume_name(claim: str) -> str:
    """A volume name (DNS label, at most 63 characters) for a claim name (DNS subdomain, up to 253)."""
    name = "claim-" + claim
    if len(name) <= 63 and "." not in claim:
        return name
    # dots are not allowed in a label and truncation could merge two claims: a digest keeps them apart
    digest = hashlib.sha256(claim.encode()).hexdigest()[:8]
    return f"{name.replace('.', '-')[:54].rstrip('-')}-{digest}"


def source_mount(src: Source, *, writable: bool = False) -> dict[str, Any]:
    """How a container sees one source at its target path (pvc claims are always read-only)."""
    loc = _try_location(src)
    if loc is not None and loc.scheme == "pvc":
        mount: dict[str, Any] = {"name": claim_volume_name(loc.claim), "mountPath": src.target, "readOnly": True}
        if loc.path:
            mount["subPath"] = loc.path
        return mount
    if src.volume == REPOSITORY_VOLUME:
        return {"name": REPOSITORY_VOLUME, "mountPath": MODEL_REPOSITORY}
    mount = {"name": src.volume, "mountPath": src.target}
    if not writable:
        mount["readOnly"] = True
    return mount


def is_mounted(src: Source) -> bool:
    """True when the source is a pvc mounted in place rather than downloaded."""
    loc = _try_location(src)
    return loc is not None and loc.scheme == "pvc"


def storage_volumes(md: ModelDeployment) -> list[dict[str, Any]]:
    """Pod volumes the sources need, beyond the model-repository emptyDir render/ declares."""
    volumes: dict[str, dict[str, Any]] = {}
    ref = md.spec.model.storage_secret_ref
    for src in sources(md):
        loc = _try_location(src)
        if loc is not None and loc.scheme == "pvc":
            name = claim_volume_name(loc.claim)
            volumes[name] = {"name": name, "persistentVolumeClaim": {"claimName": loc.claim, "readOnly": True}}
        elif src.volume != REPOSITORY_VOLUME:
            volumes[src.volume] = {"name": src.volume, "emptyDir": {}}
        if loc is not None and loc.scheme == "oci" and ref is not None:
            volumes[REGISTRY_CONFIG_VOLUME] = {
                "name": REGISTRY_CONFIG_VOLUME,
                "secret": {"secretName": ref.name, "items": [{"key": ".dockerconfigjson", "path": "config.json"}]},
            }
    return list(volumes.values())


def triton_volume_mounts(md: ModelDeployment) -> list[dict[str, Any]]:
    """Mounts the Triton container needs beyond /models, /dev/shm and the config files render/ adds."""
    return [source_mount(src) for src in sources(md) if is_mounted(src) or src.volume != REPOSITORY_VOLUME]


def _secret_keys(secret: Mapping[str, Any]) -> set[str]:
    return set(secret.get("data") or {}) | set(secret.get("stringData") or {})


def credentials_problem(md: ModelDeployment, secret: Mapping[str, Any] | None) -> str | None:
    """Why the download cannot authenticate, judged from the Secret as read (None when it does not exist).

    Reconcile reads spec.model.storageSecretRef and passes the object here; a message means Stalled.
    Without a storageSecretRef there is nothing to check: s3 then uses the pod's identity and hf
    and oci anonymous access.
    """
    ref = md.spec.model.storage_secret_ref
    if ref is None:
        return None
    ns = md.metadata.namespace or "default"
    if secret is None:
        return f"Secret {ref.name!r} named in spec.model.storageSecretRef does not exist in namespace {ns!r}"
    keys = _secret_keys(secret)
    loc = _try_location(sources(md)[0])
    if loc is None:
        return None
    missing = [k for k in REQUIRED_KEYS[loc.scheme] if k not in keys]
    if not missing:
        return None
    return (
        f"Secret {ref.name!r} (spec.model.storageSecretRef) lacks {', '.join(missing)}, "
        f"needed to fetch {loc.uri}; it has: {', '.join(sorted(keys)) or 'no keys'}"
    )


def secret_env(md: ModelDeployment, loc: Location, role: Role) -> list[dict[str, Any]]:
    """Environment variables fed from storageSecretRef for one download.

    The keys a scheme needs are wired as required, so a Secret without them stops the pod at
    CreateContainerConfigError naming the key; a tokenizer shares the model's Secret and
    takes its keys only if they are there.
    """
    ref = md.spec.model.storage_secret_ref
    if ref is None:
        return []
    required, optional = {
        "s3": (S3_KEYS, S3_OPTIONAL_KEYS),
        "hf": (HF_KEYS, HF_OPTIONAL_KEYS),
    }.get(loc.scheme, ((), ()))
    env = []
    for key in (*required, *optional):
        is_optional = key in optional or role == "tokenizer"
        env.append(
            {"name": key, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": key, "optional": is_optional}}}
        )
    return env
