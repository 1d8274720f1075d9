"""What moto cannot stand in for: the Price List API and real spot prices; and S3 a fake host can reach.

``FakeAws.install(session)`` answers ``pricing.GetProducts`` and ``ec2.DescribeSpotPriceHistory``
from tables, as AWS would, through botocore's ``before-call`` hook (what ``Stubber`` uses, but
without a fixed call order, so concurrent calls are fine). Other EC2 calls go on to moto.

``Ec2Catalog.install(session)`` (part of ``FakeAws.install``) answers ``DescribeInstanceTypes`` and
``DescribeInstanceTypeOfferings`` from the tests' own table (data/aws_ec2.json): moto's bundled
catalogue changes between its releases, and the tests must not change with it.

``s3_for(host)`` serves moto's S3 (the same in-process state ``mock_aws`` uses) on the fake host's
side of its veth pair and points gpuctl there (``AWS_ENDPOINT_URL_S3``), so the pre-signed URLs the
instance gets lead somewhere it can reach.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatch
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import pytest
from botocore.awsrequest import AWSResponse
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ssm.models import Parameter, ssm_backends

from gpuctl.providers.aws.mapping import REGION_LOCATIONS

if TYPE_CHECKING:
    from tests.fakehost.host import FakeGpuHost

#: on-demand USD per hour by (region, instance type): instances.vantage.sh figures of 2026-08
ON_DEMAND = {
    ("us-east-1", "g6e.xlarge"): 1.861,
    ("us-east-1", "g6e.12xlarge"): 10.49264,
    ("us-east-1", "g5.xlarge"): 1.006,
    ("us-east-1", "p4d.24xlarge"): 21.957642,
    ("us-east-1", "p4de.24xlarge"): 27.44705,
    ("us-east-1", "p5.4xlarge"): 6.88,
    ("us-east-1", "p5.48xlarge"): 55.04,
    ("eu-north-1", "p5.4xlarge"): 7.3616,
    ("eu-north-1", "p5.48xlarge"): 58.8928,
    ("eu-west-1", "p4d.24xlarge"): 24.15,  # illustrative
    ("eu-west-1", "p4de.24xlarge"): 30.19,  # illustrative: priced, but not offered there (data/aws_ec2.json)
    ("me-central-1", "g6e.xlarge"): 2.2332,
}


EC2_CATALOG = Path(__file__).with_name("data") / "aws_ec2.json"


@cache
def _catalog_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EC2_CATALOG.read_text(encoding="utf-8"))
    return data


def _ec2_params(params: dict[str, Any]) -> tuple[dict[str, str], dict[str, list[str]], list[str]]:
    """(plain fields, filters by name, the InstanceType.N list) of a serialized EC2 request."""
    body = params["body"]
    if not isinstance(body, dict):
        body = {k: v[0] for k, v in parse_qs(body).items()}
    plain = {k: v for k, v in body.items() if isinstance(v, str) and "." not in k}
    names = {m.group(1): v for k, v in body.items() if (m := re.fullmatch(r"Filter\.(\d+)\.Name", k))}
    filters = {name: [v for k, v in sorted(body.items()) if re.fullmatch(rf"Filter\.{n}\.Value\.\d+", k)]
               for n, name in names.items()}
    types = [v for k, v in sorted(body.items()) if re.fullmatch(r"InstanceType\.\d+", k)]
    return plain, filters, types


def _signed(request_signer: Any) -> None:
    """Refuse a call without credentials, as botocore's signer would before it reached AWS (or moto)."""
    from botocore.exceptions import NoCredentialsError

    if getattr(request_signer, "_credentials", None) is None:
        raise NoCredentialsError()


def _matches(value: str, patterns: list[str] | None) -> bool:
    return patterns is None or any(fnmatch(value, pattern) for pattern in patterns)


