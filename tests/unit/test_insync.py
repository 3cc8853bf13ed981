"""A reconcile writes only when a field it sets differs live; server defaults never cause writes."""

from __future__ import annotations

import pytest

from meridian.sync.insync import in_sync

pytestmark = pytest.mark.unit


def test_server_defaults_are_not_drift() -> None:
    desired = {"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "t", "image": "i"}]}}}}
    live = {
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 10,
            "template": {"spec": {"containers": [{"name": "t", "image": "i", "imagePullPolicy": "IfNotPresent"}]}},
        }
    }
    assert in_sync(desired, live)


def test_edited_or_missing_field_is_drift() -> None:
    assert not in_sync({"spec": {"replicas": 2}}, {"spec": {"replicas": 5}})
    assert not in_sync({"metadata": {"labels": {"a": "b"}}}, {"metadata": {"labels": {}}})
    assert not in_sync({"x": [1, 2]}, {"x": [1]})


def test_quantities_compare_by_value() -> None:
    assert in_sync({"cpu": "0.5"}, {"cpu": "500m"})
    assert in_sync({"memory": "1Gi"}, {"memory": "1024Mi"})
    assert not in_sync({"memory": "1Gi"}, {"memory": "1G"})
    assert not in_sync({"enabled": True}, {"enabled": "1"})
