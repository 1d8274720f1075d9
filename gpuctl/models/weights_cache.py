"""A provider-side store that keeps model weights next to the GPUs of one region and outlives deployments."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

CacheKind = Literal["filesystem", "network-volume", "s3-bucket"]
#: every provider names its cache in a region this way (AWS adds the account: bucket names are global)
CACHE_NAME_PREFIX = "gpuctl-hf-cache-"


def cache_name(region: str) -> str:
    """The name gpuctl gives (and looks for) the weights cache of ``region``."""
    return f"{CACHE_NAME_PREFIX}{region}"


class WeightsCache(BaseModel):
    """One provider's weights cache in one region (a Lambda filesystem, a RunPod network volume, an S3 bucket).

    ``mount_path`` is where a machine launched with the cache (``LaunchRequest.weights_cache``) sees it;
    None for a cache that is not mounted (S3: files are copied through pre-signed URLs).
    """

    provider: str
    id: str
    name: str
    region: str
    kind: CacheKind
    size_gb: int | None = Field(default=None, description="allocated size; None where storage grows (S3)")
    used_bytes: int | None = Field(default=None, description="as the provider reports it, when it does")
    in_use: bool | None = Field(default=None, description="attached to a running machine, when the provider says")
    mount_path: str | None = None
    created_at: datetime | None = None