@dataclass
class Ec2Catalog:
    """EC2's instance types and where they are offered, from data/aws_ec2.json (copied: tests may edit theirs)."""

    instance_types: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        t["InstanceType"]: t for t in _catalog_data()["instance_types"]})
    #: region -> instance type -> the zones that offer it
    offerings: dict[str, dict[str, list[str]]] = field(default_factory=lambda: json.loads(json.dumps(
        _catalog_data()["offerings"])))

    def install(self, session: Any) -> Any:
        session.events.register("before-call.ec2.DescribeInstanceTypes", self.describe_instance_types)
        session.events.register("before-call.ec2.DescribeInstanceTypeOfferings", self.describe_offerings)
        return session

    def describe_instance_types(self, params: dict[str, Any], request_signer: Any,
                                **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        _signed(request_signer)
        _, filters, wanted = _ec2_params(params)
        unknown = [name for name in wanted if name not in self.instance_types]
        if unknown:
            return AWSResponse(None, 400, {}, None), {  # type: ignore[arg-type]
                "Error": {"Code": "InvalidInstanceType", "Message": f"The following supplied instance types do not "
                          f"exist: [{', '.join(unknown)}]"}, "ResponseMetadata": {}}
        rows = [t for name, t in sorted(self.instance_types.items())
                if (not wanted or name in wanted) and _matches(name, filters.get("instance-type"))]
        return AWSResponse(None, 200, {}, None), {"InstanceTypes": rows}  # type: ignore[arg-type]

    def describe_offerings(self, params: dict[str, Any], context: dict[str, Any], request_signer: Any,
                           **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        _signed(request_signer)
        plain, filters, _ = _ec2_params(params)
        region = context.get("client_region") or "us-east-1"
        by_zone = plain.get("LocationType") == "availability-zone"
        rows = [{"InstanceType": name, "LocationType": "availability-zone" if by_zone else "region",
                 "Location": location}
                for name, zones in sorted(self.offerings.get(region, {}).items())
                for location in (zones if by_zone else [region])
                if _matches(name, filters.get("instance-type")) and _matches(location, filters.get("location"))]
        return AWSResponse(None, 200, {}, None), {"InstanceTypeOfferings": rows}  # type: ignore[arg-type]


def product(instance_type: str, region: str, usd: float, **attributes: str) -> dict[str, Any]:
    """One ``PriceList`` document shaped like AWS's (sku, attributes, OnDemand terms)."""
    sku = f"SKU{abs(hash((instance_type, region))) % 10**8:08d}"
    return {
        "product": {"productFamily": "Compute Instance", "sku": sku, "attributes": {
            "instanceType": instance_type, "location": REGION_LOCATIONS.get(region, region), "regionCode": region,
            "instanceFamily": "GPU instance", "operatingSystem": "Linux", "tenancy": "Shared",
            "preInstalledSw": "NA", "capacitystatus": "Used", "marketoption": "OnDemand", **attributes}},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {"sku": sku, "offerTermCode": "JRTCKXETXF", "priceDimensions": {
            f"{sku}.JRTCKXETXF.6YS6EN2CT7": {"unit": "Hrs", "description": f"${usd} per On Demand Linux",
                                            "pricePerUnit": {"USD": f"{usd:.10f}"}}}}}},
        "version": "20261101000000",
    }


def register_dlami(session: Any, region: str = "us-east-1", ami_type: str = "base-oss-nvidia-driver-gpu-ubuntu-22.04",
                   arch: str = "x86_64") -> str:
    """An image standing in for the DLAMI (moto gives every image a 15 GB root snapshot), and its SSM parameter."""
    ec2 = session.client("ec2", region_name=region)
    image_id: str = ec2.register_image(Name=f"{ami_type}-{arch}", RootDeviceName="/dev/sda1", Architecture=arch,
                                       BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 15}}],
                                       )["ImageId"]
    seed_parameter(f"/aws/service/deeplearning/ami/{arch}/{ami_type}/latest/ami-id", image_id, region)
    return image_id


def seed_parameter(name: str, value: str, region: str = "us-east-1") -> None:
    """Put a public (``/aws/...``) SSM parameter into moto: its API refuses that prefix (test-only backdoor)."""
    now = datetime.now(timezone.utc)
    # moto before 5.1 keeps the date as seconds since the epoch, later ones as a datetime
    float_dates = "float" in str(inspect.signature(Parameter).parameters["last_modified_date"].annotation)
    ssm_backends[DEFAULT_ACCOUNT_ID][region]._parameters[name].append(Parameter(
        account_id=DEFAULT_ACCOUNT_ID, name=name, value=value, parameter_type="String", description=None,
        allowed_pattern=None, keyid=None, last_modified_date=now.timestamp() if float_dates else now, version=1,
        data_type="aws:ec2:image"))


