"""AWS EC2 GPU instances, through boto3 (imported only when AWS is actually asked).

Read side (``listing``): which GPU instance types a region offers (``describe_instance_types`` +
``describe_instance_type_offerings``), their on-demand price (Price List API) and, with ``--spot``,
the cheapest current spot price over the region's zones (``describe_spot_price_history``).
EC2 publishes no stock signal, so every offered type has availability ``unknown``.

Write side (``launch``, ``get``, ``terminate``, ``list_by_tag``): VMs the lifecycle reaches over SSH,
made and read in ``launch`` (imported on first use, like boto3).

Weights cache: an S3 bucket per region that the instances read and fill through pre-signed URLs
(``caches``; docs/weights.md says why S3 and not a retained EBS volume).
"""

from __future__ import annotations

import contextvars
import logging
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

from gpuctl.catalog import matches
from gpuctl.concurrency import run_all, values_or_raise
from gpuctl.credentials import CredentialStatus
from gpuctl.errors import NotFoundError, UsageError
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.providers.aws import client
from gpuctl.providers.aws.client import (
    AMI_TYPE,
    PRICING_REGION,
    PROFILE,
    REGION,
    aws_errors,
    closed_region,
    default_region,
    enabled_regions,
    make_client,
)
from gpuctl.providers.aws.mapping import CATALOG_FILE, NAME
from gpuctl.providers.base import Provider, ProviderCheck
from gpuctl.providers.capabilities import Capability
from gpuctl.providers.vm import CALLER_CIDR

if TYPE_CHECKING:
    from boto3.session import Session

    from gpuctl.models.instance import Instance, LaunchRequest
    from gpuctl.models.weights_cache import WeightsCache
    from gpuctl.weights.mirror import WeightsMirror

log = logging.getLogger(__name__)


