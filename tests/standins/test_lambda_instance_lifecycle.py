"""The Lambda stand-in's instances: launch against capacity, booting, addresses, termination."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.standins.lambda_server import LambdaStandin

LAUNCH = "/api/v1/instance-operations/launch"
TERMINATE = "/api/v1/instance-operations/terminate"
INSTANCES = "/api/v1/instances"
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICN+lJwsONkwrdsSnQsu1ydUkIuIg5oOC+Eslvmtt60T noname"
BODY = {"region_name": "us-west-1", "instance_type_name": "gpu_1x_a10", "ssh_key_names": ["k"], "name": "n",
        "tags": [{"key": "gpuctl", "value": "managed"}], "user_data": "#!/bin/sh\necho hi\n"}


@pytest.fixture
def http(lambda_api: LambdaStandin) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {lambda_api.api_key}"}
    with httpx.Client(base_url=lambda_api.url, headers=headers, timeout=5) as client:
        assert client.post("/api/v1/ssh-keys", json={"name": "k", "public_key": PUBLIC_KEY}).status_code == 200
        yield client


def launch(http: httpx.Client, **changes) -> httpx.Response:
    return http.post(LAUNCH, json=BODY | changes)


def test_instance_boots_as_it_is_read(lambda_api, http):
    [instance_id] = launch(http).json()["data"]["instance_ids"]
    reads = [http.get(f"{INSTANCES}/{instance_id}").json()["data"] for _ in range(2)]
    assert [(r["status"], r.get("ip")) for r in reads] == [("booting", None), ("active", "127.0.0.1")]
    active = reads[-1]
    assert active["tags"] == BODY["tags"] and active["name"] == "n" and active["ssh_key_names"] == ["k"]
    assert active["actions"]["terminate"] == {"available": True}
    assert "user_data" not in active  # write-only
    assert lambda_api.state.instances[instance_id].user_data == BODY["user_data"]


def test_address_and_boot_are_configurable(lambda_api, http):
    lambda_api.state.address, lambda_api.state.boot_polls, lambda_api.state.ip_polls = "10.200.4.2", 3, 1
    instance_id = launch(http).json()["data"]["instance_ids"][0]
    reads = [http.get(f"{INSTANCES}/{instance_id}").json()["data"] for _ in range(3)]
    assert [(r["status"], r.get("ip")) for r in reads] == [("booting", "10.200.4.2"), ("booting", "10.200.4.2"),
                                                            ("active", "10.200.4.2")]
    lambda_api.state.assign_ip = False
    other = launch(http).json()["data"]["instance_ids"][0]
    assert all("ip" not in http.get(f"{INSTANCES}/{other}").json()["data"] for _ in range(4))


def test_terminated_instances_end_and_leave_the_list(lambda_api, http):
    keep, drop = (launch(http).json()["data"]["instance_ids"][0] for _ in range(2))
    ended = http.post(TERMINATE, json={"instance_ids": [drop]}).json()["data"]["terminated_instances"]
    assert [(i["id"], i["status"]) for i in ended] == [(drop, "terminating")]
    assert [i["id"] for i in http.get(INSTANCES).json()["data"]] == [keep]  # the read ends it
    assert http.get(f"{INSTANCES}/{drop}").json()["data"]["status"] == "terminated"
    again = http.post(TERMINATE, json={"instance_ids": [drop]})
    assert again.status_code == 404 and again.json()["error"]["code"] == "global/object-does-not-exist"


@pytest.mark.parametrize(("changes", "status", "code"), [
    ({"region_name": "us-south-1"}, 400, "instance-operations/launch/insufficient-capacity"),
    ({"instance_type_name": "gpu_8x_a100_80gb_sxm4"}, 400, "instance-operations/launch/insufficient-capacity"),
    ({"ssh_key_names": ["nope"]}, 404, "global/object-does-not-exist"),
    ({"ssh_key_names": ["k", "k"]}, 400, "global/invalid-parameters"),
    ({"instance_type_name": "gpu_1x_nonesuch"}, 400, "global/invalid-parameters"),
])
def test_launch_refusals(lambda_api, http, changes, status, code):
    refused = launch(http, **changes)
    assert (refused.status_code, refused.json()["error"]["code"]) == (status, code)
    assert lambda_api.state.instances == {}


def test_capacity_failures_are_injected_for_the_next_launches(lambda_api, http):
    lambda_api.state.capacity_failures = 1
    assert [launch(http).status_code for _ in range(2)] == [400, 200]


def test_unknown_instance_is_the_specs_not_found(lambda_api, http):
    missing = http.get(f"{INSTANCES}/nope")
    assert missing.status_code == 404
    assert missing.json()["error"] == {"code": "global/object-does-not-exist",
                                       "message": "Specified instance does not exist."}
