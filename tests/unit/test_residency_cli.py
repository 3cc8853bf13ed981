"""`meridian residency check` without a cluster: its proof and its two output forms."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from tests.sync_worlds import model, nodes_of, pod, region

from meridian.cli.residency import Row, check, print_rows
from meridian.render.routing import PICKER_LABEL

pytestmark = pytest.mark.unit


def rows_for(pods: list[dict[str, Any]], ns_tags: dict[str, str] | None = None) -> list[Row]:
    regions = [region("gra", ["EU", "FR"]), region("eri", ["UK"])]
    md = model()
    for p in pods:
        p["metadata"]["namespace"] = "bank"
    return check(pods, [md], regions, nodes_of(gra=1, eri=1), ns_tags or {})


def test_pods_in_qualifying_regions_pass_and_print_their_proof() -> None:
    rows = rows_for([pod("a", "gra", "gra-0"), pod("pending", "gra")])
    out = io.StringIO()
    print_rows(rows, "json", out)
    doc = json.loads(out.getvalue())
    assert doc["compliant"] is True and doc["violations"] == 0
    assert doc["pods"] == [
        {
            "namespace": "bank",
            "model": "llm",
            "pod": "a",
            "node": "gra-0",
            "region": "gra",
            "jurisdictions": ["EU", "FR"],
            "required": ["EU"],
            "compliant": True,
            "violation": "",
        }
    ]


def test_a_pod_on_a_uk_node_is_a_violation_naming_pod_node_and_region() -> None:
    rows = rows_for([pod("a", "gra", "gra-0"), pod("b", "gra", "eri-0")])
    out = io.StringIO()
    print_rows(rows, "table", out)
    text = out.getvalue()
    assert "VIOLATION: region eri lacks EU" in text and " b " in text and "eri-0" in text
    assert text.rstrip().endswith("2 pod(s), 1 violation(s)")


def test_the_namespace_label_adds_to_what_the_model_requires() -> None:
    rows = rows_for([pod("a", "gra", "gra-0")], {"bank": "FR"})
    assert [r.required for r in rows] == [("EU", "FR")]
    rows = rows_for([pod("a", "gra", "gra-0")], {"bank": "CH"})
    assert [r.violation for r in rows] == ["region gra lacks CH"]


def test_a_models_endpoint_picker_is_audited_under_the_models_residency() -> None:
    """The picker reads every prompt: on a UK node it is a violation of the EU model it serves."""
    picker = pod("llm-epp-0", "gra", "eri-0")
    picker["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "meridian", PICKER_LABEL: "llm"}
    rows = rows_for([picker])
    assert [(r.model, r.pod, list(r.required), r.violation) for r in rows] == [
        ("llm", "llm-epp-0", ["EU"], "region eri lacks EU")
    ]
