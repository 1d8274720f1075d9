"""Lambda Cloud's answers as gpuctl's models: instance types as offers, instances as gpuctl's."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gpuctl.catalog import gpu_spec
from gpuctl.models.offer import Availability, Offer
from gpuctl.providers.catalog import ProviderCatalog, load_catalog
from gpuctl.providers.skips import left_out, skip, validated

if TYPE_CHECKING:
    from gpuctl.models.instance import Instance, InstanceStatus
    from gpuctl.providers.lambda_cloud import client as lambda_api
    from gpuctl.providers.lambda_cloud.client import InstanceTypesItem

log = logging.getLogger(__name__)

NAME = "lambda"
#: Lambda's instance types mapped to gpuctl's GPUs, and its dated price snapshot (package data)
CATALOG_FILE = "catalog.yaml"
#: Lambda says only whether a region has capacity, not how much; a launch can still find none.
CAPACITY_AVAILABLE: Availability = "medium"
_STATUSES: dict[str, InstanceStatus] = {
    "booting": "pending", "active": "running", "unhealthy": "error", "terminating": "stopping",
    "terminated": "terminated", "preempted": "terminated",
}
#: the login user of Lambda's Ubuntu images, and their sshd's port
SSH_USER = "ubuntu"
SSH_PORT = 22


def catalog() -> ProviderCatalog:
    """Lambda Cloud's catalog, shipped next to this module."""
    return load_catalog(__package__ or "", CATALOG_FILE, NAME)


def lambda_instance(item: lambda_api.Instance) -> Instance:
    """The provider-neutral view of a Lambda instance; SSH details are set once it has an address."""
    from gpuctl.models.instance import Instance

    mapped = catalog().instance_types.get(item.instance_type.name)
    return Instance(
        provider=NAME, id=item.id, name=item.name, status=_STATUSES[item.status],
        provider_status=item.status, region=item.region.name, instance_type=item.instance_type.name,
        gpu=mapped.gpu if mapped else item.instance_type.gpu_description, gpu_count=item.instance_type.specs.gpus,
        public_ip=item.ip, ssh_host=item.ip, ssh_port=SSH_PORT, ssh_user=SSH_USER,
        price_per_hour=item.instance_type.price_cents_per_hour / 100, tags=instance_tags(item),
    )


def instance_tags(item: lambda_api.Instance) -> dict[str, str]:
    return {tag.key: tag.value for tag in item.tags}


def instance_types_items(entries: dict[str, Any]) -> dict[str, InstanceTypesItem]:
    """The instance types gpuctl can read, by name; each other one is skipped and counted."""
    from gpuctl.providers.lambda_cloud.client import InstanceTypesItem

    found = {}
    for name, raw in entries.items():
        item = validated(InstanceTypesItem, raw, name)
        if item is not None:
            found[name] = item
    return found


def instance_type_offers(items: dict[str, InstanceTypesItem], catalog: ProviderCatalog,
                         as_of: datetime) -> list[Offer]:
    """One offer per known GPU instance type and region with capacity; sold-out types once, as ``any``.

    A type the catalog does not map (or leaves out, like CPU-only types) is skipped and counted.
    """
    offers = []
    for name, item in items.items():
        spec = item.instance_type
        mapped = catalog.instance_types.get(name)
        if mapped is None:
            why = catalog.unsupported.get(name)
            skip(name, left_out(why) if why else "unknown instance type: not in the provider's catalog")
            continue
        if spec.specs.gpus != mapped.gpu_count:
            skip(name, f"{spec.specs.gpus} GPUs where the catalog says {mapped.gpu_count}")
            continue
        gpu = gpu_spec(mapped.gpu)
        price = spec.price_cents_per_hour / 100
        places: list[tuple[str, Availability]] = [
            (r.name, CAPACITY_AVAILABLE) for r in item.regions_with_capacity_available] or [("any", "none")]
        for region, availability in places:
            offers.append(Offer(
                provider=NAME, gpu=mapped.gpu, gpu_count=mapped.gpu_count, vram_gb=gpu.vram_gb, vcpus=spec.specs.vcpus,
                ram_gb=float(spec.specs.memory_gib), region=region, price_per_hour=price,
                price_per_gpu_hour=round(price / mapped.gpu_count, 4), availability=availability,
                instance_type=spec.name, arch=gpu.host_arch, source="live", as_of=as_of,
            ))
    return offers
