"""The one way anything gpuctl created goes away: ``gpuctl down``, a failed ``up``, and ``gpuctl gc``.

Order: mark the record ``terminating``; on the user's own host remove the engine container and the
TTL watchdog (the machine itself is never touched); at a provider terminate the instance (found by
its tags when no id was recorded: a crash during launch) and poll until the provider reports it gone;
then remove the local secrets and mark the record ``terminated`` with its uptime and cost. Every step
is idempotent, so running it again after an interruption finishes the job.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from gpuctl.deploy import tags
from gpuctl.deploy.context import DeployContext
from gpuctl.errors import NotFoundError, TimeoutError_
from gpuctl.host.shell import Shell
from gpuctl.models.deployment import Deployment
from gpuctl.providers.base import Provider
from gpuctl.providers.capabilities import Capability


def teardown(ctx: DeployContext, deployment: Deployment, *, shell: Shell | None = None,
             failed: bool = False) -> Deployment:
    """Remove everything of ``deployment``; returns the final (terminated) record.

    ``shell`` reuses an open session to the host; ``failed`` keeps the record's error.
    """
    name = deployment.name
    if deployment.service:  # a replica leaves its router before it goes (gpuctl.deploy.service)
        from gpuctl.deploy.router import detach

        detach(ctx, deployment)
    deployment = ctx.records.update(name, status="terminating", event="teardown")
    provider = ctx.provider(deployment.provider)
    user_host = provider.can(Capability.USER_HOST)
    if deployment.host and deployment.container and user_host:
        with ctx.reporter.step(f"removing {deployment.container} from {deployment.host}"):
            _clean_host(ctx, deployment, shell)
    if not user_host:
        for provider_name, instance_id in _instances(ctx, deployment):
            terminate_instance(ctx, ctx.provider(provider_name), instance_id)
        if deployment.host:
            _forget_host_key(ctx, deployment.host)
        if deployment.nodes > 1:  # vLLM multi-node: every node went above (found by tags); now what placed them
            provider = ctx.provider(deployment.provider)
            if provider.can(Capability.MULTI_NODE):
                with ctx.reporter.step(f"releasing the placement of '{name}' at {provider.display_name}"):
                    provider.release_nodes(tags.deployment_tags(deployment.project_id or ctx.project_id, name))
            for host in deployment.node_hosts[1:]:
                _forget_host_key(ctx, host)
    from gpuctl.deploy.secrets import remove_secrets

    remove_secrets(ctx.state_dir, name)
    ended = datetime.now(timezone.utc)
    changes: dict[str, Any] = {"status": "terminated", "ended_at": ended, "owner_pid": None,
                                  "cost_usd": cost_between(deployment, ended)}
    if not failed:
        changes["error"] = None
    return ctx.records.update(name, event="terminated", **changes)


def cost_between(deployment: Deployment, until: datetime) -> float | None:
    """What the deployment cost from launch to ``until`` (None when the price is unknown)."""
    if deployment.price_per_hour is None:
        return None
    if deployment.launched_at is None:
        return 0.0
    hours = max(0.0, (until - deployment.launched_at).total_seconds()) / 3600
    return round(deployment.price_per_hour * hours, 4)


def _clean_host(ctx: DeployContext, deployment: Deployment, shell: Shell | None) -> None:
    from gpuctl.deploy.access import open_host
    from gpuctl.deploy.watchdog import disarm
    from gpuctl.host.docker import DockerEngine

    assert deployment.container is not None
    with open_host(ctx, deployment, shell=shell) as host:
        DockerEngine(host, sudo=deployment.docker_sudo).remove(deployment.container)
        if deployment.watchdog_pid is not None or deployment.ttl_seconds:
            disarm(host, name=deployment.name, pid=deployment.watchdog_pid, sudo=deployment.docker_sudo)


def _forget_host_key(ctx: DeployContext, host: str) -> None:
    """A terminated machine's address goes to someone else's machine next: drop its pinned key."""
    from gpuctl.host.hostkeys import known_hosts_name, pinned_known_hosts, unpin_host_key
    from gpuctl.host.sshconfig import resolve_ssh_options
    from gpuctl.host.target import parse_target

    options = resolve_ssh_options(parse_target(host))
    unpin_host_key(pinned_known_hosts(ctx.state_dir), known_hosts_name(options.hostname, options.port))


def _instances(ctx: DeployContext, deployment: Deployment) -> list[tuple[str, str]]:
    """(provider, instance id) of everything this deployment may have launched."""
    if deployment.instance_id:
        return [(deployment.provider, deployment.instance_id)]
    # no id was recorded (a crash or an interrupt during launch): ask each provider tried by the tags
    wanted = tags.deployment_tags(deployment.project_id or ctx.project_id, deployment.name)
    tried = list(dict.fromkeys(a.provider for a in deployment.attempts)) or [deployment.provider]
    found: list[tuple[str, str]] = []
    for provider_name in tried:
        provider = ctx.provider(provider_name)
        if not provider.can(Capability.LIST_BY_TAG):
            continue
        with ctx.reporter.step(f"looking for instances of '{deployment.name}' at {provider.display_name}"):
            found += [(provider_name, instance.id) for instance in provider.list_by_tag(wanted)
                      if instance.status != "terminated"]
    return found


def terminate_instance(ctx: DeployContext, provider: Provider, instance_id: str) -> None:
    """Terminate and poll until the provider reports the instance gone (bounded)."""
    timeouts = ctx.timeouts
    with ctx.reporter.step(f"terminating {provider.display_name} instance {instance_id}"):
        provider.terminate(instance_id)
        deadline = time.monotonic() + timeouts.terminate
        while True:
            try:
                status = provider.get(instance_id).status
            except NotFoundError:
                return
            if status == "terminated":
                return
            if time.monotonic() + timeouts.poll > deadline:
                raise TimeoutError_(f"{provider.display_name} instance {instance_id} is still {status} after "
                                    f"{timeouts.terminate:.0f}s", "run 'gpuctl down' again to check on it")
            time.sleep(timeouts.poll)
