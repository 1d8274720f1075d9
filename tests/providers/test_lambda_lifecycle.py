"""Lambda Cloud instances: launch, poll, terminate and find them, against the spec-checked stand-in."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time

import httpx
import pytest

from gpuctl.errors import ExitCode, NoCapacityError, ProviderError, UsageError
from gpuctl.providers.http import ErrorInfo, ProviderHttpError
from gpuctl.providers.lambda_cloud.client import Instance as LambdaInstance
from gpuctl.providers.lambda_cloud.client import SSHKey
from gpuctl.providers.lambda_cloud.launch import ensure_ssh_key
from gpuctl.providers.lambda_cloud.mapping import lambda_instance
from gpuctl.providers.lambda_cloud.provider import LambdaProvider
from gpuctl.providers.tagging import EXPIRES_AT, LAUNCH_TOKEN
from tests.providers.launch_fakes import PUBLIC_KEY, SECRETS, TAGS, offer, request
from tests.standins.openapi import OpenApiSpec
from tests.standins.server import Fault

LAUNCH = "/api/v1/instance-operations/launch"
TERMINATE = "/api/v1/instance-operations/terminate"
KEYS = "/api/v1/ssh-keys"
A10 = "gpu_1x_a10"
#: the key's name at Lambda: "gpuctl-" and the start of its SHA-256 fingerprint
KEY_NAME = "gpuctl-" + hashlib.sha256(base64.b64decode(PUBLIC_KEY.split()[1])).hexdigest()[:16]


def a10(region="us-east-1", **changes):
    return request(offer("lambda", A10, region, gpu="A10", price=0.75), **changes)


def launches(api):
    return api.calls("POST", LAUNCH)


def wait_running(provider, instance_id, polls=5):
    for _ in range(polls):
        instance = provider.get(instance_id)
        if instance.status == "running":
            return instance
    raise AssertionError(f"instance {instance_id} never came up")


def test_launch_poll_terminate(lambda_api):
    provider = LambdaProvider()
    launched = provider.launch(a10())
    assert (launched.provider, launched.status, launched.provider_status) == ("lambda", "pending", "booting")
    assert (launched.gpu, launched.gpu_count, launched.region, launched.price_per_hour) == ("A10", 1, "us-east-1", 0.75)
    assert launched.ssh_host is None and launched.public_ip is None  # no address while it boots
    assert (launched.ssh_user, launched.ssh_port, launched.endpoint_url) == ("ubuntu", 22, None)

    running = wait_running(provider, launched.id)
    assert (running.ssh_host, running.public_ip, running.name) == ("127.0.0.1", "127.0.0.1", "qwen-l40s")

    provider.terminate(launched.id)
    assert provider.get(launched.id).status == "terminated"  # terminating, then terminated
    provider.terminate(launched.id)  # already terminated: nothing is sent
    assert len(lambda_api.calls("POST", TERMINATE)) == 1
    assert provider.list_by_tag(TAGS) == []


def test_launch_body(lambda_api):
    LambdaProvider().launch(a10())
    [launch] = launches(lambda_api)
    tags = {t["key"]: t["value"] for t in launch.body["tags"]}
    assert tags == TAGS | {LAUNCH_TOKEN: "gpuctl-0f1e2d3c4b5a69788796a5b4c3d2e1f0aabbccdd"}
    assert {k: v for k, v in launch.body.items() if k != "tags"} == {
        "region_name": "us-east-1", "instance_type_name": A10, "ssh_key_names": [KEY_NAME], "name": "qwen-l40s"}


def test_region_any_takes_a_region_with_capacity(lambda_api):
    launched = LambdaProvider().launch(a10(region="any"))
    assert launches(lambda_api)[0].body["region_name"] == "us-west-1" == launched.region


def test_region_any_without_capacity_anywhere_is_no_capacity(lambda_api):
    sold_out = request(offer("lambda", "gpu_8x_a100_80gb_sxm4", "any", gpu="A100-80GB-SXM", count=8))
    with pytest.raises(NoCapacityError, match="no gpu_8x_a100_80gb_sxm4 free in any region") as refused:
        LambdaProvider().launch(sold_out)
    assert refused.value.exit_code == ExitCode.NO_CAPACITY and launches(lambda_api) == []


def test_ssh_key_is_registered_once_and_reused(lambda_api):
    provider = LambdaProvider()
    provider.launch(a10())
    provider.launch(a10(token="gpuctl-second-launch"))
    [added] = lambda_api.calls("POST", KEYS)
    assert added.body == {"name": KEY_NAME, "public_key": PUBLIC_KEY}
    assert [r.body["ssh_key_names"] for r in launches(lambda_api)] == [[KEY_NAME], [KEY_NAME]]


def test_a_key_registered_by_hand_is_reused_under_its_own_name(lambda_api):
    blob = " ".join(PUBLIC_KEY.split()[:2])
    lambda_api.state.ssh_keys["k1"] = {"id": "k1", "name": "laptop", "public_key": blob + " me@laptop"}
    LambdaProvider().launch(a10())
    assert lambda_api.calls("POST", KEYS) == []
    assert launches(lambda_api)[0].body["ssh_key_names"] == ["laptop"]


class RacingKeys:
    """An API where the key appears (added by another gpuctl) between gpuctl's look and its add."""

    def __init__(self):
        self.reads = [[], [SSHKey(id="k3", name=KEY_NAME, public_key=PUBLIC_KEY)]]

    def list_ssh_keys(self):
        return self.reads.pop(0)

    def add_ssh_key(self, name, public_key):
        raise ProviderHttpError("duplicate", info=ErrorInfo(status=400, message="name taken"))


