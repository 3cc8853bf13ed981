"""Turning what a failed Triton pod left behind into one sentence a user can act on.

Triton's log is long and its useful line is rarely the last one; TensorRT-LLM adds MPI noise on
top. These pure functions pick the line that explains the failure; reconcile puts the result in a
Stalled condition and an Event. Patterns are those Triton 2.x prints (checked against a real
server in tests/integration/test_triton_server.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meridian.runtime.shell import MESSAGE_PREFIX

MAX_MESSAGE = 600

_PROTO_ERROR = re.compile(r"Error parsing text-format inference\.ModelConfig: (?P<line>\d+):(?P<col>\d+): (?P<msg>.+)")
_POLL_FAILED = re.compile(r"Poll failed for model directory '(?P<model>[^']+)': (?P<msg>.+?)\"?$")
_LOAD_FAILED = re.compile(r"failed to load '(?P<model>[^']+)' version (?P<version>\d+): (?P<msg>.+?)\"?$")
_MODEL_FAILED = re.compile(r"failed to load model '(?P<model>[^']+)': (?P<msg>.+?)\"?$")
_TRTLLM_ERROR = re.compile(r"\[TensorRT-LLM\]\[ERROR\] (?P<msg>.+)")
_SERVICE_FAILED = re.compile(r"failed to start (?P<what>HTTP|GRPC|gRPC|Metrics) service: (?P<msg>.+)", re.IGNORECASE)
_CREATING_SERVER = re.compile(r"error: creating server: (?P<msg>.+)")


def _clean(text: str) -> str:
    """First meaningful line of an error Triton logged with escaped newlines and a Python traceback."""
    text = text.replace("\\n", "\n").replace('\\"', '"')
    text = text.split("\n\nAt:", 1)[0].strip().splitlines()[0] if text.strip() else ""
    text = re.sub(r"^(Internal|Invalid argument|Not found|Unavailable|Unknown)( -|:) ", "", text)
    return text.strip().rstrip('"').strip()


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def triton_failure_reason(log_text: str) -> str | None:
    """Why Triton did not come up, from its log (or a termination message holding the log's tail).

    None when the log shows no known failure, e.g. a server that is still loading.
    """
    lines = log_text.splitlines()
    found: list[str] = []
    parse_errors = [m for m in map(_PROTO_ERROR.search, lines) if m]
    for m in filter(None, map(_POLL_FAILED.search, lines)):
        if "failed to read text proto" in m["msg"] and parse_errors:
            p = parse_errors.pop(0)
            found.append(
                f"config.pbtxt of model '{m['model']}' does not parse: line {p['line']} column {p['col']}: {p['msg']}"
            )
        else:
            found.append(f"model directory '{m['model']}' is unusable: {_clean(m['msg'])}")
    for m in filter(None, map(_LOAD_FAILED.search, lines)):
        found.append(f"model '{m['model']}' version {m['version']} failed to load: {_clean(m['msg'])}")
    for m in filter(None, map(_MODEL_FAILED.search, lines)):
        found.append(f"model '{m['model']}' failed to load: {_clean(m['msg'])}")
    trtllm = [_clean(m["msg"]) for m in map(_TRTLLM_ERROR.search, lines) if m]
    if trtllm:
        found.append(f"TensorRT-LLM: {trtllm[0]}")
    for m in filter(None, map(_SERVICE_FAILED.search, lines)):
        found.append(f"{m['what']} endpoint did not start: {_clean(m['msg'])}")
    if not found:
        created = [m for m in map(_CREATING_SERVER.search, lines) if m]
        if created:
            found.append(f"Triton did not start: {_clean(created[-1]['msg'])}")
    return _short("; ".join(_unique(found))) if found else None


@dataclass(frozen=True)
class PodFailure:
    """A reason for Stalled (CamelCase), the sentence for its message, and where it came from."""

    reason: str
    message: str
    container: str
    restarts: int = 0


def _statuses(pod: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    return list((pod.get("status") or {}).get(key) or [])


def _terminated(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The failed exit that explains a container not running: its current state, or the last one
    while it waits to restart. A container running again after a failure is not failing."""
    state = status.get("state") or {}
    if "running" in state:
        return None
    for term in (state.get("terminated"), (status.get("lastState") or {}).get("terminated")):
        if isinstance(term, Mapping) and term.get("exitCode", 0) != 0:
            return term
    return None


def _from_termination(name: str, term: Mapping[str, Any], restarts: int) -> PodFailure:
    message = (term.get("message") or "").strip()
    code = term.get("exitCode")
    if term.get("reason") == "OOMKilled":
        return PodFailure(
            "OutOfMemory",
            f"container {name} was killed for exceeding its memory limit; raise spec.resources.memory",
            name,
            restarts,
        )
    mine = [line[len(MESSAGE_PREFIX) :] for line in message.splitlines() if line.startswith(MESSAGE_PREFIX)]
    if mine:
        text = mine[-1]
        if text.startswith("engine built for"):
            reason = "EngineMismatch"
        elif name.startswith("fetch-"):
            reason = "ModelFetchFailed"
        else:
            reason = "ModelRepositoryInvalid"
        return PodFailure(reason, _short(text), name, restarts)
    explained = triton_failure_reason(message)
    if explained:
        return PodFailure("ModelLoadFailed", explained, name, restarts)
    tail = " ".join(message.splitlines()[-3:])
    detail = f": {_short(tail)}" if tail else ""
    return PodFailure("ContainerFailed", f"container {name} exited with code {code}{detail}", name, restarts)


_WAITING_REASONS = {
    "CreateContainerConfigError": "ContainerConfigInvalid",
    "ErrImagePull": "ImagePullFailed",
    "ImagePullBackOff": "ImagePullFailed",
    "InvalidImageName": "ImagePullFailed",
}


def pod_failure(pod: Mapping[str, Any]) -> PodFailure | None:
    """The first thing keeping a pod from serving that a person must fix, or None.

    Init containers are looked at first, in order, since they block everything after them. Plain
    waiting (PodInitializing, ContainerCreating) is not a failure. Reconcile may wait for a few
    restarts (PodFailure.restarts) before calling a ModelDeployment stalled.
    """
    for key in ("initContainerStatuses", "containerStatuses"):
        for status in _statuses(pod, key):
            name = str(status.get("name", ""))
            restarts = int(status.get("restartCount") or 0)
            waiting = (status.get("state") or {}).get("waiting") or {}
            reason = _WAITING_REASONS.get(waiting.get("reason", ""))
            if reason:
                message = waiting.get("message") or waiting["reason"]
                if reason == "ContainerConfigInvalid" and "secret" in message.lower():
                    reason = "StorageCredentialsInvalid"
                return PodFailure(reason, _short(f"container {name}: {message}"), name, restarts)
            term = _terminated(status)
            if term is not None:
                return _from_termination(name, term, restarts)
    return None
