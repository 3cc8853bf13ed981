"""Shared pytest configuration: control-plane fixtures, the operator process, Triton servers, Prometheus."""

pytest_plugins = [
    "tests.fixtures_cluster",
    "tests.fixtures_operator",
    "tests.fixtures_triton",
    "tests.fixtures_eu",
    "tests.fixtures_karmada",
    "tests.fixtures_prometheus",
]
