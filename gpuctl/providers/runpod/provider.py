"""RunPod, through its REST v2 API: Secure and Community Cloud as separate offers, and pods that are
the engine container itself.

A pod cannot carry tags, so gpuctl's tags (with the launch token and TTL deadline, see
``gpuctl.providers.tagging``) travel as JSON in the pod's ``GPUCTL_TAGS`` environment variable, which
the API stores with the pod and returns on every read.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from gpuctl.catalog import matches
from gpuctl.errors import NotFoundError, ProviderError, UsageError
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.providers.base import Provider, ProviderCheck
from gpuctl.providers.capabilities import Capability
from gpuctl.providers.http import ProviderHttpError
from gpuctl.providers.runpod.caches import MAX_VOLUME_GB, MIN_VOLUME_GB, VOLUME_CLOUD, volume_cache
from gpuctl.providers.runpod.launch import create_error, pod_request
from gpuctl.providers.runpod.mapping import CATALOG_FILE, NAME, TIERS, gpu_types, pod_instance, tier_offers
from gpuctl.providers.runpod.settings import API_KEY
from gpuctl.providers.tagging import LAUNCH_TOKEN, carries

if TYPE_CHECKING:  # the API and lifecycle models load on first use: discovering providers stays cheap
    from gpuctl.events import Reporter
    from gpuctl.models.billing import BilledAmount
    from gpuctl.models.instance import Instance, LaunchRequest
    from gpuctl.models.weights_cache import WeightsCache
    from gpuctl.providers.runpod.client import RunPodApi
    from gpuctl.weights.models import CacheReport, SeedRequest

log = logging.getLogger(__name__)


class RunPodProvider(Provider):
    name = NAME
    display_name = "RunPod"
    config_keys = (API_KEY,)
    catalog_file = CATALOG_FILE
    #: the pod is the engine container: there is no machine to SSH into and run docker on
    capabilities = frozenset({Capability.LAUNCH, Capability.LIST_BY_TAG, Capability.ENGINE_CONTAINER,
                              Capability.ENGINE_LOGS, Capability.WEIGHTS_CACHE, Capability.SEED_WEIGHTS,
                              Capability.BILLING})

    def _api(self) -> RunPodApi:
        from gpuctl.providers.runpod.client import RunPodApi

        return RunPodApi.from_env(self.timeout)

    def doctor_checks(self) -> list[ProviderCheck]:
        """One ``GET /v2/pods``: the cheapest call that needs a valid key."""
        from gpuctl.providers.checks import api_check, http_probe
        from gpuctl.providers.runpod.client import RunPodApi

        return [api_check("GET /v2/pods", lambda: http_probe(RunPodApi, "/pods", self.timeout))]

    def offers(self, query: OfferQuery) -> list[Offer]:
        """Both clouds' offers, asked at once; catalog entries gpuctl cannot use are skipped and counted, and
        ``query.min_cuda_version`` narrows the stock to machines whose CUDA is new enough."""
        catalog = self.catalog()
        assert catalog is not None
        if query.spot or (query.gpus is not None and not set(query.gpus) & set(catalog.gpu_ids.values())):
            return []  # REST v2 has no spot market, and none of the wanted GPUs is sold here
        count = query.gpu_count or 1
        as_of = datetime.now(timezone.utc)
        # Stock differs per cloud and the API reports one cloud per call: ask both at once.
        with self._api() as api, ThreadPoolExecutor(len(TIERS)) as pool:
            futures = {tier: pool.submit(api.list_gpu_types, cloud=cloud, count=count,
                                         min_cuda_version=query.min_cuda_version)
                       for tier, cloud in TIERS.items()}
            answers = {tier: future.result() for tier, future in futures.items()}
        offers = [offer for tier, entries in answers.items()
                  for offer in tier_offers(gpu_types(entries), tier, count, catalog, as_of)]
        return [offer for offer in offers if matches(offer, query)]

    def launch(self, request: LaunchRequest) -> Instance:
        """Create the engine pod, unless a pod carrying this launch's token exists: then return that.

        RunPod takes no client token, so a crash between the create and gpuctl's state write is
        recovered by the token in the pod's tags. The create itself is sent once: a 5xx or a broken
        answer is not retried, since the pod may exist regardless (the next launch finds it).
        """
        body = pod_request(request)
        with self._api() as api:
            earlier = [pod for pod in api.list_pods()
                       if pod.tags.get(LAUNCH_TOKEN) == request.idempotency_token and pod.status != "TERMINATED"]
            if earlier:
                log.info("RunPod: pod %s already carries launch token %s; not creating another",
                         earlier[0].id, request.idempotency_token)
                return pod_instance(earlier[0])
            try:
                pod = api.create_pod(body)
            except ProviderHttpError as exc:
                raise create_error(exc, body) from None
        return pod_instance(pod)

    def get(self, instance_id: str) -> Instance:
        with self._api() as api:
            try:
                return pod_instance(api.get_pod(instance_id))
            except NotFoundError:
                raise _no_pod(instance_id) from None

    def terminate(self, instance_id: str) -> None:
        """Terminate (delete) the pod; a pod RunPod no longer knows is already gone."""
        with self._api() as api:
            try:
                api.delete_pod(instance_id)
            except NotFoundError:
                log.info("RunPod: pod %s is already gone", instance_id)

    def engine_logs(self, instance_id: str, tail: int | None = None) -> str:
        """The pod container's last ``tail`` lines (RunPod keeps at most 5000)."""
        from gpuctl.providers.runpod.client import MAX_LOG_LINES

        count = MAX_LOG_LINES if tail is None else min(tail, MAX_LOG_LINES)
        if count == 0:
            return ""
        with self._api() as api:
            try:
                lines = api.pod_log_lines(instance_id, count)
            except NotFoundError:
                raise _no_pod(instance_id) from None
        return "".join(f"{line}\n" for line in lines)

    def list_by_tag(self, tags: dict[str, str]) -> list[Instance]:
        with self._api() as api:
            pods = api.list_pods()
        # a pod without gpuctl's tags is never gpuctl's, whatever filter is asked
        return [pod_instance(pod) for pod in pods
                if pod.status != "TERMINATED" and pod.tags and carries(pod.tags, tags)]

    # -- weights caches: a network volume per data center (docs/weights.md) -----------------------------

    def weights_caches(self) -> list[WeightsCache]:
        """gpuctl's network volumes (named ``gpuctl-hf-cache-DC``); in use when a pod mounts one."""
        from gpuctl.models.weights_cache import CACHE_NAME_PREFIX

        with self._api() as api:
            volumes = [v for v in api.list_network_volumes() if v.name.startswith(CACHE_NAME_PREFIX)]
            mounted = {m.volume_id for pod in api.list_pods() if pod.status != "TERMINATED"
                       for m in pod.mounts.network} if volumes else set()
        return [volume_cache(volume, in_use=volume.id in mounted) for volume in volumes]

    def weights_cache_region(self, offer: Offer) -> str | None:
        """The offer's data center for a Secure Cloud offer; None for Community Cloud, whose pods cannot mount a
        network volume, and for an offer that names no data center."""
        return offer.region if TIERS.get(offer.tier or "") == VOLUME_CLOUD and offer.region != "any" else None

    def ensure_weights_cache(self, region: str, *, min_gb: int, tags: dict[str, str]) -> WeightsCache:
        """The volume ``gpuctl-hf-cache-DC`` of data center ``region``: reused, grown to ``min_gb`` (never
        shrunk), or created with ``max(min_gb, 10)`` GB. Volumes carry no tags: gpuctl knows its own by name.
        More than RunPod's 4096 GB is refused before any call.
        """
        from gpuctl.models.weights_cache import cache_name

        if region == "any":
            raise UsageError("a RunPod network volume lives in one data center", "name one, e.g. US-TX-3")
        name = cache_name(region)
        if min_gb > MAX_VOLUME_GB:  # said here: the API would refuse the create or resize (422)
            raise ProviderError(f"RunPod network volumes hold at most {MAX_VOLUME_GB} GB, and {name} would need "
                                f"{min_gb} GB", "deploy without a weights cache: the engine then downloads the "
                                "weights itself")
        size = max(min_gb, MIN_VOLUME_GB)
        with self._api() as api:
            found = sorted((v for v in api.list_network_volumes() if v.name == name and v.data_center == region),
                           key=lambda v: -v.size)
            if not found:
                log.info("RunPod: creating network volume %s (%d GB) in %s", name, size, region)
                return volume_cache(api.create_network_volume(name, region, size))
            volume = found[0]
            if volume.size < min_gb:
                log.info("RunPod: growing network volume %s from %d to %d GB", volume.id, volume.size, min_gb)
                volume = api.resize_network_volume(volume.id, min_gb)
        return volume_cache(volume)

    def delete_weights_cache(self, cache: WeightsCache) -> None:
        """Delete the network volume and its files; one RunPod no longer knows is already gone."""
        with self._api() as api:
            try:
                api.delete_network_volume(cache.id)
            except NotFoundError:
                log.info("RunPod: network volume %s is already gone", cache.id)

    def seed_weights(self, cache: WeightsCache, request: SeedRequest, reporter: Reporter) -> CacheReport:
        """Fill the volume from a short-lived CPU pod in its data center (:mod:`gpuctl.providers.runpod.seeding`)."""
        from gpuctl.providers.runpod.seeding import seed

        with self._api() as api:
            return seed(api, cache, request, reporter)

    def billed(self, instance_ids: list[str], start: datetime, end: datetime) -> list[BilledAmount]:
        from gpuctl.providers.runpod.billing import pod_charges

        with self._api() as api:
            return pod_charges(api, instance_ids, start, end)


def _no_pod(pod_id: str) -> NotFoundError:
    return NotFoundError(f"RunPod has no pod {pod_id}", "it may have been terminated")
