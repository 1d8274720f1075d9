"""``gpuctl ssh NAME [-- CMD]``: a shell (or one command, or a tunnel to the engine) on a deployment's host."""

from __future__ import annotations

import click

from gpuctl.app import App
from gpuctl.cli.names import deployment_name


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("name", required=False)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--tunnel", is_flag=True, help="Forward the private engine port to this machine instead of a shell.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, metavar="PORT",
              help="Local port of --tunnel (default: the engine's port on the host).")
@click.option("--print", "print_only", is_flag=True, help="Print the ssh command line instead of running it.")
@click.pass_obj
def ssh(app: App, name: str | None, command: tuple[str, ...], tunnel: bool, port: int | None,
        print_only: bool) -> None:
    """Open an SSH session on the host of deployment NAME (default: the only one), with the project's key and
    pinned host keys."""
    import os
    import shlex

    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy.access import ssh_argv
    from gpuctl.deploy.context import Timeouts
    from gpuctl.errors import UsageError

    if tunnel and command:
        raise UsageError("--tunnel takes no command")
    ctx = deploy_context(app, Timeouts(), quiet=True)
    name = deployment_name(app, name, "ssh")
    deployment = ctx.records.get(name)
    tunnel_port = (port or deployment.host_port) if tunnel else None
    argv = ssh_argv(ctx, deployment, list(command), tunnel_port=tunnel_port, pin=not print_only)
    if print_only:
        click.echo(shlex.join(argv))
        return
    if tunnel:
        click.echo(f"forwarding 127.0.0.1:{tunnel_port} to the engine of {name}; Ctrl-C to stop", err=True)
    try:
        # become ssh: signals, the terminal and the exit status are then ssh's own, with no process left behind
        os.execvp(argv[0], argv)
    except OSError as exc:
        raise UsageError(f"cannot run ssh: {exc}", "install OpenSSH's client") from None
