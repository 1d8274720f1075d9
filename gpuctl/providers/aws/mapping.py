"""EC2 and Price List API answers translated into gpuctl's terms. Pure functions: no boto3 here."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gpuctl.catalog import gpu_spec
from gpuctl.models.offer import HostArch
from gpuctl.providers.catalog import ProviderCatalog, load_catalog
from gpuctl.providers.skips import UNKNOWN_GPU, invalid, left_out, skip

log = logging.getLogger(__name__)

NAME = "aws"
#: EC2's GPU names mapped to gpuctl's GPUs, and a dated price snapshot (package data)
CATALOG_FILE = "catalog.yaml"


def catalog() -> ProviderCatalog:
    """AWS's catalog, shipped next to this module."""
    return load_catalog(__package__ or "", CATALOG_FILE, NAME)

#: how far the memory EC2 reports per GPU may stray from the canonical GPU's marketed figure: EC2 writes
#: some in GiB (H100: 81920 MiB, +7 % on the marketed 80 GB) and others in GB (L4: 22888 MiB), while a
#: slice of a GPU (g6f: an eighth of an L4) is far below
MEMORY_TOLERANCE = 0.1

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
    arch: HostArch = "x86_64"


def canonical_gpu(name: str, memory_mib: int, gpu_ids: Mapping[str, str]) -> str | None:
    """The canonical GPU of an EC2 ``GpuInfo`` entry: ``"Name/GiB"`` first, then the bare name."""
    return gpu_ids.get(f"{name}/{round(memory_mib / 1024)}") or gpu_ids.get(name)


def instance_type_gpus(raw: Mapping[str, Any], catalog: ProviderCatalog) -> GpuInstanceType | str:
    """What one ``describe_instance_types`` entry holds, or why gpuctl does not offer it (the reason to count).

    Only whole GPUs of one canonical model are offered. A fraction of a GPU (g6f, gr6f: ``GpuPartitionSize``
    below 1, ``Count`` 0) is not the GPU its datasheet describes, and neither is a type whose memory per GPU
    (``TotalGpuMemoryInMiB / Count``) is not the canonical GPU's: the second check holds even if EC2
    someday counted a slice as one GPU.
    """
    gpus = (raw.get("GpuInfo") or {}).get("Gpus") or []
    if not gpus:
        return "no GPU"
    if len(gpus) != 1:
        return "mixes GPU models"
    gpu = gpus[0]
    name, count, partition = gpu.get("Name"), gpu.get("Count"), gpu.get("GpuPartitionSize")
    memory = (gpu.get("MemoryInfo") or {}).get("SizeInMiB")
    if not isinstance(name, str) or not isinstance(count, int) or not isinstance(memory, int):
        return invalid("GpuInfo.Gpus.0", "Name, Count or MemoryInfo.SizeInMiB missing or mistyped")
    if count < 1 or (isinstance(partition, (int, float)) and partition < 1):
        return (f"fractional GPU (Count {count}, GpuPartitionSize {partition}): a slice of one {name} is not the GPU "
                "its datasheet describes")
    canonical = canonical_gpu(name, memory, catalog.gpu_ids)
    if canonical is None:
        why = catalog.unsupported.get(f"{name}/{round(memory / 1024)}") or catalog.unsupported.get(name)
        return left_out(why) if why else UNKNOWN_GPU
    total = (raw.get("GpuInfo") or {}).get("TotalGpuMemoryInMiB")
    per_gpu_gb = (total / count if isinstance(total, (int, float)) and total > 0 else memory) * 1.048576 / 1000
    expected = gpu_spec(canonical).vram_gb
    if abs(per_gpu_gb / expected - 1) > MEMORY_TOLERANCE:
        return (f"{per_gpu_gb:.1f} GB per GPU (TotalGpuMemoryInMiB / Count), where one {canonical} has "
                f"{expected:g} GB: not a whole {canonical}")
    ram_mib = (raw.get("MemoryInfo") or {}).get("SizeInMiB")
    archs = (raw.get("ProcessorInfo") or {}).get("SupportedArchitectures") or ["x86_64"]
    return GpuInstanceType(
        name=raw["InstanceType"], gpu=canonical, gpu_count=count, vcpus=(raw.get("VCpuInfo") or {}).get("DefaultVCpus"),
        ram_gb=round(ram_mib / 1024, 1) if ram_mib else None, arch="x86_64" if "x86_64" in archs else "arm64")


def gpu_instance_types(raw_types: Iterable[Mapping[str, Any]], catalog: ProviderCatalog) -> list[GpuInstanceType]:
    """The offerable GPU types among ``describe_instance_types`` entries; each other one is skipped and counted."""
    found = []
    for index, raw in enumerate(raw_types):
        name = raw.get("InstanceType")
        if not isinstance(name, str):
            skip(f"#{index}", invalid("InstanceType", "missing"))
            continue
        kind = instance_type_gpus(raw, catalog)
        if isinstance(kind, str):
            skip(name, kind)
        else:
            found.append(kind)
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
    a type has several, and products of another market (capacity blocks) are ignored. An entry that
    is not JSON, or a price that is not a number, is skipped and counted.
    """
    prices: dict[str, float] = {}
    for index, entry in enumerate(price_list):
        try:
            product = json.loads(entry) if isinstance(entry, str) else entry
        except ValueError:
            skip(f"price list #{index}", invalid("(entry)", "not JSON"))
            continue
        attributes = product.get("product", {}).get("attributes", {}) if isinstance(product, Mapping) else {}
        instance_type = attributes.get("instanceType")
        if not instance_type or attributes.get("marketoption", "OnDemand") != "OnDemand":
            continue
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                text = dimension.get("pricePerUnit", {}).get("USD")
                price = _usd(text)
                if price is None:
                    if _number(text) is None:
                        skip(instance_type, invalid("pricePerUnit.USD", f"{text!r} is not a number"))
                    continue
                if price < prices.get(instance_type, float("inf")):
                    prices[instance_type] = price
    return prices


def cheapest_spot(history: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """The lowest current spot price per instance type over the region's availability zones."""
    prices: dict[str, float] = {}
    for row in history:
        price = _usd(row.get("SpotPrice"))
        instance_type = row.get("InstanceType")
        if instance_type and price is None and _number(row.get("SpotPrice")) is None:
            skip(instance_type, invalid("SpotPrice", f"{row.get('SpotPrice')!r} is not a number"))
        if instance_type and price and price < prices.get(instance_type, float("inf")):
            prices[instance_type] = price
    return prices


def _number(text: object) -> float | None:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _usd(text: object) -> float | None:
    value = _number(text)
    return value if value is not None and value > 0 else None
