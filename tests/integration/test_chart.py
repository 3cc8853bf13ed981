"""The Helm chart, proven on the real control plane, and Meridian's fitness for GitOps.

- `helm lint --strict` is clean and values.schema.json rejects unknown keys;
- every rendered manifest validates (kubeconform, strict) against the API server's own schemas and
  our CRDs, offline, and an invalid manifest does fail that validation;
- the chart installs into a namespace that enforces Pod Security "restricted";
- `meridian run` under the chart's ServiceAccount (a TokenRequest token, nothing else) reconciles a
  ModelDeployment to Ready, prunes, and keeps its peering entry, so the RBAC is sufficient; the same
  identity is denied Secrets and everything outside what the code uses;
- the examples apply server-side twice with no change, and after Meridian reconciles them
  `kubectl diff --server-side` is empty: Meridian owns no field a user wrote.
"""

from __future__ import annotations

import functools
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.chart_helpers import (
    CHART,
    REPO,
    Helm,
    RecordingProxy,
    crd_documents,
    documents,
    kubeconform,
    service_account_token,
    token_kubeconfig,
    tool,
    write_builtin_schemas,
    write_crd_schemas,
)
from tests.fixtures_operator import (
    GROUP,
    PLURAL,
    VERSION,
    Mdeps,
    OperatorProcess,
    start_operator,
    stop_operator,
    wait_for,
)

from meridian.render.names import regional_name
from meridian.sim import binaries, cluster

pytestmark = pytest.mark.integration

MD_SPEC: dict[str, Any] = {
    "model": {"format": "onnx", "storageUri": "s3://models/m"},
    "resources": {"gpu": {"products": ["H100-80GB-HBM3"]}, "cpu": "1", "memory": "1Gi"},
    "replicas": 1,
    "placement": {"residency": ["EU"], "regions": [{"name": "gra"}]},
}

# Value sets that between them switch on every template branch.
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced-ha": {"watchNamespaces": ["team-a", "team-b"], "replicas": 3},
    "everything": {
        "image": {"digest": "sha256:" + "a" * 64},
        "imagePullSecrets": [{"name": "registry"}],
        "peering": {"enabled": True, "name": "meridian-ha"},
        "operator": {
            "logLevel": "DEBUG",
            "prometheusUrl": "http://prometheus.monitoring:9090",
            "images": {"onnx": "registry.example/tritonserver:25.10-py3"},
            "downloaderImage": "registry.example/model-fetch:0.1.0",
            "extraEnv": [
                {"name": "HTTPS_PROXY", "value": "http://proxy:3128"},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            ],
        },
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "dashboard": {"enabled": True, "namespace": "monitoring"},
        "serviceAccount": {"annotations": {"example.com/role": "meridian"}},
        "crds": {"templated": True},
        "karmada": {"enabled": True},
        "admission": {"residencyPolicy": {"validationActions": ["Warn", "Audit"]}},
        "resources": {"requests": {"cpu": "200m", "memory": "300Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
        "podAnnotations": {"example.com/team": "platform"},
        "podLabels": {"team": "platform"},
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "meridian"}},
                        },
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "meridian"}},
            }
        ],
    },
    "bare": {
        "rbac": {"create": False},
        "serviceAccount": {"create": False, "name": "existing"},
        "metrics": {"service": {"enabled": False}},
        "admission": {"residencyPolicy": {"enabled": False}},
        "podDisruptionBudget": {"enabled": False},
        "resources": {},
    },
}

