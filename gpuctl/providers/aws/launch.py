"""The AWS provider's write side: what one launch creates, and EC2 instances read back as gpuctl's.

A launch checks before it creates anything: the caller's address (``aws.caller_cidr`` /
GPUCTL_CALLER_CIDR, else AWS's checkip service), the zones offering the type that have a default
subnet, and the Deep Learning AMI of ``aws.ami_type`` for the type's architecture (a public SSM
parameter). Then it imports the project's SSH key as a key pair (once, named after its fingerprint),
makes the deployment's security group (SSH, and with ``--public`` the engine port, from the caller's
address only) and calls ``RunInstances`` zone by zone until one has capacity. The root volume goes
with the instance, and ``InstanceInitiatedShutdownBehavior=terminate`` plus the TTL watchdog in the
user data make the instance terminate itself at its deadline with no credentials on it.

Instance ids are ``REGION/i-...``: gpuctl's interface passes ids alone, and EC2 ids are regional.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gpuctl.credentials import credential_value
from gpuctl.errors import NoCapacityError, ProviderError, UsageError
from gpuctl.models.engine import HOST_PORT
from gpuctl.models.instance import Instance, InstanceStatus, LaunchRequest
from gpuctl.providers.aws.client import AMI_TYPE, all_pages
from gpuctl.providers.aws.mapping import NAME
from gpuctl.providers.tagging import LAUNCH_TOKEN, deadline, launch_tags
from gpuctl.providers.vm import first_boot_script, ssh_key_name

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

DEFAULT_AMI_TYPE = "base-oss-nvidia-driver-gpu-ubuntu-22.04"
AMI_PARAMETER = "/aws/service/deeplearning/ami/{arch}/{ami_type}/latest/ami-id"
SSH_PORT = 22
#: the login user of the DLAMIs: Ubuntu, unless the AMI type is an Amazon Linux one
UBUNTU_USER = "ubuntu"
AMAZON_LINUX_USER = "ec2-user"

#: what gpuctl writes on an instance besides the deployment's tags, so that reading it back (``get``,
#: ``gpuctl gc``) tells what it is, costs and how to log in without the offer at hand
NAME_TAG = "Name"
PRICE_TAG = "gpuctl-price-per-hour"
GPU_TAG = "gpuctl-gpu"
GPU_COUNT_TAG = "gpuctl-gpu-count"
SSH_USER_TAG = "gpuctl-ssh-user"
#: Unix seconds a security group was made; see ``sweep_security_groups``
CREATED_TAG = "gpuctl-created-at"
#: a group with no instance this old was left by a launch that never got to RunInstances
STALE_GROUP_S = 3600

_STATUSES: dict[str, InstanceStatus] = {
    "pending": "pending", "running": "running", "shutting-down": "stopping", "terminated": "terminated",
    "stopping": "stopping", "stopped": "stopped",
}
_NOT_TERMINATED = ["pending", "running", "shutting-down", "stopping", "stopped"]
_ENDING = ("shutting-down", "terminated")
#: refusals another zone of the region may not give: gpuctl tries the next zone
_ZONE_REFUSALS = {"InsufficientInstanceCapacity", "InsufficientCapacity", "Unsupported", "SpotMaxPriceTooLow",
                  "InsufficientFreeAddressesInSubnet"}
#: account limits of the whole region: no other zone does better
_QUOTA_REFUSALS = {"InstanceLimitExceeded", "VcpuLimitExceeded", "MaxSpotInstanceCountExceeded"}
_GONE = {"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"}
#: fresh client tokens a launch tries when EC2 answers a token with the terminated instance of its last use
_TOKEN_GENERATIONS = 3
_FILTER_VALUES_MAX = 200


@dataclass(frozen=True)
class Zone:
    """An availability zone to launch in, and the default VPC its default subnet belongs to."""

    name: str
    vpc_id: str


@dataclass(frozen=True)
class MachineImage:
    image_id: str
    root_device: str
    min_disk_gb: int
    ssh_user: str


# -- instance ids ---------------------------------------------------------------------------------
def instance_ref(region: str, instance_id: str) -> str:
    """gpuctl's id of an EC2 instance: ``us-east-1/i-0123...``."""
    return f"{region}/{instance_id}"


