"""The pricing fan-out: live answers, failures and timeouts, snapshot fallback, cache, ranking."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gpuctl.errors import ProviderError, UsageError
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.plugins import BrokenPlugin
from gpuctl.price_cache import cache_path
from gpuctl.pricing import OfferFilters, collect_offers, filter_and_sort
from gpuctl.providers.base import Provider
from tests.unit.pricing_fakes import NOW, as_rows, fake_provider, offer, registry, snapshot_rows


def test_live_answers_are_merged_cheapest_per_gpu_hour_first() -> None:
    a = fake_provider("alpha", [offer("alpha", "H100-SXM", 8, 24.0), offer("alpha", "L40S", 1, 0.9)])
    b = fake_provider("beta", [offer("beta", "H100-SXM", 1, 2.5)])
    result = collect_offers(OfferQuery(), registry=registry(a, b))
    assert [(o.provider, o.gpu, o.price_per_gpu_hour) for o in result.offers] == [
        ("alpha", "L40S", 0.9), ("beta", "H100-SXM", 2.5), ("alpha", "H100-SXM", 3.0)]
    assert {o.source for o in result.offers} == {"live"}
    assert result.warnings == []
    assert {n: (s.status, s.source, s.offers) for n, s in result.sources.items()} == {
        "alpha": ("live", "live", 2), "beta": ("live", "live", 1)}


def test_providers_are_asked_for_every_gpu_and_the_rest_is_filtered_here() -> None:
    a = fake_provider("alpha", [offer("alpha", "L40S", 1, 0.9), offer("alpha", "L4", 1, 0.4),
                                offer("alpha", "L40S", 1, 0.7, availability="none", instance_type="sold-out")])
    result = collect_offers(OfferQuery(gpus=["L40S"], regions=["r2", "r1", "r2"], gpu_count=1, spot=False),
                            registry=registry(a))
    assert a.calls == [OfferQuery(gpus=None, regions=["r1", "r2"], gpu_count=1, spot=False,
                                  include_unavailable=True)]
    assert [(o.gpu, o.price_per_hour) for o in result.offers] == [("L40S", 0.9)]
    assert result.sources["alpha"].offers == 1


def test_a_failing_provider_is_named_and_falls_back_to_its_snapshot() -> None:
    good = fake_provider("runpod", [offer("runpod", "L40S", 1, 0.5)])
    bad = fake_provider("aws", error=ProviderError("AWS API DescribeInstanceTypes failed: InternalError: boom"))
    result = collect_offers(OfferQuery(), registry=registry(good, bad))
    assert result.warnings == [
        "aws: AWS API DescribeInstanceTypes failed: InternalError: boom (hint: the provider's API failed; "
        "try again, or rerun with GPUCTL_DEBUG=1); showing its snapshot prices (as of 2026-08-26 to 2026-11-09)"]
    live = [o for o in result.offers if o.provider == "runpod"]
    assert [(o.gpu, o.price_per_hour, o.source) for o in live] == [("L40S", 0.5, "live")]
    fallback = [o for o in result.offers if o.provider == "aws"]
    assert as_rows(fallback) == snapshot_rows("aws")
    assert {o.source for o in fallback} == {"snapshot"}
    assert result.sources["aws"].status == "failed"
    assert result.sources["aws"].detail.startswith("AWS API DescribeInstanceTypes failed")


def test_an_unexpected_exception_in_a_plugin_costs_its_rows_and_the_registry_names_it() -> None:
    bad = fake_provider("thirdparty", error=KeyError("price"))
    reg = registry(bad)
    result = collect_offers(OfferQuery(), registry=reg)
    assert result.offers == []
    assert result.warnings == [], "a plugin's bug is named once per command, by the registry"
    assert reg.trouble_line() == ("provider plugin 'thirdparty' failed: offers() raised KeyError: 'price'; skipped "
                                  "(hint: a bug in gpuctl: rerun with GPUCTL_DEBUG=1 and report it)")
    assert result.sources["thirdparty"].source is None
    assert result.sources["thirdparty"].detail.startswith("provider plugin 'thirdparty' failed")


def test_a_provider_past_its_timeout_is_named_and_the_others_are_shown() -> None:
    fast = fake_provider("runpod", [offer("runpod", "L40S", 1, 0.5)], delay=0.05)
    slow = fake_provider("lambda", [offer("lambda", "H100-SXM", 1, 2.0)], delay=3.0)
    start = time.monotonic()
    result = collect_offers(OfferQuery(), registry=registry(fast, slow), timeout=0.5)
    elapsed = time.monotonic() - start
    assert elapsed < 1.5  # bounded by the timeout, not by the slow provider's 3 s
    assert result.warnings == ["lambda: no answer within 0.5s; showing its snapshot prices "
                               "(as of 2026-09-20 to 2026-09-25)"]
    assert [o.source for o in result.offers if o.provider == "runpod"] == ["live"]
    assert as_rows([o for o in result.offers if o.provider == "lambda"]) == snapshot_rows("lambda")
    assert result.sources["lambda"].status == "timed-out"


def test_providers_are_asked_concurrently() -> None:
    classes = [fake_provider(n, [offer(n, "L4", 1, 0.5)], delay=0.4) for n in ("a", "b", "c")]
    start = time.monotonic()
    result = collect_offers(OfferQuery(), registry=registry(*classes))
    assert time.monotonic() - start < 1.0  # 3 x 0.4 s one after the other would be 1.2 s
    assert len(result.offers) == 3


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked calls are Linux-only")


def skipping_provider(name: str, *, own_process: bool = False) -> type[Provider]:
    """A provider whose listing has one usable entry and two it skips (as gpuctl.providers.skips lets it)."""
    from gpuctl.providers.skips import skip

    base = fake_provider(name, [offer(name, "L40S", 1, 0.9)], own_process=own_process)

    class Skipping(base):  # type: ignore[valid-type,misc]
        def offers(self, query: OfferQuery) -> list[Offer]:
            skip("ACME Z9", "unknown GPU: not in the provider's catalog")
            skip("#3", "invalid entry: field 'price': Input should be a valid number")
            skip("ACME Z9", "unknown GPU: not in the provider's catalog")  # asked twice, counted once
            return super().offers(query)

    return Skipping


def test_the_entries_a_provider_skipped_are_in_its_outcome() -> None:
    result = collect_offers(OfferQuery(), registry=registry(skipping_provider("alpha")))
    assert [(s.reason, s.count, s.entries) for s in result.sources["alpha"].skipped] == [
        ("invalid entry: field 'price': Input should be a valid number", 1, ["#3"]),
        ("unknown GPU: not in the provider's catalog", 1, ["ACME Z9"])]
    again = collect_offers(OfferQuery(), registry=registry(skipping_provider("alpha")))  # from the cache
    assert again.sources["alpha"].status == "cache" and len(again.sources["alpha"].skipped) == 2


@linux_only
def test_skips_come_back_from_a_forked_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gpuctl.pricing.can_fork", lambda: True)
    heavy = skipping_provider("heavy", own_process=True)
    result = collect_offers(OfferQuery(), registry=registry(heavy, fake_provider("light")))
    assert heavy.calls == [] and result.sources["heavy"].status == "live"
    assert sum(s.count for s in result.sources["heavy"].skipped) == 2


@linux_only
def test_an_own_process_provider_is_asked_in_a_forked_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gpuctl.pricing.can_fork", lambda: True)  # other tests may have left threads behind
    heavy = fake_provider("heavy", [offer("heavy", "L40S", 1, 0.9)], own_process=True)
    light = fake_provider("light", [offer("light", "L4", 1, 0.4)])
    result = collect_offers(OfferQuery(), registry=registry(heavy, light))
    assert [(o.provider, o.price_per_hour, o.source) for o in result.offers] == [
        ("light", 0.4, "live"), ("heavy", 0.9, "live")]
    assert heavy.calls == []  # recorded in the child's memory, not here
    assert len(light.calls) == 1
    assert result.sources["heavy"].status == "live"


def test_an_own_process_provider_asked_alone_stays_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gpuctl.pricing.can_fork", lambda: True)
    heavy = fake_provider("heavy", [offer("heavy", "L40S", 1, 0.9)], own_process=True)
    result = collect_offers(OfferQuery(), registry=registry(heavy))
    assert [o.provider for o in result.offers] == ["heavy"]
    assert len(heavy.calls) == 1  # nothing to overlap with: a fork would only cost


@linux_only
def test_an_own_process_provider_that_fails_falls_back_to_its_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gpuctl.pricing.can_fork", lambda: True)
    bad = fake_provider("aws", error=ProviderError("AWS API unreachable: x", "check the network"), own_process=True)
    other = fake_provider("runpod", [offer("runpod", "L4", 1, 0.4)])
    result = collect_offers(OfferQuery(), registry=registry(bad, other))
    assert bad.calls == []
    assert result.warnings[0].startswith("aws: AWS API unreachable: x (hint: check the network); showing its "
                                         "snapshot prices")
    assert as_rows([o for o in result.offers if o.provider == "aws"]) == snapshot_rows("aws")


@linux_only
def test_an_own_process_provider_past_its_timeout_is_killed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("gpuctl.pricing.can_fork", lambda: True)
    pid_file = tmp_path / "pid"

    class Slow(fake_provider("lambda", own_process=True)):  # type: ignore[misc, valid-type]
        def offers(self, query: OfferQuery) -> list[Offer]:
            pid_file.write_text(str(os.getpid()))
            time.sleep(30)
            return []

    start = time.monotonic()
    result = collect_offers(OfferQuery(), registry=registry(Slow, fake_provider("runpod")), timeout=0.5)
    assert time.monotonic() - start < 5
    assert result.sources["lambda"].status == "timed-out"
    with pytest.raises(ChildProcessError):  # killed and reaped: no process left
        os.waitpid(int(pid_file.read_text()), os.WNOHANG)


def test_no_credentials_anywhere_gives_every_shipped_snapshot() -> None:
    # the real, installed providers; the isolated test environment has no credentials at all
    result = collect_offers(OfferQuery())
    assert result.warnings == []
    for name in ("aws", "lambda", "runpod"):
        rows = [o for o in result.offers if o.provider == name]
        assert as_rows(rows) == snapshot_rows(name)
        assert {o.source for o in rows} == {"snapshot"}
        assert result.sources[name].status == "no-credentials"
        assert result.sources[name].detail  # the hint saying what to set
    assert [o.price_per_gpu_hour for o in result.offers] == sorted(o.price_per_gpu_hour for o in result.offers)


def test_snapshot_rows_carry_their_date_and_per_gpu_price() -> None:
    result = collect_offers(OfferQuery(gpus=["H100-SXM"]), providers=["aws"])
    p5 = next(o for o in result.offers if o.instance_type == "p5.48xlarge")
    assert (p5.gpu_count, p5.vram_gb, p5.price_per_hour, p5.price_per_gpu_hour) == (8, 80.0, 55.04, 6.88)
    assert p5.as_of == datetime(2026, 11, 9, tzinfo=timezone.utc)
    assert p5.source == "snapshot"


def test_a_second_call_is_served_from_the_cache() -> None:
    a = fake_provider("alpha", [offer("alpha", "L40S", 1, 0.9)])
    first = collect_offers(OfferQuery(), registry=registry(a))
    second = collect_offers(OfferQuery(), registry=registry(a))
    assert len(a.calls) == 1
    assert [o.source for o in first.offers] == ["live"]
    assert [(o.source, o.as_of, o.price_per_hour) for o in second.offers] == [("cache", NOW, 0.9)]
    assert second.sources["alpha"].status == "cache"


def test_a_gpu_filter_reuses_the_cached_answer() -> None:
    a = fake_provider("alpha", [offer("alpha", "L40S", 1, 0.9), offer("alpha", "L4", 1, 0.4)])
    collect_offers(OfferQuery(gpus=["L40S"]), registry=registry(a))
    other = collect_offers(OfferQuery(gpus=["L4"]), registry=registry(a))
    assert len(a.calls) == 1
    assert [(o.gpu, o.source) for o in other.offers] == [("L4", "cache")]


def test_regions_count_and_market_have_their_own_cache_entries() -> None:
    a = fake_provider("alpha", [offer("alpha", "L4", 1, 0.4)])
    for query in (OfferQuery(), OfferQuery(regions=["r1"]), OfferQuery(gpu_count=1), OfferQuery(spot=True)):
        collect_offers(query, registry=registry(a))
    assert len(a.calls) == 4
    assert len(list(cache_file("alpha").parent.glob("alpha-*.json"))) == 4


def cache_file(provider: str) -> Path:
    """The cache file of an unfiltered query: every GPU, sold-out included, as providers are asked."""
    return cache_path(provider, OfferQuery(include_unavailable=True))


def _age_cache(provider: str, seconds: float) -> None:
    path = cache_file(provider)
    data = json.loads(path.read_text())
    data["fetched_at"] = (datetime.now(timezone.utc) - timedelta(seconds=seconds)).isoformat()
    path.write_text(json.dumps(data))


def test_a_cached_answer_older_than_max_age_is_asked_again() -> None:
    a = fake_provider("alpha", [offer("alpha", "L40S", 1, 0.9)])
    collect_offers(OfferQuery(), registry=registry(a))
    _age_cache("alpha", 600)
    assert collect_offers(OfferQuery(), registry=registry(a), max_age=3600).offers[0].source == "cache"
    assert len(a.calls) == 1
    assert collect_offers(OfferQuery(), registry=registry(a)).offers[0].source == "live"  # default 300 s
    assert len(a.calls) == 2


def test_refresh_bypasses_a_fresh_cache_and_rewrites_it() -> None:
    a = fake_provider("alpha", [offer("alpha", "L40S", 1, 0.9)])
    collect_offers(OfferQuery(), registry=registry(a))
    _age_cache("alpha", 100)
    refreshed = collect_offers(OfferQuery(), registry=registry(a), refresh=True)
    assert len(a.calls) == 2
    assert refreshed.offers[0].source == "live"
    fetched = json.loads(cache_file("alpha").read_text())["fetched_at"]
    assert datetime.now(timezone.utc) - datetime.fromisoformat(fetched) < timedelta(seconds=30)


def test_an_unreadable_cache_file_is_a_miss() -> None:
    a = fake_provider("alpha", [offer("alpha", "L40S", 1, 0.9)])
    path = cache_file("alpha")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert collect_offers(OfferQuery(), registry=registry(a)).offers[0].source == "live"
    assert json.loads(path.read_text())["offers"][0]["price_per_hour"] == 0.9  # replaced


def test_failures_are_not_cached() -> None:
    bad = fake_provider("alpha", error=ProviderError("down"))
    collect_offers(OfferQuery(), registry=registry(bad))
    assert not cache_file("alpha").exists()


def test_an_unknown_provider_is_a_usage_error_before_anything_is_asked() -> None:
    a = fake_provider("alpha")
    with pytest.raises(UsageError, match="unknown provider 'alpah'") as info:
        collect_offers(OfferQuery(), providers=["alpha", "alpah"], registry=registry(a))
    assert info.value.hint == "did you mean alpha?"
    assert a.calls == []


def test_only_the_named_providers_are_asked() -> None:
    a, b = fake_provider("alpha", [offer("alpha", "L4", 1, 0.4)]), fake_provider("beta")
    result = collect_offers(OfferQuery(), providers=["alpha"], registry=registry(a, b))
    assert list(result.sources) == ["alpha"]
    assert b.calls == []


def test_a_broken_plugin_is_named_by_the_registry_not_the_listing() -> None:
    reg = registry(fake_provider("alpha"))
    reg.broken.append(BrokenPlugin("gpuctl-foo", "gpuctl-foo", "ImportError: no module named foo"))
    result = collect_offers(OfferQuery(), registry=reg)
    assert result.warnings == []
    assert reg.trouble_line() == ("provider plugin 'gpuctl-foo' failed to load: ImportError: no module named foo; "
                                  "skipped (hint: reinstall or upgrade gpuctl-foo)")


def test_the_fanout_lowers_a_provider_timeout_attribute() -> None:
    seen: list[float] = []

    class Timed(Provider):
        name = "timed"
        display_name = "Timed"

        def __init__(self) -> None:
            self.timeout = 30.0

        def offers(self, query: OfferQuery) -> list[Offer]:
            seen.append(self.timeout)
            return []

    collect_offers(OfferQuery(), registry=registry(Timed), timeout=2.5)
    assert seen == [2.5]


# -- filter_and_sort ---------------------------------------------------------------------------------

MIXED = [
    offer("aws", "L40S", 1, 1.861, availability="unknown", instance_type="g6e.xlarge"),
    offer("runpod", "L40S", 1, 0.79, availability="high", tier="community"),
    offer("runpod", "H100-SXM", 1, 2.69, availability="low"),
    offer("lambda", "H100-SXM", 8, 31.92, availability="medium"),
    offer("lambda", "A10", 1, 0.75, availability="none"),
    offer("aws", "H200", 8, 84.8, availability="unknown", instance_type="p5en.48xlarge"),
]


def ids(offers: Sequence[Offer]) -> list[tuple[str, str]]:
    return [(o.provider, o.gpu) for o in offers]


def test_default_ranking_is_price_per_gpu_hour() -> None:
    assert [o.price_per_gpu_hour for o in filter_and_sort(MIXED, OfferFilters())] == [
        0.75, 0.79, 1.861, 2.69, 3.99, 10.6]


def test_equal_prices_rank_better_stock_first() -> None:
    same = [offer("b", "L4", 1, 0.5, availability="unknown"), offer("a", "L4", 1, 0.5, availability="high")]
    assert [o.availability for o in filter_and_sort(same, OfferFilters())] == ["high", "unknown"]


def test_sort_by_vram_largest_first_then_price() -> None:
    assert ids(filter_and_sort(MIXED, OfferFilters(sort="vram"))) == [
        ("aws", "H200"), ("runpod", "H100-SXM"), ("lambda", "H100-SXM"), ("runpod", "L40S"), ("aws", "L40S"),
        ("lambda", "A10")]


def test_sort_by_provider_then_price() -> None:
    assert ids(filter_and_sort(MIXED, OfferFilters(sort="provider"))) == [
        ("aws", "L40S"), ("aws", "H200"), ("lambda", "A10"), ("lambda", "H100-SXM"), ("runpod", "L40S"),
        ("runpod", "H100-SXM")]


def test_min_vram_is_per_gpu() -> None:
    assert ids(filter_and_sort(MIXED, OfferFilters(min_vram_gb=80))) == [
        ("runpod", "H100-SXM"), ("lambda", "H100-SXM"), ("aws", "H200")]


def test_max_price_is_per_gpu_hour_inclusive() -> None:
    assert ids(filter_and_sort(MIXED, OfferFilters(max_price_per_gpu_hour=1.861))) == [
        ("lambda", "A10"), ("runpod", "L40S"), ("aws", "L40S")]


def test_available_only_keeps_reported_stock() -> None:
    assert ids(filter_and_sort(MIXED, OfferFilters(available_only=True))) == [
        ("runpod", "L40S"), ("runpod", "H100-SXM"), ("lambda", "H100-SXM")]


def test_limit_cuts_after_sorting() -> None:
    assert ids(filter_and_sort(MIXED, OfferFilters(sort="vram", limit=2))) == [
        ("aws", "H200"), ("runpod", "H100-SXM")]


def test_a_plugin_answering_something_else_than_offers_only_fails_itself() -> None:
    class Confused(Provider):
        name = "confused"
        display_name = "Confused"

        def offers(self, query: OfferQuery) -> list[Offer]:
            return [{"gpu": "H100"}]  # type: ignore[list-item]

    good = fake_provider("alpha", [offer("alpha", "L4", 1, 0.4)])
    reg = registry(Confused, good)
    result = collect_offers(OfferQuery(), registry=reg)
    assert [o.provider for o in result.offers] == ["alpha"]
    assert result.sources["confused"].status == "failed"
    assert reg.failures["confused"].message == ("provider plugin 'confused' returned from offers() an item of type "
                                                "dict, not a list of Offer")
