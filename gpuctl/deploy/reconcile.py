"""``gpuctl gc``: whatever gpuctl launched that no healthy state record accounts for, and its removal.

Three kinds of leftovers: instances at a provider carrying gpuctl's tags that the state file does not
know (or knows as ended); records of deployments that failed or whose ``gpuctl up`` died (kill -9)
before cleaning up; and, on each of the user's own machines the project's records name (``--host``),
what gpuctl started there for this project (found by label: engine and weights-fetcher containers,
TTL watchdogs and their files, :func:`gpuctl.host.leftovers.find_leftovers_on_host`) that no active
record accounts for, plus secret files an interrupted older gpuctl left. A deployment whose ``up`` is
still running is never touched; an active record's things on a host go with its own row.
"""

from __future__ import annotations

import logging
import os
import socket
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from gpuctl.deploy import tags
from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.down import take_down
from gpuctl.deploy.records import is_active
from gpuctl.deploy.removal import terminate_instance
from gpuctl.errors import GpuctlError
from gpuctl.host.leftovers import HostItem
from gpuctl.host.shell import Shell
from gpuctl.models.deployment import Deployment
from gpuctl.models.instance import Instance
from gpuctl.providers.capabilities import Capability
from gpuctl.providers.guard import PluginError
from gpuctl.providers.ssh import HostProvider

log = logging.getLogger(__name__)

#: time the host-side watchdog gets to act on a TTL before gc treats the deployment as a leftover
TTL_GRACE = timedelta(minutes=5)


class Leftover(BaseModel):
    """One row of ``gpuctl gc``."""

    kind: Literal["instance", "deployment", "host"]
    provider: str
    host: str | None = Field(default=None, description="the user's machine it is on (kind 'host')")
    token: str | None = Field(default=None, description="the deployment token its things on the host carry "
                                                        "(kind 'host'; none: secret files of no deployment)")
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
    """On each of the user's machines the records name: what gpuctl started there that no active record accounts for."""
    from gpuctl.host.leftovers import find_leftovers_on_host

    live = _live_tokens(records)
    names = {token: d.name for d in records for token in _tokens(d)}
    found: list[Leftover] = []
    for host, identity in _user_hosts(records).items():
        try:
            with ctx.reporter.step(f"looking for gpuctl's leftovers on {host}"), \
                    _opened(ctx, host, identity) as shell:
                on_host = find_leftovers_on_host(shell, ctx.project_id).without_tokens(live)
        except GpuctlError as exc:
            sweep.warnings.append(f"{host}: could not look for leftovers ({exc.one_line()})")
            continue
        sweep.warnings += [f"{host}: {problem}" for problem in on_host.problems]
        groups: dict[str | None, list[HostItem]] = {}
        for item in on_host.items:
            groups.setdefault(item.token, []).append(item)
        for token, items in groups.items():
            container = next((i.name for i in items if i.kind == "container" and i.role == "engine"),
                             next((i.name for i in items if i.kind == "container"), None))
            deployment = next((i.deployment for i in items if i.deployment), None) or names.get(token or "")
            if token is None:
                why = "secret files an interrupted older gpuctl left"
            elif token in names:
                why = "its deployment ended"
            else:
                why = "unknown to the state file"
            found.append(Leftover(kind="host", provider=HostProvider.name, host=host, token=token,
                                  instance_id=container, deployment=deployment, project=ctx.project_id,
                                  reason=f"{why}; {', '.join(_describe(i) for i in items)} still there"))
    return found


def _tokens(deployment: Deployment) -> set[str]:
    """Every token the deployment's things may carry (its own and its launch attempts')."""
    return {deployment.idempotency_token, *(a.idempotency_token for a in deployment.attempts)}


def _live_tokens(records: list[Deployment]) -> set[str]:
    """Tokens of active records: theirs is the record's own row (or their ``up`` still runs)."""
    return {token for d in records if is_active(d) for token in _tokens(d)}


def _user_hosts(records: list[Deployment]) -> dict[str, Path | None]:
    """The user's machines (``--host``) the records name, each with the SSH key a record used for it."""
    hosts: dict[str, Path | None] = {}
    for d in records:
        if d.provider == HostProvider.name and d.host and hosts.get(d.host) is None:
            hosts[d.host] = Path(d.identity) if d.identity else None
    return hosts


def _opened(ctx: DeployContext, host: str, identity: Path | None) -> AbstractContextManager[Shell]:
    from gpuctl.deploy.hosts import connect, opened
    from gpuctl.host.target import parse_target

    return opened(connect(parse_target(host), ctx.state_dir, identity=identity))


def _describe(item: HostItem) -> str:
    if item.kind == "container":
        return f"container {item.name} ({item.role or 'unlabelled'})"
    if item.kind == "watchdog":
        return f"TTL watchdog ({item.detail})"
    return f"file {item.ref}"


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
        take_down(ctx, leftover.deployment, failed=True)
    elif leftover.kind == "host":
        _remove_from_host(ctx, leftover)
    else:
        assert leftover.instance_id is not None
        terminate_instance(ctx, ctx.provider(leftover.provider), leftover.instance_id)


def _remove_from_host(ctx: DeployContext, leftover: Leftover) -> None:
    """What the host holds with the leftover's token, looked up again (never what an active record now accounts for)."""
    from gpuctl.host.leftovers import find_leftovers_on_host, remove_leftovers

    assert leftover.host is not None
    records = ctx.records.all()
    if leftover.token is not None and leftover.token in _live_tokens(records):
        return
    identity = _user_hosts(records).get(leftover.host)
    with ctx.reporter.step(f"removing gpuctl's leftovers from {leftover.host}"), \
            _opened(ctx, leftover.host, identity) as shell:
        items = [i for i in find_leftovers_on_host(shell, ctx.project_id).items if i.token == leftover.token]
        remove_leftovers(shell, items)