# The exact RBAC the chart grants: (apiGroup, resource, verb, resourceName). The "why" of each rule
# is in templates/rbac.yaml; a change here is a change of the operator's privileges, on purpose.
CHILDREN = (
    ("apps", "deployments"),
    ("", "services"),
    ("", "configmaps"),
    ("policy", "poddisruptionbudgets"),
    ("", "serviceaccounts"),
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("inference.networking.k8s.io", "inferencepools"),
    ("gateway.networking.k8s.io", "httproutes"),
    ("policy.karmada.io", "propagationpolicies"),
)
# what the endpoint picker's Role grants, which the operator must hold to grant it
PICKER_READS = (
    ("inference.networking.x-k8s.io", "inferenceobjectives"),
    ("inference.networking.x-k8s.io", "inferencemodelrewrites"),
)
NAMESPACED_RULES = {
    *{("serving.meridian.dev", "modeldeployments", verb, "") for verb in ("list", "watch", "patch")},
    ("serving.meridian.dev", "modeldeployments/status", "patch", ""),
    *{
        (group, res, verb, "")
        for group, res in CHILDREN
        for verb in ("get", "list", "watch", "create", "patch", "delete")
    },
    *{(group, res, verb, "") for group, res in PICKER_READS for verb in ("get", "list", "watch")},
    ("", "pods", "get", ""),
    ("", "pods", "list", ""),
    ("", "pods", "watch", ""),
    ("", "pods", "delete", ""),
    ("", "events", "create", ""),
}
CLUSTER_RULES = {
    ("serving.meridian.dev", "regions", "list", ""),
    ("serving.meridian.dev", "regions", "watch", ""),
    ("serving.meridian.dev", "regions/status", "patch", ""),
    ("", "nodes", "list", ""),
    ("", "nodes", "watch", ""),
    ("", "namespaces", "get", ""),
    ("", "namespaces", "list", ""),
    ("", "namespaces", "watch", ""),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list", ""),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch", ""),
}
NAMESPACED_MODE_CLUSTER_EXTRA = {
    ("", "namespaces", "list", ""),
    ("", "namespaces", "watch", ""),
    ("", "pods", "list", ""),
}


def peering_rules(plural: str, name: str) -> set[tuple[str, str, str, str]]:
    return {("kopf.dev", plural, "list", ""), ("kopf.dev", plural, "watch", ""), ("kopf.dev", plural, "patch", name)}


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(tool("helm"), tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def kubeconform_bin() -> Path:
    return tool("kubeconform")


@pytest.fixture(scope="module")
def schemas(k8s: client.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kubeconform's schemas: built-in kinds from this API server, our kinds from the chart's CRDs."""
    root = tmp_path_factory.mktemp("schemas")
    assert write_builtin_schemas(k8s, root) > 100
    crds = list(crd_documents(sorted((CHART / "crds").glob("*.yaml"))))
    assert write_crd_schemas(crds, root) == len(crds) >= 4
    return root


@dataclass
class Release:
    name: str
    namespace: str
    fullname: str
    manifest: list[dict[str, Any]]


Install = Callable[[dict[str, Any]], Release]


def render(helm: Helm, values: dict[str, Any], tmp_path: Path, release: str = "mr", namespace: str = "ops") -> str:
    return helm.template(release, namespace, values, tmp_path / f"values-{uuid.uuid4().hex[:6]}.yaml")


@pytest.fixture
def install(helm: Helm, kubeconfig: Path, k8s: client.ApiClient, tmp_path: Path) -> Iterator[Install]:
    """install(values) -> Release: `helm install --wait` into a fresh namespace that enforces Pod
    Security "restricted"; uninstalled (and the namespace deleted) after the test."""
    core = client.CoreV1Api(k8s)
    done: list[Release] = []

    def _install(values: dict[str, Any]) -> Release:
        name = f"mr-{uuid.uuid4().hex[:6]}"
        ns = f"{name}-system"
        labels = {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        }
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels=labels)))
        release = Release(name, ns, f"{name}-meridian", [])
        done.append(release)
        values_file = tmp_path / f"{name}.yaml"
        values_file.write_text(yaml.safe_dump(values))
        # the session fixture installed our CRDs already: Helm skips existing CRDs from crds/ and
        # creates the missing ones (kopf's peering CRDs)
        result = helm.run(
            "install", name, str(CHART), "--namespace", ns, "--values", str(values_file),
            "--wait", "--timeout", "180s", kubeconfig=kubeconfig,
        )  # fmt: skip
        assert result.returncode == 0, f"helm install failed:\n{result.stdout}\n{result.stderr}"
        got = helm.run("get", "manifest", name, "--namespace", ns, kubeconfig=kubeconfig)
        assert got.returncode == 0, got.stderr
        release.manifest = documents(got.stdout)
        return release

    yield _install
    for release in done:
        helm.run("uninstall", release.name, "--namespace", release.namespace, "--wait", kubeconfig=kubeconfig)
        try:
            core.delete_namespace(release.namespace)
        except ApiException as e:
            if e.status != 404:
                raise


def as_service_account(k8s: client.ApiClient, kubeconfig: Path, release: Release, path: Path) -> Path:
    """A kubeconfig holding only a TokenRequest token of the chart's ServiceAccount."""
    token = service_account_token(k8s, release.namespace, release.fullname)
    return token_kubeconfig(kubeconfig, token, path, f"system:serviceaccount:{release.namespace}:{release.fullname}")


def can(api: client.ApiClient, verb: str, resource: str, group: str = "", namespace: str = "", sub: str = "") -> bool:
    """SelfSubjectAccessReview: what `kubectl auth can-i` asks, as the identity of `api`."""
    attributes = client.V1ResourceAttributes(
        verb=verb, group=group, resource=resource, subresource=sub, namespace=namespace
    )
    review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes))
    status = client.AuthorizationV1Api(api).create_self_subject_access_review(review).status
    assert status is not None
    return bool(status.allowed)


