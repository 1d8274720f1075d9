"""``gpuctl gc``: whatever gpuctl launched that no healthy state record accounts for, and its removal.

Three kinds of leftovers: instances at a provider carrying gpuctl's tags that the state file does not
know (or knows as ended); records of deployments that failed or whose ``gpuctl up`` died (kill -9)
before cleaning up; and, on the user's own machines the project's records name (``--host``), engine
containers and TTL watchdogs of deployments whose records say they ended. A deployment whose ``up``
is still running is never touched.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from gpuctl.deploy import tags
from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.down import take_down, take_down_on_host
from gpuctl.deploy.records import is_active
from gpuctl.deploy.removal import terminate_instance
from gpuctl.errors import GpuctlError
from gpuctl.models.deployment import Deployment
from gpuctl.models.instance import Instance
from gpuctl.providers.capabilities import Capability
from gpuctl.providers.guard import PluginError

log = logging.getLogger(__name__)

#: time the host-side watchdog gets to act on a TTL before gc treats the deployment as a leftover
TTL_GRACE = timedelta(minutes=5)


class Leftover(BaseModel):
    """One row of ``gpuctl gc``."""

    kind: Literal["instance", "deployment", "host"]
    provider: str
    host: str | None = Field(default=None, description="the user's machine it is on (kind 'host')")
    instance_id: str | None
    deployment: str | None
    project: str | None
    region: str | None = None
    gpu: str | None = None
    gpu_count: int | None = None
    price_per_hour: float | None = None
    reason: str


class Sweep(BaseModel):
    leftovers: list[Leftover] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    other_projects: int = Field(default=0, description="tagged instances of other projects, left alone")


def owner_alive(deployment: Deployment) -> bool:
    """Whether the ``gpuctl up`` working on this record may still run (then it cleans up itself)."""
    if deployment.owner_pid is None:
        return False
    if deployment.owner_host != socket.gethostname():
        return True  # another machine's process: cannot tell, so assume it lives
    try:
        os.kill(deployment.owner_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale(deployment: Deployment) -> bool:
    """A record that needs cleaning: failed, or left mid-way by an ``up``/``down`` that is gone."""
    if deployment.status == "failed":
        return not owner_alive(deployment)
    return deployment.status in ("provisioning", "starting", "terminating") and not owner_alive(deployment)


def expired(deployment: Deployment, now: datetime) -> bool:
    """Past its TTL and the watchdog's grace, or past its budget: where a provider keeps billing a powered-off
    machine (Lambda) or cannot enforce a TTL at all (RunPod), only gpuctl ends the bill. A budget gets the
    grace only where a watchdog on the machine enforces it; beside a provider's own engine nothing else does."""
    return (deployment.expires_at is not None and now > deployment.expires_at + TTL_GRACE) or budget_spent(
        deployment, now)


def budget_spent(deployment: Deployment, now: datetime) -> bool:
    ends = deployment.budget_ends_at
    grace = TTL_GRACE if deployment.watchdog_pid is not None else timedelta(0)
    return ends is not None and now > ends + grace


def find_leftovers(ctx: DeployContext, *, all_projects: bool = False) -> Sweep:
    """Leftovers across every provider with credentials, plus stale or expired records of this project."""
    sweep = Sweep()
    now = datetime.now(timezone.utc)
    records = {d.name: d for d in ctx.records.all()}
    stale_records = {name: d for name, d in records.items() if is_active(d) and (stale(d) or expired(d, now))}
    for d in stale_records.values():
        if stale(d):
            reason = f"deployment is {d.status}" + (f": {d.error}" if d.error else "")
        elif budget_spent(d, now):
            assert d.budget_ends_at is not None
            reason = f"budget ${d.budget_usd:.2f} spent at {d.budget_ends_at:%Y-%m-%d %H:%M} UTC"
        else:
            reason = f"TTL expired at {d.expires_at:%Y-%m-%d %H:%M} UTC"
        sweep.leftovers.append(Leftover(
            kind="deployment", provider=d.provider, instance_id=d.instance_id, deployment=d.name,
            project=d.project_id, region=d.region, gpu=d.gpu, gpu_count=d.gpu_count, price_per_hour=d.price_per_hour,
            reason=reason))
    for provider_name, instance in _tagged_instances(ctx, sweep):
        project, name = instance.tags.get(tags.PROJECT), instance.tags.get(tags.DEPLOYMENT)
        if project != ctx.project_id:
            if not all_projects:
                sweep.other_projects += 1
                continue
            reason = f"belongs to project {project}"
        else:
            record = records.get(name or "")
            if record is not None and is_active(record) and record.instance_id in (None, instance.id):
                continue  # in use, or covered by its stale record above
            reason = "unknown to the state file" if record is None else f"its deployment is {record.status}"
        sweep.leftovers.append(Leftover(
            kind="instance", provider=provider_name, instance_id=instance.id, deployment=name, project=project,
            region=instance.region, gpu=instance.gpu, gpu_count=instance.gpu_count,
            price_per_hour=instance.price_per_hour, reason=reason))
    sweep.leftovers += _host_leftovers(ctx, list(records.values()), sweep)
    return sweep


