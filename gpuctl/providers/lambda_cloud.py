"""Lambda Cloud, through its v1 REST API: one offer per instance type and region with capacity, and
Ubuntu VMs that gpuctl reaches over SSH (the lifecycle runs the engine there with docker).

Lambda takes no client token and has no TTL: the launch token and the TTL deadline are instance
tags (``gpuctl.providers.tagging``), and the TTL watchdog is armed by cloud-init user data. A public
deployment gets a firewall ruleset of its own (SSH and the engine port from the caller's address
only), deleted when the instance is terminated; the account-wide rules are never touched.

The weights cache is a filesystem per region, ``gpuctl-hf-cache-REGION``, mounted at
``CACHE_MOUNT_POINT`` on every instance gpuctl launches there; it outlives the instances (docs/weights.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from gpuctl.catalog import CatalogInstanceType, gpu_spec, matches, provider_catalog
from gpuctl.errors import GpuctlError, NoCapacityError, NotFoundError, ProviderError, UsageError
from gpuctl.models.offer import Availability, Offer, OfferQuery
from gpuctl.providers.base import Provider
from gpuctl.providers.caller import caller_cidrs
from gpuctl.providers.capabilities import Capability
from gpuctl.providers.http import DEFAULT_TIMEOUT, ProviderHttpError
from gpuctl.providers.tagging import LAUNCH_TOKEN, carries, deadline, launch_tags

if TYPE_CHECKING:  # the API and lifecycle models load on first use: discovering providers stays cheap
    from gpuctl.models.instance import Instance, InstanceStatus, LaunchRequest
    from gpuctl.models.weights_cache import WeightsCache
    from gpuctl.providers import lambda_api
    from gpuctl.providers.lambda_api import Filesystem, FirewallRuleset, InstanceTypesItem, LambdaApi

log = logging.getLogger(__name__)

#: Lambda says only whether a region has capacity, not how much; a launch can still find none.
CAPACITY_AVAILABLE: Availability = "medium"
_STATUSES: dict[str, InstanceStatus] = {
    "booting": "pending", "active": "running", "unhealthy": "error", "terminating": "stopping",
    "terminated": "terminated", "preempted": "terminated",
}
_ENDING = ("terminating", "terminated", "preempted")
#: the login user of Lambda's Ubuntu images, and their sshd's port
SSH_USER = "ubuntu"
SSH_PORT = 22
#: what Lambda accepts as tags (InstanceLaunchRequest.tags in the spec)
_TAG_KEY = re.compile(r"^[a-z][a-z0-9-:]+$")
_TAG_KEY_MAX, _TAG_VALUE_MAX, _NAME_MAX = 55, 128, 64
#: names of the rulesets gpuctl makes start so; nothing else is ever deleted
RULESET_PREFIX = "gpuctl-"
#: Lambda refuses to delete a ruleset until its instance has terminated: how long terminate waits for that
RULESET_RELEASE_S = 60.0
RULESET_POLL_S = 2.0
#: where an instance gpuctl launches sees its region's weights cache: the same path in every region, one
#: the spec allows for ``file_system_mounts`` (the default, ``/lambda/nfs/NAME``, would change with the region)
CACHE_MOUNT_POINT = "/lambda/nfs/gpuctl-hf-cache"


class LambdaProvider(Provider):
    name = "lambda"
    display_name = "Lambda Cloud"
    credential_keys = ("lambda.api_key",)
    capabilities = frozenset({Capability.LAUNCH, Capability.LIST_BY_TAG, Capability.SSH_MACHINE,
                              Capability.WEIGHTS_CACHE})

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        #: seconds one API call may take, retries included (the pricing layer may lower it)
        self.timeout = timeout

    def _api(self) -> LambdaApi:
        from gpuctl.providers.lambda_api import LambdaApi

        return LambdaApi.from_env(self.timeout)

    def offers(self, query: OfferQuery) -> list[Offer]:
        catalog = provider_catalog(self.name)
        types = catalog.instance_types if catalog else {}
        if query.spot or (query.gpus is not None and not set(query.gpus) & {t.gpu for t in types.values()}):
            return []  # Lambda has no spot market, and none of the wanted GPUs is sold here
        with self._api() as api:
            items = api.list_instance_types()
        offers = instance_type_offers(items, types, datetime.now(timezone.utc))
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
                       if _tags(i).get(LAUNCH_TOKEN) == request.idempotency_token and i.status not in _ENDING]
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
                "name": request.name[:_NAME_MAX],
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
                if i.status != "terminated" and _tags(i) and carries(_tags(i), tags)]

    # -- weights caches: a filesystem per region ------------------------------------------------------------
    def weights_caches(self) -> list[WeightsCache]:
        """gpuctl's filesystems (named ``gpuctl-hf-cache-REGION``), every region; others are never listed."""
        from gpuctl.models.weights_cache import CACHE_NAME_PREFIX

        with self._api() as api:
            filesystems = api.list_filesystems()
        return [filesystem_cache(fs) for fs in filesystems if fs.name.startswith(CACHE_NAME_PREFIX)]

    def ensure_weights_cache(self, region: str, *, min_gb: int, tags: dict[str, str]) -> WeightsCache:
        """The filesystem ``gpuctl-hf-cache-REGION``, created when absent.

        A Lambda filesystem has no size (it grows as it is written) and no tags, so ``min_gb`` and
        ``tags`` change nothing here; its name is what marks it as gpuctl's.
        """
        from gpuctl.models.weights_cache import cache_name
        from gpuctl.providers.lambda_api import DUPLICATE

        if region == "any":
            raise UsageError("a Lambda Cloud filesystem lives in one region, and none was chosen",
                             "pick an offer in a region with capacity ('gpuctl offers --provider lambda')")
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
        from gpuctl.providers.lambda_api import FILESYSTEM_IN_USE

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


