"""An earlier version's finalizer and annotation are taken off, and nothing else."""

from __future__ import annotations

import jsonpatch  # type: ignore[import-untyped]
import pytest

from meridian.reconcile.legacy import cleanup

pytestmark = pytest.mark.unit


def test_only_the_earlier_versions_finalizer_and_annotation_go() -> None:
    body = {
        "metadata": {
            "finalizers": ["serving.meridian.dev/finalizer", "example.com/keep"],
            "annotations": {"serving.meridian.dev/last-handled-configuration": "{}", "note": "mine"},
        }
    }
    ops = cleanup(body)
    assert ops is not None
    after = jsonpatch.apply_patch(body, ops)
    assert after["metadata"] == {"finalizers": ["example.com/keep"], "annotations": {"note": "mine"}}


def test_the_finalizer_list_is_replaced_only_if_unchanged_since_read() -> None:
    body = {"metadata": {"finalizers": ["serving.meridian.dev/finalizer"]}}
    ops = cleanup(body)
    assert ops is not None
    moved_on = {"metadata": {"finalizers": ["serving.meridian.dev/finalizer", "example.com/new"]}}
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(moved_on, ops)


def test_a_model_with_no_leftovers_is_not_written() -> None:
    assert cleanup({"metadata": {"finalizers": ["example.com/keep"], "annotations": {"note": "x"}}}) is None
