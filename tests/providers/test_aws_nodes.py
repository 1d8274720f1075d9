"""AWS multi-node against moto: N instances in one cluster placement group, open to each other, released after.

moto implements no placement group call: ``PlacementGroups`` answers those three (as EC2 documents them)
through botocore's event hooks, and refuses to delete a group the test marks in use (EC2's
``InvalidPlacementGroup.InUse`` while an instance in it is not yet terminated).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from gpuctl.errors import NoCapacityError
from gpuctl.providers.aws import nodes as aws_nodes
from gpuctl.providers.capabilities import Capability
from tests.providers import test_aws_lifecycle as lifecycle
from tests.providers.test_aws_lifecycle import CALLER, REGION, described, l40s, tags_of

# the moto fixtures of the single-instance tests (and the EC2 catalogue their session answers from)
aws, calls, catalog, image, provider, session = lifecycle.aws, lifecycle.calls, lifecycle.catalog, lifecycle.image, \
    lifecycle.provider, lifecycle.session


@dataclass
class PlacementGroups:
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    in_use: set[str] = field(default_factory=set)

    def create(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        tags = [t for spec in params.get("TagSpecifications", []) for t in spec["Tags"]]
        self.groups[params["GroupName"]] = {"GroupName": params["GroupName"], "Strategy": params["Strategy"],
                                            "State": "available", "Tags": tags}
        return _ok({"PlacementGroup": self.groups[params["GroupName"]]})

    def describe(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        found = list(self.groups.values())
        for wanted in params.get("Filters", []):
            name = wanted["Name"]
            if name == "group-name":
                found = [g for g in found if g["GroupName"] in wanted["Values"]]
            elif name.startswith("tag:"):
                found = [g for g in found if any(t["Key"] == name[4:] and t["Value"] in wanted["Values"]
                                                 for t in g["Tags"])]
        found = [g for g in found if not params.get("GroupNames") or g["GroupName"] in params["GroupNames"]]
        return _ok({"PlacementGroups": found})

    def delete(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        if params["GroupName"] in self.in_use:
            return AWSResponse(None, 400, {}, None), {  # type: ignore[arg-type]
                "Error": {"Code": "InvalidPlacementGroup.InUse", "Message": "in use"}, "ResponseMetadata": {}}
        self.groups.pop(params["GroupName"], None)
        return _ok({})


def _ok(body: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    return AWSResponse(None, 200, {}, None), {**body, "ResponseMetadata": {}}  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def placement(session: Any, aws: Any) -> Iterator[PlacementGroups]:
    fake = PlacementGroups()
    hooks = {"CreatePlacementGroup": fake.create, "DescribePlacementGroups": fake.describe,
             "DeletePlacementGroup": fake.delete}

    def keep(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["pg-params"] = dict(params)

    def answerer(handler: Any) -> Any:
        return lambda context, **_: handler(context["pg-params"])

    emitters = [session.events, aws.meta.events]  # clients made earlier (the test's own) keep their own copy
    for events in emitters:
        for operation, handler in hooks.items():
            events.register(f"before-parameter-build.ec2.{operation}", keep, unique_id=f"pg-keep-{operation}")
            events.register(f"before-call.ec2.{operation}", answerer(handler), unique_id=f"pg-{operation}")
    try:
        yield fake
    finally:
        for events in emitters:
            for operation in hooks:
                events.unregister(f"before-parameter-build.ec2.{operation}", unique_id=f"pg-keep-{operation}")
                events.unregister(f"before-call.ec2.{operation}", unique_id=f"pg-{operation}")


def test_aws_declares_multi_node(provider) -> None:
    assert provider.can(Capability.MULTI_NODE)


def test_nodes_share_a_cluster_placement_group_and_reach_each_other(aws, provider, calls) -> None:
    nodes = provider.launch_nodes(l40s(), 2)
    raw = described(aws)
    assert len(nodes) == len(raw) == 2
    assert [n.id for n in nodes] == [f"{REGION}/{r['InstanceId']}" for r in
                                     sorted(raw, key=lambda r: r["AmiLaunchIndex"])]
    assert all(n.private_ip and n.ssh_host for n in nodes), "rank 0's private address is the master address"
    [run] = calls.runs
    assert (run["MinCount"], run["MaxCount"]) == (2, 2), "all of them or none"
    group = run["Placement"]["GroupName"]
    [made] = aws.describe_placement_groups(GroupNames=[group])["PlacementGroups"]
    assert made["Strategy"] == "cluster"
    assert tags_of(made).items() >= {"gpuctl-deployment": "qwen-l40s"}.items()
    [group_id] = {g["GroupId"] for r in raw for g in r["SecurityGroups"]}
    [sg] = aws.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    members = [p for p in sg["IpPermissions"] if p.get("UserIdGroupPairs")]
    assert [(p["IpProtocol"], [u["GroupId"] for u in p["UserIdGroupPairs"]]) for p in members] == [("-1", [group_id])]
    ssh = [p for p in sg["IpPermissions"] if p.get("FromPort") == 22]
    assert [r["CidrIp"] for p in ssh for r in p["IpRanges"]] == [CALLER], "SSH still from the caller only"

    again = provider.launch_nodes(l40s(), 2)
    assert [n.id for n in again] == [n.id for n in nodes] and len(calls.runs) == 1, "the launch token finds them"

    for node in nodes:
        provider.terminate(node.id)
    provider.release_nodes({"gpuctl-deployment": "qwen-l40s"})
    assert aws.describe_placement_groups(GroupNames=[group])["PlacementGroups"] == []


def test_no_zone_with_room_for_all_is_no_capacity(aws, provider, calls) -> None:
    calls.refuse = lambda params: "InsufficientInstanceCapacity"
    with pytest.raises(NoCapacityError, match=r"no zone of us-east-1 with 2 x g6e\.xlarge in one cluster placement"):
        provider.launch_nodes(l40s(), 2)
    assert described(aws) == []


def test_release_keeps_a_group_still_in_use(aws: Any, provider, calls, placement: PlacementGroups) -> None:
    assert provider.launch_nodes(l40s(), 2)
    placement.in_use.update(placement.groups)
    assert aws_nodes.release(aws, {"gpuctl-deployment": "qwen-l40s"}) == []
    assert list(placement.groups) == [calls.runs[0]["Placement"]["GroupName"]], "kept while its instances live"
