"""The AWS provider's read side: moto for EC2, table-driven fakes for the Price List API and spot."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from gpuctl.cli import run_translated
from gpuctl.errors import CredentialsError, ExitCode, ProviderError
from gpuctl.models.offer import OfferQuery
from gpuctl.paths import cache_dir
from gpuctl.providers.aws.client import make_client, new_session
from gpuctl.providers.aws.provider import AWSProvider
from tests.providers.aws_fakes import FakeAws


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


@pytest.fixture
def fake(aws_env: None) -> FakeAws:
    return FakeAws()


def provider(fake: FakeAws) -> AWSProvider:
    return AWSProvider(session=fake.install(new_session(listing=True)))


def rows(offers: list) -> list[tuple]:
    return sorted((o.instance_type, o.gpu, o.gpu_count, o.vram_gb, o.vcpus, o.ram_gb, o.region,
                   o.price_per_hour, o.price_per_gpu_hour, o.spot, o.availability, o.source) for o in offers)


def test_on_demand_offers_are_ec2_gpu_types_with_a_price(fake: FakeAws) -> None:
    offers = provider(fake).offers(OfferQuery(spot=False))
    assert rows(offers) == [
        ("g5.xlarge", "A10G", 1, 24.0, 4, 16.0, "us-east-1", 1.006, 1.006, False, "unknown", "live"),
        ("g6e.12xlarge", "L40S", 4, 48.0, 48, 384.0, "us-east-1", 10.49264, 2.6232, False, "unknown", "live"),
        ("g6e.xlarge", "L40S", 1, 48.0, 4, 32.0, "us-east-1", 1.861, 1.861, False, "unknown", "live"),
        ("p4d.24xlarge", "A100-40GB-SXM", 8, 40.0, 96, 1152.0, "us-east-1", 21.957642, 2.7447, False, "unknown",
         "live"),
        ("p4de.24xlarge", "A100-80GB-SXM", 8, 80.0, 96, 1152.0, "us-east-1", 27.44705, 3.4309, False, "unknown",
         "live"),
        ("p5.48xlarge", "H100-SXM", 8, 80.0, 192, 2048.0, "us-east-1", 55.04, 6.88, False, "unknown", "live"),
        ("p5.4xlarge", "H100-SXM", 1, 80.0, 16, 256.0, "us-east-1", 6.88, 6.88, False, "unknown", "live"),
    ]
    assert {o.id for o in offers} >= {"aws:g6e.xlarge:us-east-1", "aws:p5.48xlarge:us-east-1"}
    assert fake.spot_requests == []  # on-demand only: no spot call


def test_prices_come_from_one_get_products_query_with_the_documented_filters(fake: FakeAws) -> None:
    provider(fake).offers(OfferQuery(spot=False))
    assert fake.product_requests == [{"ServiceCode": "AmazonEC2", "Filters": [
        {"Type": "TERM_MATCH", "Field": "instanceFamily", "Value": "GPU instance"},
        {"Type": "TERM_MATCH", "Field": "location", "Value": "US East (N. Virginia)"},
        {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
        {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
        {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
        {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
    ]}]


def test_the_query_narrows_gpu_and_count(fake: FakeAws) -> None:
    offers = provider(fake).offers(OfferQuery(gpus=["H100-SXM"], gpu_count=8, spot=False))
    assert [(o.instance_type, o.price_per_hour) for o in offers] == [("p5.48xlarge", 55.04)]


def test_spot_is_the_cheapest_zone_and_skips_the_price_list(fake: FakeAws) -> None:
    fake.spot = [
        {"InstanceType": "g6e.xlarge", "AvailabilityZone": "us-east-1a", "SpotPrice": "0.9120",
         "ProductDescription": "Linux/UNIX"},
        {"InstanceType": "g6e.xlarge", "AvailabilityZone": "us-east-1c", "SpotPrice": "0.7013",
         "ProductDescription": "Linux/UNIX"},
        {"InstanceType": "g6e.xlarge", "AvailabilityZone": "us-east-1d", "SpotPrice": "0.8000",
         "ProductDescription": "Linux/UNIX"},
        {"InstanceType": "g6e.12xlarge", "AvailabilityZone": "us-east-1b", "SpotPrice": "4.1000",
         "ProductDescription": "Linux/UNIX"},
    ]
    offers = provider(fake).offers(OfferQuery(gpus=["L40S"], spot=True))
    assert [(o.instance_type, o.price_per_hour, o.price_per_gpu_hour, o.spot, o.id) for o in
            sorted(offers, key=lambda o: o.instance_type)] == [
        ("g6e.12xlarge", 4.1, 1.025, True, "aws:g6e.12xlarge:us-east-1:spot"),
        ("g6e.xlarge", 0.7013, 0.7013, True, "aws:g6e.xlarge:us-east-1:spot"),
    ]
    assert fake.product_requests == []
    [request] = fake.spot_requests
    assert request["ProductDescription.1"] == ["Linux/UNIX"]
    assert sorted(v for k, vs in request.items() if k.startswith("InstanceType.") for v in vs) == [
        "g6e.12xlarge", "g6e.16xlarge", "g6e.24xlarge", "g6e.2xlarge", "g6e.48xlarge", "g6e.4xlarge",
        "g6e.8xlarge", "g6e.xlarge"]
    assert "StartTime" in request


def test_no_spot_filter_asks_both_markets(fake: FakeAws) -> None:
    fake.spot = [{"InstanceType": "p5.4xlarge", "AvailabilityZone": "us-east-1a", "SpotPrice": "3.1"}]
    offers = provider(fake).offers(OfferQuery(gpus=["H100-SXM"], gpu_count=1, spot=None))
    assert sorted((o.spot, o.price_per_hour) for o in offers) == [(False, 6.88), (True, 3.1)]


def test_a_region_without_the_type_has_no_offer_for_it(fake: FakeAws) -> None:
    # eu-west-1 offers p4d.24xlarge but not p4de.24xlarge (data/aws_ec2.json), which still has a list price there
    offers = provider(fake).offers(OfferQuery(gpus=["A100-40GB-SXM", "A100-80GB-SXM"], regions=["eu-west-1"],
                                              spot=False))
    assert [(o.instance_type, o.region, o.price_per_hour) for o in offers] == [("p4d.24xlarge", "eu-west-1", 24.15)]
    assert fake.product_requests[0]["Filters"][1] == {
        "Type": "TERM_MATCH", "Field": "location", "Value": "EU (Ireland)"}


def test_a_region_missing_from_the_location_table_is_priced_by_region_code(fake: FakeAws) -> None:
    offers = provider(fake).offers(OfferQuery(gpus=["L40S"], regions=["me-central-1"], spot=False))
    assert [(o.instance_type, o.price_per_hour) for o in offers] == [("g6e.xlarge", 2.2332)]
    assert fake.product_requests[0]["Filters"][1] == {
        "Type": "TERM_MATCH", "Field": "regionCode", "Value": "me-central-1"}


def test_several_regions_are_asked(fake: FakeAws) -> None:
    offers = provider(fake).offers(OfferQuery(gpus=["H100-SXM"], gpu_count=8, regions=["eu-north-1", "us-east-1"],
                                              spot=False))
    assert sorted((o.region, o.price_per_hour) for o in offers) == [("eu-north-1", 58.8928), ("us-east-1", 55.04)]


def test_the_default_region_follows_aws_default_region(fake: FakeAws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-north-1")
    offers = provider(fake).offers(OfferQuery(gpus=["H100-SXM"], spot=False))
    assert sorted((o.region, o.instance_type) for o in offers) == [("eu-north-1", "p5.48xlarge"),
                                                                   ("eu-north-1", "p5.4xlarge")]


@pytest.mark.parametrize(("operation", "code"), [
    ("DescribeInstanceTypes", "AuthFailure"),
    ("GetProducts", "UnrecognizedClientException"),
    ("DescribeInstanceTypeOfferings", "ExpiredToken"),
    ("DescribeInstanceTypes", "UnauthorizedOperation"),
])
def test_rejected_credentials_are_exit_6_naming_aws(fake: FakeAws, operation: str, code: str) -> None:
    fake.errors[operation] = code
    with pytest.raises(CredentialsError) as info:
        provider(fake).offers(OfferQuery(spot=False))
    assert info.value.message.startswith("AWS ")
    assert operation in info.value.message and code in info.value.message
    assert "AWS_PROFILE" in info.value.hint or "ec2:DescribeInstanceTypes" in info.value.hint

    def again() -> None:
        raise info.value

    assert run_translated(again) == ExitCode.CREDENTIALS


def test_missing_credentials_are_exit_6(monkeypatch: pytest.MonkeyPatch) -> None:
    # no mock and no keys: botocore stops before sending anything (the endpoint is unroutable anyway)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(CredentialsError, match="AWS credentials are missing") as info:
        AWSProvider().offers(OfferQuery())
    assert info.value.exit_code == ExitCode.CREDENTIALS
    assert "AWS_ACCESS_KEY_ID" in info.value.hint


def test_an_unknown_profile_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "work")
    with pytest.raises(CredentialsError, match="AWS profile 'work' is not in"):
        AWSProvider().offers(OfferQuery())


def test_other_api_errors_are_provider_errors_naming_the_api(fake: FakeAws) -> None:
    fake.errors["DescribeInstanceTypeOfferings"] = "InternalError"
    with pytest.raises(ProviderError) as info:
        provider(fake).offers(OfferQuery())
    assert info.value.message == ("AWS API DescribeInstanceTypeOfferings failed: InternalError: "
                                  "fake InternalError for DescribeInstanceTypeOfferings")
    assert info.value.exit_code == ExitCode.PROVIDER


def test_throttling_that_outlasts_the_retries_says_so(fake: FakeAws) -> None:
    fake.errors["GetProducts"] = "ThrottlingException"
    with pytest.raises(ProviderError, match="ThrottlingException") as info:
        provider(fake).offers(OfferQuery())
    assert "throttling" in info.value.hint


def test_an_unreachable_endpoint_is_a_provider_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gpuctl.providers.aws.client.MAX_ATTEMPTS", 1)  # no backoff between refused connections
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    provider = AWSProvider()
    provider.timeout = 1
    with pytest.raises(ProviderError, match="AWS API unreachable"):
        provider.offers(OfferQuery())


def test_clients_retry_in_standard_mode_and_honour_aws_endpoint_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5123")
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", "http://127.0.0.1:5124")
    session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s")
    ec2 = make_client(session, "ec2", "eu-west-1", timeout=4)
    pricing = make_client(session, "pricing", "us-east-1", timeout=4)
    assert ec2.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert (ec2.meta.config.connect_timeout, ec2.meta.config.read_timeout) == (4, 4)
    assert (ec2.meta.endpoint_url, pricing.meta.endpoint_url) == ("http://127.0.0.1:5123", "http://127.0.0.1:5124")


def test_the_listing_session_uses_a_cut_down_ec2_model_kept_in_the_cache(fake: FakeAws) -> None:
    import botocore

    session = new_session(listing=True)
    ec2 = make_client(session, "ec2", "us-east-1", timeout=5)
    assert hasattr(ec2, "describe_spot_price_history") and not hasattr(ec2, "run_instances")
    [model] = (cache_dir() / "botocore-models" / botocore.__version__).glob("ec2/*/service-2.json")
    assert model.stat().st_size < 200_000
    assert hasattr(make_client(new_session(), "ec2", "us-east-1", timeout=5), "run_instances")
