"""The pieces a deployment's removal is made of (what the runtimes' releases call): its instances found by
id or by tags and terminated with retries, its unfinished mirror uploads aborted, its pinned host key
forgotten, and the :class:`Removals` list that says what went and what is still there."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import TypeVar

from gpuctl.deploy import tags
from gpuctl.deploy.context import DeployContext
from gpuctl.errors import GpuctlError, NotFoundError, ProviderError, TimeoutError_
from gpuctl.models.deployment import Deployment
from gpuctl.polling import pauses
from gpuctl.providers.base import Provider
from gpuctl.providers.capabilities import Capability

#: how long after a create was sent an instance may still appear (a create cut off by kill -9, or one an
#: interrupted 'up' stopped waiting for): the teardown keeps looking for it by its tags until then
CREATE_SETTLE = timedelta(seconds=120)
#: failed calls in a row (slow, 5xx, garbled) the teardown retries before it gives up on an instance
MAX_CALL_FAILURES = 5
T = TypeVar("T")


@dataclass
class Removal:
    """One thing the teardown dealt with: what, whether it is gone, and how it ended."""

    what: str
    gone: bool
    note: str

    def line(self) -> str:
        return f"{self.what}: {self.note}"


class Removals(list[Removal]):
    def gone(self, what: str, note: str = "removed") -> None:
        self.append(Removal(what, True, note))

    def left(self, what: str, error: GpuctlError) -> None:
        self.append(Removal(what, False, f"STILL THERE ({error.one_line()})"))



def terminate_all(ctx: DeployContext, deployment: Deployment, removals: Removals) -> None:
    """Terminate every instance the deployment may have launched; an error is raised once all were tried."""
    errors: list[GpuctlError] = []
    for provider_name, instance_id in instances_of(ctx, deployment):
        provider = ctx.provider(provider_name)
        what = f"{provider.display_name} instance {instance_id}"
        try:
            terminate_instance(ctx, provider, instance_id)
        except GpuctlError as exc:
            removals.left(what, exc)
            errors.append(exc)
            continue
        removals.gone(what, "terminated")
    if errors:
        raise errors[0]


def instances_of(ctx: DeployContext, deployment: Deployment) -> list[tuple[str, str]]:
    """(provider, instance id) of everything this deployment may have launched.

    Without a recorded id (a crash or an interrupt during the launch) each provider tried is asked by
    the deployment's tags; while a create cut off mid-call may still complete (CREATE_SETTLE), the
    question is repeated until an instance shows up or the create can no longer make one.
    """
    if deployment.instance_id:
        return [(deployment.provider, deployment.instance_id)]
    unsettled = [a.at for a in deployment.attempts if not a.settled]
    settle_until = max(unsettled) + CREATE_SETTLE if unsettled else None
    found = _tagged(ctx, deployment)
    if found or settle_until is None or datetime.now(timezone.utc) >= settle_until:
        return found
    with ctx.reporter.step(f"waiting (until {settle_until:%H:%M:%S} UTC) for the create of '{deployment.name}' "
                           "that was cut off to show up"):
        while not found and datetime.now(timezone.utc) < settle_until:
            time.sleep(ctx.timeouts.poll)
            found = _tagged(ctx, deployment)
    return found


def _tagged(ctx: DeployContext, deployment: Deployment) -> list[tuple[str, str]]:
    wanted = tags.deployment_tags(deployment.project_id or ctx.project_id, deployment.name)
    if deployment.attempts:  # the providers a create was sent to, unless it was refused for its key
        tried = list(dict.fromkeys(a.provider for a in deployment.attempts if not a.refused))
    else:
        tried = [deployment.provider]
    found: list[tuple[str, str]] = []
    for provider_name in tried:
        provider = ctx.provider(provider_name)
        if not provider.can(Capability.LIST_BY_TAG):
            continue
        listed = _retried(partial(provider.list_by_tag, wanted), ctx)
        found += [(provider_name, instance.id) for instance in listed if instance.status != "terminated"]
    return found


def terminate_instance(ctx: DeployContext, provider: Provider, instance_id: str) -> None:
    """Terminate and poll until the provider reports the instance gone (bounded; transient failures retried)."""
    timeouts = ctx.timeouts
    with ctx.reporter.step(f"terminating {provider.display_name} instance {instance_id}"):
        _retried(partial(provider.terminate, instance_id), ctx)
        deadline = time.monotonic() + timeouts.terminate
        waits = pauses(timeouts.poll)
        while True:
            try:
                status = _retried(partial(provider.get, instance_id), ctx).status
            except NotFoundError:
                return
            if status == "terminated":
                return
            pause = next(waits)
            if time.monotonic() + pause > deadline:
                raise TimeoutError_(f"{provider.display_name} instance {instance_id} is still {status} after "
                                    f"{timeouts.terminate:.0f}s", "run 'gpuctl down' again to check on it")
            time.sleep(pause)


def _retried(call: Callable[[], T], ctx: DeployContext) -> T:
    """``call()``, again after a failure another try may fix (slow, 5xx, garbled), up to MAX_CALL_FAILURES."""
    for attempt in range(1, MAX_CALL_FAILURES + 1):
        try:
            return call()
        except NotFoundError:
            raise
        except (ProviderError, TimeoutError_):
            if attempt == MAX_CALL_FAILURES:
                raise
            time.sleep(min(ctx.timeouts.poll, 2.0))
    raise AssertionError("unreachable")


def abort_mirror_uploads(ctx: DeployContext, deployment: Deployment, removals: Removals) -> None:
    """Abort the uploads a weights fill into the provider's mirror (S3) left open; a failure only warns."""
    if not deployment.mirror_fill or not deployment.weights_cache:
        return
    provider = ctx.provider(deployment.provider)
    if not provider.can(Capability.WEIGHTS_MIRROR):
        return
    try:
        cache = next((c for c in provider.weights_caches() if c.id == deployment.weights_cache), None)
        mirror = provider.weights_mirror(cache) if cache is not None else None
        if mirror is None:
            return
        aborted = mirror.abort_uploads(deployment.mirror_fill)
    except GpuctlError as exc:
        removals.left(f"unfinished uploads to {deployment.weights_cache}", exc)
        ctx.reporter.warn(f"could not abort the unfinished uploads to {deployment.weights_cache} "
                          f"({exc.one_line()}); the bucket's lifecycle rule ends them within 2 days")
        return
    if aborted:
        removals.gone(f"{aborted} unfinished upload(s) to {mirror.where}", "aborted")


