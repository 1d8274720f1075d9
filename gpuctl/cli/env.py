"""``gpuctl env NAME``: ``export`` lines for OpenAI clients; use as ``eval "$(gpuctl env NAME)"``."""

from __future__ import annotations

import click

from gpuctl.app import App
from gpuctl.cli.output import info


@click.command()
@click.argument("name")
@click.pass_obj
def env(app: App, name: str) -> None:
    """Print OPENAI_BASE_URL and OPENAI_API_KEY of deployment NAME (the only command that shows the key)."""
    from gpuctl.cli.service import env_lines as service_env_lines
    from gpuctl.cli.service import service_target
    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy.access import env_lines
    from gpuctl.deploy.context import Timeouts

    service = service_target(app, name)
    if service is not None:  # a service: its router
        click.echo("\n".join(service_env_lines(app, service)))
        if service.router is not None and service.router.host is not None:
            port = service.router.port
            info(app, f"the router listens on {service.router.host}'s loopback: keep "
                      f"'ssh -N -L {port}:127.0.0.1:{port} {service.router.host}' running")
        return
    ctx = deploy_context(app, Timeouts(), quiet=True)
    deployment = ctx.records.get(name)
    click.echo("\n".join(env_lines(ctx, deployment)))
    if deployment.tunnel:
        info(app, f"{name} is private: keep 'gpuctl ssh {name} --tunnel' running while you use it")
