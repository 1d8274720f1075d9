"""A provider-side machine or pod, as the lifecycle sees it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from gpuctl.models.offer import Offer

InstanceStatus = Literal["pending", "running", "stopping", "stopped", "terminated", "error", "unknown"]


class Instance(BaseModel):
    """Provider-neutral view of something gpuctl launched (or found by its tags)."""

    provider: str
    id: str
    name: str | None = None
    status: InstanceStatus = "unknown"
    provider_status: str | None = Field(default=None, description="the provider's own status word")
    region: str | None = None
    instance_type: str | None = None
    gpu: str | None = None
    gpu_count: int | None = None
    public_ip: str | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None
    ssh_user: str | None = None
    endpoint_url: str | None = None
    price_per_hour: float | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    created_at: datetime | None = None


class LaunchRequest(BaseModel):
    """Everything a provider needs to start one instance for a deployment."""

    name: str
    offer: Offer
    idempotency_token: str = Field(max_length=64)
    tags: dict[str, str] = Field(default_factory=dict)
    ssh_public_key: str | None = None
    disk_gb: int = 100
    ttl_seconds: int | None = None