def parse_ref(ref: str, default_region: str) -> tuple[str, str]:
    """(region, EC2 id) of ``ref``; a bare ``i-...`` is taken to be in ``default_region``."""
    region, _, instance_id = ref.rpartition("/")
    return region or default_region, instance_id


# -- checks ---------------------------------------------------------------------------------------
def launch_zones(ec2: Any, instance_type: str, region: str) -> list[Zone]:
    """The zones of the default VPC that offer ``instance_type``, in name order."""
    subnets = all_pages(ec2, "describe_subnets", "Subnets", Filters=[{"Name": "default-for-az", "Values": ["true"]}])
    if not subnets:
        raise UsageError(f"AWS region {region} has no default VPC, which gpuctl launches into",
                         f"create one: aws ec2 create-default-vpc --region {region}")
    offered = {row["Location"] for row in all_pages(
        ec2, "describe_instance_type_offerings", "InstanceTypeOfferings", LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": [instance_type]}])}
    zones = sorted({Zone(s["AvailabilityZone"], s["VpcId"]) for s in subnets if s["AvailabilityZone"] in offered},
                   key=lambda zone: zone.name)
    if not zones:
        raise NoCapacityError(f"AWS offers {instance_type} in no zone of {region} that has a default subnet")
    return zones


def machine_image(ec2: Any, ssm: Any, instance_type: str) -> MachineImage:
    """The latest Deep Learning AMI of ``aws.ami_type`` for the type's architecture (arm64 for Graviton)."""
    from botocore.exceptions import ClientError

    ami_type = credential_value(AMI_TYPE) or DEFAULT_AMI_TYPE
    types = ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]
    architectures = types[0]["ProcessorInfo"]["SupportedArchitectures"] if types else []
    arch = "arm64" if "arm64" in architectures else "x86_64"
    parameter = AMI_PARAMETER.format(arch=arch, ami_type=ami_type)
    try:
        image_id = ssm.get_parameter(Name=parameter)["Parameter"]["Value"]
    except ClientError as exc:
        if error_code(exc) != "ParameterNotFound":
            raise
        raise UsageError(f"AWS has no Deep Learning AMI '{ami_type}' for {arch} here (SSM parameter {parameter})",
                         "pick another: gpuctl config set aws.ami_type TYPE (AWS lists them under "
                         f"/aws/service/deeplearning/ami/{arch}/ in SSM Parameter Store)") from None
    images = ec2.describe_images(ImageIds=[image_id])["Images"]
    if not images:
        raise ProviderError(f"AWS lists no image {image_id}, the current '{ami_type}' Deep Learning AMI")
    image = images[0]
    root = image["RootDeviceName"]
    size = max((m["Ebs"].get("VolumeSize", 0) for m in image.get("BlockDeviceMappings", [])
                if m.get("DeviceName") == root and "Ebs" in m), default=0)
    user = AMAZON_LINUX_USER if "amazon-linux" in ami_type else UBUNTU_USER
    return MachineImage(image_id=image_id, root_device=root, min_disk_gb=size, ssh_user=user)


# -- what a launch creates ------------------------------------------------------------------------
@dataclass(frozen=True)
class LaunchBasis:
    """What every launch of ``request`` stands on: the zones that have its type, the image, the tags, the
    key pair and the security group (made on first use)."""

    zones: list[Zone]
    image: MachineImage
    tags: dict[str, str]
    key_name: str
    group_id: str


def launch_basis(ec2: Any, ssm: Any, request: LaunchRequest, cidrs: list[str]) -> LaunchBasis:
    """The zones, image, tags, key pair and security group a launch of ``request`` needs."""
    offer = request.offer
    assert request.ssh_public_key is not None
    zones = launch_zones(ec2, offer.instance_type, offer.region)
    image = machine_image(ec2, ssm, offer.instance_type)
    tags = instance_tags(request, image.ssh_user)
    key_name = import_key_pair(ec2, request.ssh_public_key, request.tags)
    sweep_security_groups(ec2)
    group_id = security_group(ec2, zones[0].vpc_id, request, cidrs, tags)
    return LaunchBasis(zones, image, tags, key_name, group_id)


def launch(ec2: Any, ssm: Any, request: LaunchRequest, cidrs: list[str]) -> dict[str, Any]:
    """Create the instance for ``request`` (and its key pair and security group); the raw EC2 instance."""
    basis = launch_basis(ec2, ssm, request, cidrs)
    try:
        return run_in_zones(ec2, run_params(request, basis.image, basis.key_name, basis.group_id, basis.tags),
                            basis.zones, request)
    except NoCapacityError:
        _delete_group(ec2, basis.group_id)  # no instance of this launch uses it
        raise


def instance_tags(request: LaunchRequest, ssh_user: str) -> dict[str, str]:
    """Tags of the instance and its volume: the deployment's, the launch token and deadline, and what it is."""
    offer = request.offer
    return {**launch_tags(request), NAME_TAG: request.name, PRICE_TAG: str(offer.price_per_hour),
            GPU_TAG: offer.gpu, GPU_COUNT_TAG: str(offer.gpu_count), SSH_USER_TAG: ssh_user}


def import_key_pair(ec2: Any, public_key: str, tags: dict[str, str]) -> str:
    """The name of the key pair holding ``public_key``, imported on first use (tagged as its first deployment's)."""
    from botocore.exceptions import ClientError

    name = ssh_key_name(public_key)
    try:
        ec2.describe_key_pairs(KeyNames=[name])
        return name
    except ClientError as exc:
        if error_code(exc) != "InvalidKeyPair.NotFound":
            raise
    try:
        ec2.import_key_pair(KeyName=name, PublicKeyMaterial=public_key.strip().encode(),
                            TagSpecifications=[tag_spec("key-pair", tags)])
    except ClientError as exc:
        if error_code(exc) != "InvalidKeyPair.Duplicate":  # another gpuctl imported it meanwhile
            raise
    return name


def group_name(request: LaunchRequest) -> str:
    """The deployment's security group: one per launch token, so a relaunch finds its own."""
    return f"gpuctl-{request.name}-{hashlib.sha256(request.idempotency_token.encode()).hexdigest()[:8]}"


def security_group(ec2: Any, vpc_id: str, request: LaunchRequest, cidrs: list[str], tags: dict[str, str]) -> str:
    """The deployment's security group, admitting SSH (and the engine port if public) from ``cidrs`` only."""
    name = group_name(request)
    found = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]},
                                                  {"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
    if found:
        group_id = found[0]["GroupId"]
    else:
        ports = "SSH and the engine port" if request.public else "SSH"
        group_id = ec2.create_security_group(
            GroupName=name, VpcId=vpc_id, Description=f"gpuctl {request.name}: {ports} from the caller only",
            TagSpecifications=[tag_spec("security-group", {**tags, CREATED_TAG: str(int(time.time()))})],
        )["GroupId"]
    for port in (SSH_PORT, HOST_PORT) if request.public else (SSH_PORT,):
        for cidr in cidrs:
            _allow(ec2, group_id, port, cidr)
    return group_id


def _allow(ec2: Any, group_id: str, port: int, cidr: str) -> None:
    from botocore.exceptions import ClientError

    label = {"Description": "gpuctl caller"}
    ranges = ({"Ipv6Ranges": [{"CidrIpv6": cidr, **label}]} if ":" in cidr
              else {"IpRanges": [{"CidrIp": cidr, **label}]})
    try:  # one rule per call: a duplicate fails the whole call
        ec2.authorize_security_group_ingress(
            GroupId=group_id, IpPermissions=[{"IpProtocol": "tcp", "FromPort": port, "ToPort": port, **ranges}])
    except ClientError as exc:
        if error_code(exc) != "InvalidPermission.Duplicate":
            raise


def sweep_security_groups(ec2: Any) -> list[str]:
    """Delete gpuctl's security groups that no instance needs any more; the ids deleted. Best effort.

    EC2 refuses to delete a group while an instance uses it, shutting-down ones included, so a
    deployment's group goes at a later launch or teardown in its region: once every instance with
    its launch token is terminated, or, with none left to see (EC2 forgets terminated instances
    after about an hour, and a launch may have stopped before RunInstances), once it is an hour old.
    """
    from botocore.exceptions import ClientError

    try:
        groups = {g["GroupId"]: tags_of(g) for g in all_pages(
            ec2, "describe_security_groups", "SecurityGroups", Filters=[{"Name": "tag-key", "Values": [LAUNCH_TOKEN]}])}
        tokens = sorted({tags[LAUNCH_TOKEN] for tags in groups.values()})
        states: dict[str, set[str]] = {}
        for start in range(0, len(tokens), _FILTER_VALUES_MAX):
            chunk = tokens[start:start + _FILTER_VALUES_MAX]
            for raw in instances(ec2, [{"Name": f"tag:{LAUNCH_TOKEN}", "Values": chunk}]):
                states.setdefault(tags_of(raw)[LAUNCH_TOKEN], set()).add(raw["State"]["Name"])
    except ClientError as exc:
        log.debug("AWS: not sweeping security groups: %s", exc)
        return []
    now = time.time()
    return [group_id for group_id, tags in groups.items()
            if _unused(states.get(tags[LAUNCH_TOKEN], set()), tags, now) and _delete_group(ec2, group_id)]


def _unused(states: set[str], tags: dict[str, str], now: float) -> bool:
    if states:
        return states == {"terminated"}
    created = tags.get(CREATED_TAG, "")
    return created.isdigit() and now - int(created) > STALE_GROUP_S


def _delete_group(ec2: Any, group_id: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        ec2.delete_security_group(GroupId=group_id)
    except ClientError as exc:  # DependencyViolation: still in use; a later sweep tries again
        log.debug("AWS: security group %s stays: %s", group_id, error_code(exc))
        return False
    log.info("AWS: deleted security group %s", group_id)
    return True


def run_params(request: LaunchRequest, image: MachineImage, key_name: str, group_id: str,
               tags: dict[str, str]) -> dict[str, Any]:
    """``RunInstances`` arguments for every zone (the zone and client token are added per call)."""
    offer = request.offer
    kinds = ["instance", "volume"] + (["spot-instances-request"] if offer.spot else [])
    params: dict[str, Any] = {
        "ImageId": image.image_id, "InstanceType": offer.instance_type, "MinCount": 1, "MaxCount": 1,
        "KeyName": key_name, "SecurityGroupIds": [group_id],
        # powering off (the TTL watchdog's last act) ends every charge, not just the compute one
        "InstanceInitiatedShutdownBehavior": "terminate",
        "BlockDeviceMappings": [{"DeviceName": image.root_device, "Ebs": {
            "VolumeSize": max(request.disk_gb, image.min_disk_gb), "VolumeType": "gp3", "DeleteOnTermination": True}}],
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
        "TagSpecifications": [tag_spec(kind, tags) for kind in kinds],
    }
    if offer.spot:
        params["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": {
            "SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}}
    expires = deadline(tags)
    if expires is not None:
        params["UserData"] = first_boot_script(request.name, expires)
    return params


def run_in_zones(ec2: Any, params: dict[str, Any], zones: list[Zone], request: LaunchRequest) -> dict[str, Any]:
    """Launch in the first zone with capacity; NoCapacityError (exit 5: the next offer) when none has any.

    One client token serves every zone: EC2 does not count a different zone as a changed request, so
    a retry after a lost answer gets the instance that was launched, wherever it is.
    """
    from botocore.exceptions import ClientError

    offer = request.offer
    refused: list[str] = []
    for zone in zones:
        try:
            return _run(ec2, {**params, "Placement": {"AvailabilityZone": zone.name}}, request.idempotency_token)
        except ClientError as exc:
            code = error_code(exc)
            if code in _ZONE_REFUSALS:
                log.info("AWS: %s refused %s: %s", zone.name, offer.instance_type, code)
                refused.append(f"{zone.name}: {code}")
                continue
            if code in _QUOTA_REFUSALS:
                raise NoCapacityError(
                    f"AWS account limit reached launching {offer.instance_type} in {offer.region} ({code})",
                    "ask AWS to raise the EC2 quota for this instance family (Service Quotas console), "
                    "or deploy elsewhere") from None
            if code == "IdempotentParameterMismatch":
                raise ProviderError(
                    f"AWS refused launch token {request.idempotency_token}: an earlier launch with it asked for "
                    "something else (a newer AMI, another disk size)",
                    f"'gpuctl down {request.name}', then deploy again") from None
            raise
    where = f"{'spot ' if offer.spot else ''}{offer.instance_type} in {offer.region}"
    raise NoCapacityError(f"AWS has no capacity for {where} ({'; '.join(refused)})")


def _run(ec2: Any, params: dict[str, Any], token: str) -> dict[str, Any]:
    for generation in range(_TOKEN_GENERATIONS):
        instance: dict[str, Any] = ec2.run_instances(**params, ClientToken=client_token(token, generation))[
            "Instances"][0]
        if instance["State"]["Name"] not in _ENDING:
            return instance
        log.info("AWS: launch token %s is instance %s's, which is %s; using the next token",
                 client_token(token, generation), instance["InstanceId"], instance["State"]["Name"])
    raise ProviderError(f"AWS answered {_TOKEN_GENERATIONS} launch tokens derived from {token} with ended instances",
                        "deploy under another name")


def client_token(token: str, generation: int) -> str:
    """The ``ClientToken`` of a launch: the idempotency token itself, then successors.

    EC2 keeps answering a token with its instance for a day after that instance ended, so a name
    deployed again the same day needs a successor; every retry walks the same sequence.
    """
    return token if generation == 0 else f"{token[:60]}.{generation}"


# -- reading instances back -----------------------------------------------------------------------
def instances(ec2: Any, filters: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for reservation in all_pages(ec2, "describe_instances", "Reservations", Filters=filters):
        yield from reservation.get("Instances", [])


def find_by_token(ec2: Any, token: str) -> dict[str, Any] | None:
    """A live instance launched with ``token`` (EC2 may have forgotten the ClientToken; the tag stays)."""
    live = ["pending", "running", "stopping", "stopped"]
    return next(instances(ec2, [{"Name": f"tag:{LAUNCH_TOKEN}", "Values": [token]},
                                {"Name": "instance-state-name", "Values": live}]), None)


def tagged_instances(ec2: Any, tags: dict[str, str]) -> list[dict[str, Any]]:
    """Instances gpuctl launched (they carry a launch token) with all of ``tags``, terminated ones left out."""
    filters = [{"Name": "tag-key", "Values": [LAUNCH_TOKEN]},
               {"Name": "instance-state-name", "Values": _NOT_TERMINATED},
               *({"Name": f"tag:{key}", "Values": [value]} for key, value in sorted(tags.items()))]
    return list(instances(ec2, filters))


def launched_by_gpuctl(raw: dict[str, Any]) -> bool:
    """Whether gpuctl launched this instance (it then carries a launch token): gpuctl terminates no other."""
    return LAUNCH_TOKEN in tags_of(raw)


def describe(ec2: Any, instance_id: str) -> dict[str, Any] | None:
    """The raw instance, or None when EC2 does not know it (never did, or forgot it after termination)."""
    from botocore.exceptions import ClientError

    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as exc:
        if error_code(exc) in _GONE:
            return None
        raise
    return next((i for r in reservations for i in r.get("Instances", [])), None)


def terminate(ec2: Any, instance_id: str) -> None:
    from botocore.exceptions import ClientError

    try:
        ec2.terminate_instances(InstanceIds=[instance_id])
    except ClientError as exc:
        if error_code(exc) not in _GONE:
            raise


def ec2_instance(raw: dict[str, Any], region: str) -> Instance:
    """The provider-neutral view of a ``describe_instances`` / ``run_instances`` entry."""
    tags = tags_of(raw)
    state = raw["State"]["Name"]
    address = raw.get("PublicIpAddress")
    return Instance(
        provider=NAME, id=instance_ref(region, raw["InstanceId"]), name=tags.get(NAME_TAG),
        status=_STATUSES.get(state, "unknown"), provider_status=state, region=region,
        instance_type=raw.get("InstanceType"), gpu=tags.get(GPU_TAG), gpu_count=_number(tags.get(GPU_COUNT_TAG), int),
        public_ip=address, private_ip=raw.get("PrivateIpAddress"), ssh_host=address, ssh_port=SSH_PORT,
        ssh_user=tags.get(SSH_USER_TAG, UBUNTU_USER),
        price_per_hour=_number(tags.get(PRICE_TAG), float), tags=tags, created_at=raw.get("LaunchTime"),
    )


# -- small helpers --------------------------------------------------------------------------------
def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags", [])}


def tag_spec(resource_type: str, tags: dict[str, str]) -> dict[str, Any]:
    return {"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _number(text: str | None, kind: type[int] | type[float]) -> Any:
    try:
        return kind(text) if text is not None else None
    except ValueError:
        return None
