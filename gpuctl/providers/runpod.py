"""RunPod, through its REST v2 API: Secure and Community Cloud as separate offers, and pods that are
the engine container itself.

A pod cannot carry tags, so gpuctl's tags (with the launch token and TTL deadline, see
``gpuctl.providers.tagging``) travel as JSON in the pod's ``GPUCTL_TAGS`` environment variable, which
the API stores with the pod and returns on every read.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from gpuctl.catalog import gpu_spec, matches, provider_catalog
from gpuctl.envvars import Env
from gpuctl.errors import ConfigError, NoCapacityError, NotFoundError, ProviderError, UsageError
from gpuctl.models.offer import Availability, Offer, OfferQuery
from gpuctl.providers.base import Provider
from gpuctl.providers.capabilities import Capability
from gpuctl.providers.http import DEFAULT_TIMEOUT, ProviderHttpError
from gpuctl.providers.tagging import LAUNCH_TOKEN, carries, launch_tags

if TYPE_CHECKING:  # the API and lifecycle models load on first use: discovering providers stays cheap
    from gpuctl.events import Reporter
    from gpuctl.models.instance import Instance, InstanceStatus, LaunchRequest
    from gpuctl.models.weights_cache import WeightsCache
    from gpuctl.providers.runpod_api import AvailabilityLevel, Cloud, GpuType, NetworkVolume, Pod, PodStatus, RunPodApi
    from gpuctl.weights.models import CacheReport, SeedRequest

log = logging.getLogger(__name__)

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
SSH_PORT = "22/tcp"
_HTTP_PORT = re.compile(r"^(\d+)/http$")
#: RunPod's smallest network volume, in GB
MIN_VOLUME_GB = 10
#: network volumes attach to Secure Cloud pods only
VOLUME_CLOUD: Cloud = "SECURE"


class RunPodProvider(Provider):
    name = "runpod"
    display_name = "RunPod"
    credential_keys = ("runpod.api_key",)
    #: the pod is the engine container: there is no machine to SSH into and run docker on
    capabilities = frozenset({Capability.LAUNCH, Capability.LIST_BY_TAG, Capability.ENGINE_CONTAINER,
                              Capability.ENGINE_LOGS, Capability.WEIGHTS_CACHE, Capability.SEED_WEIGHTS})

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        #: seconds one API call may take, retries included (the pricing layer may lower it)
        self.timeout = timeout

    def _api(self) -> RunPodApi:
        from gpuctl.providers.runpod_api import RunPodApi

        return RunPodApi.from_env(self.timeout)

    def offers(self, query: OfferQuery) -> list[Offer]:
        catalog = provider_catalog(self.name)
        gpu_ids = catalog.gpu_ids if catalog else {}
        if query.spot or (query.gpus is not None and not set(query.gpus) & set(gpu_ids.values())):
            return []  # REST v2 has no spot market, and none of the wanted GPUs is sold here
        count = query.gpu_count or 1
        as_of = datetime.now(timezone.utc)
        # Stock differs per cloud and the API reports one cloud per call: ask both at once.
        with self._api() as api, ThreadPoolExecutor(len(TIERS)) as pool:
            futures = {tier: pool.submit(api.list_gpu_types, cloud=cloud, count=count)
                       for tier, cloud in TIERS.items()}
            answers = {tier: future.result().gpus for tier, future in futures.items()}
        unknown = sorted({g.id for gpus in answers.values() for g in gpus} - set(gpu_ids))
        if unknown:
            log.debug("RunPod: skipping GPU types not in providers/runpod.yaml: %s", ", ".join(unknown))
        offers = [offer for tier, gpus in answers.items()
                  for offer in tier_offers(gpus, tier, count, gpu_ids, as_of)]
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
        from gpuctl.providers.runpod_api import MAX_LOG_LINES

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
        """
        from gpuctl.models.weights_cache import cache_name

        if region == "any":
            raise UsageError("a RunPod network volume lives in one data center", "name one, e.g. US-TX-3")
        name = cache_name(region)
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
        """Fill the volume from a short-lived CPU pod in its data center (:mod:`gpuctl.providers.runpod_seed`)."""
        from gpuctl.providers.runpod_seed import seed

        with self._api() as api:
            return seed(api, cache, request, reporter)


def _no_pod(pod_id: str) -> NotFoundError:
    return NotFoundError(f"RunPod has no pod {pod_id}", "it may have been terminated")


def volume_cache(volume: NetworkVolume, *, in_use: bool | None = None) -> WeightsCache:
    """The provider-neutral view of a network volume (mounted where each engine keeps its HF cache)."""
    from gpuctl.models.weights_cache import WeightsCache

    return WeightsCache(provider=RunPodProvider.name, id=volume.id, name=volume.name, region=volume.data_center,
                        kind="network-volume", size_gb=volume.size, in_use=in_use)


