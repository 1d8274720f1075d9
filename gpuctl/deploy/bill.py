"""``gpuctl cost``: what each deployment cost, at the price recorded at launch, beside the provider's own figure.

gpuctl's figure is the hourly price the offer had when it was launched (kept in the record, never
today's price) times the billed time: from the launch (so the cold start is included) until the
deployment ended, or now. Where the provider reports what it billed (``Capability.BILLING``: RunPod's
``/v2/billing/pods``), its figure for the same instance stands beside gpuctl's; elsewhere the report
says that no such figure exists.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone

from pydantic import BaseModel, Field

from gpuctl.deploy.context import DeployContext
from gpuctl.errors import GpuctlError
from gpuctl.models.deployment import Deployment, DeploymentStatus
from gpuctl.providers.capabilities import Capability


class CostRow(BaseModel):
    """One deployment's bill over the report's window."""

    name: str
    project_id: str | None
    provider: str
    status: DeploymentStatus
    instance_id: str | None
    price_per_hour: float | None = Field(description="the offer's price when it was launched")
    billed_from: datetime | None = Field(description="launch (or the report's start, if later)")
    billed_until: datetime | None = Field(description="when it ended (or now, or the report's end)")
    hours: float
    cost_usd: float | None = Field(description="price_per_hour x hours; None when the price is unknown")
    provider_cost_usd: float | None = Field(description="what the provider's billing records say, where it has them")


class ProjectCost(BaseModel):
    project_id: str | None
    deployments: int
    cost_usd: float
    provider_cost_usd: float | None = Field(description="sum of the provider figures there are; None if none")
    provider_covered: int = Field(description="deployments with a provider figure")


class ProviderBilling(BaseModel):
    """Whether a provider's own figure is shown, and why not when it is not."""

    provider: str
    billing_api: bool
    note: str


class CostReport(BaseModel):
    since: datetime | None
    until: datetime
    deployments: list[CostRow]
    projects: list[ProjectCost]
    providers: list[ProviderBilling]


def billing_start(deployment: Deployment) -> datetime | None:
    """Since when the deployment bills: its launch, or (an instance known, its launch time not) its record's start."""
    if deployment.launched_at is not None:
        return deployment.launched_at
    return deployment.created_at if deployment.instance_id else None


def cost_report(ctx: DeployContext, *, name: str | None = None, since: datetime | None = None,
                now: datetime | None = None) -> CostReport:
    """The bill of deployment ``name`` (every deployment of the project without one) from ``since`` until now."""
    now = now or datetime.now(timezone.utc)
    deployments = [ctx.records.get(name)] if name else ctx.records.all()
    # a deployment that billed nothing in the window (ended before it, never launched) is left out unless named
    rows = [row for row in (_row(d, since, now) for d in deployments) if name or row.hours > 0]
    providers = []
    for provider_name in sorted({r.provider for r in rows}):
        billing, figures = _provider_figures(ctx, provider_name, [r for r in rows if r.provider == provider_name],
                                             since, now)
        providers.append(billing)
        for row in rows:
            if row.provider == provider_name and row.instance_id in figures:
                row.provider_cost_usd = figures[row.instance_id]
    return CostReport(since=since, until=now, deployments=rows, projects=_projects(rows), providers=providers)


def _row(deployment: Deployment, since: datetime | None, now: datetime) -> CostRow:
    start = billing_start(deployment)
    end = deployment.ended_at or now
    if start is not None and since is not None:
        start = max(start, since)
    hours = max(0.0, (end - start).total_seconds() / 3600) if start is not None else 0.0
    price = deployment.price_per_hour
    return CostRow(name=deployment.name, project_id=deployment.project_id, provider=deployment.provider,
                   status=deployment.status, instance_id=deployment.instance_id, price_per_hour=price,
                   billed_from=start, billed_until=end if start is not None else None, hours=round(hours, 4),
                   cost_usd=None if price is None else round(price * hours, 4), provider_cost_usd=None)


def _provider_figures(ctx: DeployContext, provider_name: str, rows: list[CostRow], since: datetime | None,
                      now: datetime) -> tuple[ProviderBilling, dict[str, float]]:
    """The provider's figure per instance id, and what to say about it."""
    from gpuctl.providers.ssh import HostProvider

    if provider_name == HostProvider.name:
        return ProviderBilling(provider=provider_name, billing_api=False,
                               note="your own machine: its price is the --price-per-hour given to 'up'"), {}
    try:
        provider = ctx.provider(provider_name)
    except GpuctlError as exc:
        return ProviderBilling(provider=provider_name, billing_api=False,
                               note=f"provider not available here ({exc.one_line()})"), {}
    if not provider.can(Capability.BILLING):
        return ProviderBilling(provider=provider_name, billing_api=False,
                               note=f"{provider.display_name} has no billing API gpuctl can read: the figure is "
                                    "gpuctl's own (price at launch x time billed)"), {}
    ids = [r.instance_id for r in rows if r.instance_id and r.billed_from is not None]
    if not ids:
        return ProviderBilling(provider=provider_name, billing_api=True, note="nothing billed in the window"), {}
    start = since or min(r.billed_from for r in rows if r.billed_from is not None)  # type: ignore[type-var]
    try:
        billed = provider.billed(ids, start, now)
    except GpuctlError as exc:
        return ProviderBilling(provider=provider_name, billing_api=True,
                               note=f"{provider.display_name}'s billing could not be read: {exc.one_line()}"), {}
    window = f"{billed[0].start:%Y-%m-%d %H:%M} to {billed[0].end:%Y-%m-%d %H:%M} UTC" if billed else "the window"
    return (ProviderBilling(provider=provider_name, billing_api=True,
                            note=f"{provider.display_name}'s billing records for {window} (compute and disk)"),
            {b.instance_id: b.amount_usd for b in billed})


def _projects(rows: list[CostRow]) -> list[ProjectCost]:
    grouped: dict[str | None, list[CostRow]] = defaultdict(list)
    for row in rows:
        grouped[row.project_id].append(row)
    projects = []
    for project_id, members in grouped.items():
        figures = [r.provider_cost_usd for r in members if r.provider_cost_usd is not None]
        projects.append(ProjectCost(project_id=project_id, deployments=len(members),
                                    cost_usd=round(sum(r.cost_usd or 0.0 for r in members), 4),
                                    provider_cost_usd=round(sum(figures), 4) if figures else None,
                                    provider_covered=len(figures)))
    return projects