def lambda_instance(item: lambda_api.Instance) -> Instance:
    """The provider-neutral view of a Lambda instance; SSH details are set once it has an address."""
    from gpuctl.models.instance import Instance

    catalog = provider_catalog(LambdaProvider.name)
    mapped = catalog.instance_types.get(item.instance_type.name) if catalog else None
    return Instance(
        provider=LambdaProvider.name, id=item.id, name=item.name, status=_STATUSES[item.status],
        provider_status=item.status, region=item.region.name, instance_type=item.instance_type.name,
        gpu=mapped.gpu if mapped else item.instance_type.gpu_description, gpu_count=item.instance_type.specs.gpus,
        public_ip=item.ip, ssh_host=item.ip, ssh_port=SSH_PORT, ssh_user=SSH_USER,
        price_per_hour=item.instance_type.price_cents_per_hour / 100, tags=_tags(item),
    )


def filesystem_cache(fs: Filesystem) -> WeightsCache:
    """The provider-neutral view of a filesystem; ``mount_path`` is where gpuctl's instances mount it."""
    from gpuctl.models.weights_cache import WeightsCache

    return WeightsCache(provider=LambdaProvider.name, id=fs.id, name=fs.name, region=fs.region.name,
                        kind="filesystem", size_gb=None, used_bytes=fs.bytes_used, in_use=fs.is_in_use,
                        mount_path=CACHE_MOUNT_POINT, created_at=fs.created)


def find_filesystem(api: LambdaApi, name: str, region: str) -> Filesystem | None:
    return next((fs for fs in api.list_filesystems() if fs.name == name and fs.region.name == region), None)


