"""Lambda Cloud offers from ``GET /api/v1/instance-types``, against the spec-checked stand-in."""

from __future__ import annotations

import logging
import time

import pytest

from gpuctl.errors import CredentialsError, ExitCode, ProviderError, TimeoutError_
from gpuctl.models.offer import OfferQuery
from gpuctl.providers.lambda_cloud.provider import LambdaProvider
from gpuctl.providers.skips import recording
from tests.standins.fixtures import LAMBDA_TEST_KEY
from tests.standins.lambda_server import LambdaStandin
from tests.standins.server import Fault

TYPES = "/api/v1/instance-types"

# (gpu, count, instance type, region, availability, $/h, $/GPU-h, vcpus, RAM GiB)
IN_STOCK = {
    ("A10", 1, "gpu_1x_a10", "us-west-1", "medium", 0.75, 0.75, 30, 200.0),
    ("A10", 1, "gpu_1x_a10", "us-east-1", "medium", 0.75, 0.75, 30, 200.0),
    ("H100-SXM", 1, "gpu_1x_h100_sxm5", "us-south-1", "medium", 3.29, 3.29, 26, 225.0),
    ("H100-SXM", 8, "gpu_8x_h100_sxm5gdr", "us-west-1", "medium", 35.92, 4.49, 208, 1800.0),
    ("GH200", 1, "gpu_1x_gh200", "us-east-3", "medium", 1.49, 1.49, 64, 432.0),
}
SOLD_OUT = {("A100-80GB-SXM", 8, "gpu_8x_a100_80gb_sxm4", "any", "none", 14.32, 1.79, 240, 1800.0)}


def rows(offers):
    return {(o.gpu, o.gpu_count, o.instance_type, o.region, o.availability, o.price_per_hour,
             o.price_per_gpu_hour, o.vcpus, o.ram_gb) for o in offers}


def offers(query: OfferQuery | None = None, timeout: float | None = None):
    provider = LambdaProvider()
    if timeout is not None:
        provider.timeout = timeout  # as gpuctl lowers it for one command
    return provider.offers(query or OfferQuery())


def type_requests(api: LambdaStandin):
    return [r for r in api.requests if r.path == TYPES]


def test_one_offer_per_instance_type_and_region_with_capacity(lambda_api):
    found = offers()
    assert rows(found) == IN_STOCK
    assert len(found) == len(IN_STOCK)
    assert {(o.provider, o.source, o.tier, o.spot) for o in found} == {("lambda", "live", None, False)}
    assert {o.vram_gb for o in found if o.gpu == "H100-SXM"} == {80}
    [request] = type_requests(lambda_api)
    assert request.authorized and request.headers["authorization"] == "Bearer <redacted>"
    assert request.query == {}


def test_sold_out_types_only_with_include_unavailable(lambda_api):
    assert rows(offers(OfferQuery(include_unavailable=True))) == IN_STOCK | SOLD_OUT


def test_unknown_instance_types_are_skipped_with_a_debug_log(lambda_api, caplog):
    with caplog.at_level(logging.DEBUG, logger="gpuctl"):
        found = offers(OfferQuery(include_unavailable=True))
    assert "gpu_8x_b300_sxm6" not in {o.instance_type for o in found}
    assert [r.levelno for r in caplog.records if "gpu_8x_b300_sxm6" in r.getMessage()] == [logging.DEBUG]


def test_filters_by_gpu_count_and_region(lambda_api):
    assert {(o.instance_type, o.region) for o in offers(OfferQuery(gpus=["H100-SXM"], gpu_count=8))} == {
        ("gpu_8x_h100_sxm5gdr", "us-west-1")}
    assert {(o.instance_type, o.region) for o in offers(OfferQuery(regions=["us-east-1"]))} == {
        ("gpu_1x_a10", "us-east-1")}


def test_price_per_gpu_divides_the_instance_price(lambda_api):
    lambda_api.state.add_type("gpu_8x_h100_sxm5", "8x H100 (80 GB SXM5)", "H100 (80 GB SXM5)", 2392,
                              (208, 1800, 22000, 8), ["us-south-1", "us-west-1"])
    found = [o for o in offers() if o.instance_type == "gpu_8x_h100_sxm5"]
    assert {(o.region, o.price_per_hour, o.price_per_gpu_hour, o.gpu_count) for o in found} == {
        ("us-south-1", 23.92, 2.99, 8), ("us-west-1", 23.92, 2.99, 8)}


def test_nothing_to_ask_makes_no_request(lambda_api):
    assert offers(OfferQuery(spot=True)) == []
    assert offers(OfferQuery(gpus=["L40S"])) == []  # not sold by Lambda
    assert lambda_api.requests == []


def test_rejected_key_is_exit_6_with_lambdas_message(lambda_api, monkeypatch):
    monkeypatch.setenv("LAMBDA_API_KEY", "secret_wrong_0000000000000000")
    with pytest.raises(CredentialsError) as err:
        offers()
    assert err.value.exit_code == ExitCode.CREDENTIALS
    assert err.value.message == ("Lambda Cloud rejected the API key "
                                 "(401 global/invalid-api-key: API key was invalid, expired, or deleted.)")
    assert "export LAMBDA_API_KEY=" in err.value.hint
    assert len(type_requests(lambda_api)) == 1


