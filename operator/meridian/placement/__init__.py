"""Placement: which regions may run a model and how many replicas each gets (pure)."""
