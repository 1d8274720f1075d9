"""``gpuctl status`` (alias ``ls``): deployments, where they run, what they cost so far, and whether they answer;
``status NAME``: one of them, with its limits and its cold start."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from gpuctl.app import App
from gpuctl.cli.options import json_option, quiet_option
from gpuctl.cli.output import Column, print_json, print_rows

if TYPE_CHECKING:
    from gpuctl.deploy.status import DeploymentRow


def _money(value: float | None) -> str | None:
    return None if value is None else f"${value:.2f}"


def human_duration(seconds: float | None) -> str | None:
    """'2h5m', 'expired' at or below zero; whole minutes past ten minutes."""
    from gpuctl.durations import format_duration

    if seconds is None:
        return None
    if seconds <= 0:
        return "expired"
    # seconds are noise past ten minutes
    return format_duration(round(seconds / 60) * 60 if seconds >= 600 else seconds)


def _gpu(row: object) -> str | None:
    gpu, count = getattr(row, "gpu", None), getattr(row, "gpu_count", None)
    return f"{count} x {gpu}" if gpu and count else gpu


def _endpoint(row: object) -> str | None:
    endpoint = getattr(row, "endpoint", None)
    return f"{endpoint} (tunnel)" if endpoint and getattr(row, "tunnel", False) else endpoint


def _limits(row: DeploymentRow) -> list[str]:
    """The idle limit and the budget of one deployment, as lines."""
    from gpuctl.durations import format_duration

    lines = []
    if row.idle_seconds:
        lines.append(f"idle limit {format_duration(row.idle_seconds)}")
    if row.budget_usd is not None:
        left = f", {_money(max(0.0, row.budget_left_usd))} left" if row.budget_left_usd is not None else ""
        ends = f" (spent at {row.budget_ends_at:%Y-%m-%d %H:%M:%S} UTC)" if row.budget_ends_at else ""
        lines.append(f"budget {_money(row.budget_usd)}{left}{ends}")
    return lines


@click.command()
@click.argument("name", required=False)
@click.option("--no-probe", is_flag=True, help="Do not contact the endpoints (faster; HEALTH stays empty).")
@click.option("--all", "include_ended", is_flag=True, help="Include deployments that have ended.")
@json_option
@quiet_option
@click.pass_obj
def status(app: App, name: str | None, no_probe: bool, include_ended: bool) -> None:
    """List this project's deployments: provider, GPU, endpoint, uptime, $/h, cost so far, TTL and budget left,
    health.

    With NAME, that deployment (ended or not), its idle limit and budget, and its cold start phase by
    phase (--json: one object, with 'cold_start'); with the NAME of a service (up --replicas), its
    router, each replica and the router's view of it, the summed cost. With -q, print only the names,
    one per line (without contacting the endpoints).
    """
    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy.context import Timeouts
    from gpuctl.deploy.status import status_rows

    ctx = deploy_context(app, Timeouts(), quiet=True)
    if name is not None:
        from gpuctl.cli.service import render_view, service_target
        from gpuctl.deploy.service_view import service_view

        service = service_target(app, name)
        if service is not None:
            render_view(app, service_view(ctx, service, probe_health=not no_probe))
            return
        ctx.records.get(name)  # exit 3, naming the known ones, for a name that is neither
    names_only = app.quiet and not app.json
    rows = status_rows(ctx, include_ended=include_ended, probe_health=not (no_probe or names_only), name=name)
    if names_only:
        for row in rows:
            click.echo(row.name)
        return
    if name is not None and app.json:
        print_json(rows[0].model_dump(mode="json"))
        return
    budgets = any(row.budget_usd is not None for row in rows)
    print_rows(app, rows, [
        Column("NAME", "name"),
        Column("STATUS", "status"),
        Column("PROVIDER", "provider"),
        Column("GPU", _gpu),
        Column("REGION", "region"),
        Column("ENDPOINT", _endpoint),
        Column("UPTIME", lambda r: human_duration(r.uptime_seconds)),
        Column("$/HR", lambda r: _money(r.price_per_hour), justify="right"),
        Column("COST", lambda r: _money(r.cost_usd), justify="right"),
        Column("TTL LEFT", lambda r: human_duration(r.ttl_left_seconds)),
        *([Column("BUDGET LEFT", lambda r: _money(r.budget_left_usd), justify="right")] if budgets else []),
        Column("HEALTH", "health"),
    ], empty="no deployments ('gpuctl up MODEL' starts one)")
    if name is not None:
        from gpuctl.cli.coldstart import breakdown_lines

        (row,) = rows
        lines = _limits(row)
        if row.cold_start is not None:
            lines += breakdown_lines(row.cold_start, row.price_per_hour)
        if lines:
            click.echo("\n" + "\n".join(lines))
    elif not app.json:  # replicas are rows above; their services (and routers) are one command away
        from gpuctl.cli.output import info

        for service in app.state.read().services.values():
            if service.status != "terminated":
                info(app, f"service {service.name} ({service.status}): {len(service.members)} replica(s) behind "
                          f"vllm-router; 'gpuctl status {service.name}' shows it")
