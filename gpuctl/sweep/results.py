"""The sweep's answer: one row per candidate, ranked by measured dollars per million output tokens at the SLO.

A candidate benched at several loads (``-c 8,32,128``) is represented by its best run: the cheapest
per token among those whose medians meet the SLO (TTFT p50, ITL p50), else the cheapest. Rows whose
measurement meets the SLO come first, cheapest per token first; then those that miss it; then the
candidates without a measurement (failed, interrupted, not launched for the budget, skipped).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gpuctl.models.bench import BenchRun
from gpuctl.perf.cost import Slo
from gpuctl.perf.estimate import Estimate

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
    estimate: Estimate | None = None
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


def measured_row(row: SweepRow, result: CandidateResult, slo: Slo | None) -> SweepRow:
    """``row`` (the planned candidate) with what running it came to."""
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
    return row.model_copy(update=update)


_ORDER = {"measured": 0, "failed": 1, "interrupted": 2, "not launched": 3, "skipped": 4}


def ranked(rows: list[SweepRow]) -> list[SweepRow]:
    """Measured rows meeting the SLO (cheapest per token first), then those missing it, then the rest."""
    return sorted(rows, key=lambda r: (_ORDER[r.status], r.meets_slo is False, r.usd_per_1m_output_tokens is None,
                                       r.usd_per_1m_output_tokens or 0.0, r.label))
