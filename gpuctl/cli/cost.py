"""``gpuctl cost [NAME]``: what deployments cost at their launch price, beside the provider's own bill."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import click

from gpuctl.app import App
from gpuctl.cli.options import json_option
from gpuctl.cli.output import Column, info, print_json, print_rows
from gpuctl.errors import UsageError


def _money(value: float | None) -> str | None:
    return None if value is None else f"${value:.2f}"


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A date (2026-05-01), a date and time (2026-05-01T12:00, UTC unless it says otherwise) or a duration
    back from now (7d, 12h)."""
    from gpuctl.durations import parse_duration

    now = now or datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            return now - timedelta(seconds=parse_duration(text))
        except UsageError:
            raise UsageError(f"'{text}' is neither a date nor a duration",
                             "use a date (2026-05-01), a time (2026-05-01T12:00) or a duration (7d)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@click.command()
@click.argument("name", required=False)
@click.option("--since", metavar="DATE|DURATION", default=None,
              help="Only what was billed from then on: a date (2026-05-01, UTC), a time, or a duration back (7d).")
@json_option
@click.pass_obj
def cost(app: App, name: str | None, since: str | None) -> None:
    """What deployment NAME (default: every deployment of this project) cost, at the price recorded at launch.

    \b
    Billed time runs from the launch (the cold start included) until the deployment ended, or now.
    Beside gpuctl's figure: the provider's own, where its billing API has one (RunPod).
    """
    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy.bill import cost_report
    from gpuctl.deploy.context import Timeouts

    ctx = deploy_context(app, Timeouts(), quiet=True)
    report = cost_report(ctx, name=name, since=parse_since(since) if since else None)
    if app.json:
        print_json(report.model_dump(mode="json"))
        return
    print_rows(app, report.deployments, [
        Column("NAME", "name"),
        Column("STATUS", "status"),
        Column("PROVIDER", "provider"),
        Column("FROM", lambda r: f"{r.billed_from:%Y-%m-%d %H:%M}" if r.billed_from else None),
        Column("HOURS", lambda r: f"{r.hours:.2f}", justify="right"),
        Column("$/HR", lambda r: _money(r.price_per_hour), justify="right"),
        Column("COST", lambda r: _money(r.cost_usd), justify="right"),
        Column("PROVIDER SAYS", lambda r: _money(r.provider_cost_usd), justify="right"),
    ], empty="nothing billed" + (" since then" if since else " in this project"))
    for project in report.projects:
        theirs = (f"; the providers' own figures: ${project.provider_cost_usd:.2f} for {project.provider_covered} "
                  f"of {project.deployments}" if project.provider_cost_usd is not None else "")
        click.echo(f"project {project.project_id or '(unnamed)'}: ${project.cost_usd:.2f} for "
                   f"{project.deployments} deployment(s){theirs}")
    for billing in report.providers:
        info(app, f"{billing.provider}: {billing.note}")