def pod_request(request: LaunchRequest) -> dict[str, Any]:
    """The ``POST /v2/pods`` body for ``request``; refuses what RunPod would run differently than shown.

    The pod is created in exactly the cloud tier (and datacenter) of the offer, whose price the
    user saw. v2 cannot replace the image's entrypoint: the engine's arguments go to the image's
    own (``vllm serve`` for vLLM, ``text-generation-launcher`` for TGI). With a weights cache, the
    network volume is mounted where the engine keeps its Hugging Face cache, and the pod is placed
    in the volume's data center.
    """
    offer, engine = request.offer, request.engine
    if offer.provider != RunPodProvider.name:
        raise UsageError(f"offer {offer.id} is not a RunPod offer")
    cloud = TIERS.get(offer.tier or "")
    if cloud is None:
        raise UsageError(f"RunPod offer {offer.id} names no cloud tier ({', '.join(TIERS)})",
                         "pick an offer from 'gpuctl prices --provider runpod'")
    if engine is None:
        raise UsageError("a RunPod pod is the engine container, but the launch request has no engine")
    missing = [name for name in engine.secret_env if name not in request.secrets]
    if missing:
        raise UsageError(f"no value for the engine's secret variable(s) {', '.join(missing)}")
    if engine.api_key_env is None:
        raise UsageError("a RunPod pod's endpoint is reachable by anyone through RunPod's proxy, so gpuctl "
                         "serves it only with an API key", "deploy with an API key, or use another provider")
    from gpuctl.providers.runpod_api import TAGS_ENV

    env = {**engine.env, **{name: request.secrets[name] for name in engine.secret_env},
           TAGS_ENV: json.dumps(launch_tags(request), sort_keys=True, separators=(",", ":"))}
    if request.ssh_public_key:
        # RunPod's images start sshd with the keys in PUBLIC_KEY; this pod's own key, not the account's
        env["PUBLIC_KEY"] = request.ssh_public_key
    body: dict[str, Any] = {
        "name": request.name, "image": engine.image, "args": shlex.join(engine.args),
        "gpu": {"id": offer.instance_type, "count": offer.gpu_count}, "cloud": cloud,
        "ports": [f"{engine.port}/http", SSH_PORT], "env": env, "disk": request.disk_gb,
    }
    if offer.region != "any":
        body["dataCenterIds"] = [offer.region]
    cache = request.weights_cache
    if cache is not None:
        if cloud != VOLUME_CLOUD:
            raise UsageError(f"RunPod network volumes attach to Secure Cloud pods only, and offer {offer.id} is "
                             f"{offer.tier} cloud", "launch it without the weights cache (see weights_cache_region)")
        if offer.region not in ("any", cache.region):
            raise UsageError(f"RunPod offer {offer.id} is in {offer.region}, but its weights cache {cache.name} "
                             f"is in {cache.region}")
        # a network volume has no read-only mount: the offline engine only reads it regardless
        path = engine.cache_mount.removesuffix(":ro")
        body["mounts"] = {"network": [{"volumeId": cache.id, "path": path}]}
        body["dataCenterIds"] = [cache.region]
    return body


def create_error(exc: ProviderHttpError, body: dict[str, Any]) -> Exception:
    """The gpuctl error for a refused create; 400 is how v2 says the pod could not be placed."""
    info = exc.info
    where = f"{body['cloud'].lower()} cloud" + (f" in {body['dataCenterIds'][0]}" if "dataCenterIds" in body else "")
    what = f"{body['gpu']['count']}x {body['gpu']['id']}"
    if info.status == 400:
        # v2 gives capacity no code of its own: a 400 is "try the next candidate" (spec of createPod)
        return NoCapacityError(f"RunPod could not place {what} in {where} ({info.summary()})",
                               "gpuctl moves on to the next offer; if every offer fails with this message, "
                               "the request itself is at fault")
    if info.status == 402:
        return ProviderError(f"RunPod refused to create {what}: the account balance is too low ({info.summary()})",
                             "add credit to the RunPod account")
    return ProviderHttpError(f"RunPod API failed to create {what} in {where} ({info.summary()})", exc.hint, info=info)


def pod_instance(pod: Pod) -> Instance:
    """The provider-neutral view of ``pod``."""
    from gpuctl.models.instance import Instance

    catalog = provider_catalog(RunPodProvider.name)
    gpu_id = pod.gpu.id if pod.gpu else None
    ssh = (pod.ssh.direct or pod.ssh.proxy) if pod.ssh else None
    port = next((int(m.group(1)) for p in pod.ports if (m := _HTTP_PORT.match(p))), None)
    return Instance(
        provider=RunPodProvider.name, id=pod.id, name=pod.name, status=_STATUSES[pod.status],
        provider_status=pod.status, region=pod.data_center_id, instance_type=gpu_id,
        gpu=(catalog.gpu_ids.get(gpu_id) if catalog and gpu_id else None) or gpu_id,
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
