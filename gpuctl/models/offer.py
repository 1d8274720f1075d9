"""A priced GPU offer, the unit of ``gpuctl prices`` and of choosing where to deploy."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

Availability = Literal["high", "medium", "low", "none", "unknown"]
OfferSource = Literal["live", "cache", "snapshot"]
#: CPU architecture of a machine, as container images name their platforms (amd64 = x86_64, arm64)
HostArch = Literal["x86_64", "arm64"]

AVAILABILITY_RANK: dict[str, int] = {"high": 0, "medium": 1, "low": 2, "unknown": 3, "none": 4}


class Offer(BaseModel):
    """One way to rent GPUs: a provider's instance type in one region, at one price.

    The field names are the ``--json`` interface of ``gpuctl prices``: keep them stable.
    """

    model_config = ConfigDict(frozen=True)

    provider: str
    gpu: str = Field(description="canonical GPU (one SKU), e.g. L40S, A100-80GB-SXM, H100-PCIE")
    gpu_count: int = Field(ge=1)
    vram_gb: float = Field(ge=0, description="memory per GPU")
    vcpus: int | None = None
    ram_gb: float | None = None
    region: str
    price_per_hour: float = Field(ge=0, description="whole instance, USD")
    price_per_gpu_hour: float = Field(ge=0)
    spot: bool = False
    availability: Availability = "unknown"
    instance_type: str = Field(description="the provider's own id for what is rented")
    tier: str | None = Field(default=None, description="provider sub-market, e.g. RunPod secure/community")
    arch: HostArch | None = Field(default=None, description="CPU architecture of the machine; None: the usual one "
                                                            "of its GPU (host_arch in providers/gpus.yaml)")
    source: OfferSource
    as_of: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def id(self) -> str:
        """Stable handle a user can pass back (``gpuctl up --offer ID``)."""
        parts = [self.provider, self.instance_type, self.region]
        if self.tier:
            parts.append(self.tier)
        if self.spot:
            parts.append("spot")
        return ":".join(parts)

    @property
    def total_vram_gb(self) -> float:
        return self.vram_gb * self.gpu_count


class OfferQuery(BaseModel):
    """What the caller wants; providers may use it to ask their API less, and must honour it."""

    gpus: list[str] | None = Field(default=None, description="canonical GPU names; None means all")
    regions: list[str] | None = None
    gpu_count: int | None = None
    spot: bool | None = Field(default=None, description="True spot only, False on-demand only, None both")
    include_unavailable: bool = False
    min_cuda_version: str | None = Field(
        default=None, pattern=r"^\d+\.\d+$",
        description="only machines whose driver runs at least this CUDA version (major.minor), as the engine "
                    "image needs; a provider that cannot tell ignores it")
