"""Shared pydantic base: camelCase on the wire, snake_case in Python, one schema for both."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base of every CRD model. Unknown fields are ignored: the API server prunes them anyway."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", validate_default=True)

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it (camelCase, no unset optionals)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def block(factory: Any, description: str) -> Any:
    """A nested settings block that defaults to `{}` so the API server applies its inner defaults."""
    return Field(default_factory=factory, description=description, json_schema_extra={"default": {}})


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, Any]:
    """One x-kubernetes-validations entry; field_path points kubectl's error at the offending field."""
    entry: dict[str, Any] = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


class Condition(ApiModel):
    """A kstatus-style condition, the shape of metav1.Condition."""

    type: str = Field(description="Condition type: Ready, Reconciling, Stalled, PlacementSatisfied, ...")
    status: str = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason for the last transition.")
    message: str = Field(default="", description="Human-readable detail.")
    last_transition_time: str | None = Field(
        default=None,
        description="When the status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(default=None, description="Generation this condition is about.")


class LocalObjectReference(ApiModel):
    """A reference to an object in the same namespace."""

    name: str = Field(description="Name of the referenced object.", min_length=1, max_length=253)


class ObjectMeta(ApiModel):
    """The parts of metadata Meridian reads."""

    name: str = Field(default="", description="Object name.")
    namespace: str = Field(default="", description="Object namespace.")
    uid: str = Field(default="", description="Object UID, for owner references.")
    generation: int = Field(default=0, description="Spec generation.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")
    resource_version: str = Field(default="", description="Resource version.")
    deletion_timestamp: str | None = Field(default=None, description="Set once the object is being deleted.")
