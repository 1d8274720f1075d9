"""``gpuctl status`` (alias ``ls``): deployments, where they run, what they cost so far, and whether they answer."""

from __future__ import annotations

import click

from gpuctl.app import App
from gpuctl.cli.options import json_option, quiet_option
from gpuctl.cli.output import Column, print_rows


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


def _status(row: object) -> str:
    """The record's status, except 'expired' for a running one whose TTL has passed (it was stopped)."""
    status = str(getattr(row, "status", ""))
    left = getattr(row, "ttl_left_seconds", None)
    return "expired" if status == "running" and left is not None and left <= 0 else status


@click.command()
@click.option("--no-probe", is_flag=True, help="Do not contact the endpoints (faster; HEALTH stays empty).")
@click.option("--all", "include_ended", is_flag=True, help="Include deployments that have ended.")
@json_option
@quiet_option
@click.pass_obj
def status(app: App, no_probe: bool, include_ended: bool) -> None:
    """List this project's deployments: provider, GPU, endpoint, uptime, $/h, cost so far, TTL left, health.

    With -q, print only their names, one per line (without contacting the endpoints).
    """
    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy.context import Timeouts
    from gpuctl.deploy.status import status_rows

    ctx = deploy_context(app, Timeouts(), quiet=True)
    names_only = app.quiet and not app.json
    rows = status_rows(ctx, include_ended=include_ended, probe_health=not (no_probe or names_only))
    if names_only:
        for row in rows:
            click.echo(row.name)
        return
    print_rows(app, rows, [
        Column("NAME", "name"),
        Column("STATUS", _status),
        Column("PROVIDER", "provider"),
        Column("GPU", _gpu),
        Column("REGION", "region"),
        Column("ENDPOINT", _endpoint),
        Column("UPTIME", lambda r: human_duration(r.uptime_seconds)),
        Column("$/HR", lambda r: _money(r.price_per_hour), justify="right"),
        Column("COST", lambda r: _money(r.cost_usd), justify="right"),
        Column("TTL LEFT", lambda r: human_duration(r.ttl_left_seconds)),
        Column("HEALTH", "health"),
    ], empty="no deployments ('gpuctl up MODEL' starts one)")
