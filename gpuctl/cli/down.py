"""``gpuctl down [NAME | --all]``: terminate, wait until the provider reports it gone, print uptime and cost."""

from __future__ import annotations

import click

from gpuctl.app import App
from gpuctl.cli.options import json_option, quiet_option
from gpuctl.cli.output import info, print_json


@click.command()
@click.argument("name", required=False)
@click.option("--all", "everything", is_flag=True, help="Take down every active deployment of this project.")
@click.option("--terminate-timeout", default="10m", show_default=True, metavar="DURATION",
              help="How long the provider may take to report the instance gone.")
@quiet_option
@json_option
@click.pass_obj
def down(app: App, name: str | None, everything: bool, terminate_timeout: str) -> None:
    """Remove deployment NAME (or --all): the container, the instance, the local key. Safe to repeat."""
    from gpuctl.cli.status import human_duration
    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy.context import Timeouts
    from gpuctl.deploy.records import is_active
    from gpuctl.deploy.status import row
    from gpuctl.deploy.teardown import teardown
    from gpuctl.durations import parse_duration
    from gpuctl.errors import UsageError

    if bool(name) == everything:
        raise UsageError("name one deployment, or pass --all", "'gpuctl status' lists them")
    ctx = deploy_context(app, Timeouts(terminate=parse_duration(terminate_timeout)), quiet=False)
    from gpuctl.cli.service import service_target
    from gpuctl.cli.service import take_down as take_down_service

    service = service_target(app, name) if name else None
    if service is not None:  # a service: its replicas leave the router and go, then the router
        take_down_service(app, ctx, service)
        return
    if everything:  # services first, so no router is left without its replicas
        from gpuctl.deploy import service as services

        for active in [s for s in app.state.read().services.values() if s.status != "terminated"]:
            services.take_down_service(ctx, active.name)
    targets = [d for d in ctx.records.all() if is_active(d)] if everything else [ctx.records.get(name or "")]
    pending = [d for d in targets if is_active(d)]
    if not pending:
        info(app, f"{name} is already down: nothing to do" if name else "no active deployments: nothing to do")
        if app.json:
            print_json([])
        return
    ended = [row(teardown(ctx, d)) for d in pending]
    if app.json:
        print_json([r.model_dump(mode="json") for r in ended])
        return
    for r in ended:
        uptime = human_duration(r.uptime_seconds) if r.uptime_seconds else "0s"
        cost = f"${r.cost_usd:.2f}" if r.cost_usd is not None else "unknown"
        click.echo(f"{r.name}: down after {uptime}, cost {cost}")
