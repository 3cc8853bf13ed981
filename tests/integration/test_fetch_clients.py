"""The fetch init container's script with the real clients the model-fetch image ships: the AWS CLI
against a local S3-compatible server (moto in server mode), oras against a local OCI registry
(CNCF distribution, over TLS with htpasswd auth). Credentials reach the script as a pod gets them:
the container's env is resolved from a Secret through its secretKeyRefs, and the dockerconfigjson
is the file the Secret volume would mount. What differs from a pod is only where things land (the
target directory and the registry config's mount point are under tmp_path).

A failed download ends with the termination message that `pod_failure` turns into
`Stalled/ModelFetchFailed`, checked here on the same message.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import ipaddress
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.fixtures_cluster import unavailable
from tests.fixtures_operator import free_port
from tests.processes import stop

from meridian.api.modeldeployment import ModelDeployment
from meridian.runtime.failures import pod_failure
from meridian.runtime.fetch import fetch_container
from meridian.runtime.layout import REGISTRY_CONFIG_DIR
from meridian.runtime.storage import sources
from meridian.sim import binaries

pytestmark = pytest.mark.integration
KEY_ID, SECRET_KEY = "AKIAMERIDIANTEST", "s3cr3t-for-the-test"
USER, PASSWORD = "puller", "pull-only-password"


@dataclasses.dataclass(frozen=True)
class Clients:
    venv: Path  # aws, hf, moto_server and a python with bcrypt
    oras: Path
    registry: Path


@pytest.fixture(scope="session")
def clients() -> Clients:
    bin_dir = binaries.search_path()
    found = {
        name: next((d / name for d in bin_dir if (d / name).exists()), None)
        for name in ("fetch-clients", "oras", "registry")
    }
    missing = [n for n, p in found.items() if p is None]
    if missing:
        unavailable(f"fetch clients not built: {', '.join(missing)} (hack/build-tools.sh oras registry fetch-clients)")
    return Clients(venv=found["fetch-clients"].resolve(), oras=found["oras"], registry=found["registry"])  # type: ignore[union-attr]


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"nothing listening on {port} after {timeout:.0f}s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def s3(clients: Clients, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An S3-compatible endpoint holding s3://models/llama/engine-tp2/ (config.json, rank0.engine)."""
    port, log = free_port(), tmp_path_factory.mktemp("s3") / "moto.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(clients.venv / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=sink, stderr=sink
        )
    try:
        wait_port(port, proc, log)
        endpoint = f"http://127.0.0.1:{port}"
        env = aws_env(endpoint)
        engine = tmp_path_factory.mktemp("engine")
        (engine / "config.json").write_text('{"pretrained_config": {"mapping": {"tp_size": 2}}}')
        (engine / "rank0.engine").write_bytes(os.urandom(4096))
        aws = str(clients.venv / "bin" / "aws")
        for cmd in (["s3", "mb", "s3://models"], ["s3", "sync", str(engine), "s3://models/llama/engine-tp2/"]):
            subprocess.run([aws, *cmd], env=env, check=True, capture_output=True, timeout=60)
        yield endpoint
    finally:
        stop(proc)


def aws_env(endpoint: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": "eu-west-3",
    }


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def model(uri: str, secret: str | None = "models") -> ModelDeployment:
    spec: dict[str, Any] = {"model": {"format": "onnx", "storageUri": uri}}
    if secret:
        spec["model"]["storageSecretRef"] = {"name": secret}
    return ModelDeployment.model_validate({"metadata": {"name": "llama", "namespace": "bank-a"}, "spec": spec})


def pod_env(container: Mapping[str, Any], secret: Mapping[str, Any] | None) -> dict[str, str]:
    """The container's environment as the kubelet builds it: values, and secretKeyRefs from the Secret
    (a missing optional key is left out; a missing required one would stop the pod before it runs)."""
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            env[var["name"]] = var["value"]
            continue
        data = (secret or {}).get("data") or {}
        if ref["key"] in data:
            env[var["name"]] = base64.b64decode(data[ref["key"]]).decode()
        else:
            assert ref.get("optional"), f"required key {ref['key']} missing: the pod would not start"
    return env


