"""``gpuctl ssh NAME [-- CMD]``: a shell (or one command, or a tunnel to the engine) on a deployment's host."""

from __future__ import annotations

from pathlib import Path

import click

from gpuctl.app import App
from gpuctl.cli.names import deployment_name


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("name", required=False)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--tunnel", is_flag=True, help="Forward the private engine port to this machine instead of a shell.")
@click.option("--port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="Local port of --tunnel (default: the engine's port on the host; 0: any free port).")
@click.option("--ipv6", is_flag=True, help="Let --tunnel listen on [::1] too (default: 127.0.0.1 only).")
@click.option("--print", "print_only", is_flag=True, help="Print the ssh command line instead of running it.")
@click.pass_obj
def ssh(app: App, name: str | None, command: tuple[str, ...], tunnel: bool, port: int | None, ipv6: bool,
        print_only: bool) -> None:
    """Open an SSH session on the host of deployment NAME (default: the only one), with the project's key and
    pinned host keys.

    \b
    With --tunnel, forward 127.0.0.1:PORT to the engine and print its OPENAI_BASE_URL on
    stdout; a local port in use is an error (exit 2), never a tunnel to another server.
    'gpuctl env' then prints that URL, and 'gpuctl down' stops the tunnel.
    """
    import os
    import shlex
    import sys

    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy.access import ssh_argv
    from gpuctl.deploy.context import Timeouts
    from gpuctl.errors import UsageError

    if tunnel and command:
        raise UsageError("--tunnel takes no command")
    if (port is not None or ipv6) and not tunnel:
        raise UsageError("--port and --ipv6 only apply with --tunnel")
    ctx = deploy_context(app, Timeouts(), quiet=True)
    name = deployment_name(app, name, "ssh")
    deployment = ctx.records.get(name)
    binds: list[str] = []
    tunnel_port: int | None = None
    if tunnel:
        from gpuctl.deploy.tunnels import LOOPBACK_V4, LOOPBACK_V6, claim_port

        binds = [LOOPBACK_V4, *([LOOPBACK_V6] if ipv6 else [])]
        wanted = port if port is not None else deployment.host_port
        tunnel_port = claim_port(wanted, binds) if wanted is not None else None
    argv = ssh_argv(ctx, deployment, list(command), tunnel_port=tunnel_port, tunnel_binds=binds, pin=not print_only)
    if print_only:
        click.echo(shlex.join(argv))
        return
    if tunnel_port is not None:
        _announce_tunnel(app, ctx.state_dir, name, tunnel_port, argv)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        # become ssh: signals, the terminal and the exit status are then ssh's own, with no process left behind
        os.execvp(argv[0], argv)
    except OSError as exc:
        raise UsageError(f"cannot run ssh: {exc}", "install OpenSSH's client") from None


def _announce_tunnel(app: App, state_dir: Path, name: str, port: int, argv: list[str]) -> None:
    """Record the tunnel (this process becomes it) and say where it listens: the URL on stdout."""
    import os

    from gpuctl.cli.output import info
    from gpuctl.deploy.endpoint import openai_base
    from gpuctl.deploy.tunnels import TunnelRecord, record_tunnel

    forwards = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-L"]
    record = TunnelRecord(name=name, pid=os.getpid(), port=port, forwards=forwards)
    record_tunnel(state_dir, record)
    click.echo(openai_base(record.base_url))
    info(app, f"forwarding {', '.join(f.rsplit(':', 2)[0] for f in forwards)} to the engine of {name}; "
              f"Ctrl-C or 'gpuctl down {name}' stops it")