def test_key_added_meanwhile_by_another_gpuctl_is_used():
    api = RacingKeys()
    assert ensure_ssh_key(api, PUBLIC_KEY) == KEY_NAME and api.reads == []


def test_an_instance_being_terminated_is_not_the_launchs_result(lambda_api):
    provider = LambdaProvider()
    first = provider.launch(a10())
    provider.terminate(first.id)  # terminating; a new `up` with the same name reuses the token
    again = provider.launch(a10())
    assert again.id != first.id and len(launches(lambda_api)) == 2


def test_insufficient_capacity_is_no_capacity(lambda_api):
    lambda_api.state.capacity_failures = 1
    with pytest.raises(NoCapacityError) as refused:
        LambdaProvider().launch(a10())
    assert refused.value.exit_code == 5
    assert "no capacity for gpu_1x_a10 in us-east-1" in refused.value.message
    assert "instance-operations/launch/insufficient-capacity" in refused.value.message
    assert LambdaProvider().launch(a10()).status == "pending"


def test_region_without_capacity_is_no_capacity(lambda_api):
    with pytest.raises(NoCapacityError):
        LambdaProvider().launch(a10(region="us-south-1"))


def test_quota_refusal_is_no_capacity_with_lambdas_suggestion(lambda_api):
    quota = {"error": {"code": "global/quota-exceeded", "message": "Quota exceeded.",
                       "suggestion": "Contact Support to increase your quota."}}
    lambda_api.faults.next(Fault.error(400, method="POST", path=LAUNCH, body=quota))
    with pytest.raises(NoCapacityError, match="quota exceeded launching gpu_1x_a10") as refused:
        LambdaProvider().launch(a10())
    assert refused.value.hint == "Contact Support to increase your quota."


def test_server_error_on_launch_is_not_retried(lambda_api, fast_retries):
    lambda_api.faults.next(Fault.error(500, method="POST", path=LAUNCH))
    with pytest.raises(ProviderError) as failed:
        LambdaProvider().launch(a10())
    assert type(failed.value) is not NoCapacityError and failed.value.exit_code == ExitCode.PROVIDER
    assert len(launches(lambda_api)) == 1 and lambda_api.state.instances == {}


def test_rate_limited_launch_is_sent_again(lambda_api, fast_retries):
    lambda_api.faults.next(Fault.error(429, retry_after=0, method="POST", path=LAUNCH))
    launched = LambdaProvider().launch(a10())
    assert [r.status for r in launches(lambda_api)] == [429, 200]
    assert list(lambda_api.state.instances) == [launched.id]