def run_fetch(
    md: ModelDeployment,
    tmp_path: Path,
    clients: Clients,
    secret: Mapping[str, Any] | None,
    extra_env: Mapping[str, str] | None = None,
) -> tuple[int, str, Path]:
    """Run the model's fetch-model container as the pod would; (exit code, termination message, target)."""
    target = tmp_path / "engine"
    src = dataclasses.replace(sources(md)[0], target=str(target))
    container = fetch_container(md, src, "model-fetch:test")
    mount = tmp_path / "registry-config"  # where the dockerconfigjson Secret volume would be mounted
    script = container["command"][2].replace(REGISTRY_CONFIG_DIR, str(mount))
    if secret and ".dockerconfigjson" in (secret.get("data") or {}):
        mount.mkdir(exist_ok=True)
        (mount / "config.json").write_bytes(base64.b64decode(secret["data"][".dockerconfigjson"]))
    log = tmp_path / "termination-log"
    env = {
        "PATH": f"{clients.venv / 'bin'}:{clients.oras.parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "TERMINATION_LOG": str(log),
        **pod_env(container, secret),
        **(extra_env or {}),
    }
    done = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    message = log.read_text() if log.exists() else ""
    return done.returncode, message, target


def stalled_as(message: str) -> tuple[str, str]:
    """What the ModelDeployment's Stalled condition says for a pod whose fetch ended with message."""
    pod = {
        "status": {
            "initContainerStatuses": [
                {"name": "fetch-model", "state": {"terminated": {"exitCode": 1, "message": message}}}
            ]
        }
    }
    failure = pod_failure(pod)
    assert failure is not None
    return failure.reason, failure.message


def s3_secret(endpoint: str, secret_key: str = SECRET_KEY) -> dict[str, Any]:
    keys = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": secret_key, "AWS_ENDPOINT_URL": endpoint}
    return {"data": {k: b64(v) for k, v in keys.items()}}


# --- s3:// with the AWS CLI ------------------------------------------------------------------------


def test_s3_the_engine_lands_in_the_pod_with_the_secrets_credentials(s3: str, clients: Clients, tmp_path: Path) -> None:
    code, message, target = run_fetch(model("s3://models/llama/engine-tp2/"), tmp_path, clients, s3_secret(s3))
    assert code == 0, message
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "rank0.engine"]
    assert (target / "rank0.engine").stat().st_size == 4096


def test_s3_a_missing_bucket_stalls_the_model_naming_it(s3: str, clients: Clients, tmp_path: Path) -> None:
    code, message, _ = run_fetch(model("s3://no-such-bucket/llama/"), tmp_path, clients, s3_secret(s3))
    assert code == 1
    reason, said = stalled_as(message)
    assert reason == "ModelFetchFailed"
    assert "could not fetch s3://no-such-bucket/llama/" in said and "NoSuchBucket" in said, said
    assert "Secret 'models'" in said


def test_s3_a_prefix_with_nothing_under_it_is_not_an_empty_model(s3: str, clients: Clients, tmp_path: Path) -> None:
    code, message, _ = run_fetch(model("s3://models/llama/engine-tp4/"), tmp_path, clients, s3_secret(s3))
    assert code == 1
    assert stalled_as(message) == (
        "ModelFetchFailed",
        f"s3://models/llama/engine-tp4/ is empty: nothing was fetched into {tmp_path / 'engine'}; check the path",
    )


# --- oci:// with oras against a registry ---------------------------------------------------------


