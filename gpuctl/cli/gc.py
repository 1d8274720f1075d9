"""``gpuctl gc``: find and remove what gpuctl launched but no healthy deployment accounts for."""

from __future__ import annotations

import click

from gpuctl.app import App
from gpuctl.cli.options import json_option, yes_option
from gpuctl.cli.output import Column, info, print_json, print_rows, warn

_COLUMNS = [
    Column("KIND", "kind"),
    Column("PROVIDER", lambda r: r.host or r.provider),
    Column("INSTANCE", "instance_id"),
    Column("DEPLOYMENT", "deployment"),
    Column("GPU", lambda r: f"{r.gpu_count} x {r.gpu}" if r.gpu and r.gpu_count else r.gpu),
    Column("$/HR", lambda r: None if r.price_per_hour is None else f"${r.price_per_hour:.2f}", justify="right"),
    Column("WHY", "reason"),
]


@click.command()
@click.option("--all-projects", is_flag=True, help="Also remove gpuctl instances tagged with other projects.")
@click.option("--dry-run", is_flag=True, help="List the leftovers and remove nothing.")
@yes_option
@json_option
@click.pass_obj
def gc(app: App, all_projects: bool, dry_run: bool) -> None:
    """List instances carrying gpuctl's tags that the state file does not know (or knows as failed),
    failed deployments, and what ended deployments left on your --host machines, with their hourly
    cost; remove them after confirmation."""
    from gpuctl.cli.confirm import confirm_or_refuse
    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy.context import Timeouts
    from gpuctl.deploy.reconcile import find_leftovers, remove
    from gpuctl.errors import GpuctlError

    ctx = deploy_context(app, Timeouts(), quiet=app.json)
    sweep = find_leftovers(ctx, all_projects=all_projects)
    for note in sweep.warnings:
        warn(app, note)
    if sweep.other_projects:
        info(app, f"{sweep.other_projects} gpuctl instance(s) of other projects left alone (--all-projects)")
    if app.json and (dry_run or not sweep.leftovers):
        print_json([item.model_dump(mode="json") for item in sweep.leftovers])
        return
    if not app.json:
        print_rows(app, sweep.leftovers, _COLUMNS, empty="nothing to collect")
    if not sweep.leftovers or dry_run:
        return
    hourly = sum(item.price_per_hour or 0.0 for item in sweep.leftovers)
    confirm_or_refuse(app, f"Remove these {len(sweep.leftovers)} (${hourly:.2f}/h)?",
                      refused=f"not removing {len(sweep.leftovers)} leftover(s) without a confirmation",
                      hint="pass -y to remove them, or --dry-run to only list them")
    failures: list[GpuctlError] = []
    for item in sweep.leftovers:
        try:
            remove(ctx, item)
        except GpuctlError as exc:  # one stuck leftover must not keep the others billing
            warn(app, f"could not remove {item.instance_id or item.deployment}: {exc.one_line()}")
            failures.append(exc)
    if app.json:
        print_json([item.model_dump(mode="json") for item in sweep.leftovers])
    else:
        info(app, f"removed {len(sweep.leftovers) - len(failures)} of {len(sweep.leftovers)} leftover(s)")
    if failures:
        raise failures[0]
