"""Start-up failures that waiting cannot fix end `meridian run` at once, non-zero, saying why."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from tests.chart_helpers import service_account_token, token_kubeconfig

pytestmark = pytest.mark.integration


def test_a_metrics_port_in_use_exits_non_zero_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "MERIDIAN_METRICS_PORT": str(port), "MERIDIAN_LOG_FORMAT": "json"}
        done = subprocess.run(
            [sys.executable, "-m", "meridian.cli", "run"], env=env, capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 1
    assert "cannot serve metrics" in done.stderr and str(port) in done.stderr


def test_a_kind_it_may_not_list_exits_non_zero_naming_it(
    k8s: client.ApiClient, kubeconfig: Path, tmp_path: Path
) -> None:
    """Everything a Meridian operator needs but pods: it stops at once, saying which kind and why."""
    name = f"no-pods-{uuid.uuid4().hex[:6]}"
    core, rbac = client.CoreV1Api(k8s), client.RbacAuthorizationV1Api(k8s)
    core.create_namespaced_service_account("default", {"metadata": {"name": name}})
    everything = ["get", "list", "watch", "create", "update", "patch", "delete"]
    rules = [
        {"apiGroups": ["serving.meridian.dev"], "resources": ["*"], "verbs": everything},
        {
            "apiGroups": [""],
            "resources": ["services", "configmaps", "events", "namespaces", "nodes", "serviceaccounts"],
            "verbs": everything,
        },
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": everything},
        {"apiGroups": ["inference.networking.k8s.io"], "resources": ["inferencepools"], "verbs": everything},
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "verbs": everything},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": everything},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": everything},
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["get", "list", "watch"],
        },
    ]
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": rules})
    subject = {"kind": "ServiceAccount", "name": name, "namespace": "default"}
    binding = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [subject],
    }
    rbac.create_cluster_role_binding(binding)
    try:
        config = token_kubeconfig(kubeconfig, service_account_token(k8s, "default", name), tmp_path / "kc", name)
        env = {**os.environ, "KUBECONFIG": str(config), "MERIDIAN_METRICS_PORT": "0", "MERIDIAN_LOG_FORMAT": "json"}
        done = subprocess.run(
            [sys.executable, "-m", "meridian.cli", "run"], env=env, capture_output=True, text=True, timeout=60
        )
    finally:
        rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)
        core.delete_namespaced_service_account(name, "default")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-2000:]
    assert "cannot list Pod cluster-wide: 403" in out, out[-2000:]
