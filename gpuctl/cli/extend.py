"""``gpuctl extend [NAME] DURATION``: move a running deployment's TTL later."""

from __future__ import annotations

import click

from gpuctl.app import App
from gpuctl.cli.names import deployment_name
from gpuctl.cli.options import json_option, quiet_option
from gpuctl.cli.output import print_json


@click.command()
@click.argument("args", nargs=-1, required=True, metavar="[NAME] DURATION")
@json_option
@quiet_option
@click.pass_obj
def extend(app: App, args: tuple[str, ...]) -> None:
    """Give deployment NAME (default: the only one) DURATION more before its TTL stops it, e.g. 2h.

    \b
    The watchdog on its host and the record move together; the TTL left may not pass 30 days.
    -q prints only the new expiry time (UTC, ISO 8601).
    """
    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy.context import Timeouts
    from gpuctl.deploy.extend import extend_ttl
    from gpuctl.durations import parse_duration
    from gpuctl.errors import UsageError

    if len(args) > 2:
        raise UsageError("extend takes a NAME and a DURATION", "e.g. 'gpuctl extend my-llama 2h'")
    name = deployment_name(app, args[0] if len(args) == 2 else None, "extend")
    seconds = parse_duration(args[-1])
    ctx = deploy_context(app, Timeouts(), quiet=False)
    deployment = extend_ttl(ctx, name, seconds)
    assert deployment.expires_at is not None
    if app.json:
        print_json(deployment.model_dump(mode="json"))
    elif app.quiet:
        click.echo(deployment.expires_at.isoformat())
    else:
        click.echo(f"{name} now runs until {deployment.expires_at:%Y-%m-%d %H:%M} UTC")