def test_inactive_account_is_exit_6(lambda_api):
    lambda_api.faults.always(Fault.error(403))
    with pytest.raises(CredentialsError) as err:
        offers()
    assert err.value.message == ("Lambda Cloud refused access with this API key "
                                 "(403 global/account-inactive: Your account is inactive.)")
    assert "LAMBDA_API_KEY" in err.value.hint


def test_rate_limit_waits_for_retry_after_then_succeeds(lambda_api):
    lambda_api.faults.next(Fault.error(429, retry_after=1))
    assert rows(offers()) == IN_STOCK
    limited, retried = type_requests(lambda_api)
    assert (limited.status, retried.status) == (429, 200)
    assert retried.at - limited.answered_at >= 1.0


def test_server_errors_are_retried_then_reported_readably(lambda_api, fast_retries):
    lambda_api.faults.always(Fault.error(503))
    with pytest.raises(ProviderError) as err:
        offers()
    assert err.value.message == ("Lambda Cloud API failed on GET /instance-types "
                                 "(503 provider/internal-unavailable: Provider unavailable)")
    assert err.value.hint == "Try again shortly"
    assert len(type_requests(lambda_api)) == 1 + fast_retries.max_retries


def test_error_without_the_envelope_falls_back_to_the_http_reason(lambda_api, fast_retries):
    lambda_api.faults.always(Fault.payload("<html>bad gateway</html>", status=502))
    with pytest.raises(ProviderError) as err:
        offers()
    assert err.value.message == "Lambda Cloud API failed on GET /instance-types (502: Bad Gateway)"


def test_invalid_json_is_a_provider_error(lambda_api):
    lambda_api.faults.always(Fault.malformed())
    with pytest.raises(ProviderError, match="Lambda Cloud API sent invalid JSON in its answer to GET"):
        offers()


def _type(name: str, description: str, cents: object, gpus: int, regions: list[str]) -> dict:
    gpu = description.split("x ", 1)[1]
    return {"instance_type": {"name": name, "description": description, "gpu_description": gpu,
                              "price_cents_per_hour": cents,
                              "specs": {"vcpus": 26, "memory_gib": 225, "storage_gib": 2867, "gpus": gpus}},
            "regions_with_capacity_available": [{"name": r, "description": r} for r in regions]}


# The shape of a real answer the spec does not allow: a CPU-only type (cpu_4x_general, "4x CPU General
# (16 GiB)", 0 GPUs, in the console's list of July 2026, see tests/providers/published/), a type newer
# than gpuctl's catalog, and an entry without its price (gpuctl issue 14: one bad entry must not drop
# the whole listing).
REAL_SHAPED = {"data": {
    "gpu_1x_a10": _type("gpu_1x_a10", "1x A10 (24 GB PCIe)", 129, 1, ["us-east-1"]),
    "cpu_4x_general": _type("cpu_4x_general", "4x CPU General (16 GiB)", 20, 0, ["us-east-1"]),
    "gpu_1x_b300_sxm6": _type("gpu_1x_b300_sxm6", "1x B300 (288 GB SXM6)", 799, 1, []),
    "gpu_1x_h100_sxm5": _type("gpu_1x_h100_sxm5", "1x H100 (80 GB SXM5)", None, 1, ["us-south-1"]),
}}


def test_a_real_shaped_answer_keeps_its_good_entries_and_counts_the_rest(lambda_api):
    lambda_api.faults.always(Fault.payload(REAL_SHAPED, path=TYPES))
    with recording() as skips:
        found = offers(OfferQuery(include_unavailable=True))
    assert {(o.gpu, o.instance_type, o.region, o.price_per_hour) for o in found} == {
        ("A10", "gpu_1x_a10", "us-east-1", 1.29)}
    assert {(s.reason, tuple(s.entries)) for s in skips.summary()} == {
        ("left out on purpose: CPU only: no GPU", ("cpu_4x_general",)),
        ("unknown instance type: not in the provider's catalog", ("gpu_1x_b300_sxm6",)),
        ("invalid entry: field 'instance_type.price_cents_per_hour': Input should be a valid integer",
         ("gpu_1x_h100_sxm5",)),
    }


def test_wrong_envelope_is_a_provider_error(lambda_api):
    lambda_api.faults.always(Fault.payload({"instance_types": []}))
    with pytest.raises(ProviderError, match="field 'data': Field required"):
        offers()


def test_hanging_api_times_out_in_bounded_time(lambda_api):
    lambda_api.faults.always(Fault.hang(seconds=30))
    started = time.monotonic()
    with pytest.raises(TimeoutError_) as err:
        offers(timeout=0.5)
    assert time.monotonic() - started < 2.5
    assert err.value.message == "Lambda Cloud API did not answer GET /instance-types within 0.5 s"


def test_the_key_never_reaches_messages_or_logs(lambda_api, caplog):
    echo = {"error": {"code": "global/invalid-api-key", "message": f"key {LAMBDA_TEST_KEY} was deleted",
                      "suggestion": f"do not reuse {LAMBDA_TEST_KEY}"}}
    lambda_api.faults.always(Fault.error(401, body=echo))
    with caplog.at_level(logging.DEBUG), pytest.raises(CredentialsError) as err:
        offers()
    assert "key **** was deleted" in err.value.message
    assert LAMBDA_TEST_KEY not in err.value.one_line()
    assert caplog.records and all(LAMBDA_TEST_KEY not in r.getMessage() for r in caplog.records)
