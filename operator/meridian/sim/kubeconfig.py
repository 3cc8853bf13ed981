"""Kubeconfig files for the admin user and each control-plane component, with embedded-by-path certs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from meridian.sim.pki import KeyPair

CONTEXT = "meridian-sim"


def render(server: str, ca: Path, client: KeyPair, user: str) -> dict[str, Any]:
    """A single-context kubeconfig pointing at server, authenticating with a client certificate."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [
            {
                "name": user,
                "user": {"client-certificate": str(client.cert), "client-key": str(client.key)},
            }
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
        "current-context": CONTEXT,
    }


def write(path: Path, server: str, ca: Path, client: KeyPair, user: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(render(server, ca, client, user), sort_keys=False))
    path.chmod(0o600)
    return path
