"""The measured sweep's plan and results, before anything is rented: candidates, loads, TTLs, cost, ranking."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuctl.catalog import resolve_gpu
from gpuctl.deploy.context import DeployContext
from gpuctl.models.bench import BenchRun, LatencyStats
from gpuctl.perf.cost import Slo
from gpuctl.perf.offers import Serving
from gpuctl.plan import PlanInputs
from gpuctl.recipes import resolve_model
from gpuctl.state import StateStore
from gpuctl.sweep.plan import MIN_REQUESTS, MIN_TTL_S, SweepRequest, plan_sweep
from gpuctl.sweep.results import CandidateResult, SweepRow, best_run, measured_row, ranked
from tests.fakehost.cloud import make_offer, registry

LLAMA = resolve_model("llama-3.1-8b")
OFFERS = [make_offer("fakecloud", "l40s-1", 0.79, "L40S"), make_offer("fakecloud", "l40s-2", 0.99, "L40S"),
          make_offer("fakecloud", "h100-1", 2.69, "H100-SXM"), make_offer("fakecloud", "a100-1", 1.39, "A100-80GB-SXM")]


@pytest.fixture
def ctx(isolated: Path) -> DeployContext:
    return DeployContext(store=StateStore(isolated), registry=registry())


def plan(ctx: DeployContext, gpus: tuple[str, ...] = ("l40s", "h100", "a100"), **changes: object):
    fields = {"load": Serving(input_tokens=512, output_tokens=128), **changes}
    request = SweepRequest(model=LLAMA.name, gpus=[resolve_gpu(g) for g in gpus], **fields)  # type: ignore[arg-type]
    return plan_sweep(ctx, request, PlanInputs(recipe=LLAMA, offers=OFFERS, hf_token_present=True))


def test_one_candidate_per_gpu_with_its_best_load_a_ttl_and_its_cost(ctx: DeployContext) -> None:
    sweep = plan(ctx)
    assert [c.label for c in sweep.candidates] == ["L40S", "H100", "A100"]
    l40s = sweep.candidates[0]
    assert l40s.plan.offer.instance_type == "l40s-1" and [p.offer.instance_type for p in l40s.plans] == [
        "l40s-1", "l40s-2"], "the dearer L40S is the fallback on a capacity error"
    assert l40s.concurrency == [l40s.estimate.inputs.concurrency] == [l40s.estimate.max_concurrency]
    assert l40s.requests == max(MIN_REQUESTS, 4 * l40s.concurrency[0])
    assert all(p.ttl_seconds and p.ttl_seconds >= MIN_TTL_S for c in sweep.candidates for p in c.plans)
    assert l40s.cost_usd == pytest.approx(0.79 * l40s.seconds / 3600, abs=0.01)
    assert sweep.estimated_cost_usd == pytest.approx(sum(c.cost_usd for c in sweep.candidates), abs=0.01)
    assert len({c.name for c in sweep.candidates}) == 3 and l40s.name.startswith("llama-3-1-8b-sweep-l40s-")


def test_given_loads_and_requests_and_a_gpu_without_offers(ctx: DeployContext) -> None:
    sweep = plan(ctx, ("l40s", "h200"), concurrency=[4, 16], requests=30)
    (only,) = sweep.candidates
    assert (only.concurrency, only.requests) == ([4, 16], 30)
    assert [(s.label, "no available offer" in s.reason) for s in sweep.skipped] == [("H200", True)]


def test_each_bench_load_has_its_estimate_and_the_row_shows_the_one_measured(ctx: DeployContext) -> None:
    from gpuctl.sweep.results import sweep_rows

    sweep = plan(ctx, ("l40s",), concurrency=[4, 16], requests=30)
    (only,) = sweep.candidates
    assert [e.inputs.concurrency for e in only.estimates] == [4, 16]
    assert only.estimates[0].output_tokens_per_s < only.estimates[1].output_tokens_per_s < (
        only.estimate.output_tokens_per_s), "the best load (max) is the fastest"
    result = CandidateResult(name=only.name, runs=[_run(4, 100, 50, 20, 3.0), _run(16, 300, 80, 40, 1.0)],
                             price_per_hour=0.79)
    (row,) = sweep_rows(sweep.candidates, [], {only.name: result}, {}, None)
    assert row.concurrency == 16 and row.estimate == only.estimates[1]
    assert row.estimated_usd_per_1m_output_tokens == pytest.approx(
        0.79 / 3600 / only.estimates[1].output_tokens_per_s * 1e6, rel=1e-3)
    (planned,) = sweep_rows(sweep.candidates, [], {}, {only.name: "not launched"}, None)
    assert planned.estimate == only.estimate and planned.detail == "not launched", "two loads: the best one"
    single = plan(ctx, ("l40s",), concurrency=[4], requests=30).candidates
    (unmeasured,) = sweep_rows(single, [], {}, {}, None)
    assert unmeasured.estimate == single[0].estimates[0] and unmeasured.estimate.inputs.concurrency == 4


def test_the_plan_marks_every_candidate_from_the_first_over_the_budget(ctx: DeployContext) -> None:
    from gpuctl.cli.sweep import plan_text

    sweep = plan(ctx, ("h100", "l40s"))
    h100, l40s = sweep.candidates
    assert l40s.cost_usd < h100.cost_usd
    text = plan_text(sweep.model_copy(update={"budget_usd": l40s.cost_usd}))
    assert text.count("(over the budget: launched only if those before cost less than estimated)") == 2


def test_an_slo_picks_the_load_and_can_rule_a_gpu_out(ctx: DeployContext) -> None:
    sweep = plan(ctx, load=Serving(input_tokens=512, output_tokens=128, slo=Slo(itl_ms=12)))
    for candidate in sweep.candidates:
        assert candidate.estimate.itl_ms <= 12
    assert "L40S" in {s.label for s in sweep.skipped}, "no load on an L40S decodes an 8B model in 12 ms a token"


def _run(concurrency: int, tps: float, ttft: float, itl: float, cost: float) -> BenchRun:
    stats = lambda v: LatencyStats(mean=v, p50=v, p90=v, p99=v)  # noqa: E731
    return BenchRun(concurrency=concurrency, rate=None, requests_ok=10, requests_failed=0, duration_s=1,
                    ttft_ms=stats(ttft), itl_ms=stats(itl), tpot_ms=stats(itl), e2e_ms=stats(100),
                    output_tokens_per_s=tps, total_tokens_per_s=tps, requests_per_s=1,
                    cost_per_1m_output_tokens=cost, cost_per_1m_total_tokens=cost, goodput_requests_per_s=None,
                    client_saturated=False)


def test_a_candidate_is_shown_at_its_cheapest_load_meeting_the_slo() -> None:
    runs = [_run(4, 100, 50, 20, 3.0), _run(16, 300, 80, 40, 1.0), _run(64, 600, 200, 90, 0.5)]
    assert best_run(runs, None) is runs[2]
    assert best_run(runs, Slo(itl_ms=50)) is runs[1]
    assert best_run(runs, Slo(itl_ms=10)) is runs[2], "none meets it: the cheapest, marked as missing"
    row = measured_row(SweepRow(label="l40s", name="x", status="not launched"),
                       CandidateResult(name="x", runs=runs, gpu="L40S", provider="p", cost_usd=0.12),
                       Slo(itl_ms=50))
    assert (row.status, row.concurrency, row.meets_slo, row.usd_per_1m_output_tokens, row.cost_usd) == (
        "measured", 16, True, 1.0, 0.12)


def test_rows_rank_by_measured_cost_per_token_meeting_the_slo_first() -> None:
    def row(label: str, status: str, cost: float | None = None, meets: bool | None = None) -> SweepRow:
        return SweepRow(label=label, name=label, status=status, usd_per_1m_output_tokens=cost,  # type: ignore[arg-type]
                        meets_slo=meets)

    rows = [row("a", "measured", 0.5, False), row("b", "failed"), row("c", "measured", 0.9, True),
            row("d", "not launched"), row("e", "measured", 0.7, True), row("f", "interrupted")]
    assert [r.label for r in ranked(rows)] == ["e", "c", "a", "b", "f", "d"]
