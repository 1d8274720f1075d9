"""What ``gpuctl status NAME`` shows of a service: the router, each replica (and the router's view of it), the cost."""

from __future__ import annotations

from pydantic import BaseModel, Field

from gpuctl.deploy import router as routing
from gpuctl.deploy import service as services
from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.endpoint import openai_base
from gpuctl.deploy.status import DeploymentRow, probe, row
from gpuctl.errors import GpuctlError
from gpuctl.models.deployment import RouterPlacement, Service, ServiceStatus


class RouterView(BaseModel):
    placement: RouterPlacement
    host: str | None = Field(description="the router's machine (None: this one)")
    url: str = Field(description="its base URL on its machine's loopback")
    policy: str
    up: bool | None = Field(description="it answered (None: not asked)")
    error: str | None = None


class ReplicaRow(DeploymentRow):
    """A replica's ``gpuctl status`` row, plus how the router sees it."""

    routed: str | None = Field(description="healthy / unhealthy as the router sees it; 'not routed' when it is "
                                           "not behind the router; None when not asked")


class ServiceView(BaseModel):
    """One service (``gpuctl status NAME --json``)."""

    name: str
    status: ServiceStatus
    model: str
    replicas_wanted: int
    replicas_running: int
    endpoint: str | None = Field(description="the router's OpenAI base URL from this machine (tunnel when remote)")
    router: RouterView | None
    replicas: list[ReplicaRow]
    price_per_hour: float = Field(description="of the replicas still active, summed")
    cost_usd: float = Field(description="of every replica so far, summed")
    problems: list[str] = Field(default_factory=list, description="replicas that died, and what to do")
    error: str | None = None


def service_view(ctx: DeployContext, service: Service, *, probe_health: bool = True) -> ServiceView:
    router_view, routed = _router_view(ctx, service) if probe_health else (_router_only(service), None)
    rows = []
    for deployment in services.members(ctx, service):
        health = probe(ctx, deployment) if probe_health and deployment.status == "running" else None
        base = row(deployment, health=health)
        seen = None
        if routed is not None and service.router is not None and deployment.endpoint:
            found = routed.get(routing.worker_url(deployment, service.router))
            seen = "not routed" if found is None else ("healthy" if found else "unhealthy")
        rows.append(ReplicaRow(**base.model_dump(), routed=seen))
    problems = []
    for replica in rows:
        # gpuctl's own probe decides; the router notices only at its next health checks
        dead = replica.status in ("failed", "terminated") or (
            replica.health is not None and replica.health != "healthy")
        if dead and service.status in ("running", "degraded"):
            fix = "replaces it" if service.replace_failed else "takes it out and reports the service short"
            problems.append(f"replica {replica.name} is {replica.health or replica.status}: "
                            f"'gpuctl scale {service.name}' {fix}")
    running = sum(1 for r in rows if r.status == "running")
    if service.status == "degraded" and running < service.replicas:
        problems.append(f"{service.name} runs {running} of {service.replicas} replicas: 'gpuctl scale {service.name} "
                        f"{service.replicas}' adds new ones")
    return ServiceView(
        name=service.name, status=service.status, model=service.model, replicas_wanted=service.replicas,
        replicas_running=running,
        endpoint=openai_base(service.router.url) if service.router and service.status != "terminated" else None,
        router=router_view, replicas=rows,
        price_per_hour=round(sum(r.price_per_hour or 0.0 for r in rows if is_active_row(r)), 4),
        cost_usd=round(sum(r.cost_usd or 0.0 for r in rows), 4), problems=problems, error=service.error)


def is_active_row(replica: DeploymentRow) -> bool:
    return replica.status not in ("terminated",)


def _router_only(service: Service) -> RouterView | None:
    router = service.router
    if router is None:
        return None
    return RouterView(placement=router.placement, host=router.host, url=router.url, policy=router.policy, up=None)


def _router_view(ctx: DeployContext, service: Service) -> tuple[RouterView | None, dict[str, bool] | None]:
    view = _router_only(service)
    if view is None or service.status in ("terminated",) or (service.router and service.router.stopped_at):
        return view, None
    try:
        with services.router_reach(ctx, service) as url:
            workers = routing.workers(url)
    except GpuctlError as exc:
        return view.model_copy(update={"up": False, "error": exc.message}), None
    return view.model_copy(update={"up": True}), {w.url: w.healthy for w in workers}


def active_services(ctx: DeployContext) -> list[Service]:
    return [s for s in ctx.store.read().services.values() if s.status != "terminated"]