def granted(k8s: client.ApiClient, kind: str, name: str, namespace: str = "") -> set[tuple[str, str, str, str]]:
    rbac = client.RbacAuthorizationV1Api(k8s)
    role = rbac.read_namespaced_role(name, namespace) if kind == "Role" else rbac.read_cluster_role(name)
    out: set[tuple[str, str, str, str]] = set()
    for rule in role.rules or []:
        for group in rule.api_groups or []:
            for resource in rule.resources or []:
                for verb in rule.verbs:
                    assert "*" not in (group, resource, verb), f"wildcard in {kind} {name}: {rule}"
                    for resource_name in rule.resource_names or [""]:
                        out.add((group, resource, verb, resource_name))
    return out


def operator_env(k8s: client.ApiClient, release: Release) -> dict[str, str]:
    """The operator's settings exactly as the chart configures the pod (its ConfigMap), except the
    metrics port, which start_operator picks free."""
    data = client.CoreV1Api(k8s).read_namespaced_config_map(release.fullname, release.namespace).data or {}
    return {k: v for k, v in data.items() if k != "MERIDIAN_METRICS_PORT"}


def reconciles(op: OperatorProcess, result: str) -> float:
    return sum(v for labels, v in op.metric("meridian_reconciles_total").items() if ("result", result) in labels)


# -- lint, schema, render ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_lint_strict(helm: Helm, variant: str, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(VARIANTS[variant]))
    done = helm.run("lint", "--strict", str(CHART), "--values", str(values))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


