"""The API server behaviour Meridian's client relies on, pinned against the real one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes_asyncio.client.exceptions import ApiException

from meridian.reconcile.kube import Kube

pytestmark = pytest.mark.integration


async def _connect(kubeconfig: Path) -> Kube:
    from kubernetes_asyncio import client as aclient
    from kubernetes_asyncio import config as aconfig

    cfg = aclient.Configuration()
    await aconfig.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return Kube(aclient.ApiClient(cfg))


def test_create_only_makes_a_free_name_and_refuses_a_taken_one(
    kubeconfig: Path, k8s: client.ApiClient, namespace: str
) -> None:
    """A model's first apply of a name must never change an object someone else made."""
    core = client.CoreV1Api(k8s)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "theirs"}, "data": {"k": "mine"}})

    def cm(name: str) -> dict[str, object]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"k": "meridian"},
        }

    async def run() -> int | None:
        kube = await _connect(kubeconfig)
        try:
            await kube.create_only(cm("free"))
            try:
                await kube.create_only(cm("theirs"))
            except ApiException as e:
                return e.status
            return None
        finally:
            await kube.close()

    assert asyncio.run(run()) == 409
    assert core.read_namespaced_config_map("free", namespace).data == {"k": "meridian"}
    theirs = core.read_namespaced_config_map("theirs", namespace)
    assert theirs.data == {"k": "mine"}
    assert all(m.manager != "meridian" for m in theirs.metadata.managed_fields or [])


# what a user may put in a spec and Meridian copies into a child or a status: astral characters
# (JSON escapes them as surrogate pairs), C1 control characters, the next-line character
ODD_TEXT = "model \U0001f600 \U0008ac77 \x85 \x9b\x1e end"


def test_apply_carries_any_text_a_spec_may_hold(kubeconfig: Path, k8s: client.ApiClient, namespace: str) -> None:
    """Server-side apply bodies are YAML to the API server; text that YAML cannot carry as JSON
    writes it had escaped is refused with 400, and a model would retry forever."""
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "odd", "namespace": namespace},
        "data": {"k": ODD_TEXT},
    }

    async def run() -> None:
        kube = await _connect(kubeconfig)
        try:
            await kube.apply(obj)
        finally:
            await kube.close()

    asyncio.run(run())
    assert client.CoreV1Api(k8s).read_namespaced_config_map("odd", namespace).data == {"k": ODD_TEXT}
