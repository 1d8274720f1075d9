"""Lambda Cloud's weights cache: a filesystem per region, ``gpuctl-hf-cache-REGION``, mounted at
``CACHE_MOUNT_POINT`` on every instance gpuctl launches there; it outlives the instances (docs/weights.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpuctl.errors import UsageError
from gpuctl.providers.lambda_cloud.mapping import NAME

if TYPE_CHECKING:
    from gpuctl.models.weights_cache import WeightsCache
    from gpuctl.providers.lambda_cloud.client import Filesystem, LambdaApi

#: where an instance gpuctl launches sees its region's weights cache: the same path in every region, one
#: the spec allows for ``file_system_mounts`` (the default, ``/lambda/nfs/NAME``, would change with the region)
CACHE_MOUNT_POINT = "/lambda/nfs/gpuctl-hf-cache"


def filesystem_cache(fs: Filesystem) -> WeightsCache:
    """The provider-neutral view of a filesystem; ``mount_path`` is where gpuctl's instances mount it."""
    from gpuctl.models.weights_cache import WeightsCache

    return WeightsCache(provider=NAME, id=fs.id, name=fs.name, region=fs.region.name,
                        kind="filesystem", size_gb=None, used_bytes=fs.bytes_used, in_use=fs.is_in_use,
                        mount_path=CACHE_MOUNT_POINT, created_at=fs.created)


def find_filesystem(api: LambdaApi, name: str, region: str) -> Filesystem | None:
    return next((fs for fs in api.list_filesystems() if fs.name == name and fs.region.name == region), None)


def cache_mount_point(cache: WeightsCache, region: str) -> str:
    """Where an instance in ``region`` mounts ``cache``; a cache Lambda could not mount there is refused first."""
    if cache.provider != NAME or cache.kind != "filesystem":
        raise UsageError(f"the weights cache {cache.name} is a {cache.provider} {cache.kind}, "
                         "not a Lambda Cloud filesystem")
    if cache.region != region:
        raise UsageError(f"the Lambda Cloud filesystem {cache.name} is in {cache.region}, but the instance would "
                         f"be in {region}: Lambda mounts a filesystem only in its own region",
                         f"use an offer in {cache.region}, or the weights cache of {region}")
    return cache.mount_path or CACHE_MOUNT_POINT