@pytest.mark.parametrize(
    "values",
    [
        {"replica": 2},
        {"image": {"tagg": "1.0"}},
        {"metrics": {"serviceMonitor": {"enable": True}}},
        {"resources": {"request": {"cpu": "1"}}},
        {"operator": {"logFormat": "xml"}},
        {"watchNamespaces": ["Not_A_Namespace"]},
        {"operator": {"images": {"gguf": "x"}}},
    ],
    ids=["top", "nested", "deep", "resources", "enum", "namespace-name", "image-format"],
)
def test_values_schema_rejects_unknown_keys_and_bad_values(helm: Helm, values: dict[str, Any], tmp_path: Path) -> None:
    file = tmp_path / "values.yaml"
    file.write_text(yaml.safe_dump(values))
    done = helm.run("template", "mr", str(CHART), "--values", str(file))
    assert done.returncode != 0, f"accepted {values}"
    assert "values don't meet the specifications of the schema" in done.stderr, done.stderr


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_manifests_validate_against_cluster_and_crd_schemas(
    helm: Helm, kubeconform_bin: Path, schemas: Path, variant: str, tmp_path: Path
) -> None:
    manifest = render(helm, VARIANTS[variant], tmp_path)
    docs = documents(manifest)
    # no schema for prometheus-operator's ServiceMonitor offline; checked against the Service below
    done = kubeconform(kubeconform_bin, schemas, manifest, "-skip", "ServiceMonitor")
    report = json.loads(done.stdout)
    assert done.returncode == 0, json.dumps(report["resources"], indent=2) + done.stderr
    summary = report["summary"]
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert summary["valid"] == len(docs) - len(monitors), summary
    assert summary["invalid"] == summary["errors"] == 0
    for monitor in monitors:
        service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-metrics"))
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_kubeconform_fails_an_invalid_manifest(
    helm: Helm, kubeconform_bin: Path, schemas: Path, tmp_path: Path
) -> None:
    """The validation above is not vacuous: a misspelt field and a wrong type are both caught."""
    docs = documents(render(helm, {}, tmp_path))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonroot"] = True
    crd_user = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "x"},
        "spec": {**MD_SPEC, "replicas": "two"},
    }
    for broken in (deployment, crd_user):
        done = kubeconform(kubeconform_bin, schemas, yaml.safe_dump(broken))
        report = json.loads(done.stdout)
        assert done.returncode != 0 and report["summary"]["invalid"] == 1, report


def test_templated_crds_are_the_shipped_ones_and_the_api_server_accepts_them(
    helm: Helm, kubeconfig: Path, tmp_path: Path
) -> None:
    """crds.templated renders the same CRDs as crds/ (through Helm's YAML round trip, unchanged), and
    the API server accepts them as an update of the installed ones (server-side dry run)."""
    rendered = [
        d
        for d in documents(render(helm, {"crds": {"templated": True}}, tmp_path))
        if d["kind"] == "CustomResourceDefinition"
    ]
    shipped = {
        d["metadata"]["name"]: d for d in crd_documents(sorted((CHART / "crds").glob("serving.meridian.dev_*.yaml")))
    }
    assert {d["metadata"]["name"] for d in rendered} == set(shipped)
    for crd in rendered:
        assert crd["spec"] == shipped[crd["metadata"]["name"]]["spec"]
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    manifest = tmp_path / "crds.yaml"
    manifest.write_text(yaml.safe_dump_all(rendered))
    done = kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", str(manifest))
    assert done.returncode == 0, done.stderr


def test_pod_meets_restricted_pod_security(helm: Helm, tmp_path: Path) -> None:
    docs = documents(render(helm, {}, tmp_path))
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])


def test_karmada_grants_the_member_clusters_proxy_only_when_enabled(helm: Helm, tmp_path: Path) -> None:
    def proxy_rules(values: dict[str, Any]) -> list[dict[str, Any]]:
        docs = documents(render(helm, values, tmp_path))
        roles = [d for d in docs if d["kind"] == "ClusterRole"]
        return [r for role in roles for r in role["rules"] if "cluster.karmada.io" in r["apiGroups"]]

    assert proxy_rules({}) == []
    assert proxy_rules({"karmada": {"enabled": True}}) == [
        {"apiGroups": ["cluster.karmada.io"], "resources": ["clusters/proxy"], "verbs": ["get", "delete"]}
    ]


