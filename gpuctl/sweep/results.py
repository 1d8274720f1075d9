"""The sweep's answer: one row per candidate, ranked by measured dollars per million output tokens at the SLO.

A candidate benched at several loads (``-c 8,32,128``) is represented by its best run: the cheapest
per token among those whose medians meet the SLO (TTFT p50, ITL p50), else the cheapest. Rows whose
measurement meets the SLO come first, cheapest per token first; then those that miss it; then the
candidates without a measurement (failed, interrupted, not launched for the budget, skipped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from gpuctl.models.bench import BenchRun
from gpuctl.perf.cost import Slo, usd_per_1m_output_tokens
from gpuctl.perf.estimate import Estimate
from gpuctl.sweep.plan import Candidate, Skipped

Status = Literal["measured", "failed", "interrupted", "not launched", "skipped"]


class CandidateResult(BaseModel):
    """What running one candidate came to (sent back from the process that ran it)."""

    name: str
    runs: list[BenchRun] = Field(default_factory=list)
    provider: str | None = None
    offer: str | None = Field(default=None, description="the offer launched (a fallback after a capacity error)")
    gpu: str | None = None
    gpu_count: int | None = None
    price_per_hour: float | None = None
    cost_usd: float | None = Field(default=None, description="what it cost, from launch to teardown")
    error: str | None = None
    interrupted: bool = False


class SweepRow(BaseModel):
    """One candidate of ``gpuctl bench --sweep``: the measurement at the SLO beside the estimate."""

    label: str = Field(description="the GPU asked for")
    name: str | None = Field(description="its deployment (None: never launched)")
    status: Status
    provider: str | None = None
    gpu: str | None = None
    gpu_count: int | None = None
    offer: str | None = None
    price_per_hour: float | None = None
    concurrency: int | None = Field(default=None, description="the load of the run shown")
    output_tokens_per_s: float | None = None
    ttft_p50_ms: float | None = None
    itl_p50_ms: float | None = None
    usd_per_1m_output_tokens: float | None = Field(default=None, description="measured")
    meets_slo: bool | None = Field(default=None, description="whether the measured medians meet --slo")
    estimate: Estimate | None = Field(default=None, description="at the load of the run shown, else the best load")
    estimated_usd_per_1m_output_tokens: float | None = None
    cost_usd: float | None = Field(default=None, description="what measuring it cost")
    detail: str | None = Field(default=None, description="why there is no measurement")
    run: BenchRun | None = Field(default=None, description="the run shown, as 'gpuctl bench --json' prints it")


def meets(run: BenchRun, slo: Slo | None) -> bool | None:
    """Whether ``run``'s medians meet ``slo`` (None without one)."""
    if slo is None:
        return None
    ttft = run.ttft_ms.p50 if run.ttft_ms else None
    itl = run.itl_ms.p50 if run.itl_ms else None
    return ((slo.ttft_ms is None or (ttft is not None and ttft <= slo.ttft_ms))
            and (slo.itl_ms is None or (itl is not None and itl <= slo.itl_ms)))


def best_run(runs: list[BenchRun], slo: Slo | None) -> BenchRun | None:
    """The cheapest run per output token among those meeting ``slo``, else the cheapest; None without any."""
    usable = [r for r in runs if r.requests_ok > 0]
    if not usable:
        return None
    return min(usable, key=lambda r: (meets(r, slo) is False, r.cost_per_1m_output_tokens is None,
                                      r.cost_per_1m_output_tokens or 0.0, -r.output_tokens_per_s))


def planned_row(candidate: Candidate, detail: str | None = None) -> SweepRow:
    """The row of a candidate before (or without) running it: its offer and its estimate, at its one bench load
    (at the best load, which chose the offer, when it is benched at several)."""
    offer = candidate.plan.offer
    estimate = candidate.estimates[0] if len(candidate.estimates) == 1 else candidate.estimate
    return SweepRow(label=candidate.label, name=candidate.name, status="not launched", provider=offer.provider,
                    gpu=offer.gpu, gpu_count=offer.gpu_count, offer=offer.id, price_per_hour=offer.price_per_hour,
                    estimate=estimate,
                    estimated_usd_per_1m_output_tokens=usd_per_1m_output_tokens(estimate, offer.price_per_hour),
                    detail=detail)


def sweep_rows(candidates: Sequence[Candidate], skipped: Sequence[Skipped], results: Mapping[str, CandidateResult],
               not_launched: Mapping[str, str], slo: Slo | None) -> list[SweepRow]:
    """The sweep's table, ranked: every candidate (measured or why not), then the GPUs without one."""
    rows = []
    for candidate in candidates:
        row = planned_row(candidate, not_launched.get(candidate.name))
        result = results.get(candidate.name)
        rows.append(measured_row(row, result, slo, candidate.estimates) if result is not None else row)
    rows += [SweepRow(label=s.label, name=None, status="skipped", detail=s.reason) for s in skipped]
    return ranked(rows)


def measured_row(row: SweepRow, result: CandidateResult, slo: Slo | None,
                 estimates: Sequence[Estimate] = ()) -> SweepRow:
    """``row`` (the planned candidate) with what running it came to, beside the estimate at the load measured
    (one of ``estimates``, when it has that load)."""
    run = best_run(result.runs, slo)
    status: Status = "measured" if run is not None else ("interrupted" if result.interrupted else "failed")
    update: dict[str, object] = {
        "status": status, "provider": result.provider or row.provider, "gpu": result.gpu or row.gpu,
        "gpu_count": result.gpu_count or row.gpu_count, "offer": result.offer or row.offer,
        "price_per_hour": result.price_per_hour if result.price_per_hour is not None else row.price_per_hour,
        "cost_usd": result.cost_usd, "detail": result.error,
    }
    if run is not None:
        update.update(concurrency=run.concurrency, output_tokens_per_s=run.output_tokens_per_s,
                      ttft_p50_ms=run.ttft_ms.p50 if run.ttft_ms else None,
                      itl_p50_ms=run.itl_ms.p50 if run.itl_ms else None,
                      usd_per_1m_output_tokens=run.cost_per_1m_output_tokens, meets_slo=meets(run, slo), run=run)
        at = next((e for e in estimates if e.inputs.concurrency == run.concurrency), None)
        price = update["price_per_hour"]
        if at is not None:
            update.update(estimate=at, estimated_usd_per_1m_output_tokens=usd_per_1m_output_tokens(at, price)
                          if isinstance(price, float | int) else None)
    return row.model_copy(update=update)


_ORDER = {"measured": 0, "failed": 1, "interrupted": 2, "not launched": 3, "skipped": 4}


def ranked(rows: list[SweepRow]) -> list[SweepRow]:
    """Measured rows meeting the SLO (cheapest per token first), then those missing it, then the rest."""
    return sorted(rows, key=lambda r: (_ORDER[r.status], r.meets_slo is False, r.usd_per_1m_output_tokens is None,
                                       r.usd_per_1m_output_tokens or 0.0, r.label))
