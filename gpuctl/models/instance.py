"""A provider-side machine or pod, as the lifecycle sees it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from gpuctl.models.engine import EngineSpec
from gpuctl.models.offer import Offer
from gpuctl.models.weights_cache import WeightsCache

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
    private_ip: str | None = Field(default=None, description="where the provider's other machines reach it "
                                   "(multi-node: rank 0's is the master address)")
    ssh_host: str | None = None
    ssh_port: int | None = None
    ssh_user: str | None = None
    endpoint_url: str | None = None
    price_per_hour: float | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    created_at: datetime | None = None


class LaunchRequest(BaseModel):
    """Everything a provider needs to start one instance for a deployment.

    VM providers (Lambda, AWS) start a machine reachable over SSH with ``ssh_public_key`` and leave the
    engine to the lifecycle; container providers (RunPod) start ``engine`` themselves, with ``secrets``
    as its environment. ``secrets`` never appears in a dump or repr of the request.
    """

    name: str = Field(description="deployment name; providers use it in the instance name")
    offer: Offer
    idempotency_token: str = Field(max_length=64, description="same token, same launch: never two instances")
    tags: dict[str, str] = Field(default_factory=dict, description="gpuctl's tags, set on everything created")
    ssh_public_key: str | None = Field(default=None, description="OpenSSH public key allowed to log in")
    disk_gb: int = Field(default=100, ge=10)
    ttl_seconds: int | None = Field(default=None, gt=0, description="enforce on the provider or host side")
    public: bool = Field(default=False, description="expose the engine port beyond SSH")
    engine: EngineSpec | None = Field(default=None, description="for providers whose product is a container")
    secrets: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False,
                                    description="values of engine.secret_env")
    weights_cache: WeightsCache | None = Field(default=None, description="mount it where the provider mounts caches")
