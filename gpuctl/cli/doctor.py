"""``gpuctl doctor``: check credentials (live), the SSH key, clients, files and the clock; say how to fix each."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gpuctl.app import App
from gpuctl.cli.options import json_option, quiet_option
from gpuctl.cli.output import Column, ConsoleReporter, info, print_json, print_rows
from gpuctl.errors import ConfigError, CredentialsError


@click.command()
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
              metavar="SECONDS", help="How long each provider's live check may take.")
@click.option("--host", default=None, metavar="USER@ADDR[:PORT]|local",
              help="Also check a machine you deploy to with 'up --host': login, free GPUs, docker and its "
                   "NVIDIA runtime (no cloud account needed then).")
@click.option("--identity", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="KEYFILE",
              help="SSH private key for --host.")
@click.option("--accept-host-key", is_flag=True, help="Pin the --host machine's SSH key on first contact.")
@json_option
@quiet_option
@click.pass_obj
def doctor(app: App, timeout: float, host: str | None, identity: Path | None, accept_host_key: bool) -> None:
    """Check that gpuctl can deploy from here, and print each problem with its fix.

    \b
    Per provider: credentials are set, and one read-only call proves they are accepted
    (RunPod GET /v2/pods, Lambda GET /api/v1/instance-types, AWS STS GetCallerIdentity).
    Then gpuctl.yaml, .gpuctl/state.json, the user config, the project's SSH key, the ssh
    and docker clients, and the clock (against the providers' answers).
    Exit 0 when at least one provider is ready and nothing every deployment needs is broken;
    2 when something is (a file, the SSH key, the clock); 6 when no provider's credentials
    are usable. With --host, the machine counts as the 'ssh' provider: ready when every check
    of it passes, else the exit code of its first problem (6 for the login, 4 for docker...).
    -q prints the ready providers, one per line.
    """
    from gpuctl.doctor import run_checks
    from gpuctl.events import NullReporter

    reporter = ConsoleReporter(app) if sys.stderr.isatty() else NullReporter()
    with reporter.step("Checking providers and this machine"):
        report = run_checks(app.project_root, app.registry, timeout=timeout)
    host_error = None
    if host is not None:
        from gpuctl.doctor import host_checks

        with reporter.step(f"Checking {host}"):
            found, host_error = host_checks(host, app.state.dir, identity=identity, accept_host_key=accept_host_key)
        report.checks += found
        if host_error is None:
            report.ready.append("ssh")
    if app.json:
        print_json(report.model_dump(mode="json"))
    elif app.quiet:
        for name in report.ready:
            click.echo(name)
    else:
        print_rows(app, report.checks, [
            Column("STATUS", "status"),
            Column("CHECK", "name"),
            Column("PROVIDER", "provider"),
            Column("DETAIL", "detail"),
        ], empty="nothing to check")
        fixes = [check for check in report.checks if check.status in ("problem", "warning") and check.fix]
        if fixes:
            click.echo("\nto fix:")
            for check in fixes:
                where = f"{check.provider} {check.name}" if check.provider else check.name
                click.echo(f"  {where}: {check.fix}")
    problems = report.machine_problems
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) every deployment would hit: "
                          + "; ".join(f"{p.name}: {p.detail}" for p in problems), "each check's fix says what to do")
    if host_error is not None:
        raise host_error
    if not report.ready:
        raise CredentialsError("no provider has usable credentials",
                               "set one provider's credentials as its fix says, or check a machine of yours with "
                               "'gpuctl doctor --host USER@ADDR'")
    info(app, f"ready to deploy with: {', '.join(report.ready)}")
