"""The RunPod stand-in answers every route and error the way runpod_rest_v2.json says."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.standins.openapi import OpenApiSpec
from tests.standins.runpod_server import RunPodStandin
from tests.standins.server import Fault

KEY = "rpa_CONTRACT_TEST_KEY_0001"
AVAIL = {"include": "AVAILABILITY", "product": "POD"}


@pytest.fixture
def server() -> Iterator[RunPodStandin]:
    with RunPodStandin(api_key=KEY) as standin:
        yield standin


@pytest.fixture
def http(server: RunPodStandin) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=5) as client:
        yield client


def test_catalog_answers_conform(server, http):
    plain = http.get("/v2/catalog/gpus").json()["gpus"]
    assert all("availability" not in g and "dataCenters" not in g for g in plain)
    secure = http.get("/v2/catalog/gpus", params=AVAIL).json()["gpus"]
    community = http.get("/v2/catalog/gpus", params={**AVAIL, "cloud": "COMMUNITY", "count": 2}).json()["gpus"]
    romania = http.get("/v2/catalog/gpus", params={**AVAIL, "countryCodes": "RO"}).json()["gpus"]
    assert {g["id"]: g["availability"] for g in secure}["NVIDIA L40S"] == "MEDIUM"
    assert {g["id"]: g["availability"] for g in community}["NVIDIA H100 80GB HBM3"] == "MEDIUM"
    assert [g["id"] for g in romania] == ["NVIDIA L40S"]
    assert romania[0]["dataCenters"] == [{"id": "EU-RO-1", "name": "EU Romania 1", "availability": "LOW"}]
    assert server.contract_violations() == []


def test_stock_depends_on_cloud_and_count(http):
    def availability(**params):
        gpus = http.get("/v2/catalog/gpus", params={**AVAIL, **params}).json()["gpus"]
        return {g["id"]: (g["availability"], [d["id"] for d in g.get("dataCenters", [])]) for g in gpus}

    h100 = "NVIDIA H100 80GB HBM3"
    assert availability()[h100] == ("HIGH", ["US-KS-2", "US-TX-3"])
    assert availability(cloud="COMMUNITY")[h100] == ("MEDIUM", ["EU-RO-1"])
    assert availability(cloud="COMMUNITY", count=4)[h100] == ("NONE", [])  # community pods max 2 GPUs
    assert availability(cloud="COMMUNITY")["NVIDIA H200"] == ("NONE", [])  # not sold in Community


def test_rtx_4090_is_the_specs_own_example(server, http):
    spec = OpenApiSpec.load("runpod_rest_v2.json")
    example = spec.example("GET", "/v2/catalog/gpus/{id}")
    answer = http.get("/v2/catalog/gpus/" + quote("NVIDIA GeForce RTX 4090"), params=AVAIL)
    assert answer.status_code == 200
    body = answer.json()
    # the stand-in also lists the CUDA versions of its machines, which the example leaves out
    assert body.pop("cudaVersions") == [{"version": "12.8", "available": True}]
    assert body == example
    assert server.contract_violations() == []


def test_cuda_filters_scope_the_stock_to_machines_with_that_cuda(server, http):
    def community_4090(**params):
        answer = http.get("/v2/catalog/gpus/" + quote("NVIDIA GeForce RTX 4090"),
                          params={**AVAIL, "cloud": "COMMUNITY", **params})
        assert answer.status_code == 200
        return answer.json()

    everything = community_4090()
    assert [dc["id"] for dc in everything["dataCenters"]] == ["EU-RO-1", "US-CA-2"]
    assert everything["cudaVersions"] == [{"version": "12.4", "available": True},
                                          {"version": "12.8", "available": True}]
    newer = community_4090(minCudaVersion="12.8")
    assert [dc["id"] for dc in newer["dataCenters"]] == ["EU-RO-1"]  # US-CA-2's hosts run CUDA 12.4
    assert newer["cudaVersions"] == [{"version": "12.8", "available": True}]
    assert [dc["id"] for dc in community_4090(cudaVersions="12.4")["dataCenters"]] == ["US-CA-2"]
    assert community_4090(minCudaVersion="13")["availability"] == "NONE"
    assert server.contract_violations() == []


@pytest.mark.parametrize(("params", "detail"), [
    ({"count": 2}, "count valid only with include=AVAILABILITY"),
    ({"include": "AVAILABILITY"}, "product is required with include=AVAILABILITY"),
    ({**AVAIL, "minCudaVersion": "12", "cudaVersions": "12.8"},
     "cudaVersions and minCudaVersion are mutually exclusive"),
])
def test_rule_breaking_queries_get_400(server, http, params, detail):
    answer = http.get("/v2/catalog/gpus", params=params)
    assert (answer.status_code, answer.json()["detail"]) == (400, detail)
    assert answer.headers["content-type"] == "application/problem+json"
    assert server.contract_violations() == []


def test_queries_the_spec_forbids_are_recorded_and_refused(server, http):
    answer = http.get("/v2/catalog/gpus", params={"include": "EVERYTHING", "product": "POD"})
    assert answer.status_code == 400
    assert server.requests[-1].request_errors == [
        "query parameter 'include': 'EVERYTHING' is not one of ['AVAILABILITY']"]
    assert server.contract_violations() == [
        "GET /v2/catalog/gpus: request: query parameter 'include': 'EVERYTHING' is not one of ['AVAILABILITY']"]
    server.allow_invalid_requests = True
    assert server.contract_violations() == []


def test_ssh_keys_round_trip(server, http):
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXGDN/SclOozk1xsDztpmhGiKkkrfQB9SKoO8dSIQQZ me@example.com"
    assert http.get("/v2/account/ssh-keys").json() == {"keys": []}
    assert http.put("/v2/account/ssh-keys", json={"keys": [key]}).json() == {"keys": [key]}
    assert http.get("/v2/account/ssh-keys").json() == {"keys": [key]}
    assert server.state.ssh_keys == [key]
    assert server.contract_violations() == []


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v2/catalog/gpus/" + quote("NVIDIA Imaginary 9000"), 404),
    ("GET", "/v2/nothing-here", 404),
    ("DELETE", "/v2/catalog/gpus", 405),
])
def test_not_found_and_wrong_method_conform(server, http, method, path, status):
    answer = http.request(method, path)
    assert answer.status_code == status
    assert set(answer.json()) == {"title", "status", "detail"}
    if status == 405:
        assert answer.headers["allow"] == "GET"
    assert server.contract_violations() == []


@pytest.mark.parametrize("status", [401, 403, 429, 500, 502, 503])
def test_error_answers_conform(server, http, status):
    server.faults.next(Fault.error(status, retry_after=3 if status == 429 else None))
    answer = http.get("/v2/catalog/gpus", params=AVAIL)
    assert answer.status_code == status
    assert answer.json()["status"] == status
    assert server.contract_violations() == []


def test_missing_and_wrong_keys_are_401(server):
    assert httpx.get(server.url + "/v2/catalog/gpus").json()["detail"] == "missing bearer token"
    wrong = httpx.get(server.url + "/v2/catalog/gpus", headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "invalid bearer token")
    assert [r.authorized for r in server.requests] == [False, False]
    assert server.contract_violations() == []


def test_drift_is_caught(server, http):
    server.state.gpus["NVIDIA L40S"].memory = "48 GB"  # type: ignore[assignment]
    http.get("/v2/catalog/gpus")
    [problem] = server.contract_violations()
    assert "GET /v2/catalog/gpus -> 200" in problem and "'48 GB' is not of type 'integer'" in problem
