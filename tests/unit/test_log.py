"""Start-up noise: a 429 kopf retries is said once, at info; a real error stays an error."""

from __future__ import annotations

import logging

import pytest

from meridian.log import TransientRetries

pytestmark = pytest.mark.unit

RETRY = (
    "Request attempt #1/9 failed; will retry: GET https://127.0.0.1:6443/apis/serving.meridian.dev/v1alpha1/"
    "modeldeployments -> APITooManyRequestsError('storage is (re)initializing', {'code': 429}, status=429)"
)


def record(message: str, level: int = logging.ERROR, name: str = "kopf._cogs.clients.watching") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_a_retried_429_is_info_once() -> None:
    f = TransientRetries()
    first, again = record(RETRY), record(RETRY.replace("#1/9", "#2/9"))
    assert f.filter(first) and first.levelname == "INFO"
    assert not f.filter(again)


def test_a_request_kopf_gives_up_on_stays_an_error() -> None:
    f = TransientRetries()
    escalated = record(RETRY.replace("will retry", "escalating"))
    assert f.filter(escalated) and escalated.levelname == "ERROR"
    other = record("Request attempt #1/9 failed; will retry: GET https://x/y -> APIForbiddenError('no')")
    assert f.filter(other) and other.levelname == "ERROR"
