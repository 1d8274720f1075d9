"""RunPod, through its REST v2 API: Secure and Community Cloud as separate offers."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from gpuctl.catalog import gpu_spec, matches, provider_catalog
from gpuctl.models.offer import Availability, Offer, OfferQuery
from gpuctl.providers.base import Provider
from gpuctl.providers.http import DEFAULT_TIMEOUT
from gpuctl.providers.runpod_api import AvailabilityLevel, Cloud, GpuType, RunPodApi

log = logging.getLogger(__name__)

#: gpuctl tier name -> the API's cloud; each is its own market with its own price and stock
TIERS: dict[str, Cloud] = {"secure": "SECURE", "community": "COMMUNITY"}

_LEVELS: dict[AvailabilityLevel, Availability] = {
    "NONE": "none", "LOW": "low", "MEDIUM": "medium", "HIGH": "high",
}


class RunPodProvider(Provider):
    name = "runpod"
    display_name = "RunPod"
    credential_keys = ("runpod.api_key",)

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        #: seconds one API call may take, retries included (the pricing layer may lower it)
        self.timeout = timeout

    def offers(self, query: OfferQuery) -> list[Offer]:
        catalog = provider_catalog(self.name)
        gpu_ids = catalog.gpu_ids if catalog else {}
        if query.spot or (query.gpus is not None and not set(query.gpus) & set(gpu_ids.values())):
            return []  # REST v2 has no spot market, and none of the wanted GPUs is sold here
        count = query.gpu_count or 1
        as_of = datetime.now(timezone.utc)
        # Stock differs per cloud and the API reports one cloud per call: ask both at once.
        with RunPodApi.from_env(self.timeout) as api, ThreadPoolExecutor(len(TIERS)) as pool:
            futures = {tier: pool.submit(api.list_gpu_types, cloud=cloud, count=count)
                       for tier, cloud in TIERS.items()}
            answers = {tier: future.result().gpus for tier, future in futures.items()}
        unknown = sorted({g.id for gpus in answers.values() for g in gpus} - set(gpu_ids))
        if unknown:
            log.debug("RunPod: skipping GPU types not in providers/runpod.yaml: %s", ", ".join(unknown))
        offers = [offer for tier, gpus in answers.items()
                  for offer in tier_offers(gpus, tier, count, gpu_ids, as_of)]
        return [offer for offer in offers if matches(offer, query)]


def tier_offers(gpus: list[GpuType], tier: str, count: int, gpu_ids: dict[str, str],
                as_of: datetime) -> list[Offer]:
    """Offers of ``count`` GPUs in one tier: one per datacenter that lists its own stock.

    Without per-datacenter figures the GPU-level availability is reported once, as region
    ``any``, rather than copied into datacenters it may not describe.
    """
    offers = []
    for gpu in gpus:
        canonical = gpu_ids.get(gpu.id)
        if canonical is None or not getattr(gpu, tier):
            continue
        price = getattr(gpu.price, tier)
        if count > getattr(gpu.max_count, tier):
            log.debug("RunPod: %s %s pods hold at most %d GPUs", tier, gpu.id, getattr(gpu.max_count, tier))
            continue
        places: list[tuple[str, Availability]] = (
            [(dc.id, _LEVELS[dc.availability]) for dc in gpu.data_centers] if gpu.data_centers
            else [("any", _LEVELS[gpu.availability] if gpu.availability else "unknown")])
        for region, availability in places:
            offers.append(Offer(
                provider=RunPodProvider.name, gpu=canonical, gpu_count=count,
                vram_gb=gpu.memory or gpu_spec(canonical).vram_gb, region=region,
                price_per_hour=round(price * count, 4), price_per_gpu_hour=price,
                availability=availability, instance_type=gpu.id, tier=tier, source="live", as_of=as_of,
            ))
    return offers
