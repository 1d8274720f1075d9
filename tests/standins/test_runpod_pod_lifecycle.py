"""The RunPod stand-in's pods: placement from the catalog's stock, status progression, actions, deletion."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.standins.runpod_server import NO_CAPACITY, RunPodStandin

PODS = "/v2/pods"
POD = {"name": "p", "image": "vllm/vllm-openai:v0.11.0", "gpu": {"id": "NVIDIA L40S", "count": 1},
       "ports": ["8000/http", "22/tcp"], "env": {"A": "1"}}


@pytest.fixture
def http(runpod_api: RunPodStandin) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {runpod_api.api_key}"}
    with httpx.Client(base_url=runpod_api.url, headers=headers, timeout=5) as client:
        yield client


def create(http: httpx.Client, **changes) -> httpx.Response:
    return http.post(PODS, json=POD | changes)


def test_pod_starts_as_it_is_polled(runpod_api, http):
    created = create(http, cloud="COMMUNITY").json()
    assert (created["status"], created["cloud"], created["dataCenterId"]) == ("PROVISIONING", "COMMUNITY", "US-CA-2")
    assert created["ssh"]["direct"] is None and created["runtime"] is None and created["cost"] == 0.79
    assert created["actions"] == ["stop", "terminate"]
    seen = [http.get(f"{PODS}/{created['id']}").json() for _ in range(2)]
    assert [p["status"] for p in seen] == ["STARTING", "RUNNING"]
    running = seen[-1]
    assert running["ssh"]["direct"] == {"host": "127.0.0.1", "port": 22, "username": "root",
                                        "command": "ssh root@127.0.0.1 -p 22"}
    assert running["startedAt"] is not None and running["actions"] == ["stop", "restart", "terminate"]
    assert runpod_api.state.pods[created["id"]].body == POD | {"cloud": "COMMUNITY"}


def test_boot_time_and_address_are_configurable(runpod_api, http):
    runpod_api.state.boot_polls, runpod_api.state.boot_seconds = 1, 0.3
    runpod_api.state.address, runpod_api.state.ssh_port = "10.200.3.2", 2222
    pod_id = create(http).json()["id"]
    assert http.get(f"{PODS}/{pod_id}").json()["status"] == "STARTING"  # polled, but too soon
    time.sleep(0.3)
    running = http.get(f"{PODS}/{pod_id}").json()
    assert running["status"] == "RUNNING" and running["ssh"]["direct"]["host"] == "10.200.3.2"
    assert running["runtime"]["ports"] == [{"private": 22, "public": 2222, "type": "tcp", "ip": "10.200.3.2"}]


@pytest.mark.parametrize("changes", [
    {"cloud": "SECURE", "dataCenterIds": ["US-CA-2"]},  # L40S secure is stocked elsewhere
    {"gpu": {"id": "NVIDIA A100-SXM4-80GB"}, "cloud": "COMMUNITY"},  # none anywhere in that cloud
    {"gpu": {"id": "NVIDIA H200"}, "cloud": "COMMUNITY"},  # not sold in that cloud
    {"gpu": {"id": "NVIDIA L40S", "count": 9}},  # more than a pod can hold
])
def test_creates_are_placed_only_where_the_catalog_has_stock(runpod_api, http, changes):
    refused = create(http, **changes)
    assert refused.status_code == 400 and refused.headers["content-type"] == "application/problem+json"
    assert runpod_api.state.pods == {}


def test_capacity_failures_are_injected_for_the_next_creates(runpod_api, http):
    runpod_api.state.capacity_failures = 2
    answers = [create(http) for _ in range(3)]
    assert [a.status_code for a in answers] == [400, 400, 201]
    assert answers[0].json()["detail"] == NO_CAPACITY


def test_actions_follow_the_pods_status(runpod_api, http):
    pod_id = create(http).json()["id"]
    act = f"{PODS}/{pod_id}/action"
    assert http.post(act, json={"action": "restart"}).status_code == 409  # not running yet
    stopped = http.post(act, json={"action": "stop"}).json()
    assert (stopped["status"], stopped["cost"], stopped["actions"]) == ("EXITED", 0.0, ["start", "terminate"])
    assert http.post(act, json={"action": "start"}).json()["status"] == "PROVISIONING"
    ended = http.post(act, json={"action": "terminate"})
    assert (ended.status_code, ended.content) == (204, b"")
    assert http.get(f"{PODS}/{pod_id}").status_code == 404
    assert runpod_api.state.terminated == [pod_id]


def test_deleted_pods_leave_the_list(runpod_api, http):
    keep, drop = create(http).json()["id"], create(http).json()["id"]
    assert http.delete(f"{PODS}/{drop}").status_code == 204
    assert http.delete(f"{PODS}/{drop}").status_code == 404
    assert [p["id"] for p in http.get(PODS, params={"includeClusterPods": "false"}).json()["pods"]] == [keep]


def test_bodies_the_spec_forbids_are_refused(runpod_api, http):
    runpod_api.allow_invalid_requests = True
    answer = http.post(PODS, json=POD | {"bogus": 1})
    assert answer.status_code == 400 and "bogus" in answer.json()["detail"]
    assert http.post(f"{PODS}/x/action", json={"action": "explode"}).status_code == 400