def test_terminate_retries_a_transient_failure_and_reports_a_lasting_one(lambda_api, fast_retries):
    provider = LambdaProvider()
    first = provider.launch(a10())
    lambda_api.faults.next(Fault.error(503, method="POST", path=TERMINATE))
    provider.terminate(first.id)
    assert [r.status for r in lambda_api.calls("POST", TERMINATE)] == [503, 200]
    assert lambda_api.state.instances[first.id].status == "terminating"
    second = provider.launch(a10(token="gpuctl-second"))
    lambda_api.faults.always(Fault.error(500, method="POST", path=TERMINATE))
    with pytest.raises(ProviderError, match="terminate"):
        provider.terminate(second.id)
    assert lambda_api.state.instances[second.id].status != "terminating"


def test_instance_that_never_gets_an_address(lambda_api):
    lambda_api.state.assign_ip = False
    provider = LambdaProvider()
    running = wait_running(provider, provider.launch(a10()).id)
    assert running.ssh_host is None and running.public_ip is None


def test_ttl_arms_the_watchdog_through_user_data(lambda_api):
    before = int(time.time())
    launched = LambdaProvider().launch(a10(ttl_seconds=7200, secrets=dict(SECRETS)))
    [launch] = launches(lambda_api)
    deadline = int(launched.tags[EXPIRES_AT])
    assert before + 7200 <= deadline <= time.time() + 7200
    script = launch.body["user_data"]
    assert script.startswith("#!/bin/bash") and "gpuctl-watchdog" in script
    assert f"printf '%s\\n' {deadline} > /etc/gpuctl/deadline" in script
    assert re.search(r"^container=gpuctl-qwen-l40s$", script, re.M)
    assert not any(secret in script for secret in (*SECRETS.values(), lambda_api.api_key))
    answers = json.dumps([r.response_body for r in lambda_api.requests])
    assert "gpuctl-watchdog" not in answers  # user data is write-only


def test_list_by_tag_finds_only_gpuctls_instances(lambda_api):
    provider = LambdaProvider()
    mine = provider.launch(a10())
    other = provider.launch(a10(token="gpuctl-other", tags=TAGS | {"gpuctl-project": "p-other"}))
    raw = {"region_name": "us-west-1", "instance_type_name": A10, "ssh_key_names": [KEY_NAME]}
    with httpx.Client(base_url=lambda_api.url, headers={"Authorization": f"Bearer {lambda_api.api_key}"}) as http:
        assert http.post(LAUNCH, json=raw).status_code == 200
    assert len(lambda_api.state.instances) == 3
    assert {i.id for i in provider.list_by_tag({"gpuctl": "managed"})} == {mine.id, other.id}
    assert [i.id for i in provider.list_by_tag({"gpuctl-project": "p-1a2b3c"})] == [mine.id]
    assert {i.id for i in provider.list_by_tag({})} == {mine.id, other.id}


def test_tags_lambda_would_refuse_are_refused_first(lambda_api):
    with pytest.raises(UsageError, match="cannot store the tag Project"):
        LambdaProvider().launch(a10(tags={"Project": "x"}))
    assert lambda_api.requests == []


@pytest.mark.parametrize(("changes", "message"), [({"ssh_public_key": None}, "has no public key"),
                                                  ({"ssh_public_key": "not-a-key"}, "not in OpenSSH format")])
def test_launch_needs_a_usable_public_key(lambda_api, changes, message):
    with pytest.raises(UsageError, match=message):
        LambdaProvider().launch(a10(**changes))
    assert launches(lambda_api) == []


def test_secrets_never_reach_lambda(lambda_api, caplog):
    caplog.set_level(logging.DEBUG)
    launched = LambdaProvider().launch(a10(ttl_seconds=600, secrets=dict(SECRETS)))
    sent = json.dumps([r.body for r in lambda_api.requests])
    shown = caplog.text + launched.model_dump_json() + sent
    assert not any(secret in shown for secret in SECRETS.values())


@pytest.mark.parametrize(("status", "expected"), [("booting", "pending"), ("active", "running"),
                                                  ("unhealthy", "error"), ("terminating", "stopping"),
                                                  ("terminated", "terminated"), ("preempted", "terminated")])
