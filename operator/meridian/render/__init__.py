"""Manifests of every child object: pure functions of (ModelDeployment, Plan, Settings)."""
