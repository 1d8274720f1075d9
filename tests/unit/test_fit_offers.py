"""Choosing an offer for a model: fit first, then price, then stock; and the plan built on it."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from gpuctl.errors import NoCapacityError, UsageError
from gpuctl.fit import fitting_offers, offer_fits
from gpuctl.models.offer import Offer
from gpuctl.plan import PlanRequest, build_plan, choose_offer
from gpuctl.recipes import RecipeBook

BOOK = RecipeBook()
AS_OF = datetime(2026, 11, 1, tzinfo=timezone.utc)


def offer(gpu: str, vram: float, count: int, price: float, availability: str = "high", **extra: object) -> Offer:
    return Offer(provider=str(extra.pop("provider", "p")), gpu=gpu, gpu_count=count, vram_gb=vram, region="r",
                 price_per_hour=price, price_per_gpu_hour=price / count, availability=availability,  # type: ignore[arg-type]
                 instance_type=f"{gpu}x{count}", source=str(extra.pop("source", "live")), as_of=AS_OF,  # type: ignore[arg-type]
                 **extra)  # type: ignore[arg-type]


OFFERS = [
    offer("RTX-4090", 24, 1, 0.30),           # too small for a 70B model
    offer("H100-SXM", 80, 2, 5.00),           # weights do not leave room at 0.9
    offer("L40S", 48, 4, 4.00, "none"),       # fits, but sold out
    offer("L40S", 48, 4, 4.20, "low"),        # fits
    offer("A100-80GB-SXM", 80, 4, 4.20, "high"),  # fits, same price, better stock
    offer("H100-SXM", 80, 8, 20.0),           # fits, dearer
]


def test_offer_fits_and_fitting_offers() -> None:
    recipe = BOOK.get("llama-3.1-70b")
    assert [o.instance_type for o in fitting_offers(recipe, OFFERS)] == ["L40Sx4", "L40Sx4", "A100-80GB-SXMx4",
                                                                        "H100-SXMx8"]
    assert offer_fits(BOOK.get("llama-3-8b"), OFFERS[0])
    assert not offer_fits(BOOK.get("llama-3.1-8b"), OFFERS[0], context=65536)


def test_the_cheapest_fitting_available_offer_wins_ties_by_stock() -> None:
    chosen, row, fitting = choose_offer(BOOK.get("llama-3.1-70b"), OFFERS, PlanRequest(model="llama-3.1-70b"))
    assert (chosen.gpu, chosen.price_per_hour, chosen.availability) == ("A100-80GB-SXM", 4.20, "high")
    assert row.fits and row.gpu_count == 4
    assert fitting == 3


def test_max_price_and_nothing_fitting_are_no_capacity() -> None:
    recipe = BOOK.get("llama-3.1-70b")
    with pytest.raises(NoCapacityError, match=r"costs \$4\.20/h, above --max-price \$4\.00/h"):
        choose_offer(recipe, OFFERS, PlanRequest(model=recipe.name, max_price=4.0))
    with pytest.raises(NoCapacityError, match="none of 2 offers"):
        choose_offer(recipe, OFFERS[:2], PlanRequest(model=recipe.name))
    with pytest.raises(NoCapacityError, match="no available offer"):
        choose_offer(recipe, [OFFERS[2]], PlanRequest(model=recipe.name))


def test_named_hardware_that_cannot_fit_is_a_usage_error_even_without_offers() -> None:
    with pytest.raises(UsageError, match="does not fit on 2 x H100-SXM"):
        choose_offer(BOOK.get("llama-3.1-70b"), [], PlanRequest(model="llama-3.1-70b", gpu="H100-SXM", count=2))


def test_a_named_family_fails_only_when_none_of_its_skus_fits() -> None:
    recipe = BOOK.get("llama-3.1-70b")
    with pytest.raises(UsageError, match="does not fit on 1 x H100 at"):
        choose_offer(recipe, [], PlanRequest(model=recipe.name, gpu="H100", count=1))
    nvl = offer("H100-NVL", 94, 2, 5.0)  # 2 x 94 GB holds the 70B weights where 2 x 80 GB does not
    chosen, _, _ = choose_offer(recipe, [nvl], PlanRequest(model=recipe.name, gpu="H100", count=2))
    assert chosen.gpu == "H100-NVL"
    assert PlanRequest(model=recipe.name, gpu="H100").offer_query().gpus == ["H100-SXM", "H100-PCIE", "H100-NVL"]


def test_build_plan_is_complete_and_redacted() -> None:
    recipe = BOOK.get("qwen2.5-7b")
    plan = build_plan(PlanRequest(model=recipe.name, ttl_seconds=5400, public=True), recipe, OFFERS,
                      hf_token_present=False, warnings=["runpod: timed out"])
    assert plan.offer.gpu == "RTX-4090" and plan.estimated_cost_usd == 0.45
    assert plan.hf_token == "not needed"
    assert plan.engine.secret_env == ["VLLM_API_KEY"]
    assert plan.environment["VLLM_API_KEY"] == "<secret: generated at launch>"
    assert plan.command == plan.engine.command_line()
    assert plan.warnings == ["runpod: timed out"]  # live price, pinned revision, a TTL: nothing else to say