def _tls(d: Path) -> tuple[Path, Path, Path]:
    """A CA and a serving certificate for 127.0.0.1, as a private registry behind a corporate CA has."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fetch-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (d / "ca.crt", d / "registry.crt", d / "registry.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@dataclasses.dataclass(frozen=True)
class Registry:
    host: str
    ca: Path
    storage: Path


@pytest.fixture(scope="module")
def registry(clients: Clients, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry at 127.0.0.1:<port> holding models/llama:tp2 (an engine directory pushed with oras)."""
    d = tmp_path_factory.mktemp("registry")
    ca, cert, key = _tls(d)
    htpasswd = d / "htpasswd"
    hashed = subprocess.run(
        [str(clients.venv / "bin" / "python"), "-c",
         "import bcrypt,sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt()).decode())", PASSWORD],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    htpasswd.write_text(f"{USER}:{hashed}\n")
    port = free_port()
    config = {
        "version": 0.1,
        "storage": {"filesystem": {"rootdirectory": str(d / "data")}},
        "http": {"addr": f"127.0.0.1:{port}", "tls": {"certificate": str(cert), "key": str(key)}},
        "auth": {"htpasswd": {"realm": "models", "path": str(htpasswd)}},
    }
    (d / "config.yml").write_text(json.dumps(config))  # YAML reads JSON
    log = d / "registry.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([str(clients.registry), "serve", str(d / "config.yml")], stdout=sink, stderr=sink)
    try:
        wait_port(port, proc, log)
        engine = d / "push"
        engine.mkdir()
        (engine / "config.json").write_text('{"pretrained_config": {"mapping": {"tp_size": 2}}}')
        (engine / "rank0.engine").write_bytes(os.urandom(8192))
        host = f"127.0.0.1:{port}"
        subprocess.run(
            [str(clients.oras), "push", f"{host}/models/llama:tp2", "config.json", "rank0.engine",
             "-u", USER, "-p", PASSWORD, "--ca-file", str(ca)],
            cwd=engine, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        yield Registry(host, ca, d / "data")
    finally:
        stop(proc)


def docker_secret(host: str, password: str = PASSWORD) -> dict[str, Any]:
    config = {"auths": {host: {"auth": b64(f"{USER}:{password}")}}}
    return {"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": b64(json.dumps(config))}}


def trusting(reg: Registry) -> dict[str, str]:
    """The image trusts the registry's CA (Go reads SSL_CERT_FILE), as a pod's image trust store would."""
    return {"SSL_CERT_FILE": str(reg.ca)}


def test_oci_the_engine_is_pulled_with_the_pull_secret(registry: Registry, clients: Clients, tmp_path: Path) -> None:
    md = model(f"oci://{registry.host}/models/llama:tp2")
    code, message, target = run_fetch(md, tmp_path, clients, docker_secret(registry.host), trusting(registry))
    assert code == 0, message
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "rank0.engine"]


def test_oci_a_wrong_password_stalls_the_model_naming_the_secret(
    registry: Registry, clients: Clients, tmp_path: Path
) -> None:
    md = model(f"oci://{registry.host}/models/llama:tp2")
    secret = docker_secret(registry.host, password="not-it")
    code, message, _ = run_fetch(md, tmp_path, clients, secret, trusting(registry))
    assert code == 1
    reason, said = stalled_as(message)
    assert reason == "ModelFetchFailed"
    assert "401" in said or "unauthorized" in said.lower(), said
    assert "check .dockerconfigjson in Secret 'models'" in said


def test_oci_a_missing_tag_stalls_the_model(registry: Registry, clients: Clients, tmp_path: Path) -> None:
    md = model(f"oci://{registry.host}/models/llama:tp8")
    code, message, _ = run_fetch(md, tmp_path, clients, docker_secret(registry.host), trusting(registry))
    assert code == 1
    reason, said = stalled_as(message)
    assert reason == "ModelFetchFailed" and "not found" in said.lower(), said


def test_oci_a_corrupted_layer_is_refused_not_served(registry: Registry, clients: Clients, tmp_path: Path) -> None:
    """A blob whose bytes no longer match its digest (bit rot, a tampered store): oras verifies each
    layer and fails; the model is never started on it."""
    push = tmp_path / "push"
    push.mkdir()
    (push / "rank0.engine").write_bytes(os.urandom(8192))
    ref = f"{registry.host}/models/llama:corrupt"
    pushed = subprocess.run(
        [str(clients.oras), "push", ref, "rank0.engine", "-u", USER, "-p", PASSWORD, "--ca-file", str(registry.ca)],
        cwd=push, check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    digest = hashlib.sha256((push / "rank0.engine").read_bytes()).hexdigest()
    blob = registry.storage / "docker/registry/v2/blobs/sha256" / digest[:2] / digest / "data"
    assert blob.exists(), pushed.stdout
    blob.write_bytes(os.urandom(8192))  # same size, other bytes
    pod = tmp_path / "pod"
    pod.mkdir()
    code, message, _ = run_fetch(model(f"oci://{ref}"), pod, clients, docker_secret(registry.host), trusting(registry))
    assert code == 1
    reason, said = stalled_as(message)
    assert reason == "ModelFetchFailed" and "digest" in said.lower(), said
