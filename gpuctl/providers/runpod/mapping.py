"""RunPod's answers as gpuctl's models: catalog GPUs as offers per cloud tier, pods as instances."""

from __future__ import annotations

import logging
import os
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gpuctl.catalog import gpu_spec
from gpuctl.envvars import Env
from gpuctl.errors import ConfigError
from gpuctl.models.offer import Availability, Offer
from gpuctl.providers.catalog import ProviderCatalog, load_catalog
from gpuctl.providers.skips import UNKNOWN_GPU, entry_id, left_out, skip, validated

if TYPE_CHECKING:
    from gpuctl.models.instance import Instance, InstanceStatus
    from gpuctl.providers.runpod.client import AvailabilityLevel, Cloud, GpuType, Pod, PodStatus

log = logging.getLogger(__name__)

NAME = "runpod"
#: RunPod's GPU ids mapped to gpuctl's GPUs, and its dated price snapshot (package data)
CATALOG_FILE = "catalog.yaml"
#: gpuctl tier name -> the API's cloud; each is its own market with its own price and stock
TIERS: dict[str, Cloud] = {"secure": "SECURE", "community": "COMMUNITY"}

_LEVELS: dict[AvailabilityLevel, Availability] = {
    "NONE": "none", "LOW": "low", "MEDIUM": "medium", "HIGH": "high",
}
_STATUSES: dict[PodStatus, InstanceStatus] = {
    "PROVISIONING": "pending", "STARTING": "pending", "RUNNING": "running", "EXITED": "stopped",
    "ERROR": "error", "TERMINATED": "terminated",
}
#: RunPod's HTTPS proxy in front of every ``PORT/http`` a pod publishes
DEFAULT_PROXY_URL = "https://{pod_id}-{port}.proxy.runpod.net"
_HTTP_PORT = re.compile(r"^(\d+)/http$")


def catalog() -> ProviderCatalog:
    """RunPod's catalog, shipped next to this module."""
    return load_catalog(__package__ or "", CATALOG_FILE, NAME)


def gpu_types(entries: list[Any]) -> list[GpuType]:
    """The catalog entries gpuctl can read; each other one is skipped and counted (``gpuctl.providers.skips``)."""
    from gpuctl.providers.runpod.client import GpuType

    found = []
    for index, raw in enumerate(entries):
        gpu = validated(GpuType, raw, entry_id(raw, index))
        if gpu is not None:
            found.append(gpu)
    return found


def tier_offers(gpus: list[GpuType], tier: str, count: int, catalog: ProviderCatalog,
                as_of: datetime) -> list[Offer]:
    """Offers of ``count`` GPUs in one tier: one per datacenter that lists its own stock.

    Without per-datacenter figures the GPU-level availability is reported once, as region
    ``any``, rather than copied into datacenters it may not describe. A GPU id the catalog does not
    map, or a tier listed without a price, is skipped and counted.
    """
    offers = []
    for gpu in gpus:
        canonical = catalog.gpu_ids.get(gpu.id)
        if canonical is None:
            why = catalog.unsupported.get(gpu.id)
            skip(gpu.id, left_out(why) if why else UNKNOWN_GPU)
            continue
        if not getattr(gpu, tier):
            continue  # this cloud does not sell it
        price = getattr(gpu.price, tier)
        if price is None:
            skip(gpu.id, f"no {tier} price although listed in {tier} cloud")
            continue
        if count > getattr(gpu.max_count, tier):
            log.debug("RunPod: %s %s pods hold at most %d GPUs", tier, gpu.id, getattr(gpu.max_count, tier))
            continue
        spec = gpu_spec(canonical)
        places: list[tuple[str, Availability]] = (
            [(dc.id, _LEVELS[dc.availability]) for dc in gpu.data_centers] if gpu.data_centers
            else [("any", _LEVELS[gpu.availability] if gpu.availability else "unknown")])
        for region, availability in places:
            offers.append(Offer(
                provider=NAME, gpu=canonical, gpu_count=count, vram_gb=gpu.memory or spec.vram_gb, region=region,
                price_per_hour=round(price * count, 4), price_per_gpu_hour=price,
                availability=availability, instance_type=gpu.id, tier=tier, arch=spec.host_arch, source="live",
                as_of=as_of,
            ))
    return offers


def pod_instance(pod: Pod) -> Instance:
    """The provider-neutral view of ``pod``."""
    from gpuctl.models.instance import Instance

    gpu_ids = catalog().gpu_ids
    gpu_id = pod.gpu.id if pod.gpu else None
    ssh = (pod.ssh.direct or pod.ssh.proxy) if pod.ssh else None
    port = next((int(m.group(1)) for p in pod.ports if (m := _HTTP_PORT.match(p))), None)
    return Instance(
        provider=NAME, id=pod.id, name=pod.name, status=_STATUSES[pod.status],
        provider_status=pod.status, region=pod.data_center_id, instance_type=gpu_id,
        gpu=(gpu_ids.get(gpu_id) if gpu_id else None) or gpu_id,
        gpu_count=pod.gpu.count if pod.gpu else None,
        public_ip=pod.ssh.direct.host if pod.ssh and pod.ssh.direct else None,
        ssh_host=ssh.host if ssh else None, ssh_port=ssh.port if ssh else None, ssh_user=ssh.username if ssh else None,
        endpoint_url=proxy_url(pod.id, port) if port is not None and pod.status != "TERMINATED" else None,
        price_per_hour=pod.cost, tags=pod.tags, created_at=pod.created_at,
    )


def proxy_url(pod_id: str, port: int) -> str:
    """Where the pod's ``port`` is reached: RunPod's proxy, or ``$GPUCTL_RUNPOD_PROXY_URL``."""
    template = os.environ.get(Env.RUNPOD_PROXY_URL) or DEFAULT_PROXY_URL
    try:
        return template.format(pod_id=pod_id, port=port)
    except (KeyError, IndexError, ValueError):
        raise ConfigError(f"{Env.RUNPOD_PROXY_URL}={template!r} is not a URL template",
                          "use the placeholders {pod_id} and {port}, e.g. https://{pod_id}-{port}.example") from None
