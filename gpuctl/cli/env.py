"""``gpuctl env NAME``: ``export`` lines for OpenAI clients; use as ``eval "$(gpuctl env NAME)"``."""

from __future__ import annotations

import click

from gpuctl.app import App
from gpuctl.cli.names import deployment_name
from gpuctl.cli.output import info


@click.command()
@click.argument("name", required=False)
@click.pass_obj
def env(app: App, name: str | None) -> None:
    """Print OPENAI_BASE_URL and OPENAI_API_KEY of deployment NAME (default: the only one; the only
    command that shows the key)."""
    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy.access import env_lines
    from gpuctl.deploy.context import Timeouts
    from gpuctl.deploy.tunnels import live_tunnel

    ctx = deploy_context(app, Timeouts(), quiet=True)
    name = deployment_name(app, name, "env")
    deployment = ctx.records.get(name)
    tunnel = live_tunnel(ctx.state_dir, name)
    click.echo("\n".join(env_lines(ctx, deployment, tunnel.base_url if tunnel else None)))
    if deployment.tunnel and tunnel is None:
        info(app, f"{name} is private: keep 'gpuctl ssh {name} --tunnel' running while you use it")
