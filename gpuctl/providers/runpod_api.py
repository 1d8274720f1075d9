"""RunPod REST v2: the response shapes gpuctl reads, and a typed client (contract: runpod_rest_v2.json).

Only the fields gpuctl uses are modelled; unknown fields are ignored so additions upstream do
not break us, while a missing or mistyped field we rely on is reported as a ProviderError.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpuctl.envvars import Env
from gpuctl.providers.http import ErrorInfo, JsonApiClient

#: the spec's ``servers`` entry; endpoint paths start with ``/v2``
DEFAULT_BASE_URL = "https://api.runpod.io"

AvailabilityLevel = Literal["NONE", "LOW", "MEDIUM", "HIGH"]
Cloud = Literal["SECURE", "COMMUNITY"]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class GpuPrice(_Model):
    """List price in USD per hour for one GPU, per cloud."""

    secure: float = Field(ge=0)
    community: float = Field(ge=0)
    serverless: float | None = None


class GpuMaxCount(_Model):
    """The most GPUs of this type one pod can have, per cloud (a ceiling, not stock)."""

    secure: int = Field(ge=0)
    community: int = Field(ge=0)


class DataCenterAvailability(_Model):
    id: str
    name: str
    availability: AvailabilityLevel


class GpuType(_Model):
    """One entry of ``GET /v2/catalog/gpus``."""

    id: str
    name: str
    memory: int = Field(ge=0, description="VRAM in GB")
    secure: bool
    community: bool
    price: GpuPrice
    max_count: GpuMaxCount = Field(alias="maxCount")
    #: present only with include=AVAILABILITY
    availability: AvailabilityLevel | None = None
    #: per-datacenter stock; omitted when the configuration is unavailable everywhere
    data_centers: list[DataCenterAvailability] | None = Field(default=None, alias="dataCenters")


class ListGpuTypesResponse(_Model):
    gpus: list[GpuType]


class Problem(_Model):
    """RunPod's ``application/problem+json`` error body."""

    title: str | None = None
    status: int | None = None
    detail: str | None = None
    errors: list[str] | None = None


class RunPodApi(JsonApiClient):
    """RunPod REST v2 (``Authorization: Bearer``); endpoints are added here as gpuctl needs them."""

    provider = "RunPod"
    api_prefix = "/v2"
    credential_key = "runpod.api_key"
    default_base_url = DEFAULT_BASE_URL
    base_url_env = Env.RUNPOD_API_URL

    def describe_error(self, status: int, payload: Any) -> ErrorInfo | None:
        try:
            problem = Problem.model_validate(payload)
        except ValidationError:
            return None
        parts = [p for p in (problem.title, problem.detail) if p]
        if problem.errors:
            parts.append("; ".join(problem.errors[:3]))
        return ErrorInfo(status=status, message=": ".join(parts)) if parts else None

    def list_gpu_types(self, *, cloud: Cloud, count: int = 1) -> ListGpuTypesResponse:
        """The GPU catalog with pod availability for ``count`` GPUs in ``cloud``.

        Availability depends on the cloud (the API defaults to SECURE) and the count, so each
        tier is asked separately rather than assuming one answer fits both.
        """
        params = {"include": "AVAILABILITY", "product": "POD", "cloud": cloud, "count": count}
        return self.get("/catalog/gpus", ListGpuTypesResponse, params=params)