class AWSProvider(Provider):
    name = NAME
    display_name = "AWS EC2"
    config_keys = (PROFILE, REGION, AMI_TYPE, CALLER_CIDR)
    catalog_file = CATALOG_FILE
    capabilities = frozenset({Capability.LAUNCH, Capability.LIST_BY_TAG, Capability.SSH_MACHINE,
                              Capability.WEIGHTS_CACHE, Capability.WEIGHTS_MIRROR, Capability.MULTI_NODE})
    #: importing boto3 and building its clients costs ~0.25 s of CPU before the first request
    own_process = True

    def __init__(self, session: Session | None = None, regions: list[str] | None = None) -> None:
        self._session = session
        #: where ``list_by_tag`` looks; None: every region enabled for the account
        self.regions = regions
        self._lifecycle_session: Session | None = None
        self._clients: dict[tuple[str, str], Any] = {}

    def credentials(self) -> CredentialStatus:
        """The standard credential chain, read offline (never the instance metadata service)."""
        return client.credentials_status()

    def doctor_checks(self) -> list[ProviderCheck]:
        """STS ``GetCallerIdentity``: needs no permission, so it tests the credentials alone."""
        from gpuctl.providers.checks import api_check

        def call() -> str | None:
            with aws_errors():
                answer = make_client(client.new_session(), "sts", default_region(), self.timeout).get_caller_identity()
            return answer["ResponseMetadata"]["HTTPHeaders"].get("date")

        return [api_check("STS GetCallerIdentity", call)]

    def offers(self, query: OfferQuery) -> list[Offer]:
        """Live offers in ``query.regions`` (default: ``aws.region`` / AWS_DEFAULT_REGION, else us-east-1)."""
        regions = query.regions or [default_region()]
        as_of = datetime.now(timezone.utc)
        with aws_errors():
            from gpuctl.providers.aws.listing import region_offers

            session = self._session or client.new_session(listing=True)
            # clients are built here: boto3 sessions are not safe to share across threads, clients are
            pricing = make_client(session, "pricing", PRICING_REGION, self.timeout)
            # each region's thread runs in a copy of this context, so that its skipped entries are counted
            calls = {region: partial(contextvars.copy_context().run, region_offers,
                                     make_client(session, "ec2", region, self.timeout), pricing, region, query, as_of)
                     for region in regions}
            found = values_or_raise(run_all(calls))
        return [offer for offers in found.values() for offer in offers if matches(offer, query)]

    def _launchable(self, request: LaunchRequest) -> Offer:
        """The request's offer, refused unless it is AWS's and the request carries the SSH key to reach it."""
        offer = request.offer
        if offer.provider != self.name:
            raise UsageError(f"offer {offer.id} is not an AWS offer")
        if not request.ssh_public_key:
            raise UsageError("an AWS instance is reached over SSH, but the launch request has no public key")
        return offer

    def launch(self, request: LaunchRequest) -> Instance:
        """Launch one GPU VM for ``request``, or return the live instance already carrying its launch token."""
        from gpuctl.providers.aws import launch as aws_launch

        offer = self._launchable(request)
        with aws_errors():
            ec2 = self._client("ec2", offer.region)
            # EC2 matches a ClientToken only for so long (moto never does); the tag lasts as long as the instance
            earlier = aws_launch.find_by_token(ec2, request.idempotency_token)
            if earlier is not None:
                log.info("AWS: instance %s already carries launch token %s; not launching another",
                         earlier["InstanceId"], request.idempotency_token)
                return aws_launch.ec2_instance(earlier, offer.region)
            from gpuctl.providers.vm import caller_cidrs

            cidrs = caller_cidrs("the AWS security group")
            raw = aws_launch.launch(ec2, self._client("ssm", offer.region), request, cidrs)
        return aws_launch.ec2_instance(raw, offer.region)

    def launch_nodes(self, request: LaunchRequest, nodes: int) -> list[Instance]:
        """``nodes`` GPU VMs in one cluster placement group, open to each other (``gpuctl.providers.aws.nodes``)."""
        from gpuctl.providers.aws import launch as aws_launch
        from gpuctl.providers.aws import nodes as aws_nodes
        from gpuctl.providers.vm import caller_cidrs

        offer = self._launchable(request)
        with aws_errors():
            ec2 = self._client("ec2", offer.region)
            raw = aws_nodes.launch_nodes(ec2, self._client("ssm", offer.region), request, nodes,
                                         caller_cidrs("the AWS security group"))
        return [aws_launch.ec2_instance(r, offer.region) for r in raw]

    def release_nodes(self, tags: dict[str, str]) -> None:
        """The placement groups of the deployment ``tags`` names, in every region it may have used."""
        from gpuctl.providers.aws import nodes as aws_nodes

        with aws_errors():
            for region in self.regions or [default_region()]:
                aws_nodes.release(self._client("ec2", region), tags)

    def get(self, instance_id: str) -> Instance:
        from gpuctl.providers.aws import launch as aws_launch

        region, ec2_id = aws_launch.parse_ref(instance_id, default_region())
        with aws_errors():
            raw = aws_launch.describe(self._client("ec2", region), ec2_id)
        if raw is None:
            raise NotFoundError(f"AWS EC2 has no instance {ec2_id} in {region}",
                                "EC2 forgets terminated instances after about an hour")
        return aws_launch.ec2_instance(raw, region)

    def terminate(self, instance_id: str) -> None:
        """Terminate an instance gpuctl launched (never another), then sweep security groups no longer used."""
        from gpuctl.providers.aws import launch as aws_launch

        region, ec2_id = aws_launch.parse_ref(instance_id, default_region())
        with aws_errors():
            ec2 = self._client("ec2", region)
            raw = aws_launch.describe(ec2, ec2_id)
            if raw is None:
                log.info("AWS: instance %s in %s is already gone", ec2_id, region)
                return
            if not aws_launch.launched_by_gpuctl(raw):
                raise UsageError(f"AWS instance {ec2_id} in {region} was not launched by gpuctl; not terminating it",
                                 "terminate it yourself if it should go")
            if raw["State"]["Name"] != "terminated":
                aws_launch.terminate(ec2, ec2_id)
            aws_launch.sweep_security_groups(ec2)

    def list_by_tag(self, tags: dict[str, str]) -> list[Instance]:
        """gpuctl's instances carrying all of ``tags``, in every region (``self.regions`` when set) at once."""
        from gpuctl.providers.aws import launch as aws_launch

        with aws_errors():
            regions = self.regions or enabled_regions(self._client("ec2", default_region()))
            clients = {region: self._client("ec2", region) for region in regions}
            outcomes = run_all({region: partial(aws_launch.tagged_instances, ec2, tags)
                                for region, ec2 in clients.items()})
            found: list[Instance] = []
            for region, outcome in outcomes.items():
                if closed_region(outcome.error):
                    log.debug("AWS: skipping region %s: %s", region, outcome.error)
                    continue
                if outcome.error is not None:
                    raise outcome.error
                found += [aws_launch.ec2_instance(raw, region) for raw in outcome.value or []]
        return found

    # -- weights cache: an S3 bucket per region ------------------------------------------------------------
    def weights_caches(self) -> list[WeightsCache]:
        """gpuctl's buckets (``gpuctl-hf-cache-ACCOUNT-REGION``) of this account, every region."""
        from gpuctl.providers.aws import caches as aws_mirror

        with aws_errors():
            return aws_mirror.list_caches(partial(self._client, "s3"), default_region())

    def ensure_weights_cache(self, region: str, *, min_gb: int, tags: dict[str, str]) -> WeightsCache:
        """The region's bucket, created when missing; ``min_gb`` does not matter (a bucket grows)."""
        from gpuctl.providers.aws import caches as aws_mirror

        with aws_errors():
            account = self._client("sts", region).get_caller_identity()["Account"]
            return aws_mirror.ensure_bucket(self._client("s3", region), aws_mirror.bucket_name(account, region),
                                            region, tags)

    def delete_weights_cache(self, cache: WeightsCache) -> None:
        from gpuctl.providers.aws import caches as aws_mirror

        with aws_errors():
            aws_mirror.delete_bucket(self._client("s3", cache.region), cache.id)

    def weights_mirror(self, cache: WeightsCache) -> WeightsMirror:
        """The bucket as the instance's source and destination of weights (pre-signed URLs; it has no IAM role)."""
        from gpuctl.providers.aws.caches import S3Mirror

        return S3Mirror(self._client("s3", cache.region), cache.id)

    def _client(self, service: str, region: str) -> Any:
        """One client per service and region for this provider's life (teardown polls ``get`` every few seconds)."""
        key = (service, region)
        if key not in self._clients:
            session = self._session or self._lifecycle_session
            if session is None:  # the full EC2 model: the listing's cut-down one cannot launch
                session = self._lifecycle_session = client.new_session()
            self._clients[key] = make_client(session, service, region, self.timeout)
        return self._clients[key]










