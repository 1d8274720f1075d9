"""``gpuctl logs NAME``: the engine container's output (``-f`` to follow it)."""

from __future__ import annotations

import click

from gpuctl.app import App
from gpuctl.cli.names import deployment_name
from gpuctl.errors import UsageError


@click.command()
@click.argument("name", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C or the engine stops.")
@click.option("--tail", type=click.IntRange(min=0), default=200, show_default=True, metavar="N",
              help="Lines from the end to start with.")
@click.pass_obj
def logs(app: App, name: str | None, follow: bool, tail: int) -> None:
    """Print the engine log of deployment NAME (default: the only one)."""
    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy.access import engine_logs, follow_engine_logs
    from gpuctl.deploy.context import Timeouts

    ctx = deploy_context(app, Timeouts(), quiet=True)
    name = deployment_name(app, name, "logs")
    deployment = ctx.records.get(name)
    if deployment.status == "terminated":  # its machine or container is gone, and the log with it
        raise UsageError(f"'{name}' is terminated: its engine and its log are gone",
                         f"'gpuctl status {name}' shows what it ran and cost")
    if not follow:
        click.echo(engine_logs(ctx, deployment, tail), nl=False)
        return
    lines = follow_engine_logs(ctx, deployment, tail)
    try:
        for line in lines:
            click.echo(line)
    except KeyboardInterrupt:
        pass  # Ctrl-C ends following; that is success
    finally:
        lines.close()
