"""The AWS price listing of one region: GPU instance types offered there, their on-demand price (Price List
API) and, with ``--spot``, the cheapest current spot price over the region's zones."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from gpuctl.catalog import gpu_spec
from gpuctl.concurrency import run_all, values_or_raise
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.providers.aws.client import all_pages
from gpuctl.providers.aws.mapping import (
    GPU_TYPE_PATTERNS,
    NAME,
    GpuInstanceType,
    catalog,
    cheapest_spot,
    gpu_instance_types,
    on_demand_prices,
    price_filters,
)
from gpuctl.providers.skips import skip


def region_offers(ec2: Any, pricing: Any, region: str, query: OfferQuery, as_of: datetime) -> list[Offer]:
    """Offers of one region: types, regional offerings and on-demand prices are asked at once."""
    calls = {
        "types": partial(all_pages, ec2, "describe_instance_types", "InstanceTypes",
                         Filters=[{"Name": "instance-type", "Values": list(GPU_TYPE_PATTERNS)}]),
        "offered": partial(all_pages, ec2, "describe_instance_type_offerings", "InstanceTypeOfferings",
                           LocationType="region", Filters=[{"Name": "location", "Values": [region]}]),
    }
    if query.spot is not True:
        calls["on_demand"] = partial(all_pages, pricing, "get_products", "PriceList",
                                     ServiceCode="AmazonEC2", Filters=price_filters(region))
    answers = values_or_raise(run_all(calls))
    offered = {row["InstanceType"] for row in answers["offered"]}
    types = [t for t in gpu_instance_types([r for r in answers["types"] if r.get("InstanceType") in offered],
                                           catalog())
             if _wanted(t, query)]
    markets: dict[bool, dict[str, float]] = {}
    if query.spot is not True:
        markets[False] = on_demand_prices(answers["on_demand"])
    if query.spot is not False and types:
        markets[True] = cheapest_spot(all_pages(
            ec2, "describe_spot_price_history", "SpotPriceHistory", InstanceTypes=[t.name for t in types],
            ProductDescriptions=["Linux/UNIX"], StartTime=as_of))
    for t in types:
        if not any(t.name in prices for prices in markets.values()):
            skip(t.name, f"no {'spot' if query.spot else 'on-demand'} price in {region}")
    return [_offer(t, region, prices[t.name], spot, as_of)
            for spot, prices in markets.items() for t in types if t.name in prices]


def _wanted(instance_type: GpuInstanceType, query: OfferQuery) -> bool:
    # narrow before asking for spot prices; the full query is applied to the offers afterwards
    return ((query.gpus is None or instance_type.gpu in query.gpus)
            and (query.gpu_count is None or instance_type.gpu_count == query.gpu_count))


def _offer(instance_type: GpuInstanceType, region: str, price: float, spot: bool, as_of: datetime) -> Offer:
    return Offer(
        provider=NAME, gpu=instance_type.gpu, gpu_count=instance_type.gpu_count,
        vram_gb=gpu_spec(instance_type.gpu).vram_gb, vcpus=instance_type.vcpus, ram_gb=instance_type.ram_gb,
        region=region, price_per_hour=price, price_per_gpu_hour=round(price / instance_type.gpu_count, 4),
        spot=spot, availability="unknown", instance_type=instance_type.name, arch=instance_type.arch, source="live",
        as_of=as_of,
    )