def test_status_and_fields_of_the_specs_own_instance(status, expected):
    terminated = OpenApiSpec.load("lambda_cloud_openapi.json").document["paths"][TERMINATE]["post"]["responses"]
    [answer] = terminated["200"]["content"]["application/json"]["schema"]["properties"]["data"]["examples"]
    example = answer["terminated_instances"][0]  # the spec's only full instance example
    instance = lambda_instance(LambdaInstance.model_validate(example | {"status": status}))
    assert (instance.status, instance.provider_status) == (expected, status)
    assert (instance.ssh_host, instance.ssh_user, instance.ssh_port) == (example["ip"], "ubuntu", 22)
    assert instance.price_per_hour == example["instance_type"]["price_cents_per_hour"] / 100
    assert instance.tags == {t["key"]: t["value"] for t in example["tags"]}


# -- firewall rulesets for public deployments ----------------------------------------------------------------

RULESETS = "/api/v1/firewall-rulesets"


def test_public_launch_attaches_a_ruleset_of_its_own_from_the_caller(lambda_api, monkeypatch):
    monkeypatch.setenv("GPUCTL_CALLER_CIDR", "198.51.100.23, 203.0.113.0/24, 2001:db8::/64")
    launched = LambdaProvider().launch(a10(public=True))
    [create] = lambda_api.calls("POST", RULESETS)
    assert create.body["name"] == "gpuctl-qwen-l40s-" + hashlib.sha256(
        b"gpuctl-0f1e2d3c4b5a69788796a5b4c3d2e1f0aabbccdd").hexdigest()[:8]
    assert create.body["region"] == "us-east-1"
    assert [(r["protocol"], r["port_range"], r["source_network"]) for r in create.body["rules"]] == [
        ("tcp", [22, 22], "198.51.100.23/32"), ("tcp", [22, 22], "203.0.113.0/24"),
        ("tcp", [8000, 8000], "198.51.100.23/32"), ("tcp", [8000, 8000], "203.0.113.0/24")]
    [ruleset_id] = lambda_api.state.firewall_rulesets
    assert launches(lambda_api)[0].body["firewall_rulesets"] == [{"id": ruleset_id}]
    assert lambda_api.state.instances[launched.id].firewall_rulesets == [ruleset_id]
    assert lambda_api.calls("PUT", "/api/v1/firewall-rules") == []  # the account-wide rules are never touched


def test_terminate_deletes_the_ruleset_once_the_instance_has_terminated(lambda_api, monkeypatch):
    monkeypatch.setenv("GPUCTL_CALLER_CIDR", "198.51.100.23")
    provider = LambdaProvider()
    launched = provider.launch(a10(public=True))
    wait_running(provider, launched.id)
    [ruleset_id] = lambda_api.state.firewall_rulesets
    provider.terminate(launched.id)
    assert lambda_api.state.firewall_rulesets == {}
    assert [c.status for c in lambda_api.calls("DELETE", f"{RULESETS}/{ruleset_id}")] == [200]


def test_a_relaunch_reuses_its_ruleset(lambda_api, monkeypatch):
    monkeypatch.setenv("GPUCTL_CALLER_CIDR", "198.51.100.23")
    lambda_api.state.capacity_failures = 1
    with pytest.raises(NoCapacityError):
        LambdaProvider().launch(a10(public=True))
    assert lambda_api.state.firewall_rulesets == {}  # a failed launch deletes its ruleset
    LambdaProvider().launch(a10(public=True))
    assert len(lambda_api.state.firewall_rulesets) == 1


def test_private_launch_makes_no_ruleset(lambda_api, monkeypatch):
    monkeypatch.setenv("GPUCTL_CALLER_CIDR", "198.51.100.23")
    provider = LambdaProvider()
    launched = provider.launch(a10())
    provider.terminate(launched.id)
    assert lambda_api.calls("POST", RULESETS) == [] and lambda_api.calls("GET", RULESETS) == []
    assert "firewall_rulesets" not in launches(lambda_api)[0].body


def test_public_launch_without_an_ipv4_caller_range_creates_nothing(lambda_api, monkeypatch):
    monkeypatch.setenv("GPUCTL_CALLER_CIDR", "2001:db8::/64")
    with pytest.raises(UsageError, match="IPv4 ranges only"):
        LambdaProvider().launch(a10(public=True))
    assert lambda_api.requests == []  # the address is learnt before anything is asked
    assert lambda_api.state.firewall_rulesets == {}
