"""Estimates where users choose: ``fit`` rows, ``prices --for`` columns, ``--sort cost-per-token``, ``--slo``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import pytest
from click.testing import Result

from gpuctl.models.bench import BenchRecord, BenchRun, LatencyStats
from gpuctl.perf.estimate import Workload, estimate
from gpuctl.perf.history import model_family
from gpuctl.plugins import ProviderRegistry
from gpuctl.recipes import resolve_model
from gpuctl.state import StateStore
from tests.cli.test_prices import use_registry
from tests.unit.pricing_fakes import fake_provider, offer, registry

Gpuctl = Callable[..., Result]

# an L40S is a third of an H100's hourly price, and well under a third of its speed at large loads
OFFERS = [
    offer("alpha", "L40S", 1, 0.79, availability="high", instance_type="l40s"),
    offer("alpha", "H100-SXM", 1, 2.69, availability="high", instance_type="h100"),
    offer("alpha", "A100-80GB-SXM", 1, 1.39, availability="high", instance_type="a100"),
    offer("alpha", "T4", 1, 0.20, availability="high", instance_type="t4"),  # too small for an 8B model
]


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> ProviderRegistry:
    reg = registry(fake_provider("alpha", OFFERS))
    use_registry(monkeypatch, reg)
    return reg


def rows(result: Result) -> list[dict]:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_fit_rows_carry_an_estimate_and_the_cost_per_token_at_a_known_price(gpuctl: Gpuctl, fakes) -> None:
    unpriced = rows(gpuctl("fit", "llama-3.1-8b", "--gpu", "l40s", "--count", "1", "--json"))
    assert unpriced[0]["estimate"] and unpriced[0]["price_per_hour"] is None, "fit asks no provider"
    assert gpuctl("prices").exit_code == 0  # now the answer is cached: a price is known here
    found = rows(gpuctl("fit", "llama-3.1-8b", "--gpu", "l40s", "--gpu", "h100-pcie", "--count", "1",
                        "--input-len", "512", "--output-len", "128", "--concurrency", "16", "--json"))
    l40s, pcie = found
    est = l40s["estimate"]
    assert {"output_tokens_per_s", "ttft_ms", "itl_ms", "max_concurrency", "basis"} <= set(est)
    assert (est["basis"], est["runs"], est["inputs"]["concurrency"]) == ("model", None, 16)
    assert est["inputs"]["workload"] == {"input_tokens": 512, "output_tokens": 128, "concurrency": 16}
    expected = estimate(resolve_model("llama-3.1-8b", None), "L40S", workload=Workload(
        input_tokens=512, output_tokens=128, concurrency=16))
    assert est["output_tokens_per_s"] == expected.output_tokens_per_s
    assert (l40s["offer"], l40s["price_per_hour"]) == ("alpha:l40s:r1", 0.79)
    assert l40s["usd_per_1m_output_tokens"] == pytest.approx(0.79 / (expected.output_tokens_per_s * 3600) * 1e6,
                                                             rel=1e-3)
    assert pcie["estimate"] is not None and pcie["price_per_hour"] is None, "no H100 PCIe offer is known here"
    assert pcie["usd_per_1m_output_tokens"] is None


def test_fit_without_a_fit_has_no_estimate_and_the_table_shows_the_figures(gpuctl: Gpuctl, fakes) -> None:
    (t4,) = rows(gpuctl("fit", "llama-3.1-70b", "--gpu", "t4", "--count", "1", "--json"))
    assert (t4["fits"], t4["estimate"], t4["usd_per_1m_output_tokens"]) == (False, None, None)
    table = gpuctl("fit", "llama-3.1-8b", "--gpu", "l40s", "--count", "1", env={"COLUMNS": "250"})
    header, _, line = table.stdout.splitlines()[:3]
    for column in ("TOK/S", "TTFT MS", "ITL MS", "$/1M OUT", "BASIS"):
        assert column in header
    assert "model" in line
    assert "estimates: 1024/256 tokens, vllm, at the best load" in table.stderr


def test_fit_with_tgi_warns_that_it_is_archived(gpuctl: Gpuctl, fakes) -> None:
    result = gpuctl("fit", "llama-3.1-8b", "--gpu", "l40s", "--count", "1", "--engine", "tgi", "--json")
    assert result.exit_code == 0
    assert "TGI is archived" in result.stderr and "2026-03-21" in result.stderr
    assert "archived" not in gpuctl("fit", "llama-3.1-8b", "--gpu", "l40s", "--engine", "sglang").stderr


def test_prices_for_a_model_estimate_every_offer_and_sort_by_cost_per_token(gpuctl: Gpuctl, fakes) -> None:
    by_hour = rows(gpuctl("prices", "--for", "llama-3.1-8b", "--json"))
    assert [r["gpu"] for r in by_hour] == ["L40S", "A100-80GB-SXM", "H100-SXM"], "T4 cannot serve it"
    assert all(r["estimate"]["inputs"]["concurrency"] == r["estimate"]["max_concurrency"] for r in by_hour)
    by_token = rows(gpuctl("prices", "--for", "llama-3.1-8b", "--sort", "cost-per-token", "--json"))
    costs = [r["usd_per_1m_output_tokens"] for r in by_token]
    assert costs == sorted(costs) and len(costs) == 3
    assert [r["meets_slo"] for r in by_token] == [None] * 3
    first = gpuctl("prices", "--for", "llama-3.1-8b", "--sort", "cost-per-token", "-q")
    assert first.stdout.strip() == by_token[0]["id"]
    limited = rows(gpuctl("prices", "--for", "llama-3.1-8b", "--sort", "cost-per-token", "--limit", "1", "--json"))
    assert [r["id"] for r in limited] == [by_token[0]["id"]]


def test_an_slo_drops_offers_and_picks_the_largest_load_that_meets_it(gpuctl: Gpuctl, fakes) -> None:
    loose = rows(gpuctl("prices", "--for", "llama-3.1-8b", "--json"))
    itl = {r["gpu"]: r["estimate"]["itl_ms"] for r in loose}
    target = (itl["H100-SXM"] + itl["L40S"]) / 2  # the H100 meets it at max load, the L40S only at a lower one
    result = gpuctl("prices", "--for", "llama-3.1-8b", "--slo", f"itl={target:.1f}", "--json")
    kept = {r["gpu"]: r for r in rows(result)}
    assert all(r["meets_slo"] and r["estimate"]["itl_ms"] <= target for r in kept.values())
    assert kept["H100-SXM"]["estimate"]["inputs"]["concurrency"] == kept["H100-SXM"]["estimate"]["max_concurrency"]
    l40s = kept["L40S"]["estimate"]
    assert l40s["inputs"]["concurrency"] < l40s["max_concurrency"], "the L40S runs fewer requests to meet it"
    strict = gpuctl("prices", "--for", "llama-3.1-8b", "--slo", "ttft=1", "--json")
    assert rows(strict) == [] and "3 offer(s) dropped: their estimate misses ttft<=1ms" in strict.stderr


def test_prices_csv_and_table_with_estimates(gpuctl: Gpuctl, fakes) -> None:
    text = gpuctl("prices", "--for", "llama-3.1-8b", "--csv").stdout
    records = list(csv.DictReader(io.StringIO(text)))
    assert {"output_tokens_per_s", "ttft_ms", "itl_ms", "concurrency", "basis", "usd_per_1m_output_tokens"} <= set(
        records[0])
    assert records[0]["basis"] == "model" and float(records[0]["usd_per_1m_output_tokens"]) > 0
    table = gpuctl("prices", "--for", "llama-3.1-8b", "--sort", "cost-per-token", env={"COLUMNS": "250"})
    header = table.stdout.splitlines()[0]
    for column in ("TOK/S", "$/1M OUT", "BASIS", "AVAILABILITY"):
        assert column in header
    assert "estimates: 1024/256 tokens, vllm, at the best load" in table.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--sort", "cost-per-token"], "--sort cost-per-token estimate(s) serving a model: add --for MODEL"),
    (["--slo", "ttft=500"], "--slo estimate(s) serving a model"),
    (["--for", "llama-3.1-8b", "--slo", "p99=5"], "is not KEY=MS with KEY one of ttft, itl"),
    (["--for", "llama-3.1-8b", "--concurrency", "0"], "'0' is not a positive number or 'max'"),
])
def test_estimate_options_errors(gpuctl: Gpuctl, fakes, args: list[str], message: str) -> None:
    result = gpuctl("prices", *args)
    assert result.exit_code == 2 and message in result.stderr


def _record(gpu: str, measured_tps: float, ttft: float, itl: float, *, concurrency: int = 8,
            failed: int = 0) -> BenchRecord:
    recipe = resolve_model("llama-3.1-8b", None)
    modelled = estimate(recipe, gpu, workload=Workload(input_tokens=128, output_tokens=128, concurrency=concurrency))
    stats = lambda v: LatencyStats(mean=v, p50=v, p90=v, p99=v)  # noqa: E731
    run = BenchRun(concurrency=concurrency, rate=None, requests_ok=50, requests_failed=failed, duration_s=10,
                   ttft_ms=stats(ttft), itl_ms=stats(itl), tpot_ms=stats(itl), e2e_ms=stats(1000),
                   output_tokens_per_s=measured_tps, total_tokens_per_s=2 * measured_tps, requests_per_s=1,
                   cost_per_1m_output_tokens=None, cost_per_1m_total_tokens=None, goodput_requests_per_s=None,
                   client_saturated=False)
    return BenchRecord(deployment="d", model=recipe.repo, gpu=gpu, gpu_count=1, input_len=128, output_len=128,
                       recipe=recipe.name, engine="vllm", family=model_family(recipe.architecture),
                       estimate=modelled, run=run)


def test_bench_history_corrects_estimates_for_the_same_gpu_engine_and_family(gpuctl: Gpuctl, fakes,
                                                                              isolated) -> None:
    base = {r["gpu"]: r["estimate"] for r in rows(gpuctl("prices", "--for", "llama-3.1-8b", "--json"))}
    measured = _record("L40S", 1.0, 1.0, 1.0)
    assert measured.estimate is not None
    half = _record("L40S", measured.estimate.output_tokens_per_s / 2, measured.estimate.ttft_ms * 3,
                   measured.estimate.itl_ms * 2)
    failed = _record("L40S", 1.0, 1.0, 1.0, failed=3)  # a run with failures teaches nothing
    with StateStore(isolated).transaction() as state:
        state.bench_runs.extend([half, half, failed])
    learned = {r["gpu"]: r["estimate"] for r in rows(gpuctl("prices", "--for", "llama-3.1-8b", "--json"))}
    l40s = learned["L40S"]
    assert (l40s["basis"], l40s["runs"]) == ("measured", 2)
    assert l40s["correction"]["output_tokens_per_s"] == pytest.approx(0.5, rel=1e-3)
    assert l40s["output_tokens_per_s"] == pytest.approx(base["L40S"]["output_tokens_per_s"] / 2, rel=1e-3)
    assert l40s["itl_ms"] == pytest.approx(base["L40S"]["itl_ms"] * 2, rel=1e-3)
    assert l40s["ttft_ms"] == pytest.approx(base["L40S"]["ttft_ms"] * 3, rel=1e-3)
    assert learned["H100-SXM"] == base["H100-SXM"], "another GPU learns nothing from the L40S"
    other_engine = rows(gpuctl("prices", "--for", "llama-3.1-8b", "--engine", "sglang", "--json"))
    assert {r["estimate"]["basis"] for r in other_engine} == {"model"}
    table = gpuctl("fit", "llama-3.1-8b", "--gpu", "l40s", "--count", "1", env={"COLUMNS": "250"})
    assert "measured x2" in table.stdout


def test_up_can_choose_the_cheapest_token_meeting_an_slo_and_says_why(gpuctl: Gpuctl, fake_cloud) -> None:
    from tests.fakehost.cloud import make_offer

    for kind, gpu, price in (("l40s", "L40S", 0.79), ("h100", "H100-SXM", 2.69), ("a100", "A100-80GB-SXM", 1.39)):
        fake_cloud.add_offer(make_offer("fakecloud", kind, price, gpu))
    by_hour = json.loads(gpuctl("up", "llama-3.1-8b", "--dry-run", "--json").stdout)
    assert by_hour["offer"]["gpu"] == "L40S" and by_hour["choice"] is None
    loose = {r["gpu"]: r["estimate"]["itl_ms"] for r in rows(gpuctl("prices", "--for", "llama-3.1-8b", "--json"))}
    one_at_a_time = rows(gpuctl("prices", "--for", "llama-3.1-8b", "--concurrency", "1", "--json"))
    l40s_fastest = next(r["estimate"]["itl_ms"] for r in one_at_a_time if r["gpu"] == "L40S")
    target = min((loose["H100-SXM"] + loose["L40S"]) / 2, l40s_fastest * 0.9)  # the L40S cannot meet it at all
    result = gpuctl("up", "llama-3.1-8b", "--optimize", "token-cost", "--slo", f"itl={target:.2f}", "--dry-run",
                    "--json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    choice = plan["choice"]
    assert plan["offer"]["gpu"] != "L40S" and choice["chosen"]["offer"] == plan["offer"]["id"]
    assert choice["optimize"] == "token-cost" and choice["cheapest_hour"]["offer"] == "fakecloud:l40s:fake-east-1"
    assert choice["cheapest_hour"]["meets_slo"] is False and choice["reason"].startswith(
        "the cheapest hour (fakecloud 1 x L40S, $0.79/h) misses itl<=")
    assert choice["chosen"]["estimate"]["itl_ms"] <= target
    human = gpuctl("up", "llama-3.1-8b", "--optimize", "token-cost", "--slo", f"itl={target:.2f}", "--dry-run",
                   env={"COLUMNS": "200"})
    assert "  choice   fakecloud 1 x " in human.stdout and "misses itl<=" in human.stdout
    none = gpuctl("up", "llama-3.1-8b", "--slo", "ttft=1", "--dry-run")
    assert none.exit_code == 5 and "meets ttft<=1ms by its estimate" in none.stderr
