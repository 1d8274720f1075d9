"""``gpuctl bench --sweep``: rent the best offer of each GPU asked, bench it, tear it down; rank by measured $/token."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from gpuctl.app import App
from gpuctl.cli.output import Column, PlainLayers, PlainTransfer, format_bytes, info, print_json, print_rows, warn
from gpuctl.errors import GpuctlError, Interrupted, NoCapacityError
from gpuctl.events import LayerUpdate, ProgressUpdate

if TYPE_CHECKING:
    from gpuctl.sweep.plan import SweepPlan, SweepRequest


class PrefixedReporter:
    """Plain progress lines, each starting with its candidate's label: several candidates report at once."""

    def __init__(self, app: App, label: str) -> None:
        self.app, self.label = app, label

    def _line(self, message: str) -> None:
        info(self.app, f"[{self.label}] {message}")

    def info(self, message: str) -> None:
        self._line(message)

    def warn(self, message: str) -> None:
        warn(self.app, f"[{self.label}] {message}")

    @contextmanager
    def step(self, message: str) -> Iterator[None]:
        start = time.monotonic()
        self._line(f"{message} ...")
        yield
        self._line(f"{message}: done ({time.monotonic() - start:.1f}s)")

    @contextmanager
    def transfer(self, message: str, total: int) -> Iterator[ProgressUpdate]:
        plain = PlainTransfer(self._line, message, total)
        self._line(f"{message}: {format_bytes(total)} ...")
        yield plain.update
        plain.finish()

    @contextmanager
    def layers(self, message: str) -> Iterator[LayerUpdate]:
        plain = PlainLayers(self._line, message)
        self._line(f"{message} ...")
        yield plain.update
        plain.finish()


def _money(value: float | None) -> str | None:
    return None if value is None else f"{value:.3f}"


SWEEP_COLUMNS = [
    Column("GPU", "label"),
    Column("OFFER", lambda r: f"{r.provider} {r.gpu_count} x {r.gpu}" if r.provider else None),
    Column("$/HR", lambda r: None if r.price_per_hour is None else f"{r.price_per_hour:.2f}", "right"),
    Column("C", "concurrency", "right"),
    Column("TOK/S", lambda r: None if r.output_tokens_per_s is None else f"{r.output_tokens_per_s:,.0f}", "right"),
    Column("TTFT P50", lambda r: None if r.ttft_p50_ms is None else f"{r.ttft_p50_ms:,.0f}", "right"),
    Column("ITL P50", lambda r: None if r.itl_p50_ms is None else f"{r.itl_p50_ms:.1f}", "right"),
    Column("$/1M OUT", lambda r: _money(r.usd_per_1m_output_tokens), "right"),
    Column("SLO", lambda r: {True: "meets", False: "misses", None: None}[r.meets_slo]),
    Column("EST TOK/S", lambda r: None if r.estimate is None else f"{r.estimate.output_tokens_per_s:,.0f}", "right"),
    Column("EST $/1M", lambda r: _money(r.estimated_usd_per_1m_output_tokens), "right"),
    Column("COST", lambda r: None if r.cost_usd is None else f"${r.cost_usd:.2f}", "right"),
    Column("STATUS", lambda r: r.status if not r.detail else f"{r.status}: {r.detail}"),
]


