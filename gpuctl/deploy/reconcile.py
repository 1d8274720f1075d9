"""``gpuctl gc``: whatever gpuctl launched that no healthy state record accounts for, and its removal.

Two kinds of leftovers: instances at a provider carrying gpuctl's tags that the state file does not
know (or knows as ended), and records of deployments that failed or whose ``gpuctl up`` died (kill -9)
before cleaning up. A deployment whose ``up`` is still running is never touched.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta, timezone
from typing import Literal

from pydantic import BaseModel, Field

from gpuctl.deploy import tags
from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.records import is_active
from gpuctl.deploy.teardown import teardown, terminate_instance
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

    kind: Literal["instance", "deployment"]
    provider: str
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
    """Past its TTL and the watchdog's grace: where a provider keeps billing a powered-off machine
    (Lambda) or cannot enforce a TTL at all (RunPod), only gpuctl ends the bill."""
    return deployment.expires_at is not None and now > deployment.expires_at + TTL_GRACE


def find_leftovers(ctx: DeployContext, *, all_projects: bool = False) -> Sweep:
    """Leftovers across every provider with credentials, plus stale or expired records of this project."""
    sweep = Sweep()
    now = datetime.now(timezone.utc)
    records = {d.name: d for d in ctx.records.all()}
    stale_records = {name: d for name, d in records.items() if is_active(d) and (stale(d) or expired(d, now))}
    for d in stale_records.values():
        if stale(d):
            reason = f"deployment is {d.status}" + (f": {d.error}" if d.error else "")
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
    return sweep


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
    if leftover.kind == "deployment":
        assert leftover.deployment is not None
        teardown(ctx, ctx.records.get(leftover.deployment), failed=True)
    else:
        assert leftover.instance_id is not None
        terminate_instance(ctx, ctx.provider(leftover.provider), leftover.instance_id)