@dataclass
class FakeAws:
    on_demand: dict[tuple[str, str], float] = field(default_factory=lambda: dict(ON_DEMAND))
    #: DescribeSpotPriceHistory rows (InstanceType, AvailabilityZone, SpotPrice, ...)
    spot: list[dict[str, Any]] = field(default_factory=list)
    #: operation name -> error code every call of it answers with
    errors: dict[str, str] = field(default_factory=dict)
    product_requests: list[dict[str, Any]] = field(default_factory=list)
    spot_requests: list[dict[str, list[str]]] = field(default_factory=list)
    ec2: Ec2Catalog = field(default_factory=Ec2Catalog)

    def install(self, session: Any) -> Any:
        session.events.register("before-call.ec2.DescribeInstanceTypes", self._instance_types)
        session.events.register("before-call.ec2.DescribeInstanceTypeOfferings", self._offerings)
        session.events.register("before-call.pricing.GetProducts", self._get_products)
        session.events.register("before-call.ec2.DescribeSpotPriceHistory", self._spot_history)
        session.events.register("before-call.ec2", self._fail)  # the other EC2 calls (moto answers them otherwise)
        return session

    def _fail(self, model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        code = self.errors.get(model.name)
        if code is None:
            return None
        return AWSResponse(None, 400, {}, None), {  # type: ignore[arg-type]
            "Error": {"Code": code, "Message": f"fake {code} for {model.name}"}, "ResponseMetadata": {}}

    def _instance_types(self, params: dict[str, Any], model: Any,
                        **kwargs: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return self._fail(model) or self.ec2.describe_instance_types(params, **kwargs)

    def _offerings(self, params: dict[str, Any], model: Any, context: dict[str, Any],
                   **kwargs: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return self._fail(model) or self.ec2.describe_offerings(params, context, **kwargs)

    def _get_products(self, params: dict[str, Any], model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        failure = self._fail(model)
        if failure is not None:
            return failure
        body = json.loads(params["body"])
        self.product_requests.append(body)
        wanted = {f["Field"]: f["Value"] for f in body.get("Filters", [])}
        region = wanted.get("regionCode") or next(
            (code for code, name in REGION_LOCATIONS.items() if name == wanted.get("location")), None)
        documents = [product(itype, r, usd) for (r, itype), usd in self.on_demand.items() if r == region]
        matching = [d for d in documents
                    if all(d["product"]["attributes"].get(k) == v for k, v in wanted.items())]
        return AWSResponse(None, 200, {}, None), {  # type: ignore[arg-type]
            "FormatVersion": "aws_v1", "PriceList": [json.dumps(d) for d in matching]}

    def _spot_history(self, params: dict[str, Any], model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        failure = self._fail(model)
        if failure is not None:
            return failure
        body = params["body"] if isinstance(params["body"], dict) else parse_qs(params["body"])
        request = {k: v if isinstance(v, list) else [v] for k, v in body.items()}
        self.spot_requests.append(request)
        types = {v for k, vs in request.items() if k.startswith("InstanceType.") for v in vs}
        rows = [row for row in self.spot if row["InstanceType"] in types]
        return AWSResponse(None, 200, {}, None), {"SpotPriceHistory": rows}  # type: ignore[arg-type]


@contextmanager
def s3_for(host: FakeGpuHost, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's S3 server on 10.200.N.1 (the only address the host reaches), set as gpuctl's S3 endpoint."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=f"10.200.{host.index}.1", port=0, verbose=False)
    server.start()
    try:
        address, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://{address}:{port}")
        yield f"http://{address}:{port}"
    finally:
        server.stop()


@dataclass
class Ec2OnFakeHosts:
    """EC2 under moto whose next launched instance is the fake GPU host last passed to ``boot``."""

    #: boto3 sessions as gpuctl makes them, without the price fakes (for the tests' own calls)
    session: Any
    booting: list[FakeGpuHost] = field(default_factory=list)
    public_key: str = ""

    def boot(self, host: FakeGpuHost) -> FakeGpuHost:
        """The next instance is ``host``; the project key may log in there, as cloud-init's key pair would allow."""
        self.booting.append(host)
        with (host.home / ".ssh" / "authorized_keys").open("a") as keys:
            keys.write(self.public_key + "\n")
        return host


def ec2_on_fake_hosts(monkeypatch: pytest.MonkeyPatch, state_dir: Path) -> Ec2OnFakeHosts:
    """Credentials and prices for gpuctl's AWS provider, and instances whose public IP is a fake host (test backdoors
    for what moto cannot do). Use inside ``mock_aws()``."""
    from moto.ec2.models import elastic_network_interfaces

    from gpuctl.host.keys import ensure_project_key
    from gpuctl.providers.aws import client as aws
    from gpuctl.providers.aws import launch as aws_launch

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("GPUCTL_CALLER_CIDR", "10.200.0.0/16"), ("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")):
        monkeypatch.setenv(name, value)
    fake_prices = FakeAws()
    world = Ec2OnFakeHosts(session=aws.new_session, public_key=ensure_project_key(state_dir).public_key)
    monkeypatch.setattr(aws, "new_session", lambda **kw: fake_prices.install(world.session(**kw)))
    monkeypatch.setattr(elastic_network_interfaces, "random_public_ip", lambda: world.booting[-1].address)
    monkeypatch.setattr(aws_launch, "UBUNTU_USER", "root")  # the DLAMI logs in as ubuntu; the fake host has root
    return world