def forget_host_key(ctx: DeployContext, host: str) -> None:
    """A terminated machine's address goes to someone else's machine next: drop its pinned key."""
    from gpuctl.host.hostkeys import known_hosts_name, pinned_known_hosts, unpin_host_key
    from gpuctl.host.sshconfig import resolve_ssh_options
    from gpuctl.host.target import parse_target

    options = resolve_ssh_options(parse_target(host))
    # in a read-only project directory the stale key stays pinned: a new machine at that address is refused
    with contextlib.suppress(OSError):
        unpin_host_key(pinned_known_hosts(ctx.state_dir), known_hosts_name(options.hostname, options.port))


def release_nodes(ctx: DeployContext, deployment: Deployment, removals: Removals) -> None:
    """A multi-node deployment, once its machines are terminated: what placed them together (an AWS placement
    group and security group) released by the provider, and every node's pinned host key forgotten."""
    provider = ctx.provider(deployment.provider)
    if provider.can(Capability.MULTI_NODE):
        what = f"the placement of '{deployment.name}' at {provider.display_name}"
        try:
            with ctx.reporter.step(f"releasing {what}"):
                _retried(partial(provider.release_nodes,
                                 tags.deployment_tags(deployment.project_id or ctx.project_id, deployment.name)), ctx)
        except GpuctlError as exc:
            removals.left(what, exc)
            raise
        removals.gone(what, "released")
    for host in deployment.node_hosts[1:]:  # rank 0's is the deployment's host, forgotten by the runtime
        forget_host_key(ctx, host)
