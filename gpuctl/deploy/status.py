"""``gpuctl status``: each deployment with its uptime, cost so far, TTL and budget left, (probed) health and cold
start."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import partial

from pydantic import BaseModel, Field

from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.endpoint import openai_base, reach
from gpuctl.deploy.phases import cold_start
from gpuctl.deploy.teardown import billing_start, cost_between
from gpuctl.errors import GpuctlError
from gpuctl.limits import budget_left
from gpuctl.models.deployment import Deployment, DeploymentStatus
from gpuctl.models.phases import ColdStart

PROBE_TIMEOUT_S = 5.0


class DeploymentRow(BaseModel):
    """One row of ``gpuctl status`` (``--json`` prints a list of these)."""

    name: str
    status: DeploymentStatus
    model: str
    provider: str
    gpu: str | None
    gpu_count: int | None
    region: str | None
    host: str | None
    endpoint: str | None = Field(description="OpenAI base URL (.../v1)")
    tunnel: bool = Field(description="private: reachable through 'gpuctl ssh NAME --tunnel'")
    uptime_seconds: float | None
    price_per_hour: float | None
    cost_usd: float | None = Field(description="so far, or final once terminated")
    ttl_left_seconds: float | None = Field(description="negative once the TTL has passed")
    expires_at: datetime | None
    health: str | None = Field(description="healthy, or what the probe saw; None when not probed")
    error: str | None
    idle_seconds: int | None = Field(default=None, description="the idle limit (--idle)")
    budget_usd: float | None = Field(default=None, description="the budget (--budget)")
    budget_left_usd: float | None = Field(default=None, description="the budget less the cost so far")
    budget_ends_at: datetime | None = Field(default=None, description="when price x uptime reaches the budget")
    cold_start: ColdStart | None = Field(default=None, description="the phases of its 'up', and what the wait cost")


def row(deployment: Deployment, *, now: datetime | None = None, health: str | None = None) -> DeploymentRow:
    """The status row of ``deployment``: uptime and cost count from when it bills until it ended (or now)."""
    now = now or datetime.now(timezone.utc)
    ended = deployment.ended_at if deployment.status == "terminated" else None  # only an ended record has an end
    until = ended or now
    started = billing_start(deployment)
    uptime = max(0.0, (until - started).total_seconds()) if started else None
    cost = deployment.cost_usd if ended and deployment.cost_usd is not None else cost_between(deployment, until)
    ttl_left = (deployment.expires_at - now).total_seconds() if deployment.expires_at and not ended else None
    return DeploymentRow(
        name=deployment.name, status=deployment.status, model=deployment.model, provider=deployment.provider,
        gpu=deployment.gpu, gpu_count=deployment.gpu_count, region=deployment.region, host=deployment.host,
        endpoint=openai_base(deployment.endpoint) if deployment.endpoint else None, tunnel=deployment.tunnel,
        uptime_seconds=round(uptime, 1) if uptime is not None else None, price_per_hour=deployment.price_per_hour,
        cost_usd=cost, ttl_left_seconds=round(ttl_left, 1) if ttl_left is not None else None,
        expires_at=deployment.expires_at if not ended else None, health=health, error=deployment.error,
        idle_seconds=deployment.idle_seconds, budget_usd=deployment.budget_usd,
        budget_left_usd=budget_left(deployment, cost), budget_ends_at=deployment.budget_ends_at if not ended else None,
        cold_start=cold_start(deployment))


def probe(ctx: DeployContext, deployment: Deployment) -> str:
    """'healthy', or a few words on what failed (the engine's health path, through a tunnel if private)."""
    import httpx

    from gpuctl.deploy.access import open_host
    from gpuctl.deploy.secrets import read_api_key

    key = read_api_key(ctx.state_dir, deployment.name)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        if deployment.tunnel:
            with open_host(ctx, deployment, timeout=PROBE_TIMEOUT_S) as host, reach(deployment, host) as url:
                return _get(url, deployment, headers)
        with reach(deployment, None) as url:
            return _get(url, deployment, headers)
    except GpuctlError as exc:
        return f"unreachable: {exc.message}"
    except (httpx.HTTPError, OSError, ValueError) as exc:
        return f"unreachable: {type(exc).__name__}"


def _get(url: str, deployment: Deployment, headers: dict[str, str]) -> str:
    import httpx

    with httpx.Client(base_url=url, headers=headers, timeout=PROBE_TIMEOUT_S) as client:
        response = client.get(deployment.health_path or "/health")
    return "healthy" if response.status_code == 200 else f"unhealthy: HTTP {response.status_code}"


def status_rows(ctx: DeployContext, *, include_ended: bool = False, probe_health: bool = True,
                name: str | None = None) -> list[DeploymentRow]:
    """Rows for the deployments of this project (ended ones too with ``include_ended``), probed concurrently;
    only deployment ``name`` (ended or not) when given."""
    from gpuctl.concurrency import run_all
    from gpuctl.deploy.reconcile import stale
    from gpuctl.deploy.records import is_active

    deployments = [d for d in ctx.records.all()
                   if (d.name == name if name is not None else include_ended or is_active(d))]
    to_probe = {d.name: d for d in deployments if probe_health and d.status == "running" and d.endpoint}
    outcomes = run_all({name: partial(probe, ctx, d) for name, d in to_probe.items()},
                       timeout=PROBE_TIMEOUT_S * 4) if to_probe else {}
    now = datetime.now(timezone.utc)
    health = {name: (o.value if o.finished and o.error is None else "unreachable: no answer")
              for name, o in outcomes.items()}
    for d in deployments:
        if is_active(d) and stale(d):  # its 'up' died (kill -9) or its cleanup failed
            health[d.name] = f"abandoned: 'gpuctl down {d.name}' cleans up"
    return [row(d, now=now, health=health.get(d.name)) for d in deployments]
