"""RunPod offers from the REST v2 catalog, against the spec-checked stand-in."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

import pytest

from gpuctl.errors import CredentialsError, ExitCode, ProviderError, TimeoutError_
from gpuctl.models.offer import OfferQuery
from gpuctl.providers.runpod.provider import RunPodProvider
from gpuctl.providers.skips import recording
from tests.standins.fixtures import RUNPOD_TEST_KEY
from tests.standins.runpod_server import RunPodStandin
from tests.standins.server import Fault

CATALOG = "/v2/catalog/gpus"

# (gpu, tier, region, availability, $/GPU-h, $/h, instance type) of every offer in stock.
IN_STOCK = {
    ("RTX-4090", "secure", "US-KS-2", "high", 0.44, 0.44, "NVIDIA GeForce RTX 4090"),
    ("RTX-4090", "community", "EU-RO-1", "medium", 0.31, 0.31, "NVIDIA GeForce RTX 4090"),
    ("RTX-4090", "community", "US-CA-2", "low", 0.31, 0.31, "NVIDIA GeForce RTX 4090"),
    ("L40S", "secure", "US-TX-3", "medium", 0.86, 0.86, "NVIDIA L40S"),
    ("L40S", "secure", "EU-RO-1", "low", 0.86, 0.86, "NVIDIA L40S"),
    ("L40S", "community", "US-CA-2", "high", 0.79, 0.79, "NVIDIA L40S"),
    ("A100-80GB-SXM", "secure", "US-KS-2", "low", 1.49, 1.49, "NVIDIA A100-SXM4-80GB"),
    ("H100-SXM", "secure", "US-KS-2", "high", 2.99, 2.99, "NVIDIA H100 80GB HBM3"),
    ("H100-SXM", "community", "EU-RO-1", "medium", 2.69, 2.69, "NVIDIA H100 80GB HBM3"),
    ("RTX-A6000", "secure", "any", "medium", 0.49, 0.49, "NVIDIA RTX A6000"),
    ("RTX-A6000", "community", "any", "high", 0.33, 0.33, "NVIDIA RTX A6000"),
    ("H200", "secure", "US-CA-2", "low", 3.59, 3.59, "NVIDIA H200"),
}
SOLD_OUT = {
    ("H100-SXM", "secure", "US-TX-3", "none", 2.99, 2.99, "NVIDIA H100 80GB HBM3"),  # listed, no stock
    ("A100-80GB-SXM", "community", "any", "none", 1.19, 1.19, "NVIDIA A100-SXM4-80GB"),  # none anywhere
    ("MI300X", "secure", "any", "none", 2.49, 2.49, "AMD Instinct MI300X OAM"),
}


def rows(offers):
    return {(o.gpu, o.tier, o.region, o.availability, o.price_per_gpu_hour, o.price_per_hour, o.instance_type)
            for o in offers}


def offers(query: OfferQuery | None = None, timeout: float | None = None):
    provider = RunPodProvider()
    if timeout is not None:
        provider.timeout = timeout  # as gpuctl lowers it for one command
    return provider.offers(query or OfferQuery())


def catalog_requests(api: RunPodStandin):
    return [r for r in api.requests if r.path == CATALOG]


def test_lists_secure_and_community_offers_per_datacenter(runpod_api):
    before = datetime.now(timezone.utc)
    found = offers()
    assert rows(found) == IN_STOCK
    assert len(found) == len(IN_STOCK)
    assert {o.provider for o in found} == {"runpod"}
    assert {o.source for o in found} == {"live"}
    assert {o.gpu_count for o in found} == {1}
    assert {o.spot for o in found} == {False}
    assert all(o.as_of >= before for o in found)
    by_gpu = {o.gpu: o for o in found}
    assert by_gpu["H200"].vram_gb == 141 and by_gpu["RTX-4090"].vram_gb == 24
    assert by_gpu["L40S"].vcpus is None and by_gpu["L40S"].ram_gb is None
    assert by_gpu["RTX-4090"].id.startswith("runpod:NVIDIA GeForce RTX 4090:")


def test_asks_each_cloud_for_its_own_pod_availability(runpod_api):
    offers()
    sent = sorted((r.query["cloud"], r.query["include"], r.query["product"], r.query["count"])
                  for r in catalog_requests(runpod_api))
    assert sent == [(["COMMUNITY"], ["AVAILABILITY"], ["POD"], ["1"]),
                    (["SECURE"], ["AVAILABILITY"], ["POD"], ["1"])]
    assert all(r.authorized and r.headers["authorization"] == "Bearer <redacted>"
               for r in catalog_requests(runpod_api))
    assert all(r.headers["user-agent"].startswith("gpuctl/") for r in catalog_requests(runpod_api))


def test_sold_out_offers_only_with_include_unavailable(runpod_api):
    assert rows(offers(OfferQuery(include_unavailable=True))) == IN_STOCK | SOLD_OUT


def test_one_cloud_sold_out_does_not_hide_the_other(runpod_api):
    # The A100 has stock in Secure Cloud only; Community must not borrow Secure's availability.
    a100 = rows(offers(OfferQuery(gpus=["A100-80GB-SXM"], include_unavailable=True)))
    assert a100 == {("A100-80GB-SXM", "secure", "US-KS-2", "low", 1.49, 1.49, "NVIDIA A100-SXM4-80GB"),
                    ("A100-80GB-SXM", "community", "any", "none", 1.19, 1.19, "NVIDIA A100-SXM4-80GB")}


def test_overall_availability_goes_to_region_any_without_datacenter_detail(runpod_api):
    assert {(r[1], r[2], r[3]) for r in rows(offers(OfferQuery(gpus=["RTX-A6000"])))} == {
        ("secure", "any", "medium"), ("community", "any", "high")}


def test_tier_without_the_gpu_gives_no_offer(runpod_api):
    # H200 and MI300X are Secure Cloud only (community flag false, community price 0).
    found = offers(OfferQuery(gpus=["H200", "MI300X"], include_unavailable=True))
    assert {o.tier for o in found} == {"secure"}


def test_a_cloud_that_stopped_selling_a_gpu_gives_no_offer_despite_its_price(runpod_api):
    del runpod_api.state.gpus["NVIDIA L40S"].stock["COMMUNITY"]  # flag goes false; the price stays listed
    found = offers(OfferQuery(gpus=["L40S"], include_unavailable=True))
    assert {(o.tier, o.region) for o in found} == {("secure", "US-TX-3"), ("secure", "EU-RO-1")}


def test_catalog_ids_gpuctl_does_not_offer_are_counted_with_their_reason(runpod_api, caplog):
    with recording() as skips, caplog.at_level(logging.DEBUG, logger="gpuctl"):
        found = offers(OfferQuery(include_unavailable=True))
    assert "NVIDIA GeForce RTX 3070" not in {o.instance_type for o in found}
    assert [s.model_dump() for s in skips.summary()] == [{
        "reason": "left out on purpose: 8 GB: too little memory to serve an LLM worth renting a GPU for",
        "count": 1, "entries": ["NVIDIA GeForce RTX 3070"]}]  # asked in both clouds, counted once
    assert any("NVIDIA GeForce RTX 3070" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)


# The shape of a real catalog answer, which the spec does not allow: RunPod lists a placeholder type
# "unknown" (id "unknown", no memory, null prices; also in its GraphQL gpuTypes, where gpuhunt's
# providers/runpod.py skips null prices and stock), sends null for a cloud's price, and may add an
# availability level the spec does not name. Recorded properties: gpuctl issue 14 ("the recorded real
# data contains nulls and an 'unknown' GPU", "an unknown availability or a non-numeric price").
REAL_SHAPED = {"gpus": [
    {"id": "NVIDIA H100 80GB HBM3", "name": "H100 SXM", "pool": "ADA_80_PRO", "manufacturer": "NVIDIA", "memory": 80,
     "secure": True, "community": True, "price": {"secure": 2.99, "community": 2.69},
     "maxCount": {"secure": 8, "community": 2}, "availability": "HIGH",
     "dataCenters": [{"id": "US-KS-2", "name": "US Kansas 2", "availability": "HIGH"}]},
    {"id": "unknown", "name": "unknown", "pool": None, "manufacturer": "NVIDIA", "memory": 0, "secure": False,
     "community": False, "price": {"secure": None, "community": None}, "maxCount": {"secure": 0, "community": 0},
     "availability": "NONE"},
    {"id": "NVIDIA L40S", "name": "L40S", "pool": "ADA_48_PRO", "manufacturer": "NVIDIA", "memory": 48,
     "secure": True, "community": True, "price": {"secure": 0.86, "community": 0.79},
     "maxCount": {"secure": 8, "community": 8}, "availability": "UNKNOWN"},
    {"id": "NVIDIA A40", "name": "A40", "pool": "AMPERE_48", "manufacturer": "NVIDIA", "memory": 48,
     "secure": True, "community": False, "price": {"secure": None, "community": None},
     "maxCount": {"secure": 8, "community": 0}, "availability": "LOW"},
    {"id": "NVIDIA RTX A6000", "name": "RTX A6000", "pool": "AMPERE_48", "manufacturer": "NVIDIA", "memory": 48,
     "secure": True, "community": True, "price": {"secure": "N/A", "community": 0.33},
     "maxCount": {"secure": 8, "community": 8}, "availability": "MEDIUM"},
    {"id": "NVIDIA L4", "name": "L4", "pool": "ADA_24", "manufacturer": "NVIDIA", "memory": 24,
     "secure": True, "community": False, "price": {"secure": 0.43, "community": None},
     "maxCount": {"secure": 8, "community": 0}, "availability": "MEDIUM"},
]}


def test_a_real_shaped_catalog_keeps_its_good_entries_and_counts_the_rest(runpod_api):
    runpod_api.faults.always(Fault.payload(REAL_SHAPED, path=CATALOG))
    with recording() as skips:
        found = offers(OfferQuery(include_unavailable=True))
    assert {(o.gpu, o.tier, o.region) for o in found} == {
        ("H100-SXM", "secure", "US-KS-2"), ("H100-SXM", "community", "US-KS-2"), ("L4", "secure", "any")}
    assert {(s.reason, s.count, tuple(s.entries)) for s in skips.summary()} == {
        ("unknown GPU: not in the provider's catalog", 1, ("unknown",)),
        ("invalid entry: field 'availability': Input should be 'NONE', 'LOW', 'MEDIUM' or 'HIGH'", 1,
         ("NVIDIA L40S",)),
        ("no secure price although listed in secure cloud", 1, ("NVIDIA A40",)),
        ("invalid entry: field 'price.secure': Input should be a valid number, unable to parse string as a number",
         1, ("NVIDIA RTX A6000",)),
    }


def test_an_entry_that_is_not_an_object_is_counted_by_its_position(runpod_api):
    runpod_api.faults.always(Fault.payload({"gpus": ["NVIDIA L40S", REAL_SHAPED["gpus"][0]]}, path=CATALOG))
    with recording() as skips:
        found = offers()
    assert {o.gpu for o in found} == {"H100-SXM"}
    assert [(s.count, s.entries) for s in skips.summary()] == [(1, ["#0"])]


def test_gpu_count_prices_the_whole_pod_and_respects_max_count(runpod_api):
    found = offers(OfferQuery(gpu_count=4, gpus=["H100-SXM", "RTX-4090"]))
    assert {(o.gpu, o.tier, o.gpu_count, o.price_per_hour, o.price_per_gpu_hour) for o in found} == {
        ("H100-SXM", "secure", 4, 11.96, 2.99),
        ("RTX-4090", "secure", 4, 1.76, 0.44),
        ("RTX-4090", "community", 4, 1.24, 0.31),
    }  # community H100 pods hold at most 2 GPUs
    assert {r.query["count"][0] for r in catalog_requests(runpod_api)} == {"4"}


def test_region_and_gpu_filters(runpod_api):
    found = offers(OfferQuery(gpus=["L40S", "RTX-A6000"], regions=["US-CA-2"]))
    assert {(o.gpu, o.tier, o.region) for o in found} == {
        ("L40S", "community", "US-CA-2"), ("RTX-A6000", "secure", "any"), ("RTX-A6000", "community", "any")}


def test_nothing_to_ask_makes_no_request(runpod_api):
    assert offers(OfferQuery(spot=True)) == []
    assert offers(OfferQuery(gpus=["A10G"])) == []  # AWS-only GPU
    assert runpod_api.requests == []


def test_base_url_may_include_the_version_prefix(runpod_api, monkeypatch):
    monkeypatch.setenv("GPUCTL_RUNPOD_API_URL", runpod_api.url + "/v2/")
    assert rows(offers()) == IN_STOCK


def test_rejected_key_is_exit_6_naming_the_variable(runpod_api, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_WRONG_KEY_0000000000000")
    with pytest.raises(CredentialsError) as err:
        offers()
    assert err.value.exit_code == 6
    assert err.value.message == "RunPod rejected the API key (401: Unauthorized: invalid bearer token)"
    assert "export RUNPOD_API_KEY=" in err.value.hint
    assert "rpa_WRONG_KEY" not in err.value.one_line()
    assert len(catalog_requests(runpod_api)) == 2  # 401 is not retried


def test_forbidden_is_exit_6_naming_the_variable(runpod_api):
    runpod_api.faults.always(Fault.error(403, body={"title": "Forbidden", "status": 403,
                                                    "detail": "access denied"}))
    with pytest.raises(CredentialsError) as err:
        offers()
    assert err.value.message == "RunPod refused access with this API key (403: Forbidden: access denied)"
    assert "RUNPOD_API_KEY" in err.value.hint


def test_rate_limit_waits_for_retry_after_then_succeeds(runpod_api):
    runpod_api.faults.next(Fault.error(429, retry_after=1, path=CATALOG))
    assert rows(offers()) == IN_STOCK
    sent = catalog_requests(runpod_api)
    assert [r.status for r in sent].count(429) == 1 and len(sent) == 3
    limited = next(r for r in sent if r.status == 429)
    retried = [r for r in sent if r.query["cloud"] == limited.query["cloud"] and r is not limited]
    assert len(retried) == 1 and retried[0].status == 200
    assert retried[0].at - limited.answered_at >= 1.0


def test_rate_limit_longer_than_the_budget_fails_at_once(runpod_api):
    runpod_api.faults.always(Fault.error(429, retry_after=120))
    started = time.monotonic()
    with pytest.raises(ProviderError) as err:
        offers()
    assert time.monotonic() - started < 2
    assert err.value.message.startswith("RunPod API rate limit hit (429: Too Many Requests")
    assert len(catalog_requests(runpod_api)) == 2


def test_server_errors_are_retried_then_reported(runpod_api, fast_retries):
    runpod_api.faults.always(Fault.error(500))
    with pytest.raises(ProviderError) as err:
        offers()
    assert err.value.exit_code == ExitCode.PROVIDER
    assert err.value.message == ("RunPod API failed on GET /catalog/gpus "
                                 "(500: Internal Server Error: injected fault)")
    assert len(catalog_requests(runpod_api)) == 2 * (1 + fast_retries.max_retries)


def test_one_server_error_is_retried_transparently(runpod_api):
    runpod_api.faults.next(Fault.error(503, path=CATALOG))
    assert rows(offers()) == IN_STOCK
    assert [r.status for r in catalog_requests(runpod_api)].count(503) == 1


def test_broken_connection_is_retried_for_reads(runpod_api):
    runpod_api.faults.next(Fault.truncated(path=CATALOG))
    assert rows(offers()) == IN_STOCK
    assert [r.fault for r in catalog_requests(runpod_api)].count("truncated") == 1


def test_invalid_json_is_a_provider_error(runpod_api):
    runpod_api.faults.always(Fault.malformed())
    with pytest.raises(ProviderError) as err:
        offers()
    assert "RunPod API sent invalid JSON in its answer to GET /catalog/gpus" in err.value.message
    assert len(catalog_requests(runpod_api)) == 2  # bad JSON is not retried


def test_not_a_catalog_at_all_is_a_provider_error(runpod_api):
    runpod_api.faults.always(Fault.payload(["NVIDIA L40S"]))
    with pytest.raises(ProviderError, match=r"RunPod API sent an unexpected answer .* '\(top level\)'"):
        offers()


def test_hanging_api_times_out_in_bounded_time(runpod_api):
    runpod_api.faults.always(Fault.hang(seconds=30))
    started = time.monotonic()
    with pytest.raises(TimeoutError_) as err:
        offers(timeout=0.5)
    assert time.monotonic() - started < 2.5
    assert err.value.exit_code == ExitCode.TIMEOUT
    assert err.value.message == "RunPod API did not answer GET /catalog/gpus within 0.5 s"


def test_unreachable_api_names_the_url_variable(runpod_api, monkeypatch, fast_retries):
    monkeypatch.setenv("GPUCTL_RUNPOD_API_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(ProviderError) as err:
        offers()
    assert "cannot reach the RunPod API at http://127.0.0.1:9/v2 (set by GPUCTL_RUNPOD_API_URL)" in (
        err.value.message)


def test_the_key_never_reaches_messages_or_logs(runpod_api, caplog, fast_retries):
    echo = {"title": "Unauthorized", "status": 401, "detail": f"key {RUNPOD_TEST_KEY} is revoked"}
    runpod_api.faults.next(Fault.error(500, path=CATALOG), Fault.error(401, body=echo, path=CATALOG))
    with caplog.at_level(logging.DEBUG), pytest.raises(CredentialsError) as err:
        offers()
    assert "key **** is revoked" in err.value.message
    assert RUNPOD_TEST_KEY not in err.value.one_line()
    assert caplog.records and all(RUNPOD_TEST_KEY not in r.getMessage() for r in caplog.records)


def test_the_engine_images_cuda_narrows_the_stock_to_hosts_that_run_it(runpod_api):
    found = rows(offers(OfferQuery(min_cuda_version="12.8")))
    # the stand-in's community RTX 4090 hosts in US-CA-2 run CUDA 12.4
    assert found == IN_STOCK - {("RTX-4090", "community", "US-CA-2", "low", 0.31, 0.31, "NVIDIA GeForce RTX 4090")}
    assert {r.query["minCudaVersion"][0] for r in catalog_requests(runpod_api)} == {"12.8"}
