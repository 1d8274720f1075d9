"""Several EC2 instances that reach each other on every port, for one engine across them (vLLM multi-node).

They share a *cluster* placement group (one zone, close together on the network, which is what
NCCL needs between pipeline stages) and the deployment's security group, which besides SSH from
the caller admits all traffic from its own members (torch.distributed opens ports of its own).
``RunInstances`` with ``MinCount == MaxCount == N`` places all of them or none; the launch token
makes a retry find the same N. Once the instances are gone, ``release`` deletes the placement group
(the security group goes with the usual sweep).
"""

from __future__ import annotations

import logging
from typing import Any

from gpuctl.errors import NoCapacityError, ProviderError
from gpuctl.models.instance import LaunchRequest
from gpuctl.providers.aws.launch import (
    _QUOTA_REFUSALS,
    _ZONE_REFUSALS,
    error_code,
    group_name,
    instances,
    launch_basis,
    run_params,
    sweep_security_groups,
    tag_spec,
)
from gpuctl.providers.tagging import LAUNCH_TOKEN

log = logging.getLogger(__name__)

_LIVE = ["pending", "running", "stopping", "stopped"]


def launch_nodes(ec2: Any, ssm: Any, request: LaunchRequest, nodes: int, cidrs: list[str]) -> list[dict[str, Any]]:
    """The ``nodes`` raw instances of ``request`` (those carrying its launch token, else new ones), rank order."""
    earlier = by_token(ec2, request.idempotency_token)
    if len(earlier) == nodes:
        log.info("AWS: %d instances already carry launch token %s", nodes, request.idempotency_token)
        return earlier
    if earlier:
        raise ProviderError(f"AWS has {len(earlier)} of the {nodes} instances of launch token "
                            f"{request.idempotency_token}", f"'gpuctl down {request.name}', then deploy again")
    offer = request.offer
    basis = launch_basis(ec2, ssm, request, cidrs)
    zones, group_id = basis.zones, basis.group_id
    allow_members(ec2, group_id)
    placement = placement_group(ec2, request, basis.tags)
    params = {**run_params(request, basis.image, basis.key_name, group_id, basis.tags), "MinCount": nodes,
              "MaxCount": nodes}
    from botocore.exceptions import ClientError

    refused: list[str] = []
    for zone in zones:  # a cluster placement group lives in one zone: the first that takes all N
        try:
            raw = ec2.run_instances(**params, ClientToken=request.idempotency_token,
                                    Placement={"AvailabilityZone": zone.name, "GroupName": placement})["Instances"]
        except ClientError as exc:
            code = error_code(exc)
            if code in _ZONE_REFUSALS:
                refused.append(f"{zone.name}: {code}")
                continue
            if code in _QUOTA_REFUSALS:
                raise NoCapacityError(f"AWS account limit reached launching {nodes} x {offer.instance_type} "
                                      f"in {offer.region} ({code})",
                                      "ask AWS to raise the EC2 quota for this instance family") from None
            raise
        return sorted(raw, key=lambda i: i.get("AmiLaunchIndex", 0))
    raise NoCapacityError(f"AWS has no zone of {offer.region} with {nodes} x {offer.instance_type} in one cluster "
                          f"placement group ({'; '.join(refused)})")


def by_token(ec2: Any, token: str) -> list[dict[str, Any]]:
    """Live instances launched with ``token``, rank (launch index) order."""
    found = instances(ec2, [{"Name": f"tag:{LAUNCH_TOKEN}", "Values": [token]},
                            {"Name": "instance-state-name", "Values": _LIVE}])
    return sorted(found, key=lambda i: i.get("AmiLaunchIndex", 0))


def allow_members(ec2: Any, group_id: str) -> None:
    """Every protocol and port between the security group's own members."""
    from botocore.exceptions import ClientError

    try:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{
            "IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id, "Description": "gpuctl: between nodes"}]}])
    except ClientError as exc:
        if error_code(exc) != "InvalidPermission.Duplicate":
            raise


def placement_group(ec2: Any, request: LaunchRequest, tags: dict[str, str]) -> str:
    """The deployment's cluster placement group (named like its security group), made on first use."""
    name = group_name(request)
    found = ec2.describe_placement_groups(Filters=[{"Name": "group-name", "Values": [name]}])["PlacementGroups"]
    if not found:
        ec2.create_placement_group(GroupName=name, Strategy="cluster",
                                   TagSpecifications=[tag_spec("placement-group", tags)])
    return name


def release(ec2: Any, tags: dict[str, str]) -> list[str]:
    """Delete the placement groups carrying ``tags`` (their instances are gone); the names deleted."""
    from botocore.exceptions import ClientError

    filters = [{"Name": f"tag:{key}", "Values": [value]} for key, value in sorted(tags.items())]
    deleted = []
    for group in ec2.describe_placement_groups(Filters=filters)["PlacementGroups"]:
        try:
            ec2.delete_placement_group(GroupName=group["GroupName"])
        except ClientError as exc:  # still in use by an instance shutting down: the next release retries
            log.info("AWS: placement group %s stays: %s", group["GroupName"], exc)
            continue
        deleted.append(group["GroupName"])
    sweep_security_groups(ec2)
    return deleted