def _host_leftovers(ctx: DeployContext, records: list[Deployment], sweep: Sweep) -> list[Leftover]:
    """On each of the user's machines the records name: what deployments that ended there left running."""
    from gpuctl.deploy.host_cleanup import leftovers
    from gpuctl.deploy.hosts import connect, opened
    from gpuctl.host.target import parse_target
    from gpuctl.providers.ssh import HostProvider

    ended: dict[str, list[Deployment]] = {}
    for d in records:
        if d.provider == HostProvider.name and d.host and d.status == "terminated":
            ended.setdefault(d.host, []).append(d)
    found: list[Leftover] = []
    for host, deployments in ended.items():
        identity = next((Path(d.identity) for d in deployments if d.identity), None)
        try:
            with ctx.reporter.step(f"looking for gpuctl's leftovers on {host}"), \
                    opened(connect(parse_target(host), ctx.state_dir, identity=identity)) as shell:
                on_host = leftovers(shell, deployments)
        except GpuctlError as exc:
            sweep.warnings.append(f"{host}: could not look for leftovers ({exc.one_line()})")
            continue
        found += [Leftover(kind="host", provider=HostProvider.name, host=host, instance_id=item.container,
                           deployment=item.deployment, project=ctx.project_id,
                           reason="its deployment ended; " + ", ".join(
                               ([f"container {item.container}"] if item.container else [])
                               + ([f"TTL watchdog (pid {', '.join(map(str, item.watchdog_pids))})"]
                                  if item.watchdog_pids else [])) + " still there")
                  for item in on_host]
    return found


def _tagged_instances(ctx: DeployContext, sweep: Sweep) -> list[tuple[str, Instance]]:
    found: list[tuple[str, Instance]] = []
    for name in ctx.registry.names():
        if not ctx.registry.classes[name].can(Capability.LIST_BY_TAG):
            continue
        try:
            provider = ctx.registry.create(name)
            if not provider.credentials().present:
                continue
            with ctx.reporter.step(f"listing gpuctl's instances at {provider.display_name}"):
                instances = provider.list_by_tag(tags.managed())
        except PluginError:
            continue  # a plugin's bug: the registry names it once for the whole command
        except GpuctlError as exc:
            sweep.warnings.append(f"{name}: could not list instances ({exc.one_line()})")
            continue
        found += [(name, instance) for instance in instances if instance.status != "terminated"]
    return found


def remove(ctx: DeployContext, leftover: Leftover) -> None:
    """Tear down one leftover (its record too, when it has one)."""
    assert leftover.deployment is not None or leftover.instance_id is not None
    if leftover.kind == "deployment":
        assert leftover.deployment is not None
        take_down(ctx, leftover.deployment, failed=True)
    elif leftover.kind == "host":
        assert leftover.host is not None and leftover.deployment is not None
        from gpuctl.host.target import parse_target

        record = ctx.records.get(leftover.deployment)
        take_down_on_host(ctx, leftover.deployment, parse_target(leftover.host),
                          Path(record.identity) if record.identity else None)
    else:
        assert leftover.instance_id is not None
        terminate_instance(ctx, ctx.provider(leftover.provider), leftover.instance_id)