def test_residency_policy_is_the_one_placement_ships(helm: Helm, tmp_path: Path) -> None:
    example = REPO / "examples" / "admission" / "residency-policy.yaml"
    if not example.is_file():
        pytest.skip(f"{example.relative_to(REPO)} is not in the repo; the chart carries its own copy")
    ours = {d["kind"]: d for d in documents(render(helm, {}, tmp_path)) if "ValidatingAdmissionPolicy" in d["kind"]}
    theirs = {d["kind"]: d for d in documents(example.read_text())}
    assert ours["ValidatingAdmissionPolicy"]["spec"] == theirs["ValidatingAdmissionPolicy"]["spec"]
    # the binding differs only in the policy's name, which carries the release's
    policy_name = ours["ValidatingAdmissionPolicy"]["metadata"]["name"]
    assert ours["ValidatingAdmissionPolicyBinding"]["spec"] == {
        **theirs["ValidatingAdmissionPolicyBinding"]["spec"],
        "policyName": policy_name,
    }


# -- on the cluster ---------------------------------------------------------------------------------


def test_operator_under_chart_identity_reconciles_namespaced_ha(
    install: Install, k8s: client.ApiClient, kubeconfig: Path, private_namespace: str, tmp_path: Path
) -> None:
    """Namespaced mode, peering on: the operator holds exactly the chart's RBAC and still does its job."""
    namespace = private_namespace  # the session operator stays out of it
    release = install({"watchNamespaces": [namespace], "replicas": 2})
    kinds = sorted(d["kind"] for d in release.manifest)
    assert kinds.count("Role") == kinds.count("RoleBinding") == 1 and "KopfPeering" in kinds

    # the RBAC, exactly
    assert granted(k8s, "Role", release.fullname, namespace) == NAMESPACED_RULES | peering_rules(
        "kopfpeerings", release.fullname
    )
    assert granted(k8s, "ClusterRole", release.fullname) == CLUSTER_RULES | NAMESPACED_MODE_CLUSTER_EXTRA

    sa = cluster.api_client(as_service_account(k8s, kubeconfig, release, tmp_path / "sa.kubeconfig"))
    try:
        # denied what it has no business with: Secrets anywhere, and anything outside the watched namespace
        core = client.CoreV1Api(sa)
        for call in (
            lambda: core.list_namespaced_secret(namespace),
            lambda: core.list_namespaced_secret(release.namespace),
            lambda: core.list_secret_for_all_namespaces(),
            lambda: core.list_namespaced_config_map("default"),
            lambda: client.AppsV1Api(sa).list_namespaced_deployment("default"),
        ):
            with pytest.raises(ApiException) as denied:
                call()
            assert denied.value.status == 403
        assert not can(sa, "update", "deployments", "apps", namespace)  # server-side apply: create + patch
        assert not can(sa, "delete", "modeldeployments", GROUP, namespace)
        assert not can(sa, "patch", "regions", GROUP)  # only their status
        assert not can(sa, "watch", "pods")  # cluster-wide it only lists (capacity accounting)
        assert can(sa, "patch", "modeldeployments", GROUP, namespace, sub="status")
        assert can(sa, "list", "pods")
    finally:
        sa.close()  # type: ignore[no-untyped-call]

    # the operator talks to the API server through a recorder: the verdict on its RBAC is read on the
    # wire, whatever the operator itself makes of an error
    token = service_account_token(k8s, release.namespace, release.fullname)
    with RecordingProxy(kubeconfig) as proxy:
        proxied = token_kubeconfig(kubeconfig, token, tmp_path / "sa-proxied.kubeconfig", "sa", server=proxy.url)
        op = start_operator(proxied, tmp_path / "operator.log", operator_env(k8s, release))
        try:
            mdeps = Mdeps(k8s, namespace)
            mdeps.create("llm", MD_SPEC)
            mdeps.wait_condition("llm", "Ready", timeout=90)
            wait_for("a successful reconcile by the chart-identity operator", lambda: reconciles(op, "ok") > 0)
            assert set(mdeps.deployments("llm")) == {regional_name("llm", "gra")}

            # moving the model prunes the old region's Deployment: the delete verb is exercised too
            move = {"placement": {"regions": [{"name": "rbx"}]}, "resources": {"gpu": {"products": ["A100-SXM4-80GB"]}}}
            mdeps.patch("llm", {"spec": move})
            wait_for(
                "llm moved to rbx", lambda: set(mdeps.deployments("llm")) == {regional_name("llm", "rbx")}, timeout=90
            )
            mdeps.wait_condition("llm", "Ready", timeout=90)
            assert reconciles(op, "error") == 0, op.log_tail()
        finally:
            stop_operator(op)

    writes = [(m, p, code) for m, p, code in proxy.records if m != "GET"]
    assert any(m == "PATCH" and code == 201 for m, _, code in writes), "the operator created nothing itself"
    assert any(m == "DELETE" and "/deployments/" + regional_name("llm", "gra") in p for m, p, _ in writes), (
        "the operator pruned nothing"
    )
    assert not proxy.denied(), f"requests denied to the chart's identity: {proxy.denied()}"

    # kopf's peering entry, written with the chart's identity (and withdrawn on shutdown)
    assert any(m == "PATCH" and f"/kopfpeerings/{release.fullname}" in p and code == 200 for m, p, code in writes)


