"""RunPod's weights caches: a network volume per data center (filled by ``seeding``), as gpuctl sees them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpuctl.providers.runpod.mapping import NAME

if TYPE_CHECKING:
    from gpuctl.models.weights_cache import WeightsCache
    from gpuctl.providers.runpod.client import Cloud, NetworkVolume

#: RunPod's smallest network volume, in GB
MIN_VOLUME_GB = 10
#: RunPod's largest network volume, in GB (``size`` of create and update: ``maximum: 4096``; more is a 422)
MAX_VOLUME_GB = 4096
#: network volumes attach to Secure Cloud pods only
VOLUME_CLOUD: Cloud = "SECURE"


def volume_cache(volume: NetworkVolume, *, in_use: bool | None = None) -> WeightsCache:
    """The provider-neutral view of a network volume (mounted where each engine keeps its HF cache)."""
    from gpuctl.models.weights_cache import WeightsCache

    return WeightsCache(provider=NAME, id=volume.id, name=volume.name, region=volume.data_center,
                        kind="network-volume", size_gb=volume.size, in_use=in_use)
