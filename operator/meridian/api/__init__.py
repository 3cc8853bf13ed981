"""The CRD models: the single source of schema, defaults and documentation."""

from meridian.api.modeldeployment import ModelDeployment, ModelDeploymentSpec, ModelDeploymentStatus
from meridian.api.region import Region, RegionSpec

__all__ = ["ModelDeployment", "ModelDeploymentSpec", "ModelDeploymentStatus", "Region", "RegionSpec"]
