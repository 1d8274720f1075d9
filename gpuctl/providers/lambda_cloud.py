"""Lambda Cloud, through its v1 REST API: one offer per instance type and region with capacity."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from gpuctl.catalog import CatalogInstanceType, gpu_spec, matches, provider_catalog
from gpuctl.models.offer import Availability, Offer, OfferQuery
from gpuctl.providers.base import Provider
from gpuctl.providers.http import DEFAULT_TIMEOUT
from gpuctl.providers.lambda_api import InstanceTypesItem, LambdaApi

log = logging.getLogger(__name__)

#: Lambda says only whether a region has capacity, not how much; a launch can still find none.
CAPACITY_AVAILABLE: Availability = "medium"


class LambdaProvider(Provider):
    name = "lambda"
    display_name = "Lambda Cloud"
    credential_keys = ("lambda.api_key",)

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        #: seconds one API call may take, retries included (the pricing layer may lower it)
        self.timeout = timeout

    def offers(self, query: OfferQuery) -> list[Offer]:
        catalog = provider_catalog(self.name)
        types = catalog.instance_types if catalog else {}
        if query.spot or (query.gpus is not None and not set(query.gpus) & {t.gpu for t in types.values()}):
            return []  # Lambda has no spot market, and none of the wanted GPUs is sold here
        with LambdaApi.from_env(self.timeout) as api:
            items = api.list_instance_types()
        offers = instance_type_offers(items, types, datetime.now(timezone.utc))
        return [offer for offer in offers if matches(offer, query)]


def instance_type_offers(items: dict[str, InstanceTypesItem], types: dict[str, CatalogInstanceType],
                         as_of: datetime) -> list[Offer]:
    """One offer per known GPU instance type and region with capacity; sold-out types once, as ``any``."""
    offers = []
    for item in items.values():
        spec = item.instance_type
        mapped = types.get(spec.name)
        if mapped is None or spec.specs.gpus < 1:
            log.debug("Lambda Cloud: skipping instance type %s (not a GPU type in providers/lambda.yaml)",
                      spec.name)
            continue
        price = spec.price_cents_per_hour / 100
        places: list[tuple[str, Availability]] = [
            (r.name, CAPACITY_AVAILABLE) for r in item.regions_with_capacity_available] or [("any", "none")]
        for region, availability in places:
            offers.append(Offer(
                provider=LambdaProvider.name, gpu=mapped.gpu, gpu_count=spec.specs.gpus,
                vram_gb=gpu_spec(mapped.gpu).vram_gb, vcpus=spec.specs.vcpus,
                ram_gb=float(spec.specs.memory_gib), region=region, price_per_hour=price,
                price_per_gpu_hour=round(price / spec.specs.gpus, 4), availability=availability,
                instance_type=spec.name, source="live", as_of=as_of,
            ))
    return offers