def cache_mount_point(cache: WeightsCache, region: str) -> str:
    """Where an instance in ``region`` mounts ``cache``; a cache Lambda could not mount there is refused first."""
    if cache.provider != LambdaProvider.name or cache.kind != "filesystem":
        raise UsageError(f"the weights cache {cache.name} is a {cache.provider} {cache.kind}, "
                         "not a Lambda Cloud filesystem")
    if cache.region != region:
        raise UsageError(f"the Lambda Cloud filesystem {cache.name} is in {cache.region}, but the instance would "
                         f"be in {region}: Lambda mounts a filesystem only in its own region",
                         f"use an offer in {cache.region}, or the weights cache of {region}")
    return cache.mount_path or CACHE_MOUNT_POINT


def _tags(item: lambda_api.Instance) -> dict[str, str]:
    return {tag.key: tag.value for tag in item.tags}


def check_tags(tags: dict[str, str]) -> None:
    """Refuse tags Lambda would reject (keys: lowercase, digits, '-', ':'; at most 55 characters)."""
    for key, value in tags.items():
        if not _TAG_KEY.match(key) or len(key) > _TAG_KEY_MAX or len(value) > _TAG_VALUE_MAX:
            raise UsageError(f"Lambda Cloud cannot store the tag {key}={value!r}",
                             "tag keys are lowercase letters, digits, '-' and ':' (at most 55), values at most 128")


def public_cidrs() -> list[str]:
    """The caller's IPv4 ranges (Lambda's firewall takes no IPv6) that a public deployment admits."""
    cidrs = [c for c in caller_cidrs("the Lambda Cloud firewall ruleset") if ":" not in c]
    if not cidrs:
        raise UsageError("Lambda Cloud firewall rules take IPv4 ranges only, and the caller's address is IPv6",
                         "set an IPv4 range: export GPUCTL_CALLER_CIDR=203.0.113.7/32")
    return cidrs


def ruleset_name(request: LaunchRequest) -> str:
    """One ruleset per launch token, so that a relaunch finds its own (at most 64 characters)."""
    digest = hashlib.sha256(request.idempotency_token.encode()).hexdigest()[:8]
    return f"{RULESET_PREFIX}{request.name[:_NAME_MAX - len(RULESET_PREFIX) - 9]}-{digest}"


def public_ruleset(api: LambdaApi, request: LaunchRequest, region: str, cidrs: list[str]) -> FirewallRuleset:
    """The deployment's own ruleset: TCP 22 and the engine's host port from ``cidrs`` only."""
    from gpuctl.models.engine import HOST_PORT

    name = ruleset_name(request)
    found = next((r for r in api.list_firewall_rulesets() if r.name == name and r.region.name == region), None)
    if found is not None:
        return found
    rules = [{"protocol": "tcp", "port_range": [port, port], "source_network": cidr,
              "description": f"gpuctl {what} from the caller"}
             for port, what in ((SSH_PORT, "SSH"), (HOST_PORT, "engine")) for cidr in cidrs]
    return api.create_firewall_ruleset(name, region, rules)


def drop_ruleset(api: LambdaApi, ruleset: FirewallRuleset | None) -> None:
    """Best effort: delete a ruleset whose launch failed (Lambda refuses if the launch did start one)."""
    if ruleset is None:
        return
    try:
        api.delete_firewall_ruleset(ruleset.id)
    except NotFoundError:
        pass  # gone already
    except ProviderError as exc:
        log.warning("Lambda Cloud: could not delete firewall ruleset %s (%s); delete it in the dashboard",
                    ruleset.name, exc.message)


def release_rulesets(api: LambdaApi, item: lambda_api.Instance) -> None:
    """Delete gpuctl's rulesets attached to a terminating instance, once it has terminated (best effort)."""
    attached = {entry.id for entry in item.firewall_rulesets}
    if not attached:
        return
    ours = [r for r in api.list_firewall_rulesets() if r.id in attached and r.name.startswith(RULESET_PREFIX)]
    give_up = time.monotonic() + RULESET_RELEASE_S
    while ours and item.status != "terminated" and time.monotonic() < give_up:
        try:
            item = api.get_instance(item.id)
        except NotFoundError:
            break
        if item.status != "terminated":
            time.sleep(RULESET_POLL_S)
    for ruleset in ours:
        drop_ruleset(api, ruleset)


