"""``gpuctl top [NAME]``: running deployments, live: GPUs, requests, tokens/s, latency, money and limits left."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import click

from gpuctl.app import App
from gpuctl.cli.options import json_option
from gpuctl.cli.output import info, warn

if TYPE_CHECKING:
    from rich.table import Table

    from gpuctl.deploy.context import DeployContext
    from gpuctl.deploy.top import Probe, TopRow

#: how long one round of samples may take, beyond the interval, before the slow ones are shown as missing
ROUND_SLACK_S = 10.0


@click.command()
@click.argument("name", required=False)
@click.option("--interval", default="2s", show_default=True, metavar="DURATION", help="Time between samples.")
@click.option("-n", "--iterations", type=click.IntRange(min=1), default=None, metavar="N",
              help="Stop after N samples (default: until Ctrl-C).")
@json_option
@click.pass_obj
def top(app: App, name: str | None, interval: str, iterations: int | None) -> None:
    """Watch running deployments (or NAME; a service's NAME: its replicas): GPU use and memory per GPU, requests
    running and waiting, KV cache, tokens/s, TTFT and inter-token latency percentiles, $/h, cost so far,
    TTL / idle / budget left.

    \b
    Refreshes in place on a terminal; prints JSON lines (one per deployment per sample) otherwise or
    with --json. A private deployment is reached through its SSH session, as 'gpuctl logs' does.
    Where the provider runs the engine (RunPod), top also enforces the TTL, idle limit and budget:
    it takes the deployment down when one is reached.
    """
    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy.context import Timeouts
    from gpuctl.deploy.records import is_active
    from gpuctl.deploy.top import Probe
    from gpuctl.durations import parse_duration
    from gpuctl.errors import GpuctlError, UsageError

    pause = parse_duration(interval)
    ctx = deploy_context(app, Timeouts(), quiet=True)
    from gpuctl.cli.service import service_target

    service = service_target(app, name) if name else None
    if service is not None:  # a service (up --replicas): its running replicas, each engine read as any deployment's
        from gpuctl.deploy.service import members

        chosen = [d for d in members(ctx, service) if d.status == "running"]
    elif name:
        deployment = ctx.records.get(name)
        if deployment.status != "running":
            raise UsageError(f"'{name}' is not running (status {deployment.status})", "'gpuctl status' shows it")
        chosen = [deployment]
    else:
        chosen = [d for d in ctx.records.all() if is_active(d) and d.status == "running"]
    if not chosen:
        info(app, "no running deployments ('gpuctl up MODEL' starts one)")
        return
    probes: list[Probe] = []
    try:
        for deployment in chosen:
            probe = Probe(ctx, deployment)
            try:
                probe.open()
            except GpuctlError as exc:
                warn(app, f"{deployment.name}: {exc.one_line()}")
            probes.append(probe)
        _watch(app, ctx, probes, pause, iterations)
    except KeyboardInterrupt:
        pass  # Ctrl-C ends watching; that is success
    finally:
        for probe in probes:
            probe.close()


def _watch(app: App, ctx: DeployContext, probes: list[Probe], pause: float, iterations: int | None) -> None:
    live_table = not app.json and sys.stdout.isatty()
    count = 0
    if live_table:
        from rich.live import Live

        with Live(console=app.out, auto_refresh=False) as live:
            while probes and (iterations is None or count < iterations):
                rows = _round(app, ctx, probes, pause)
                live.update(_table(rows), refresh=True)
                count += 1
                if iterations is None or count < iterations:
                    time.sleep(pause)
        return
    while probes and (iterations is None or count < iterations):
        for row in _round(app, ctx, probes, pause):
            click.echo(row.model_dump_json())
        sys.stdout.flush()
        count += 1
        if iterations is None or count < iterations:
            time.sleep(pause)


def _round(app: App, ctx: DeployContext, probes: list[Probe], pause: float) -> list[TopRow]:
    """One sample of every deployment, at once; deployments gpuctl must stop for a limit are taken down."""
    from gpuctl.concurrency import run_all
    from gpuctl.deploy.top import limit_reached

    outcomes = run_all({i: probe.sample for i, probe in enumerate(probes)}, timeout=pause + ROUND_SLACK_S)
    rows = []
    for i, probe in enumerate(list(probes)):
        outcome = outcomes[i]
        if not outcome.finished or outcome.error is not None or outcome.value is None:
            warn(app, f"{probe.deployment.name}: no sample ({outcome.error or 'it took too long'})")
            continue
        row = outcome.value
        rows.append(row)
        reason = limit_reached(row)
        if reason is not None:
            _end(app, ctx, probe, reason)
            probes.remove(probe)
    return rows


def _end(app: App, ctx: DeployContext, probe: Probe, reason: str) -> None:
    from gpuctl.deploy.down import take_down
    from gpuctl.errors import GpuctlError

    name = probe.deployment.name
    warn(app, f"{name}: {reason}: taking it down")
    probe.close()
    try:
        take_down(ctx, name)  # as 'gpuctl down NAME' (a replica leaves its router first)
    except GpuctlError as exc:
        warn(app, f"{name}: not down: {exc.one_line()}; 'gpuctl down {name}' retries")
        return
    info(app, f"{name}: down ({reason})")


def _table(rows: list[TopRow]) -> Table:
    from rich import box
    from rich.table import Table

    from gpuctl.cli.status import human_duration

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    headers = ("NAME", "GPU%", "GPU MEM", "RUN", "WAIT", "KV", "PROMPT/s", "GEN/s", "TTFT p50/p99", "ITL p50/p99",
               "$/HR", "COST", "TTL", "IDLE", "BUDGET")
    for header in headers:
        table.add_column(header, justify="left" if header == "NAME" else "right", overflow="fold")
    for row in rows:
        gpus = row.gpus or []
        table.add_row(
            row.name + (f"\n{'; '.join(row.problems)}" if row.problems else ""),
            " ".join(f"{g.utilization_pct}%" if g.utilization_pct is not None else "?" for g in gpus) or "-",
            " ".join(_memory(g.memory_used_mib, g.memory_total_mib) for g in gpus) or "-",
            _number(row.running), _number(row.waiting),
            f"{row.kv_cache_usage:.0%}" if row.kv_cache_usage is not None else "-",
            _number(row.prompt_tokens_per_s, 1), _number(row.generation_tokens_per_s, 1),
            _latency(row.ttft), _latency(row.itl),
            f"${row.price_per_hour:.2f}" if row.price_per_hour is not None else "-",
            f"${row.cost_usd:.2f}" if row.cost_usd is not None else "-",
            human_duration(row.ttl_left_seconds) or "-", human_duration(row.idle_left_seconds) or "-",
            f"${row.budget_left_usd:.2f}" if row.budget_left_usd is not None else "-",
        )
    return table


def _memory(used: int | None, total: int | None) -> str:
    if used is None or total is None:
        return "?"
    return f"{used / 1024:.1f}/{total / 1024:.0f}G"


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _latency(value: object) -> str:
    p50, p99 = getattr(value, "p50_ms", None), getattr(value, "p99_ms", None)
    if p50 is None:
        return "-"
    return f"{p50:.0f}/{p99:.0f}ms" if p99 is not None else f"{p50:.0f}ms"
