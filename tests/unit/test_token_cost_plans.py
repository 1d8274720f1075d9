"""Choosing an offer by token cost (``up --optimize token-cost``) and under latency targets (``--slo``)."""

from __future__ import annotations

import pytest

from gpuctl.errors import NoCapacityError
from gpuctl.perf.cost import Slo, parse_slo
from gpuctl.perf.offers import Estimator, Serving
from gpuctl.plan import PlanRequest, build_plan, ranked_offers
from gpuctl.recipes import RecipeBook
from tests.unit.test_fit_offers import offer

BOOK = RecipeBook()
LLAMA = BOOK.get("llama-3.1-8b")
# per hour the L40S is cheapest; per token at full load the H100 is close, and only it is quick enough for tight ITLs
OFFERS = [offer("L40S", 48, 1, 0.79), offer("H100-SXM", 80, 1, 2.69), offer("A100-80GB-SXM", 80, 1, 1.39)]


def request(**changes: object) -> PlanRequest:
    return PlanRequest(model=LLAMA.name, **changes)  # type: ignore[arg-type]


def itl_at_max(gpu: str) -> float:
    found = Estimator(LLAMA, Serving(concurrency="max")).at(gpu, 1)
    assert found is not None
    return found.itl_ms


def test_by_price_the_cheapest_hour_wins_and_the_plan_has_no_choice_to_explain() -> None:
    plan = build_plan(request(), LLAMA, OFFERS, hf_token_present=True)
    assert plan.offer.gpu == "L40S" and plan.choice is None


def test_token_cost_ranks_by_dollars_per_token_and_says_why() -> None:
    serving = Serving(input_tokens=1024, output_tokens=256)
    ranked, _ = ranked_offers(LLAMA, OFFERS, request(optimize="token-cost", load=serving))
    estimator = Estimator(LLAMA, serving)
    costs = [estimator.offer(o).usd_per_1m_output_tokens for o, _ in ranked]
    assert costs == sorted(costs)  # type: ignore[type-var]
    plan = build_plan(request(optimize="token-cost", load=serving), LLAMA, OFFERS, hf_token_present=True)
    assert plan.choice is not None and plan.choice.optimize == "token-cost"
    assert plan.offer.id == ranked[0][0].id == plan.choice.chosen.offer
    assert plan.choice.cheapest_hour.offer == OFFERS[0].id
    if plan.offer.gpu == "L40S":
        assert plan.choice.reason.startswith("the cheapest hour is also the cheapest token")
    else:
        assert "cheaper per token than the cheapest hour" in plan.choice.reason


def test_an_slo_the_cheapest_hour_misses_moves_the_choice_and_the_plan_says_so() -> None:
    target = (itl_at_max("H100-SXM") + itl_at_max("L40S")) / 2
    # even one request at a time on the L40S is slower than this: it cannot meet the target at all
    slo = Slo(itl_ms=min(target, Estimator(LLAMA, Serving(concurrency=1)).at("L40S", 1).itl_ms * 0.9))  # type: ignore[union-attr]
    plan = build_plan(request(optimize="token-cost", load=Serving(slo=slo)), LLAMA, OFFERS, hf_token_present=True)
    assert plan.offer.gpu != "L40S"
    assert plan.choice is not None and plan.choice.cheapest_hour.meets_slo is False
    assert plan.choice.reason.startswith(f"the cheapest hour (p 1 x L40S, $0.79/h) misses itl<={slo.itl_ms:g}ms")
    assert plan.choice.chosen.estimate is not None and plan.choice.chosen.estimate.itl_ms <= slo.itl_ms
    # by price, the SLO still filters: the cheapest hour that meets it
    by_price = build_plan(request(load=Serving(slo=slo)), LLAMA, OFFERS, hf_token_present=True)
    assert by_price.offer.gpu == "A100-80GB-SXM"
    assert by_price.choice is not None and by_price.choice.optimize == "price"


def test_an_slo_nothing_meets_is_no_capacity_naming_the_quickest() -> None:
    with pytest.raises(NoCapacityError, match=r"none of the 3 offers that fit meets ttft<=1ms by its estimate "
                                              r"\(the quickest, p 1 x H100-SXM"):
        ranked_offers(LLAMA, OFFERS, request(optimize="token-cost", load=Serving(slo=Slo(ttft_ms=1))))


def test_the_best_load_is_the_largest_that_meets_the_slo() -> None:
    loose = Estimator(LLAMA, Serving()).at("L40S", 1)
    assert loose is not None and loose.inputs.concurrency == loose.max_concurrency
    slo = Slo(itl_ms=loose.itl_ms / 2)
    tight = Estimator(LLAMA, Serving(slo=slo)).at("L40S", 1)
    assert tight is not None and tight.itl_ms <= slo.itl_ms  # type: ignore[operator]
    one_more = Estimator(LLAMA, Serving(concurrency=tight.inputs.concurrency + 1)).at("L40S", 1)
    assert one_more is not None and one_more.itl_ms > slo.itl_ms  # type: ignore[operator]
    fixed = Estimator(LLAMA, Serving(concurrency=4, slo=slo)).at("L40S", 1)
    assert fixed is not None and fixed.inputs.concurrency == 4, "a given concurrency is never changed"
    assert Estimator(LLAMA, Serving()).at("T4", 1) is None, "does not fit: no estimate"


@pytest.mark.parametrize(("text", "expected"), [
    ("ttft=500,itl=50", Slo(ttft_ms=500, itl_ms=50)),
    ("itl=40ms", Slo(itl_ms=40)),
    ("TPOT=30", Slo(itl_ms=30)),
])
def test_slo_parsing(text: str, expected: Slo) -> None:
    assert parse_slo(text) == expected


@pytest.mark.parametrize("text", ["", "ttft", "p99=5", "ttft=-1", "itl=abc"])
def test_bad_slos(text: str) -> None:
    with pytest.raises(ValueError):
        parse_slo(text)
