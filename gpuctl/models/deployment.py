"""A deployment as recorded in the project state file."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DeploymentStatus = Literal[
    "provisioning", "starting", "running", "failed", "terminating", "terminated"
]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Deployment(BaseModel):
    """What gpuctl knows about one deployment; written before every provider call.

    Unknown fields are kept so an older gpuctl never drops what a newer one wrote.
    """

    model_config = ConfigDict(extra="allow")

    name: str
    model: str
    provider: str
    status: DeploymentStatus = "provisioning"
    idempotency_token: str
    instance_id: str | None = None
    region: str | None = None
    gpu: str | None = None
    gpu_count: int | None = None
    price_per_hour: float | None = None
    endpoint: str | None = None
    ttl_seconds: int | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None


class HistoryEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    at: datetime = Field(default_factory=utcnow)
    deployment: str
    event: str
    detail: str | None = None
