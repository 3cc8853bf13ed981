"""Meridian: serve LLMs on Triton across datacenters, placed by data-residency rules."""

__version__ = "0.1.0"
GROUP = "serving.meridian.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
FIELD_MANAGER = "meridian"
