"""The AWS provider's write side against moto (in-process): launch, get, terminate, list_by_tag.

moto lacks the DLAMI SSM parameter (seeded through its backend), honours no ClientToken and raises no
capacity errors: ``Ec2Calls`` records the RunInstances arguments and answers chosen calls itself.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from gpuctl.errors import ExitCode, NoCapacityError, ProviderError, UsageError
from gpuctl.providers import vm as caller
from gpuctl.providers.aws import launch as aws_launch
from gpuctl.providers.aws.client import enabled_regions, new_session
from gpuctl.providers.aws.provider import AWSProvider
from gpuctl.providers.tagging import EXPIRES_AT, LAUNCH_TOKEN
from tests.providers.aws_fakes import Ec2Catalog, register_dlami
from tests.providers.launch_fakes import PUBLIC_KEY, SECRETS, TAGS, offer, request

REGION = "us-east-1"
CALLER = "203.0.113.7/32"
TOKEN = "gpuctl-0f1e2d3c4b5a69788796a5b4c3d2e1f0aabbccdd"
KEY_NAME = "gpuctl-" + hashlib.sha256(base64.b64decode(PUBLIC_KEY.split()[1])).hexdigest()[:16]


@dataclass
class Ec2Calls:
    """Records each RunInstances call's arguments; ``refuse(params)`` may name an error code to answer instead."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    refuse: Callable[[dict[str, Any]], str | None] = lambda params: None
    #: ClientToken -> the instance EC2 answers that token with (an ended one, from the token's last use)
    remembered: dict[str, dict[str, Any]] = field(default_factory=dict)

    @contextmanager
    def installed(self, session: Any) -> Iterator[Any]:
        hooks = [("before-parameter-build.ec2.RunInstances", self._record),
                 ("before-call.ec2.RunInstances", self._answer)]
        for event, handler in hooks:
            session.events.register(event, handler, unique_id=f"test-{event}")
        try:
            yield session
        finally:
            for event, _ in hooks:
                session.events.unregister(event, unique_id=f"test-{event}")

    def _record(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        self.runs.append(dict(params))
        context["gpuctl-answer"] = self.refuse(params)
        context["gpuctl-token"] = params.get("ClientToken")

    def _answer(self, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        code, token = context.get("gpuctl-answer"), context.get("gpuctl-token")
        if code:
            return AWSResponse(None, 400, {}, None), {  # type: ignore[arg-type]
                "Error": {"Code": code, "Message": f"fake {code}"}, "ResponseMetadata": {}}
        if token in self.remembered:
            return AWSResponse(None, 200, {}, None), {"Instances": [self.remembered[token]]}  # type: ignore[arg-type]
        return None


@pytest.fixture(scope="module")
def catalog() -> Ec2Catalog:
    """The instance types and zones EC2 answers with (the tests' own, not moto's)."""
    return Ec2Catalog()


@pytest.fixture(scope="module")
def session(catalog: Ec2Catalog) -> Any:
    """One boto3 session for the module: each new one parses botocore's 3 MB EC2 model again (0.2 s)."""
    return catalog.install(new_session())


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, session: Any) -> Iterator[Any]:
    """moto with the DLAMI parameters seeded, the caller's CIDR set, and checkip aimed at a closed local port."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("GPUCTL_CALLER_CIDR", CALLER)
    monkeypatch.setattr(caller, "CHECKIP_URL", "http://127.0.0.1:9/")  # never the real service
    # moto's 1,200 stock images cost 0.2 s per region and test; the tests register the few they use
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        yield session.client("ec2", region_name=REGION)


@pytest.fixture
def image(aws: Any, session: Any) -> str:
    """The id of the stand-in DLAMI of us-east-1."""
    return register_dlami(session)


@pytest.fixture
def calls(aws: Any, session: Any) -> Iterator[Ec2Calls]:
    recorder = Ec2Calls()
    with recorder.installed(session):
        yield recorder


@pytest.fixture
def provider(calls: Ec2Calls, session: Any, image: str) -> AWSProvider:
    return AWSProvider(session=session, regions=[REGION])


def l40s(*, spot: bool = False, region: str = REGION, **changes: Any):
    launch_offer = offer("aws", "g6e.xlarge", region, price=1.861)
    return request(launch_offer.model_copy(update={"spot": spot}), **changes)


def described(ec2: Any, **filters: list[str]) -> list[dict[str, Any]]:
    found = ec2.describe_instances(Filters=[{"Name": k.replace("_", "-"), "Values": v} for k, v in filters.items()])
    return [i for r in found["Reservations"] for i in r["Instances"]]


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def rules(ec2: Any, group_id: str) -> list[tuple[int, list[str]]]:
    [group] = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    return sorted((p["FromPort"], sorted([r["CidrIp"] for r in p.get("IpRanges", [])]
                                         + [r["CidrIpv6"] for r in p.get("Ipv6Ranges", [])]))
                  for p in group["IpPermissions"])


# -- launch ---------------------------------------------------------------------------------------
def test_launch_creates_one_tagged_instance(aws, provider, calls, image) -> None:
    launched = provider.launch(l40s(ttl_seconds=3600))
    [raw] = described(aws)
    assert launched.id == f"{REGION}/{raw['InstanceId']}"
    assert (launched.provider, launched.status, launched.provider_status, launched.region) == (
        "aws", "pending", "pending", REGION)
    assert (launched.instance_type, launched.gpu, launched.gpu_count, launched.price_per_hour) == (
        "g6e.xlarge", "L40S", 1, 1.861)
    assert (launched.ssh_user, launched.ssh_port) == ("ubuntu", 22)
    assert launched.ssh_host == launched.public_ip == raw["PublicIpAddress"]

    expires = tags_of(raw)[EXPIRES_AT]
    assert int(expires) - datetime.now(timezone.utc).timestamp() == pytest.approx(3600, abs=30)
    assert tags_of(raw) == TAGS | {
        LAUNCH_TOKEN: TOKEN, EXPIRES_AT: expires, "Name": "qwen-l40s", "gpuctl-price-per-hour": "1.861",
        "gpuctl-gpu": "L40S", "gpuctl-gpu-count": "1", "gpuctl-ssh-user": "ubuntu"}
    assert launched.tags == tags_of(raw)
    [volume] = aws.describe_volumes()["Volumes"]
    assert tags_of(volume) == tags_of(raw)
    assert (volume["Size"], volume["VolumeType"]) == (80, "gp3")
    assert [(m["DeviceName"], m["Ebs"]["DeleteOnTermination"]) for m in raw["BlockDeviceMappings"]] == [
        ("/dev/sda1", True)]
    assert (raw["ImageId"], raw["InstanceType"], raw["KeyName"]) == (image, "g6e.xlarge", KEY_NAME)
    assert raw["Placement"]["AvailabilityZone"] == "us-east-1a"
    assert raw.get("InstanceLifecycle") is None  # on-demand
    behaviour = "instanceInitiatedShutdownBehavior"
    shutdown = aws.describe_instance_attribute(InstanceId=raw["InstanceId"], Attribute=behaviour)
    assert shutdown["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"

    [run] = calls.runs
    assert run["ClientToken"] == TOKEN
    assert run["MetadataOptions"] == {"HttpTokens": "required", "HttpEndpoint": "enabled"}
    assert "InstanceMarketOptions" not in run


def test_root_volume_is_never_smaller_than_the_image(aws, provider) -> None:
    provider.launch(l40s(disk_gb=10))  # below the image's 15 GB snapshot
    assert [v["Size"] for v in aws.describe_volumes()["Volumes"]] == [15]


def test_user_data_arms_the_ttl_watchdog_and_holds_no_secret(aws, provider) -> None:
    launched = provider.launch(l40s(ttl_seconds=5400, secrets=dict(SECRETS)))
    instance_id = launched.id.split("/")[1]
    answer = aws.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    script = base64.b64decode(answer["UserData"]["Value"]).decode()
    assert script.startswith("#!/bin/bash\n")
    assert f"printf '%s\\n' {launched.tags[EXPIRES_AT]} > /etc/gpuctl/deadline" in script
    assert "deadline=" + launched.tags[EXPIRES_AT] in script  # the watchdog's own fallback
    assert "container=gpuctl-qwen-l40s" in script and "systemd-run --unit gpuctl-watchdog" in script
    assert all(secret not in script for secret in SECRETS.values())
    assert len(script.encode()) < 16 * 1024  # EC2's user-data limit


def test_without_a_ttl_there_is_no_user_data(provider, calls) -> None:
    provider.launch(l40s())
    assert "UserData" not in calls.runs[0]


def test_spot_launch_is_one_time_and_terminates_on_interruption(aws, provider, calls) -> None:
    provider.launch(l40s(spot=True))
    [raw] = described(aws)
    assert raw["InstanceLifecycle"] == "spot"
    assert calls.runs[0]["InstanceMarketOptions"] == {"MarketType": "spot", "SpotOptions": {
        "SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}}
    kinds = [spec["ResourceType"] for spec in calls.runs[0]["TagSpecifications"]]
    assert kinds == ["instance", "volume", "spot-instances-request"]


def test_key_pair_is_imported_once_and_reused(aws, provider) -> None:
    provider.launch(l40s())
    provider.launch(l40s(name="second", token="gpuctl-second"))
    [key] = aws.describe_key_pairs()["KeyPairs"]
    assert (key["KeyName"], tags_of(key)) == (KEY_NAME, TAGS)
    assert key.get("KeyType", "ed25519") == "ed25519"  # moto before 5.1 does not report the type
    assert [i["KeyName"] for i in described(aws)] == [KEY_NAME, KEY_NAME]


def test_security_group_admits_ssh_from_the_caller_only(aws, provider) -> None:
    private = provider.launch(l40s())
    public = provider.launch(l40s(name="open", token="gpuctl-open", public=True))
    groups = {i["InstanceId"]: i["SecurityGroups"] for i in described(aws)}
    [private_group] = groups[private.id.split("/")[1]]
    [public_group] = groups[public.id.split("/")[1]]
    assert rules(aws, private_group["GroupId"]) == [(22, [CALLER])]
    assert rules(aws, public_group["GroupId"]) == [(22, [CALLER]), (8000, [CALLER])]
    assert private_group["GroupName"] == "gpuctl-qwen-l40s-" + hashlib.sha256(TOKEN.encode()).hexdigest()[:8]
    [group] = aws.describe_security_groups(GroupIds=[private_group["GroupId"]])["SecurityGroups"]
    assert {k: v for k, v in tags_of(group).items() if k in TAGS or k == LAUNCH_TOKEN} == TAGS | {LAUNCH_TOKEN: TOKEN}


def test_several_caller_ranges_and_ipv6(aws, provider, monkeypatch) -> None:
    monkeypatch.setenv("GPUCTL_CALLER_CIDR", "198.51.100.23, 2001:db8::/64")
    launched = provider.launch(l40s())
    [raw] = described(aws, instance_id=[launched.id.split("/")[1]])
    assert rules(aws, raw["SecurityGroups"][0]["GroupId"]) == [(22, ["198.51.100.23/32", "2001:db8::/64"])]


def test_the_caller_address_comes_from_checkip(aws, provider, monkeypatch) -> None:
    monkeypatch.delenv("GPUCTL_CALLER_CIDR")
    with checkip(b"198.51.100.99\n") as url:
        monkeypatch.setattr(caller, "CHECKIP_URL", url)
        provider.launch(l40s())
    [raw] = described(aws)
    assert rules(aws, raw["SecurityGroups"][0]["GroupId"]) == [(22, ["198.51.100.99/32"])]


@pytest.mark.parametrize("answer", [None, b"<html>proxy login</html>"])
def test_unknown_caller_address_is_a_usage_error_and_creates_nothing(aws, provider, monkeypatch, answer) -> None:
    monkeypatch.delenv("GPUCTL_CALLER_CIDR")
    if answer is None:  # nothing listens on the discard port: connection refused
        with pytest.raises(UsageError) as caught:
            provider.launch(l40s())
    else:
        with checkip(answer) as url:
            monkeypatch.setattr(caller, "CHECKIP_URL", url)
            with pytest.raises(UsageError) as caught:
                provider.launch(l40s())
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.message.startswith("cannot learn this machine's public IP address for the AWS security group")
    assert "GPUCTL_CALLER_CIDR" in caught.value.hint and "aws.caller_cidr" in caught.value.hint
    assert described(aws) == [] and aws.describe_key_pairs()["KeyPairs"] == []
    assert [g["GroupName"] for g in aws.describe_security_groups()["SecurityGroups"]] == ["default"]


def test_a_bad_configured_range_is_a_usage_error(provider, gpuctl, monkeypatch) -> None:
    monkeypatch.delenv("GPUCTL_CALLER_CIDR")
    gpuctl("config", "set", "aws.caller_cidr", "my-laptop")
    with pytest.raises(UsageError, match=r"aws\.caller_cidr: 'my-laptop' is not an IP address or CIDR range"):
        provider.launch(l40s())


# -- images ---------------------------------------------------------------------------------------
def test_ami_type_from_config_and_its_login_user(aws, provider, gpuctl, calls, session) -> None:
    amazon_linux = register_dlami(session, ami_type="base-oss-nvidia-driver-gpu-amazon-linux-2023")
    gpuctl("config", "set", "aws.ami_type", "base-oss-nvidia-driver-gpu-amazon-linux-2023")
    launched = provider.launch(l40s())
    assert (calls.runs[0]["ImageId"], launched.ssh_user) == (amazon_linux, "ec2-user")
    assert provider.get(launched.id).ssh_user == "ec2-user"


def test_graviton_types_get_the_arm64_image(aws, provider, calls, session) -> None:
    arm = register_dlami(session, arch="arm64")
    provider.launch(request(offer("aws", "g5g.xlarge", REGION, gpu="T4")))
    assert calls.runs[0]["ImageId"] == arm


def test_a_missing_dlami_names_the_config_key(provider, gpuctl) -> None:
    gpuctl("config", "set", "aws.ami_type", "no-such-ami")
    with pytest.raises(UsageError) as caught:
        provider.launch(l40s())
    assert "no Deep Learning AMI 'no-such-ami' for x86_64" in caught.value.message
    assert "gpuctl config set aws.ami_type" in caught.value.hint


# -- launching twice --------------------------------------------------------------------------------
def test_same_token_returns_the_first_instance(aws, provider, calls) -> None:
    first = provider.launch(l40s())
    again = provider.launch(l40s())
    assert again.id == first.id
    assert len(described(aws)) == 1
    assert [run["ClientToken"] for run in calls.runs] == [TOKEN]  # the second launch found the tag


def test_a_token_ec2_remembers_for_an_ended_instance_gets_a_successor(aws, provider, calls) -> None:
    calls.remembered[TOKEN] = {"InstanceId": "i-0ended0000000000", "State": {"Code": 48, "Name": "terminated"}}
    launched = provider.launch(l40s())
    assert [run["ClientToken"] for run in calls.runs] == [TOKEN, TOKEN + ".1"]
    assert launched.status == "pending" and launched.id == f"{REGION}/{described(aws)[0]['InstanceId']}"


def test_idempotent_parameter_mismatch_is_a_provider_error(provider, calls) -> None:
    calls.refuse = lambda params: "IdempotentParameterMismatch"
    with pytest.raises(ProviderError) as caught:
        provider.launch(l40s())
    assert caught.value.exit_code == ExitCode.PROVIDER
    assert caught.value.message.startswith(f"AWS refused launch token {TOKEN}: an earlier launch with it asked")
    assert caught.value.hint == "'gpuctl down qwen-l40s', then deploy again"


# -- capacity ---------------------------------------------------------------------------------------
def test_a_zone_without_capacity_moves_on_to_the_next(aws, provider, calls) -> None:
    calls.refuse = lambda p: ("InsufficientInstanceCapacity"
                              if p["Placement"]["AvailabilityZone"] == "us-east-1a"
                              else None)
    launched = provider.launch(l40s())
    assert [run["Placement"]["AvailabilityZone"] for run in calls.runs] == ["us-east-1a", "us-east-1b"]
    assert {run["ClientToken"] for run in calls.runs} == {TOKEN}
    [raw] = described(aws)
    assert raw["Placement"]["AvailabilityZone"] == "us-east-1b" and launched.status == "pending"


@pytest.mark.parametrize("code", ["InsufficientInstanceCapacity", "Unsupported", "SpotMaxPriceTooLow"])
def test_no_zone_with_capacity_is_exit_5_and_leaves_nothing(aws, provider, calls, code) -> None:
    calls.refuse = lambda params: code
    with pytest.raises(NoCapacityError) as caught:
        provider.launch(l40s(spot=True))
    assert caught.value.exit_code == ExitCode.NO_CAPACITY
    # us-east-1 offers g6e.xlarge in zones a-d (tests/providers/data/aws_ec2.json)
    assert caught.value.message == ("AWS has no capacity for spot g6e.xlarge in us-east-1 (" + "; ".join(
        f"us-east-1{z}: {code}" for z in "abcd") + ")")
    assert described(aws) == []
    assert [g["GroupName"] for g in aws.describe_security_groups()["SecurityGroups"]] == ["default"]


def test_an_account_limit_stops_at_the_first_zone(provider, calls) -> None:
    calls.refuse = lambda params: "VcpuLimitExceeded"
    with pytest.raises(NoCapacityError, match=r"AWS account limit reached launching g6e.xlarge in us-east-1 "
                                              r"\(VcpuLimitExceeded\)"):
        provider.launch(l40s())
    assert len(calls.runs) == 1


def test_other_refusals_are_provider_errors_naming_the_call(provider, calls) -> None:
    calls.refuse = lambda params: "InvalidParameterCombination"
    with pytest.raises(ProviderError, match=r"^AWS API RunInstances failed: InvalidParameterCombination: fake"):
        provider.launch(l40s())


def test_a_type_offered_in_no_zone_is_no_capacity(provider, catalog: Ec2Catalog,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # EC2's answer for a type the region lists but none of its zones offers: no zone offerings
    monkeypatch.setitem(catalog.offerings["eu-north-1"], "p5.4xlarge", [])
    with pytest.raises(NoCapacityError, match=r"AWS offers p5\.4xlarge in no zone of eu-north-1"):
        provider.launch(request(offer("aws", "p5.4xlarge", "eu-north-1", gpu="H100-SXM")))


def test_denied_calls_name_the_action(provider, calls) -> None:
    calls.refuse = lambda params: "UnauthorizedOperation"
    with pytest.raises(Exception) as caught:
        provider.launch(l40s())
    assert caught.value.exit_code == ExitCode.CREDENTIALS
    assert caught.value.hint.startswith("allow the RunInstances action for these credentials")


# -- get, terminate, list -----------------------------------------------------------------------------
def test_get_follows_the_instance_from_pending_to_terminated(provider) -> None:
    launched = provider.launch(l40s())
    running = provider.get(launched.id)
    assert (running.status, running.provider_status, running.ssh_host) == ("running", "running", launched.public_ip)
    assert (running.price_per_hour, running.gpu, running.name) == (1.861, "L40S", "qwen-l40s")
    assert provider.get(launched.id.split("/")[1]).id == launched.id  # a bare id is in the default region

    provider.terminate(launched.id)
    assert provider.get(launched.id).status in ("stopping", "terminated")  # shutting-down, then terminated
    assert provider.get(launched.id).status == "terminated"
    provider.terminate(launched.id)  # already terminated: fine
    provider.terminate(f"{REGION}/i-0123456789abcdef0")  # never existed (or forgotten): fine


def test_terminate_refuses_an_instance_gpuctl_did_not_launch(aws, provider, image) -> None:
    [raw] = aws.run_instances(ImageId=image, InstanceType="g6e.xlarge", MinCount=1, MaxCount=1)["Instances"]
    with pytest.raises(UsageError, match="was not launched by gpuctl; not terminating it"):
        provider.terminate(f"{REGION}/{raw['InstanceId']}")
    assert [i["State"]["Name"] for i in described(aws)] == ["running"]


def test_security_groups_go_once_their_instances_are_terminated(aws, provider) -> None:
    gone = provider.launch(l40s())
    kept = provider.launch(l40s(name="kept", token="gpuctl-kept"))
    [gone_group] = described(aws, instance_id=[gone.id.split("/")[1]])[0]["SecurityGroups"]
    provider.terminate(gone.id)  # shutting down: EC2 would refuse to delete its group yet
    assert provider.get(gone.id).status == "terminated"
    provider.terminate(gone.id)  # a later teardown (or launch) sweeps
    names = sorted(g["GroupName"] for g in aws.describe_security_groups()["SecurityGroups"])
    assert gone_group["GroupName"] not in names
    assert names == sorted(["default", aws_launch.group_name(l40s(name="kept", token="gpuctl-kept"))])
    assert provider.get(kept.id).status == "running"


def test_a_group_without_instances_goes_only_when_stale(aws) -> None:
    vpc = aws.describe_vpcs()["Vpcs"][0]["VpcId"]

    def group(name: str, created: int) -> str:
        spec = aws_launch.tag_spec("security-group", {LAUNCH_TOKEN: name, aws_launch.CREATED_TAG: str(created)})
        return aws.create_security_group(GroupName=name, Description="t", VpcId=vpc,
                                         TagSpecifications=[spec])["GroupId"]

    now = int(datetime.now(timezone.utc).timestamp())
    stale, fresh = group("stale", now - 7200), group("fresh", now - 60)
    assert aws_launch.sweep_security_groups(aws) == [stale]
    assert fresh in [g["GroupId"] for g in aws.describe_security_groups()["SecurityGroups"]]


def test_list_by_tag_finds_this_projects_live_instances_in_every_region(aws, calls, session, image) -> None:
    register_dlami(session, "us-west-2")
    provider = AWSProvider(session=session, regions=[REGION, "us-west-2"])
    mine = provider.launch(l40s())
    west = provider.launch(l40s(name="west", token="gpuctl-west", region="us-west-2",
                                tags=TAGS | {"gpuctl-deployment": "west"}))
    ended = provider.launch(l40s(name="ended", token="gpuctl-ended", tags=TAGS | {"gpuctl-deployment": "ended"}))
    provider.terminate(ended.id)
    provider.get(ended.id)  # now terminated
    provider.launch(l40s(name="theirs", token="gpuctl-theirs", tags=TAGS | {"gpuctl-project": "p-other"}))
    aws.run_instances(ImageId=image, InstanceType="g6e.xlarge", MinCount=1, MaxCount=1, TagSpecifications=[
        aws_launch.tag_spec("instance", TAGS)])  # gpuctl's tags copied by hand: no launch token, not gpuctl's

    found = provider.list_by_tag({"gpuctl": "managed", "gpuctl-project": "p-1a2b3c"})
    assert sorted((i.id, i.region, i.tags["gpuctl-deployment"]) for i in found) == sorted(
        [(mine.id, REGION, "qwen-l40s"), (west.id, "us-west-2", "west")])
    assert len(provider.list_by_tag({"gpuctl": "managed"})) == 3


def test_list_by_tag_skips_regions_the_account_cannot_use(aws, session) -> None:
    def closed(context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if context.get("client_region") != "eu-west-1":
            return None
        return AWSResponse(None, 401, {}, None), {  # type: ignore[arg-type]
            "Error": {"Code": "AuthFailure", "Message": "region disabled"}, "ResponseMetadata": {}}

    session.events.register("before-call.ec2.DescribeInstances", closed, unique_id="test-closed")
    try:
        assert AWSProvider(session=session, regions=[REGION, "eu-west-1"]).list_by_tag({"gpuctl": "managed"}) == []
    finally:
        session.events.unregister("before-call.ec2.DescribeInstances", unique_id="test-closed")


def test_enabled_regions_leave_out_regions_not_opted_in() -> None:
    class Ec2:
        def describe_regions(self) -> dict[str, Any]:
            return {"Regions": [{"RegionName": "us-east-1", "OptInStatus": "opt-in-not-required"},
                                {"RegionName": "af-south-1", "OptInStatus": "not-opted-in"},
                                {"RegionName": "ap-east-1", "OptInStatus": "opted-in"}]}

    assert enabled_regions(Ec2()) == ["ap-east-1", "us-east-1"]


# -- helpers --------------------------------------------------------------------------------------
@contextmanager
def checkip(body: bytes) -> Iterator[str]:
    """A one-answer HTTP server on 127.0.0.1 standing in for AWS's checkip service; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
