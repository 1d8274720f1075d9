"""``gpuctl down [NAME | --all]``: terminate, wait until the provider reports it gone, print uptime and cost."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from gpuctl.app import App
from gpuctl.cli.options import json_option, quiet_option
from gpuctl.cli.output import info, print_json, warn

if TYPE_CHECKING:
    from gpuctl.deploy.context import DeployContext
    from gpuctl.models.deployment import Deployment


@click.command()
@click.argument("name", required=False)
@click.option("--all", "everything", is_flag=True, help="Take down every active deployment of this project.")
@click.option("--host", default=None, metavar="USER@ADDR[:PORT]|local",
              help="Remove what gpuctl started for NAME on this machine of yours, without the state file "
                   "(when it is lost or corrupt).")
@click.option("--identity", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="KEYFILE",
              help="SSH private key for --host.")
@click.option("--terminate-timeout", default="10m", show_default=True, metavar="DURATION",
              help="How long the provider may take to report the instance gone.")
@quiet_option
@json_option
@click.pass_obj
def down(app: App, name: str | None, everything: bool, host: str | None, identity: Path | None,
         terminate_timeout: str) -> None:
    """Remove deployment NAME (or --all): the container, the instance, the local key. Safe to repeat.

    \b
    A deployment whose 'gpuctl up' is still running is stopped first (it removes what it created).
    --all tries every deployment and exits non-zero if any could not be taken down.
    """
    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy.context import Timeouts
    from gpuctl.deploy.down import take_down
    from gpuctl.deploy.records import is_active
    from gpuctl.durations import parse_duration
    from gpuctl.errors import GpuctlError, UsageError

    if bool(name) == everything:
        raise UsageError("name one deployment, or pass --all", "'gpuctl status' lists them")
    ctx = deploy_context(app, Timeouts(terminate=parse_duration(terminate_timeout)), quiet=False)
    if host is not None:  # before the state file is read: it may be what is lost
        _down_on_host(app, ctx, name or "", host, identity)
        return
    if identity is not None:
        raise UsageError("--identity only applies with --host")
    from gpuctl.cli.service import service_target
    from gpuctl.cli.service import take_down as take_down_service

    service = service_target(app, name) if name else None
    if service is not None:  # a service: its replicas leave the router and go, then the router
        take_down_service(app, ctx, service)
        return
    failures: list[GpuctlError] = []
    tried: list[str] = []  # services
    if everything:  # services first (router, then replicas), so no router is left without its replicas
        from gpuctl.deploy import service as services

        for active in [s for s in app.state.read().services.values() if s.status != "terminated"]:
            tried.append(active.name)
            try:
                services.take_down_service(ctx, active.name)
            except GpuctlError as exc:
                warn(app, f"service {active.name}: not down: {exc.one_line()}")
                failures.append(exc)
                continue
            info(app, f"service {active.name}: down (its router and replicas)")
    targets = [d for d in ctx.records.all() if is_active(d)] if everything else [ctx.records.get(name or "")]
    if not [d for d in targets if is_active(d)] and not failures:
        if not tried:
            info(app, f"{name} is already down: nothing to do" if name else "no active deployments: nothing to do")
        if app.json:
            print_json([])
        return
    ended: list[Deployment] = []
    for deployment in targets:  # each one, whatever happened to the one before: none may keep billing
        try:
            outcome = take_down(ctx, deployment.name)
        except GpuctlError as exc:
            if len(targets) == 1 and not tried:  # its own error line says it; a warning would repeat it
                raise
            warn(app, f"{deployment.name}: not down: {exc.one_line()}")
            failures.append(exc)
            continue
        if outcome.stopped_launch:
            info(app, f"{deployment.name}: its launch was stopped and removed what it had created")
        ended.append(outcome.deployment)
    _print_ended(app, ended)
    if failures:
        total = len(targets) + len(tried)
        what = "deployment(s) and service(s)" if tried else "deployment(s)"
        summary = GpuctlError(f"{len(failures)} of {total} {what} could not be taken down",
                              "see the lines above; 'gpuctl down NAME' retries one")
        summary.exit_code = failures[0].exit_code  # the first failure's kind decides
        raise summary


def _print_ended(app: App, ended: list[Deployment]) -> None:
    from gpuctl.cli.status import human_duration
    from gpuctl.deploy.status import row

    rows = [row(d) for d in ended]
    if app.json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    for r in rows:
        uptime = human_duration(r.uptime_seconds) if r.uptime_seconds else "0s"
        cost = f"${r.cost_usd:.2f}" if r.cost_usd is not None else "unknown"
        click.echo(f"{r.name}: down after {uptime}, cost {cost}")


def _down_on_host(app: App, ctx: DeployContext, name: str, host: str, identity: Path | None) -> None:
    from gpuctl.deploy.down import take_down_on_host
    from gpuctl.errors import UsageError
    from gpuctl.host.target import parse_target

    if not name:
        raise UsageError("--host takes down one deployment by name", "gpuctl down NAME --host USER@ADDR")
    removals = take_down_on_host(ctx, name, parse_target(host), identity)
    for removal in removals:
        info(app, removal.line())
    if app.json:
        print_json([{"what": r.what, "gone": r.gone, "note": r.note} for r in removals])
    else:
        click.echo(f"{name}: nothing of it left on {host}")
