"""EC2 and Price List API answers translated into gpuctl's terms. Pure functions: no boto3 here."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gpuctl.providers.catalog import ProviderCatalog, load_catalog

log = logging.getLogger(__name__)

NAME = "aws"
#: EC2's GPU names mapped to gpuctl's GPUs, and a dated price snapshot (package data)
CATALOG_FILE = "catalog.yaml"


def catalog() -> ProviderCatalog:
    """AWS's catalog, shipped next to this module."""
    return load_catalog(__package__ or "", CATALOG_FILE, NAME)

#: EC2 puts every GPU instance type in the G and P families (g5, g6e, gr6, p4d, p5, p6-b200, ...)
GPU_TYPE_PATTERNS = ("g*", "p*")

#: the Price List API's ``location`` value of each region (its documented filter); other regions
#: are matched on ``regionCode``, which newer price lists carry as well
REGION_LOCATIONS: dict[str, str] = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "ca-central-1": "Canada (Central)",
    "sa-east-1": "South America (Sao Paulo)",
    "eu-central-1": "EU (Frankfurt)",
    "eu-west-1": "EU (Ireland)",
    "eu-west-2": "EU (London)",
    "eu-west-3": "EU (Paris)",
    "eu-north-1": "EU (Stockholm)",
    "ap-south-1": "Asia Pacific (Mumbai)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-northeast-2": "Asia Pacific (Seoul)",
    "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
}


@dataclass(frozen=True)
class GpuInstanceType:
    """An EC2 instance type whose GPUs gpuctl knows by a canonical name."""

    name: str
    gpu: str
    gpu_count: int
    vcpus: int | None
    ram_gb: float | None


def canonical_gpu(name: str, memory_mib: int, gpu_ids: Mapping[str, str]) -> str | None:
    """The canonical GPU of an EC2 ``GpuInfo`` entry: ``"Name/GiB"`` first, then the bare name."""
    return gpu_ids.get(f"{name}/{round(memory_mib / 1024)}") or gpu_ids.get(name)


def gpu_instance_types(raw_types: Iterable[Mapping[str, Any]], gpu_ids: Mapping[str, str]
                       ) -> list[GpuInstanceType]:
    """The mappable GPU types among ``describe_instance_types`` entries; the rest are skipped.

    Skipped: types without ``GpuInfo``, GPUs missing from providers/aws.yaml, fractional GPUs
    (``Count`` 0, e.g. g6f) and types that mix GPU models.
    """
    found = []
    for raw in raw_types:
        gpus = raw.get("GpuInfo", {}).get("Gpus", [])
        if len(gpus) != 1 or gpus[0].get("Count", 0) < 1:
            continue
        info = gpus[0]
        gpu = canonical_gpu(info["Name"], info.get("MemoryInfo", {}).get("SizeInMiB", 0), gpu_ids)
        if gpu is None:
            log.debug("AWS: %s has GPU %r, not mapped in providers/aws.yaml", raw["InstanceType"], info["Name"])
            continue
        ram_mib = raw.get("MemoryInfo", {}).get("SizeInMiB")
        found.append(GpuInstanceType(
            name=raw["InstanceType"], gpu=gpu, gpu_count=info["Count"],
            vcpus=raw.get("VCpuInfo", {}).get("DefaultVCpus"),
            ram_gb=round(ram_mib / 1024, 1) if ram_mib else None,
        ))
    return found


def price_filters(region: str) -> list[dict[str, str]]:
    """``get_products`` filters for the Linux, shared-tenancy, on-demand price of every GPU type.

    One query by ``instanceFamily`` ("GPU instance": all G and P types) instead of one per type
    keeps the call independent of the instance-type listing, so both run at the same time.
    """
    location = ("location", REGION_LOCATIONS[region]) if region in REGION_LOCATIONS else ("regionCode", region)
    terms = [
        ("instanceFamily", "GPU instance"), location, ("operatingSystem", "Linux"), ("tenancy", "Shared"),
        ("preInstalledSw", "NA"), ("capacitystatus", "Used"),
    ]
    return [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in terms]


def on_demand_prices(price_list: Iterable[str | Mapping[str, Any]]) -> dict[str, float]:
    """Hourly USD price per instance type from ``get_products`` ``PriceList`` entries.

    Entries are JSON documents (strings on the wire); the price sits at
    ``terms.OnDemand.*.priceDimensions.*.pricePerUnit.USD``. The lowest positive figure wins when
    a type has several, and products of another market (capacity blocks) are ignored.
    """
    prices: dict[str, float] = {}
    for entry in price_list:
        product = json.loads(entry) if isinstance(entry, str) else entry
        attributes = product.get("product", {}).get("attributes", {})
        instance_type = attributes.get("instanceType")
        if not instance_type or attributes.get("marketoption", "OnDemand") != "OnDemand":
            continue
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                price = _usd(dimension.get("pricePerUnit", {}).get("USD"))
                if price and price < prices.get(instance_type, float("inf")):
                    prices[instance_type] = price
    return prices


def cheapest_spot(history: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """The lowest current spot price per instance type over the region's availability zones."""
    prices: dict[str, float] = {}
    for row in history:
        price = _usd(row.get("SpotPrice"))
        instance_type = row.get("InstanceType")
        if instance_type and price and price < prices.get(instance_type, float("inf")):
            prices[instance_type] = price
    return prices


def _usd(text: object) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None
