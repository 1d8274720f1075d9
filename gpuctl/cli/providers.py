"""``gpuctl providers``: installed provider plugins, what they can do, and whether their credentials are present."""

from __future__ import annotations

import click

from gpuctl.app import App
from gpuctl.cli.options import json_option
from gpuctl.cli.output import Column, print_rows


@click.command()
@json_option
@click.pass_obj
def providers(app: App) -> None:
    """List installed providers, where they come from, what they can do, and their credential status (never
    values). A broken plugin is listed with the reason (and named in one warning line)."""
    rows = app.registry.info()
    print_rows(app, rows, [
        Column("PROVIDER", "name"),
        Column("PACKAGE", lambda r: f"{r.package} {r.version}" if r.package else None),
        Column("STATUS", "status"),
        Column("CREDENTIALS", lambda r: r.credentials if r.status == "ok" else None),
        Column("CAN", lambda r: ", ".join(r.capabilities) or None),
        Column("SOURCE / HINT", lambda r: r.credential_source or r.hint or r.error),
    ], empty="no providers installed")