def test_cluster_wide_install_grants_exactly_the_cluster_role_and_enforces_residency(
    install: Install, k8s: client.ApiClient, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    release = install({})
    assert granted(k8s, "ClusterRole", release.fullname) == CLUSTER_RULES | NAMESPACED_RULES
    assert not any(d["kind"] in ("Role", "KopfPeering", "ClusterKopfPeering") for d in release.manifest)

    sa = cluster.api_client(as_service_account(k8s, kubeconfig, release, tmp_path / "sa.kubeconfig"))
    try:
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(sa).list_secret_for_all_namespaces()
        assert denied.value.status == 403
        assert can(sa, "watch", "modeldeployments", GROUP)
        assert can(sa, "patch", "deployments", "apps", "any-namespace")
        assert not can(sa, "get", "secrets", "", namespace)
        assert not can(sa, "create", "pods", "", namespace)
    finally:
        sa.close()  # type: ignore[no-untyped-call]

    # the residency ValidatingAdmissionPolicy, as installed
    core = client.CoreV1Api(k8s)
    core.patch_namespace(namespace, {"metadata": {"labels": {"serving.meridian.dev/residency": "EU"}}})
    mdeps = Mdeps(k8s, namespace)
    uk = {**MD_SPEC, "placement": {"residency": ["UK"]}}

    def rejected() -> str | None:
        try:
            mdeps.create("uk-model", uk)
        except ApiException as e:
            if e.status in (403, 422):
                return str(e.body)
            raise
        mdeps.delete("uk-model")  # the policy was not active yet
        return None

    message = wait_for("the residency policy to reject a UK-only model", rejected, timeout=30, interval=0.5)
    assert "spec.placement.residency must contain EU" in message
    assert mdeps.create("eu-model", MD_SPEC)["metadata"]["name"] == "eu-model"


class AllReplicasPaused(AssertionError):
    """kopf paused every replica in favour of the others: they share a peering priority."""


def test_ha_replicas_one_active_and_failover(
    install: Install, k8s: client.ApiClient, kubeconfig: Path, private_namespace: str, tmp_path: Path
) -> None:
    """Two replicas under the chart's identity and peering: one reconciles, and when it stops the
    standby takes over."""
    namespace = private_namespace  # the session operator stays out of it
    release = install({"watchNamespaces": [namespace], "replicas": 2})
    sa_kubeconfig = as_service_account(k8s, kubeconfig, release, tmp_path / "sa.kubeconfig")
    env = operator_env(k8s, release)
    ops = [start_operator(sa_kubeconfig, tmp_path / f"operator-{i}.log", env) for i in range(2)]
    try:
        time.sleep(3)  # both have recorded themselves in the peering object and seen each other
        mdeps = Mdeps(k8s, namespace)
        mdeps.create("llm", MD_SPEC)
        deadline = time.monotonic() + 30
        while not any(reconciles(op, "ok") for op in ops):
            if time.monotonic() > deadline:
                if any("Pausing all operators" in op.log.read_text(errors="replace") for op in ops):
                    raise AllReplicasPaused("every replica paused in favour of a peer with the same priority")
                pytest.fail("no replica reconciled within 30 s")
            time.sleep(0.25)
        time.sleep(2)
        active = [op for op in ops if reconciles(op, "ok")]
        assert len(active) == 1, "more than one replica is active"
        (standby,) = [op for op in ops if op is not active[0]]

        stop_operator(active[0])  # kopf withdraws its peering entry on SIGTERM: the standby resumes
        mdeps.patch("llm", {"spec": {"replicas": 2}})
        wait_for("the standby to take over", lambda: reconciles(standby, "ok") > 0, timeout=60)
        mdeps.wait_condition("llm", "Ready", timeout=90)
    finally:
        for op in ops:
            stop_operator(op)


# -- GitOps -----------------------------------------------------------------------------------------


def example_files() -> list[Path]:
    out = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        if any(d.get("kind") == "ModelDeployment" for d in yaml.safe_load_all(path.read_text()) if d):
            out.append(path)
    return out


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    tool_path = binaries.locate().kubectl
    assert tool_path is not None, "kubectl is built with the control plane (make tools)"
    return subprocess.run(
        [str(tool_path), f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, timeout=120
    )


def test_examples_apply_server_side_idempotently_and_show_no_drift(mdeps: Mdeps, kubeconfig: Path) -> None:
    files = example_files()
    assert files, "no ModelDeployment examples found"
    co = client.CustomObjectsApi(mdeps.co.api_client)

    def live(name: str) -> dict[str, Any]:
        return cast(dict[str, Any], co.get_namespaced_custom_object(GROUP, VERSION, mdeps.ns, PLURAL, name))

    names: dict[Path, str] = {}
    for path in files:
        first = kubectl(kubeconfig, "apply", "--server-side", "-n", mdeps.ns, "-f", str(path), "-o", "json")
        assert first.returncode == 0, first.stderr
        names[path] = json.loads(first.stdout)["metadata"]["name"]

    def observed(name: str) -> bool:
        obj = live(name)
        return bool(obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"])

    for name in names.values():
        # Meridian has seen the spec: status describes the current generation
        wait_for(f"{name} observed", functools.partial(observed, name), timeout=90)

    for path, name in names.items():
        # the second apply is a no-op: the returned object has the resourceVersion it had before.
        # Meridian may write status in between (replicas getting ready); a real change by the apply
        # would show on every try, so a few tries tell the two apart
        for _ in range(5):
            before = live(name)["metadata"]["resourceVersion"]
            again = kubectl(kubeconfig, "apply", "--server-side", "-n", mdeps.ns, "-f", str(path), "-o", "json")
            assert again.returncode == 0, again.stderr
            after = json.loads(again.stdout)["metadata"]
            if after["resourceVersion"] == before:
                break
            time.sleep(1)
        else:
            pytest.fail(f"a second server-side apply of {path.name} changed {name} every time")
        assert after["generation"] == live(name)["metadata"]["generation"]

        # nothing Meridian wrote shows as a difference from the user's manifest
        for _ in range(5):
            diff = kubectl(kubeconfig, "diff", "--server-side", "-n", mdeps.ns, "-f", str(path))
            if diff.returncode == 0:
                break
            assert diff.returncode == 1, diff.stderr  # >1: kubectl itself failed (e.g. a field conflict)
            time.sleep(1)
        assert diff.returncode == 0 and diff.stdout == "", f"kubectl diff of {path.name}:\n{diff.stdout}"

        managers = {
            (m["manager"], m["operation"], m.get("subresource", "")) for m in live(name)["metadata"]["managedFields"]
        }
        assert ("kubectl", "Apply", "") in managers
        # Meridian's field managers (meridian, meridian-runtime, ...) appear on status only
        assert not any(mgr.startswith("meridian") and sub != "status" for mgr, _, sub in managers), managers
