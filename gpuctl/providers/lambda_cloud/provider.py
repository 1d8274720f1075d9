"""Lambda Cloud, through its v1 REST API: one offer per instance type and region with capacity, and
Ubuntu VMs that gpuctl reaches over SSH (the lifecycle runs the engine there with docker).

Lambda takes no client token and has no TTL: the launch token and the TTL deadline are instance
tags (``gpuctl.providers.tagging``), and the TTL watchdog is armed by cloud-init user data. A public
deployment gets a firewall ruleset of its own (SSH and the engine port from the caller's address
only), deleted when the instance is terminated; the account-wide rules are never touched.

The weights cache is a filesystem per region (``caches``); it outlives the instances (docs/weights.md).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from gpuctl.catalog import matches
from gpuctl.errors import GpuctlError, NotFoundError, ProviderError, UsageError
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.providers.base import Provider, ProviderCheck
from gpuctl.providers.capabilities import Capability
from gpuctl.providers.http import ProviderHttpError
from gpuctl.providers.lambda_cloud.caches import cache_mount_point, filesystem_cache, find_filesystem
from gpuctl.providers.lambda_cloud.launch import (
    NAME_MAX,
    check_tags,
    drop_ruleset,
    ensure_ssh_key,
    launch_error,
    public_cidrs,
    public_ruleset,
    region_with_capacity,
    release_rulesets,
)
from gpuctl.providers.lambda_cloud.mapping import (
    CATALOG_FILE,
    NAME,
    SSH_PORT,
    SSH_USER,
    instance_tags,
    instance_type_offers,
    instance_types_items,
    lambda_instance,
)
from gpuctl.providers.lambda_cloud.settings import API_KEY
from gpuctl.providers.tagging import LAUNCH_TOKEN, carries, deadline, launch_tags
from gpuctl.providers.vm import CALLER_CIDR, first_boot_script

if TYPE_CHECKING:  # the API and lifecycle models load on first use: discovering providers stays cheap
    from gpuctl.models.instance import Instance, LaunchRequest
    from gpuctl.models.weights_cache import WeightsCache
    from gpuctl.providers.lambda_cloud.client import LambdaApi

log = logging.getLogger(__name__)

_ENDING = ("terminating", "terminated", "preempted")


class LambdaProvider(Provider):
    name = NAME
    display_name = "Lambda Cloud"
    config_keys = (API_KEY, CALLER_CIDR)
    catalog_file = CATALOG_FILE
    #: terminate waits up to a minute for Lambda to release a public deployment's firewall ruleset
    call_timeout = 180.0
    capabilities = frozenset({Capability.LAUNCH, Capability.LIST_BY_TAG, Capability.SSH_MACHINE,
                              Capability.WEIGHTS_CACHE})

    def _api(self) -> LambdaApi:
        from gpuctl.providers.lambda_cloud.client import LambdaApi

        return LambdaApi.from_env(self.timeout)

    def doctor_checks(self) -> list[ProviderCheck]:
        """One ``GET /api/v1/instance-types``: read-only, and it needs a valid key."""
        from gpuctl.providers.checks import api_check, http_probe
        from gpuctl.providers.lambda_cloud.client import LambdaApi

        return [api_check("GET /api/v1/instance-types", lambda: http_probe(LambdaApi, "/instance-types", self.timeout))]

    def offers(self, query: OfferQuery) -> list[Offer]:
        catalog = self.catalog()
        assert catalog is not None
        types = catalog.instance_types
        if query.spot or (query.gpus is not None and not set(query.gpus) & {t.gpu for t in types.values()}):
            return []  # Lambda has no spot market, and none of the wanted GPUs is sold here
        with self._api() as api:
            entries = api.list_instance_types()
        offers = instance_type_offers(instance_types_items(entries), catalog, datetime.now(timezone.utc))
        return [offer for offer in offers if matches(offer, query)]

    def launch(self, request: LaunchRequest) -> Instance:
        """Launch one VM with the project's SSH key, unless an instance carrying this launch's token exists.

        The launch is sent once: Lambda allows one per 12 s, and a failed answer may still have
        launched (the next launch with the same token finds that instance).
        """
        offer = request.offer
        if offer.provider != self.name:
            raise UsageError(f"offer {offer.id} is not a Lambda Cloud offer")
        if not request.ssh_public_key:
            raise UsageError("a Lambda Cloud instance is reached over SSH, but the launch request has no public key")
        tags = launch_tags(request)
        check_tags(tags)
        # learnt before anything is created: without the caller's address there is nothing to open
        cidrs = public_cidrs() if request.public else []
        with self._api() as api:
            # an instance on its way out is an earlier deployment's, even with the same token
            earlier = [i for i in api.list_instances()
                       if instance_tags(i).get(LAUNCH_TOKEN) == request.idempotency_token and i.status not in _ENDING]
            if earlier:
                log.info("Lambda Cloud: instance %s already carries launch token %s; not launching another",
                         earlier[0].id, request.idempotency_token)
                return lambda_instance(earlier[0])
            region = offer.region if offer.region != "any" else region_with_capacity(api, offer.instance_type)
            # the region's weights cache (docs/weights.md): the lifecycle fetches into it over SSH
            cache = request.weights_cache
            mount = cache_mount_point(cache, region) if cache is not None else None
            body: dict[str, Any] = {
                "region_name": region,
                "instance_type_name": offer.instance_type,
                "ssh_key_names": [ensure_ssh_key(api, request.ssh_public_key)],
                "name": request.name[:NAME_MAX],
                "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
            }
            if cache is not None and mount is not None:
                body["file_system_mounts"] = [{"file_system_id": cache.id, "mount_point": mount}]
            expires = deadline(tags)
            if expires is not None:
                body["user_data"] = first_boot_script(request.name, expires, cache_dir=mount)
            ruleset = public_ruleset(api, request, region, cidrs) if request.public else None
            if ruleset is not None:
                body["firewall_rulesets"] = [{"id": ruleset.id}]
            try:
                ids = api.launch(body)
            except ProviderHttpError as exc:
                drop_ruleset(api, ruleset)
                raise launch_error(exc, body) from None
            except GpuctlError:
                drop_ruleset(api, ruleset)
                raise
            if not ids:
                drop_ruleset(api, ruleset)
                raise ProviderError("Lambda Cloud accepted the launch but named no instance",
                                    "look for it in the Lambda dashboard; 'gpuctl gc' finds gpuctl's instances")
            instance_id = ids[0]
            try:
                return lambda_instance(api.get_instance(instance_id))
            except NotFoundError:  # accepted but not yet listed: it is booting
                from gpuctl.models.instance import Instance

                return Instance(provider=self.name, id=instance_id, name=body["name"], status="pending",
                                region=body["region_name"], instance_type=offer.instance_type, gpu=offer.gpu,
                                gpu_count=offer.gpu_count, ssh_port=SSH_PORT, ssh_user=SSH_USER,
                                price_per_hour=offer.price_per_hour, tags=tags)

    def get(self, instance_id: str) -> Instance:
        with self._api() as api:
            try:
                return lambda_instance(api.get_instance(instance_id))
            except NotFoundError:
                raise NotFoundError(f"Lambda Cloud has no instance {instance_id}",
                                    "it may have been terminated") from None

    def terminate(self, instance_id: str) -> None:
        """Terminate the instance (the only thing that stops Lambda's billing), then delete its ruleset.

        Gone already is fine; a ruleset Lambda will not delete yet is left with a warning.
        """
        with self._api() as api:
            try:
                item = api.get_instance(instance_id)
                if item.status not in _ENDING:
                    api.terminate([instance_id])
            except NotFoundError:
                log.info("Lambda Cloud: instance %s is already gone", instance_id)
                return
            release_rulesets(api, item)

    def list_by_tag(self, tags: dict[str, str]) -> list[Instance]:
        with self._api() as api:
            instances = api.list_instances()
        # an instance without gpuctl's tags is never gpuctl's, whatever filter is asked
        return [lambda_instance(i) for i in instances
                if i.status != "terminated" and instance_tags(i) and carries(instance_tags(i), tags)]

    # -- weights caches: a filesystem per region ------------------------------------------------------------
    def weights_caches(self) -> list[WeightsCache]:
        """gpuctl's filesystems (named ``gpuctl-hf-cache-REGION``), every region; others are never listed."""
        from gpuctl.models.weights_cache import CACHE_NAME_PREFIX

        with self._api() as api:
            filesystems = api.list_filesystems()
        return [filesystem_cache(fs) for fs in filesystems if fs.name.startswith(CACHE_NAME_PREFIX)]

    def weights_cache_region(self, offer: Offer) -> str | None:
        """The offer's region; None for an offer in region ``any`` (a snapshot or sold-out one), whose region the
        launch picks only later, where there may be no filesystem yet: it deploys without a cache."""
        return None if offer.region == "any" else offer.region

    def ensure_weights_cache(self, region: str, *, min_gb: int, tags: dict[str, str]) -> WeightsCache:
        """The filesystem ``gpuctl-hf-cache-REGION``, created when absent.

        A Lambda filesystem has no size (it grows as it is written) and no tags, so ``min_gb`` and
        ``tags`` change nothing here; its name is what marks it as gpuctl's.
        """
        from gpuctl.models.weights_cache import cache_name
        from gpuctl.providers.lambda_cloud.client import DUPLICATE

        if region == "any":
            raise UsageError("a Lambda Cloud filesystem lives in one region, and none was chosen",
                             "name a region with capacity ('gpuctl prices --provider lambda' lists them)")
        name = cache_name(region)
        with self._api() as api:
            found = find_filesystem(api, name, region)
            if found is None:
                try:
                    found = api.create_filesystem(name, region)
                except ProviderHttpError as exc:
                    # another gpuctl created it meanwhile: use theirs
                    found = find_filesystem(api, name, region) if exc.info.code == DUPLICATE else None
                    if found is None:
                        raise
                log.info("Lambda Cloud: created filesystem %s (%s) in %s", found.name, found.id, region)
        return filesystem_cache(found)

    def delete_weights_cache(self, cache: WeightsCache) -> None:
        """Delete the filesystem and everything in it; gone already is fine, mounted on an instance is refused."""
        from gpuctl.providers.lambda_cloud.client import FILESYSTEM_IN_USE

        with self._api() as api:
            try:
                api.delete_filesystem(cache.id)
            except NotFoundError:
                log.info("Lambda Cloud: filesystem %s (%s) is already gone", cache.name, cache.id)
            except ProviderHttpError as exc:
                if exc.info.code != FILESYSTEM_IN_USE:
                    raise
                raise UsageError(f"Lambda Cloud filesystem {cache.name} in {cache.region} is attached to a running "
                                 "instance, so Lambda will not delete it",
                                 "stop what uses it first ('gpuctl status' lists gpuctl's deployments, "
                                 "'gpuctl down NAME' stops one), then delete it again") from None

