def region_with_capacity(api: LambdaApi, instance_type: str) -> str:
    """A region that has ``instance_type`` free now, for an offer made for region ``any``."""
    item = api.list_instance_types().get(instance_type)
    regions = item.regions_with_capacity_available if item else []
    if not regions:
        raise NoCapacityError(f"Lambda Cloud has no {instance_type} free in any region")
    return regions[0].name


def ssh_key_name(public_key: str) -> str:
    """``gpuctl-`` and the start of the key's SHA-256 fingerprint: one name per key, on every machine."""
    parts = public_key.split()
    try:
        blob = base64.b64decode(parts[1], validate=True) if len(parts) >= 2 else b""
    except binascii.Error:
        blob = b""
    if not blob:
        raise UsageError("the SSH public key is not in OpenSSH format ('TYPE BASE64 [COMMENT]')")
    return "gpuctl-" + hashlib.sha256(blob).hexdigest()[:16]


def ensure_ssh_key(api: LambdaApi, public_key: str) -> str:
    """The name under which ``public_key`` is registered with Lambda, registering it when absent.

    A key already registered (under any name) is reused, matched on type and key data.
    """
    registered = _registered_name(api, public_key)
    if registered is not None:
        return registered
    try:
        return api.add_ssh_key(ssh_key_name(public_key), public_key.strip()).name
    except ProviderHttpError as exc:
        registered = _registered_name(api, public_key) if exc.info.status == 400 else None
        if registered is None:
            raise
        return registered  # another gpuctl registered it meanwhile


def _registered_name(api: LambdaApi, public_key: str) -> str | None:
    wanted = public_key.split()[:2]
    return next((k.name for k in api.list_ssh_keys() if k.public_key.split()[:2] == wanted), None)


def launch_error(exc: ProviderHttpError, body: dict[str, Any]) -> Exception:
    """NoCapacityError (exit 5: gpuctl tries the next offer) for capacity and quota refusals."""
    from gpuctl.providers.lambda_api import FILESYSTEM_IN_WRONG_REGION, INSUFFICIENT_CAPACITY, QUOTA_EXCEEDED

    what = f"{body['instance_type_name']} in {body['region_name']}"
    if exc.info.code == INSUFFICIENT_CAPACITY:
        return NoCapacityError(f"Lambda Cloud has no capacity for {what} ({exc.info.summary()})")
    if exc.info.code == QUOTA_EXCEEDED:
        return NoCapacityError(f"Lambda Cloud quota exceeded launching {what} ({exc.info.summary()})",
                               exc.info.suggestion or "ask Lambda support to raise the quota, or use another provider")
    if exc.info.code == FILESYSTEM_IN_WRONG_REGION:
        return ProviderError(f"Lambda Cloud will not mount the weights cache on {what}: the filesystem is in another "
                             f"region ({exc.info.summary()})",
                             "gpuctl mounts the cache of the offer's region; 'gpuctl weights ls' shows their regions")
    return exc


def first_boot_script(name: str, expires: int, *, cache_dir: str | None = None) -> str:
    """Cloud-init user data arming the TTL watchdog at first boot, so it holds even if gpuctl never connects.

    It then bootstraps the host (templates/bootstrap.sh), which makes sure the weights directory the
    fetcher and the engine get exists: ``cache_dir``, the mounted weights cache, else the host's own.
    It holds no secret: anything on the instance can read its user data. At the deadline the
    watchdog stops the engine and powers the VM off, but Lambda bills until the instance is
    terminated: that takes gpuctl itself (its ``gpuctl-expires-at`` tag says when).
    """
    from gpuctl.deploy.naming import container_name
    from gpuctl.models.engine import HOST_CACHE_DIR
    from gpuctl.templating import aws_user_data

    return aws_user_data(deadline=expires, container=container_name(name), cache_dir=cache_dir or HOST_CACHE_DIR)


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
