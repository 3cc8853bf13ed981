"""Free loopback ports and HTTPS probes against the API server, using only the standard library."""

from __future__ import annotations

import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

from meridian.sim.pki import KeyPair


def free_ports(n: int) -> list[int]:
    """n distinct ports free on 127.0.0.1 right now (held open together so they cannot repeat)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tls_context(ca: Path, client: KeyPair) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(str(client.cert), str(client.key))
    return ctx


def get(url: str, ctx: ssl.SSLContext, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body) of a GET; status 0 when the server cannot be reached at all."""
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, TimeoutError):
        return 0, ""


def wait_ok(url: str, ctx: ssl.SSLContext, timeout: float, interval: float = 0.2) -> tuple[int, str]:
    """Poll url until it answers 200 or timeout passes; returns the last (status, body)."""
    deadline = time.monotonic() + timeout
    status, body = 0, ""
    while time.monotonic() < deadline:
        status, body = get(url, ctx)
        if status == 200:
            return status, body
        time.sleep(interval)
    return status, body
