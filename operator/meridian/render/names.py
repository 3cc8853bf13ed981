"""Child names and label values: valid for every name the API server accepts, never shared.

A ModelDeployment or Region name is a DNS-1123 subdomain (up to 253 characters, dots allowed); a
Service name must be a DNS-1035 label (63 characters, no dots, starting with a letter) and a label
value at most 63 characters. A name that already fits is used as it is; one that does not is
shortened and given a hash of the original, so two inputs never meet in one output.

Per-region children always carry a hash of (model, region): `<md>-<region>` alone is ambiguous
(`llm` in `gra-eu` and `llm-gra` in `eu`), and could equal another model's own Service name.
"""

from __future__ import annotations

import base64
import hashlib
import re

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
MAX_LABEL = 63
MAX_SUBDOMAIN = 253
HASH_LEN = 8


def digest(*parts: str) -> str:
    """8 lowercase base32 characters of a SHA-256 over the parts (40 bits)."""
    raw = hashlib.sha256("\x00".join(parts).encode()).digest()
    return base64.b32encode(raw).decode().lower()[:HASH_LEN]


def _dns1035_prefix(text: str, room: int) -> str:
    """Lowercase letters, digits and single dashes, starting with a letter, at most `room` long."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not s or not s[0].isalpha():
        s = "m-" + s
    return s[:room].rstrip("-")


def dns1035(text: str, *parts: str) -> str:
    """`text` if it is a valid DNS-1035 label, else a readable prefix plus a hash of `parts`."""
    if DNS1035.match(text) and len(text) <= MAX_LABEL:
        return text
    return f"{_dns1035_prefix(text, MAX_LABEL - HASH_LEN - 1)}-{digest(*(parts or (text,)))}"


def label_value(text: str) -> str:
    """`text` if it is a valid label value, else a shortened one with a hash of it."""
    if len(text) <= MAX_LABEL and LABEL_VALUE.match(text):
        return text
    prefix = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[: MAX_LABEL - HASH_LEN - 1]
    prefix = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", prefix)
    return f"{prefix}-{digest(text)}" if prefix else digest(text)


def model_service_name(md: str) -> str:
    """The Service clients call: the model's own name whenever a Service can carry it."""
    return dns1035(md)


def regional_name(md: str, region: str) -> str:
    """Deployment and Service of one region: `<md>-<region>-<hash of both>`, a DNS-1035 label."""
    prefix = _dns1035_prefix(f"{md}-{region}", MAX_LABEL - HASH_LEN - 1)
    return f"{prefix}-{digest(md, region)}"


def picker_name(md: str) -> str:
    """The endpoint picker's objects (spec.routing): `<md>-epp-<hash>`, a DNS-1035 label. The hash
    keeps it from meeting the Service of a model that is itself named `<md>-epp`."""
    return f"{_dns1035_prefix(f'{md}-epp', MAX_LABEL - HASH_LEN - 1)}-{digest(md, 'endpoint-picker')}"


def config_map_name(md: str) -> str:
    name = f"{md}-model-repository"
    return name if len(name) <= MAX_SUBDOMAIN else f"{md[:200].rstrip('.-')}-{digest(md)}-model-repository"


def event_prefix(name: str) -> str:
    """generateName for Events: the API server appends 5 characters to a name of at most 253."""
    return name[:200].rstrip(".-") + "."