def plan_text(plan: SweepPlan) -> str:
    """What the sweep will rent, bench and cost: shown once, before its one question."""
    from gpuctl.durations import format_duration
    from gpuctl.sweep.run import within_budget

    lines = [f"sweep {plan.model.name}: {plan.load}"]
    committed, launching = 0.0, True
    for c in plan.candidates:
        offer, est = c.plan.offer, c.estimate
        tier = f" {offer.tier}" if offer.tier else ""
        cost = f"${c.usd_per_1m_output_tokens:.3f}/1M" if c.usd_per_1m_output_tokens is not None else "no price"
        # as the run decides: the first candidate over the budget, and every later one, is not launched
        launching = launching and within_budget(c, committed, plan.budget_usd)
        committed += c.cost_usd if launching else 0.0
        at_loads = ", ".join(f"{e.output_tokens_per_s:,.0f} tok/s at c={e.inputs.concurrency}"
                             for e in c.estimates if e.inputs.concurrency != est.inputs.concurrency)
        lines.append(f"  {c.label}: {offer.provider}{tier} {offer.gpu_count} x {offer.gpu} in {offer.region} "
                     f"(${offer.price_per_hour:.2f}/h): est. {est.output_tokens_per_s:,.0f} tok/s at "
                     f"concurrency {est.inputs.concurrency}, {cost}; bench c={','.join(map(str, c.concurrency))} "
                     f"x {c.requests} requests" + (f" (est. {at_loads})" if at_loads else "")
                     + f"; about {format_duration(c.seconds)}, ${c.cost_usd:.2f}"
                     + ("" if launching else " (over the budget: launched only if those before cost less than "
                                             "estimated)"))
    for skipped in plan.skipped:
        lines.append(f"  {skipped.label}: skipped, {skipped.reason}")
    budget = f" (budget ${plan.budget_usd:.2f})" if plan.budget_usd is not None else ""
    ttl = min((c.plan.ttl_seconds or 0 for c in plan.candidates), default=0)
    lines.append(f"estimated cost of the whole sweep: ${plan.estimated_cost_usd:.2f}{budget}; {plan.parallel} at "
                 f"a time; each candidate is torn down after its bench (TTL {format_duration(ttl)} at least)")
    return "\n".join(lines)


def run_sweep(app: App, request: SweepRequest, *, dry_run: bool) -> None:
    """Plan, confirm once, run, and print the ranked table (``gpuctl bench --sweep``)."""
    from gpuctl.cli.confirm import confirm_or_refuse
    from gpuctl.cli.estimates import bench_history
    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy.context import Timeouts
    from gpuctl.plan import PlanRequest, plan_inputs
    from gpuctl.sweep.plan import plan_sweep

    ctx = deploy_context(app, Timeouts(), quiet=dry_run and not sys.stderr.isatty())
    asked = PlanRequest(model=request.model, providers=request.providers, engine=request.engine,
                        quantization=request.quantization, spot=request.spot, region=request.region)
    inputs = plan_inputs(asked, project_root=app.project_root, registry=app.registry, reporter=ctx.reporter)
    for line in inputs.warnings:
        warn(app, line)
    plan = plan_sweep(ctx, request, inputs.model_copy(update={"history": bench_history(app)}))
    if not plan.candidates:
        reasons = "; ".join(f"{s.label}: {s.reason}" for s in plan.skipped)
        raise NoCapacityError(f"no GPU asked has an offer to sweep ({reasons})", "relax --slo or ask for other GPUs")
    if dry_run:
        if app.json:
            print_json(plan.model_dump(mode="json"))
        else:
            click.echo(plan_text(plan))
        return
    from gpuctl.sweep.candidate import prepare, run_candidate, take_down_candidate

    prepared = prepare(ctx, plan)  # before the question: a gated or pickle-only model stops here, at no cost
    confirm_or_refuse(app, "Run the sweep?", shown=plan_text(plan),
                      refused="not renting anything without a confirmation, and there is no terminal to ask on",
                      hint="pass -y to confirm the cost shown above")
    from gpuctl.sweep.results import sweep_rows
    from gpuctl.sweep.run import run_candidates

    outcome = run_candidates(
        plan.candidates, lambda c: run_candidate(ctx, prepared, c, request, PrefixedReporter(app, c.label)),
        cleanup=lambda name: take_down_candidate(ctx, name), parallel=request.parallel,
        budget=request.budget_usd, reporter=ctx.reporter)
    rows = sweep_rows(plan.candidates, plan.skipped, outcome.results, outcome.not_launched, request.load.slo)
    print_rows(app, rows, SWEEP_COLUMNS, empty="no candidate")
    if outcome.cleanup_failures:
        raise GpuctlError("some candidates may still be running: " + "; ".join(outcome.cleanup_failures),
                          "run 'gpuctl status' and 'gpuctl down NAME' for each")
    if outcome.interrupted:
        raise Interrupted("sweep interrupted: every candidate it launched is torn down")
