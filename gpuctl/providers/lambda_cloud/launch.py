"""What a Lambda Cloud launch needs besides the call itself: tags Lambda accepts, the project's SSH key,
a region with capacity, a public deployment's own firewall ruleset, and how refusals read."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from gpuctl.errors import NoCapacityError, NotFoundError, ProviderError, UsageError
from gpuctl.providers.http import ProviderHttpError
from gpuctl.providers.lambda_cloud.mapping import SSH_PORT
from gpuctl.providers.vm import caller_cidrs, ssh_key_name

if TYPE_CHECKING:
    from gpuctl.models.instance import LaunchRequest
    from gpuctl.providers.lambda_cloud import client as lambda_api
    from gpuctl.providers.lambda_cloud.client import FirewallRuleset, LambdaApi

log = logging.getLogger(__name__)

#: what Lambda accepts as tags (InstanceLaunchRequest.tags in the spec)
_TAG_KEY = re.compile(r"^[a-z][a-z0-9-:]+$")
_TAG_KEY_MAX, _TAG_VALUE_MAX, NAME_MAX = 55, 128, 64
#: names of the rulesets gpuctl makes start so; nothing else is ever deleted
RULESET_PREFIX = "gpuctl-"
#: Lambda refuses to delete a ruleset until its instance has terminated: how long terminate waits for that
RULESET_RELEASE_S = 60.0
RULESET_POLL_S = 2.0


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
    return f"{RULESET_PREFIX}{request.name[:NAME_MAX - len(RULESET_PREFIX) - 9]}-{digest}"


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
    from gpuctl.providers.lambda_cloud.mapping import instance_types_items

    raw = api.list_instance_types().get(instance_type)
    item = instance_types_items({instance_type: raw}).get(instance_type) if raw is not None else None
    regions = item.regions_with_capacity_available if item else []
    if not regions:
        raise NoCapacityError(f"Lambda Cloud has no {instance_type} free in any region")
    return regions[0].name


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
    from gpuctl.providers.lambda_cloud.client import FILESYSTEM_IN_WRONG_REGION, INSUFFICIENT_CAPACITY, QUOTA_EXCEEDED

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
