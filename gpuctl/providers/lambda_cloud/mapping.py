"""Lambda Cloud's answers as gpuctl's models: instance types as offers, instances as gpuctl's."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from gpuctl.catalog import gpu_spec
from gpuctl.models.offer import Availability, Offer
from gpuctl.providers.catalog import CatalogInstanceType, ProviderCatalog, load_catalog

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


def instance_type_offers(items: dict[str, InstanceTypesItem], types: dict[str, CatalogInstanceType],
                         as_of: datetime) -> list[Offer]:
    """One offer per known GPU instance type and region with capacity; sold-out types once, as ``any``."""
    offers = []
    for item in items.values():
        spec = item.instance_type
        mapped = types.get(spec.name)
        if mapped is None or spec.specs.gpus < 1:
            log.debug("Lambda Cloud: skipping instance type %s (not a GPU type in its catalog)",
                      spec.name)
            continue
        price = spec.price_cents_per_hour / 100
        places: list[tuple[str, Availability]] = [
            (r.name, CAPACITY_AVAILABLE) for r in item.regions_with_capacity_available] or [("any", "none")]
        for region, availability in places:
            offers.append(Offer(
                provider=NAME, gpu=mapped.gpu, gpu_count=spec.specs.gpus,
                vram_gb=gpu_spec(mapped.gpu).vram_gb, vcpus=spec.specs.vcpus,
                ram_gb=float(spec.specs.memory_gib), region=region, price_per_hour=price,
                price_per_gpu_hour=round(price / spec.specs.gpus, 4), availability=availability,
                instance_type=spec.name, source="live", as_of=as_of,
            ))
    return offers
