"""``gpuctl prices``: every filter, the three output shapes, errors, and the real providers end to end."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator

import pytest
from click.testing import Result
from moto import mock_aws

from gpuctl.app import App
from gpuctl.errors import ProviderError
from gpuctl.models.offer import Offer
from gpuctl.plugins import ProviderRegistry
from gpuctl.providers.aws.client import new_session
from tests.providers.aws_fakes import FakeAws
from tests.standins.fixtures import lambda_api, runpod_api  # noqa: F401  (fixtures)
from tests.unit.pricing_fakes import as_rows, fake_provider, offer, registry, snapshot_rows

Gpuctl = Callable[..., Result]

OFFER_KEYS = ["provider", "gpu", "gpu_count", "vram_gb", "vcpus", "ram_gb", "region", "price_per_hour",
              "price_per_gpu_hour", "spot", "availability", "instance_type", "tier", "arch", "source", "as_of", "id"]

ALPHA = [
    offer("alpha", "L40S", 1, 0.79, availability="high", region="eu-1", tier="community", instance_type="l40s"),
    offer("alpha", "H100-SXM", 1, 2.69, availability="low", region="us-1", instance_type="h100"),
    offer("alpha", "H100-SXM", 8, 31.92, availability="medium", region="us-1", instance_type="8xh100"),
    offer("alpha", "A10", 1, 0.75, availability="none", region="us-1", instance_type="a10"),
]
BETA = [
    offer("beta", "L40S", 1, 1.861, region="us-east-1", instance_type="g6e.xlarge"),
    offer("beta", "H200", 8, 84.8, region="us-east-1", instance_type="p5en.48xlarge"),
    offer("beta", "L40S", 1, 0.7013, region="us-east-1", instance_type="g6e.xlarge", spot=True),
]


def use_registry(monkeypatch: pytest.MonkeyPatch, reg: ProviderRegistry) -> None:
    monkeypatch.setattr(App, "registry", property(lambda self: reg))


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> ProviderRegistry:
    reg = registry(fake_provider("alpha", ALPHA), fake_provider("beta", BETA))
    use_registry(monkeypatch, reg)
    return reg


def listed(result: Result) -> list[tuple[str, str, int, str]]:
    assert result.exit_code == 0, result.stderr
    return [(o["provider"], o["gpu"], o["gpu_count"], o["instance_type"]) for o in json.loads(result.stdout)]


# -- output shapes -----------------------------------------------------------------------------------

def test_the_table_lists_offers_cheapest_per_gpu_hour_first(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    result = gpuctl("prices")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PROVIDER", "GPU", "GPUS", "VRAM", "REGION", "$/GPU-HR", "$/HR", "STOCK",
                                "SOURCE"]
    rows = [line.split() for line in lines[2:]]
    assert [row[:-1] for row in rows] == [
        ["alpha", "community", "L40S", "1", "48", "GB", "eu-1", "0.790", "0.790", "high", "live"],
        ["beta", "L40S", "1", "48", "GB", "us-east-1", "1.861", "1.861", "unknown", "live"],
        ["alpha", "H100-SXM", "1", "80", "GB", "us-1", "2.690", "2.690", "low", "live"],
        ["alpha", "H100-SXM", "8", "80", "GB", "us-1", "3.990", "31.920", "medium", "live"],
        ["beta", "H200", "8", "141", "GB", "us-east-1", "10.600", "84.800", "unknown", "live"],
    ]
    assert all(re.fullmatch(r"(\d+[dhms])+", row[-1]) for row in rows)  # the age of the answer
    assert result.stderr == ""


def test_json_is_a_list_of_offers_with_exactly_the_offer_keys(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    result = gpuctl("prices", "--json")
    data = json.loads(result.stdout)
    assert [list(row) for row in data] == [OFFER_KEYS] * 5
    assert [*Offer.model_fields, "id"] == OFFER_KEYS
    assert data[0] == {
        "provider": "alpha", "gpu": "L40S", "gpu_count": 1, "vram_gb": 48.0, "vcpus": None, "ram_gb": None,
        "region": "eu-1", "price_per_hour": 0.79, "price_per_gpu_hour": 0.79, "spot": False,
        "availability": "high", "instance_type": "l40s", "tier": "community", "arch": None, "source": "live",
        "as_of": "2026-11-20T12:00:00Z", "id": "alpha:l40s:eu-1:community",
    }


def test_the_global_json_flag_works_too(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    assert len(json.loads(gpuctl("--json", "prices").stdout)) == 5


def test_csv_has_the_json_keys_as_header(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    result = gpuctl("prices", "--csv", "--gpu", "h100")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == ",".join(OFFER_KEYS)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["gpu"], r["gpu_count"], r["price_per_gpu_hour"], r["tier"], r["id"]) for r in rows] == [
        ("H100-SXM", "1", "2.69", "", "alpha:h100:us-1"), ("H100-SXM", "8", "3.99", "", "alpha:8xh100:us-1")]


def test_csv_and_json_together_are_a_usage_error(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    result = gpuctl("prices", "--csv", "--json")
    assert result.exit_code == 2
    assert "--csv and --json are exclusive" in result.stderr


def test_quiet_prints_only_the_cheapest_offer_id(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    assert gpuctl("prices", "-q").stdout == "alpha:l40s:eu-1:community\n"
    assert gpuctl("prices", "--gpu", "h100", "-q").stdout == "alpha:h100:us-1\n"
    assert gpuctl("-q", "prices", "--sort", "vram").stdout == "beta:p5en.48xlarge:us-east-1\n"


def test_quiet_with_nothing_matching_is_exit_5(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    result = gpuctl("prices", "-q", "--max-price", "0.1")
    assert result.exit_code == 5
    assert result.stdout == ""
    assert "no offer matches these filters" in result.stderr


def test_an_empty_listing_says_so_on_stderr(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    result = gpuctl("prices", "--gpu", "t4")
    assert (result.exit_code, result.stdout) == (0, "")
    assert "no offer matches these filters" in result.stderr
    assert gpuctl("prices", "--gpu", "t4", "--json").stdout == "[]\n"


# -- filters -----------------------------------------------------------------------------------------

def test_gpu_takes_aliases_repeated_and_comma_separated(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    expected = [("alpha", "L40S", 1, "l40s"), ("beta", "L40S", 1, "g6e.xlarge"), ("beta", "H200", 8, "p5en.48xlarge")]
    assert listed(gpuctl("prices", "--json", "--gpu", "l40s,h200")) == expected
    assert listed(gpuctl("prices", "--json", "--gpu", "L40S", "--gpu", "h200-141gb")) == expected


def test_a_family_offers_every_sku_and_a_variant_only_its_own(gpuctl: Gpuctl, monkeypatch: pytest.MonkeyPatch) -> None:
    # the recorded RunPod answer of issue 14: a $1.99 community PCIe H100 came back for --gpu h100-sxm
    h100s = [offer("pod", "H100-PCIE", 1, 1.99, tier="community", instance_type="NVIDIA H100 PCIe"),
             offer("pod", "H100-SXM", 1, 2.69, tier="community", instance_type="NVIDIA H100 80GB HBM3"),
             offer("pod", "H100-NVL", 1, 2.79, tier="community", instance_type="NVIDIA H100 NVL"),
             offer("pod", "L40S", 1, 0.79, tier="community", instance_type="NVIDIA L40S")]
    use_registry(monkeypatch, registry(fake_provider("pod", h100s)))
    assert [row[1] for row in listed(gpuctl("prices", "--gpu", "h100", "--json"))] == [
        "H100-PCIE", "H100-SXM", "H100-NVL"]
    assert [row[1] for row in listed(gpuctl("prices", "--gpu", "h100-sxm", "--json"))] == ["H100-SXM"]
    assert gpuctl("prices", "--gpu", "h100-sxm", "-q").stdout == "pod:NVIDIA H100 80GB HBM3:r1:community\n"
    table = gpuctl("prices", "--gpu", "h100").stdout.splitlines()
    assert [line.split()[2] for line in table[2:]] == ["H100-PCIE", "H100-SXM", "H100-NVL"]


def test_an_unknown_gpu_is_exit_2_with_the_closest_names(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    result = gpuctl("prices", "--gpu", "h1000")
    assert result.exit_code == 2
    assert result.stderr == "error: unknown GPU 'h1000' (hint: did you mean H100, H100-80GB, V100?)\n"


def test_provider_limits_the_providers_asked(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    assert {p for p, *_ in listed(gpuctl("prices", "--json", "--provider", "beta"))} == {"beta"}
    assert {p for p, *_ in listed(gpuctl("prices", "--json", "--provider", "beta,alpha"))} == {"alpha", "beta"}
    assert fakes.classes["alpha"].calls and all(
        q.gpus is None for q in fakes.classes["alpha"].calls)  # type: ignore[attr-defined]


def test_an_unknown_provider_is_exit_2(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    result = gpuctl("prices", "--provider", "alpah")
    assert result.exit_code == 2
    assert result.stderr == "error: unknown provider 'alpah' (hint: did you mean alpha?)\n"


def test_region(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    assert listed(gpuctl("prices", "--json", "--region", "us-east-1")) == [
        ("beta", "L40S", 1, "g6e.xlarge"), ("beta", "H200", 8, "p5en.48xlarge")]


def test_min_vram_is_per_gpu(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    assert listed(gpuctl("prices", "--json", "--min-vram", "80")) == [
        ("alpha", "H100-SXM", 1, "h100"), ("alpha", "H100-SXM", 8, "8xh100"), ("beta", "H200", 8, "p5en.48xlarge")]


def test_max_price_is_per_gpu_hour(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    assert listed(gpuctl("prices", "--json", "--max-price", "3.99")) == [
        ("alpha", "L40S", 1, "l40s"), ("beta", "L40S", 1, "g6e.xlarge"), ("alpha", "H100-SXM", 1, "h100"),
        ("alpha", "H100-SXM", 8, "8xh100")]


def test_count_is_gpus_per_instance(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    assert listed(gpuctl("prices", "--json", "--count", "8")) == [
        ("alpha", "H100-SXM", 8, "8xh100"), ("beta", "H200", 8, "p5en.48xlarge")]


def test_spot_shows_only_spot_offers_and_on_demand_is_the_default(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    spot = json.loads(gpuctl("prices", "--json", "--spot").stdout)
    assert [(o["id"], o["price_per_hour"]) for o in spot] == [("beta:g6e.xlarge:us-east-1:spot", 0.7013)]
    assert not any(o["spot"] for o in json.loads(gpuctl("prices", "--json").stdout))
    assert gpuctl("prices", "--json", "--on-demand").stdout == gpuctl("prices", "--json").stdout


def test_sold_out_offers_need_all(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    assert ("alpha", "A10", 1, "a10") not in listed(gpuctl("prices", "--json"))
    assert listed(gpuctl("prices", "--json", "--all"))[0] == ("alpha", "A10", 1, "a10")


def test_available_only_drops_unknown_stock(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    assert listed(gpuctl("prices", "--json", "--available-only")) == [
        ("alpha", "L40S", 1, "l40s"), ("alpha", "H100-SXM", 1, "h100"), ("alpha", "H100-SXM", 8, "8xh100")]
    result = gpuctl("prices", "--available-only", "--all")
    assert result.exit_code == 2


def test_sort_and_limit(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    assert listed(gpuctl("prices", "--json", "--sort", "vram", "--limit", "2")) == [
        ("beta", "H200", 8, "p5en.48xlarge"), ("alpha", "H100-SXM", 1, "h100")]
    assert [p for p, *_ in listed(gpuctl("prices", "--json", "--sort", "provider"))] == [
        "alpha", "alpha", "alpha", "beta", "beta"]
    assert gpuctl("prices", "--sort", "cost").exit_code == 2


def test_a_second_run_uses_the_cache_and_refresh_asks_again(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    alpha = fakes.classes["alpha"]
    assert {o["source"] for o in json.loads(gpuctl("prices", "--json").stdout)} == {"live"}
    assert {o["source"] for o in json.loads(gpuctl("prices", "--json", "--gpu", "h100").stdout)} == {"cache"}
    assert len(alpha.calls) == 1  # type: ignore[attr-defined]
    assert {o["source"] for o in json.loads(gpuctl("prices", "--json", "--refresh").stdout)} == {"live"}
    assert len(alpha.calls) == 2  # type: ignore[attr-defined]
    assert {o["source"] for o in json.loads(gpuctl("prices", "--json", "--max-age", "0").stdout)} == {"live"}
    assert {o["source"] for o in json.loads(gpuctl("prices", "--json", "--max-age", "5m").stdout)} == {"cache"}
    assert len(alpha.calls) == 3  # type: ignore[attr-defined]


def test_cached_rows_show_their_age_in_the_table(gpuctl: Gpuctl, fakes: ProviderRegistry) -> None:
    gpuctl("prices")
    assert all(line.split()[-2] == "cache" for line in gpuctl("prices").stdout.splitlines()[2:])


def test_a_slow_provider_is_named_and_the_others_still_shown(gpuctl: Gpuctl, monkeypatch: pytest.MonkeyPatch) -> None:
    use_registry(monkeypatch, registry(fake_provider("alpha", ALPHA), fake_provider("lambda", delay=5)))
    result = gpuctl("prices", "--json", "--timeout", "0.3")
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "warning: lambda: no answer within 0.3s; showing its snapshot prices (as of 2026-09-20 to 2026-09-25)"]
    rows = json.loads(result.stdout)
    assert {(o["provider"], o["source"]) for o in rows} == {("alpha", "live"), ("lambda", "snapshot")}


def test_the_timeout_comes_from_the_config_file(gpuctl: Gpuctl, monkeypatch: pytest.MonkeyPatch) -> None:
    use_registry(monkeypatch, registry(fake_provider("slow", delay=5)))
    assert gpuctl("config", "set", "prices.timeout", "0.2").exit_code == 0
    assert "slow: no answer within 0.2s" in gpuctl("prices").stderr


def test_a_failing_provider_falls_back_to_its_snapshot(gpuctl: Gpuctl, monkeypatch: pytest.MonkeyPatch) -> None:
    failing = fake_provider("aws", error=ProviderError("AWS API DescribeInstanceTypes failed: InternalError: x"))
    use_registry(monkeypatch, registry(fake_provider("alpha", ALPHA), failing))
    result = gpuctl("prices", "--json")
    assert result.exit_code == 0
    assert result.stderr.startswith("warning: aws: AWS API DescribeInstanceTypes failed: InternalError: x ")
    aws = [Offer.model_validate(o) for o in json.loads(result.stdout) if o["provider"] == "aws"]
    assert as_rows(aws) == snapshot_rows("aws")


def test_without_any_credentials_every_snapshot_is_shown(gpuctl: Gpuctl) -> None:
    result = gpuctl("prices", "--json")
    assert result.exit_code == 0
    assert result.stderr == ("no credentials for aws, lambda, runpod: showing dated snapshot prices "
                             "('gpuctl providers' shows how to add them)\n")
    offers = [Offer.model_validate(o) for o in json.loads(result.stdout)]
    assert {o.source for o in offers} == {"snapshot"}
    for name in ("aws", "lambda", "runpod"):
        assert as_rows([o for o in offers if o.provider == name]) == snapshot_rows(name)
    table = gpuctl("prices", "--gpu", "a100-80gb", "--provider", "aws").stdout.splitlines()
    assert table[2].split()[-2:] == ["snapshot", "2026-11-09"]


# -- the real providers, against their stand-ins and moto ----------------------------------------------

@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAws]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    fake = FakeAws()
    monkeypatch.setattr("gpuctl.providers.aws.client.new_session", lambda **kw: fake.install(new_session(**kw)))
    with mock_aws():
        yield fake


def test_live_prices_from_all_three_providers(gpuctl: Gpuctl, runpod_api: object, lambda_api: object,  # noqa: F811
                                              aws: FakeAws) -> None:
    result = gpuctl("prices", "--json", "--gpu", "l40s,h100")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    offers = json.loads(result.stdout)
    assert {o["source"] for o in offers} == {"live"}
    assert {o["provider"] for o in offers} == {"aws", "lambda", "runpod"}
    by_id = {o["id"]: o for o in offers}
    assert {k: by_id["aws:g6e.xlarge:us-east-1"][k] for k in ("gpu", "gpu_count", "vram_gb", "price_per_hour",
                                                               "availability")} == {
        "gpu": "L40S", "gpu_count": 1, "vram_gb": 48.0, "price_per_hour": 1.861, "availability": "unknown"}
    assert by_id["aws:p5.48xlarge:us-east-1"]["price_per_gpu_hour"] == 6.88
    prices = [o["price_per_gpu_hour"] for o in offers]
    assert prices == sorted(prices)


def test_aws_spot_through_the_cli(gpuctl: Gpuctl, aws: FakeAws) -> None:
    aws.spot = [{"InstanceType": "g6e.xlarge", "AvailabilityZone": z, "SpotPrice": p}
                for z, p in (("us-east-1a", "0.95"), ("us-east-1b", "0.6612"))]
    result = gpuctl("prices", "--provider", "aws", "--gpu", "l40s", "--spot", "-q")
    assert (result.exit_code, result.stdout) == (0, "aws:g6e.xlarge:us-east-1:spot\n")


def test_aws_rejected_credentials_become_a_warning_and_its_snapshot(gpuctl: Gpuctl, aws: FakeAws) -> None:
    aws.errors["DescribeInstanceTypes"] = "AuthFailure"
    result = gpuctl("prices", "--provider", "aws", "--json")
    assert result.exit_code == 0
    assert result.stderr.startswith("warning: aws: AWS rejected the credentials (AuthFailure on "
                                    "DescribeInstanceTypes) (hint: set AWS_PROFILE")
    assert {o["source"] for o in json.loads(result.stdout)} == {"snapshot"}


# -- what was skipped (-v) --------------------------------------------------------------------------

def test_verbose_says_which_provider_entries_were_skipped_and_why(gpuctl: Gpuctl, runpod_api, lambda_api) -> None:  # noqa: F811
    result = gpuctl("prices", "--all", "-v", "--provider", "runpod,lambda")
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    runpod = next(i for i, line in enumerate(lines) if line.startswith("runpod: live answer in "))
    assert re.fullmatch(r"runpod: live answer in [\d.]+s, 15 offer\(s\), 1 entry skipped:", lines[runpod])
    assert lines[runpod + 1] == ("  1 left out on purpose: 8 GB: too little memory to serve an LLM worth renting a "
                                 "GPU for (NVIDIA GeForce RTX 3070)")
    lambda_ = next(i for i, line in enumerate(lines) if line.startswith("lambda: "))
    assert lines[lambda_ + 1] == "  1 unknown instance type: not in the provider's catalog (gpu_8x_b300_sxm6)"
    # a cached answer keeps what its live answer skipped
    again = gpuctl("prices", "--all", "-v", "--provider", "runpod")
    assert "runpod: cached answer, 15 offer(s), 1 entry skipped:" in again.stderr


def test_verbose_json_is_the_offers_and_each_providers_outcome(gpuctl: Gpuctl, runpod_api) -> None:  # noqa: F811
    result = gpuctl("prices", "--all", "-v", "--provider", "runpod", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"offers", "providers"} and len(doc["offers"]) == 15
    outcome = doc["providers"]["runpod"]
    assert (outcome["status"], outcome["source"], outcome["offers"]) == ("live", "live", 15)
    assert outcome["skipped"] == [{
        "reason": "left out on purpose: 8 GB: too little memory to serve an LLM worth renting a GPU for",
        "count": 1, "entries": ["NVIDIA GeForce RTX 3070"]}]
    assert isinstance(json.loads(gpuctl("prices", "--json", "--provider", "runpod").stdout), list)  # without -v
