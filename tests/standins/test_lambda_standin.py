"""The Lambda stand-in answers every route and error the way lambda_cloud_openapi.json says."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.standins.lambda_server import LambdaStandin
from tests.standins.openapi import OpenApiSpec
from tests.standins.server import Fault

KEY = "secret_CONTRACT_TEST_KEY_0002"
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICN+lJwsONkwrdsSnQsu1ydUkIuIg5oOC+Eslvmtt60T noname"


@pytest.fixture
def server() -> Iterator[LambdaStandin]:
    with LambdaStandin(api_key=KEY) as standin:
        yield standin


@pytest.fixture
def http(server: LambdaStandin) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=5) as client:
        yield client


def test_instance_types_conform(server, http):
    data = http.get("/api/v1/instance-types").json()["data"]
    assert set(data) == set(server.state.instance_types)
    assert data["gpu_8x_a100_80gb_sxm4"]["regions_with_capacity_available"] == []
    assert data["gpu_1x_a10"]["regions_with_capacity_available"] == [
        {"name": "us-west-1", "description": "California, USA"},
        {"name": "us-east-1", "description": "Virginia, USA"}]
    assert all(name == item["instance_type"]["name"] for name, item in data.items())
    assert server.contract_violations() == []


def test_the_specs_example_type_is_served():
    spec = OpenApiSpec.load("lambda_cloud_openapi.json")
    schema = spec.document["components"]["schemas"]["InstanceType"]["properties"]
    example = LambdaStandin().state.instance_types[schema["name"]["examples"][0]]
    assert (example["description"], example["gpu_description"], example["price_cents_per_hour"]) == (
        schema["description"]["examples"][0], schema["gpu_description"]["examples"][0],
        schema["price_cents_per_hour"]["examples"][0])


def test_regions_conform(server, http):
    assert {r["name"] for r in http.get("/api/v1/regions").json()["data"]} == set(server.state.regions)
    assert server.contract_violations() == []


def test_ssh_keys_add_list_delete(server, http):
    added = http.post("/api/v1/ssh-keys", json={"name": "gpuctl", "public_key": PUBLIC_KEY}).json()["data"]
    assert (added["name"], added["public_key"]) == ("gpuctl", PUBLIC_KEY)
    assert http.get("/api/v1/ssh-keys").json()["data"] == [added]
    again = http.post("/api/v1/ssh-keys", json={"name": "gpuctl", "public_key": PUBLIC_KEY})
    assert (again.status_code, again.json()["error"]["code"]) == (400, "global/invalid-parameters")
    assert http.delete(f"/api/v1/ssh-keys/{added['id']}").json() == {"data": {}}
    gone = http.delete(f"/api/v1/ssh-keys/{added['id']}")
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "global/not-found")
    assert server.state.ssh_keys == {}
    assert server.contract_violations() == []


def test_invalid_request_body_is_refused_and_recorded(server, http):
    answer = http.post("/api/v1/ssh-keys", json={"public_key": PUBLIC_KEY})
    assert (answer.status_code, answer.json()["error"]["message"]) == (400, "body $: 'name' is a required property")
    server.allow_invalid_requests = True
    assert server.contract_violations() == []


@pytest.mark.parametrize(("status", "code"), [
    (401, "global/invalid-api-key"), (403, "global/account-inactive"), (429, "global/rate-limited"),
    (500, "global/internal-error"), (502, "provider/internal-unavailable"),
    (503, "provider/internal-unavailable"),
])
def test_error_answers_conform(server, http, status, code):
    server.faults.next(Fault.error(status))
    answer = http.get("/api/v1/instance-types")
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
    assert server.contract_violations() == []


def test_wrong_key_unknown_path_and_method_conform(server, http):
    wrong = httpx.get(server.url + "/api/v1/instance-types", headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "global/invalid-api-key")
    assert http.get("/api/v1/nothing").status_code == 404
    assert http.delete("/api/v1/instance-types").status_code == 405
    assert server.contract_violations() == []


def test_drift_is_caught(server, http):
    server.state.instance_types["gpu_1x_a10"]["price_cents_per_hour"] = 0.75
    http.get("/api/v1/instance-types")
    [problem] = server.contract_violations()
    assert "0.75 is not of type 'integer'" in problem
