"""Lambda Cloud API v1: the response shapes gpuctl reads, and a typed client (lambda_cloud_openapi.json).

Every answer is wrapped as ``{"data": ...}`` and every error as
``{"error": {"code", "message", "suggestion"?}}``; only the fields gpuctl uses are modelled.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpuctl.envvars import Env
from gpuctl.providers.http import ErrorInfo, JsonApiClient

#: the spec's first ``servers`` entry (cloud.lambdalabs.com is deprecated); paths start ``/api/v1``
DEFAULT_BASE_URL = "https://cloud.lambda.ai"

T = TypeVar("T")


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Envelope(_Model, Generic[T]):
    """The ``{"data": ...}`` wrapper of every successful answer."""

    data: T


class InstanceTypeSpecs(_Model):
    vcpus: int = Field(ge=0)
    memory_gib: int = Field(ge=0)
    storage_gib: int = Field(ge=0)
    gpus: int = Field(ge=0)


class InstanceType(_Model):
    name: str
    description: str
    gpu_description: str
    #: the whole instance, not one GPU
    price_cents_per_hour: int = Field(ge=0)
    specs: InstanceTypeSpecs


class Region(_Model):
    name: str
    description: str


class InstanceTypesItem(_Model):
    instance_type: InstanceType
    #: empty when the type is sold out everywhere
    regions_with_capacity_available: list[Region]


class ApiError(_Model):
    code: str
    message: str
    suggestion: str | None = None


class ErrorEnvelope(_Model):
    error: ApiError


class LambdaApi(JsonApiClient):
    """Lambda Cloud API v1 (``Authorization: Bearer``); endpoints are added here as gpuctl needs them."""

    provider = "Lambda Cloud"
    api_prefix = "/api/v1"
    credential_key = "lambda.api_key"
    default_base_url = DEFAULT_BASE_URL
    base_url_env = Env.LAMBDA_API_URL

    def describe_error(self, status: int, payload: Any) -> ErrorInfo | None:
        try:
            error = ErrorEnvelope.model_validate(payload).error
        except ValidationError:
            return None
        return ErrorInfo(status=status, message=error.message, code=error.code, suggestion=error.suggestion)

    def list_instance_types(self) -> dict[str, InstanceTypesItem]:
        """Every instance type Lambda offers, keyed by name, with the regions that have capacity now."""
        return self.get("/instance-types", Envelope[dict[str, InstanceTypesItem]]).data
