"""AWS EC2 GPU instances, through boto3 (imported only when AWS is actually asked).

Read side: which GPU instance types a region offers (``describe_instance_types`` +
``describe_instance_type_offerings``), their on-demand price (Price List API) and, with ``--spot``,
the cheapest current spot price over the region's zones (``describe_spot_price_history``).
EC2 publishes no stock signal, so every offered type has availability ``unknown``.

Write side (``launch``, ``get``, ``terminate``, ``list_by_tag``): VMs the lifecycle reaches over SSH,
made and read in ``aws_launch`` (imported on first use, like boto3).

Weights cache: an S3 bucket per region that the instances read and fill through pre-signed URLs
(``aws_mirror``; docs/weights.md says why S3 and not a retained EBS volume).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

from gpuctl.catalog import gpu_spec, matches, provider_catalog
from gpuctl.concurrency import run_all, values_or_raise
from gpuctl.credentials import CredentialStatus, aws_profile_name, credential_value, resolve_aws_credentials
from gpuctl.errors import CredentialsError, GpuctlError, NotFoundError, ProviderError, UsageError
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.providers.aws_mapping import (
    GPU_TYPE_PATTERNS,
    GpuInstanceType,
    cheapest_spot,
    gpu_instance_types,
    on_demand_prices,
    price_filters,
)
from gpuctl.providers.aws_models import listing_data_path
from gpuctl.providers.base import Provider
from gpuctl.providers.capabilities import Capability

if TYPE_CHECKING:
    from boto3.session import Session
    from botocore.exceptions import ClientError

    from gpuctl.models.instance import Instance, LaunchRequest
    from gpuctl.models.weights_cache import WeightsCache
    from gpuctl.weights.mirror import WeightsMirror

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
#: the Price List API is served from us-east-1 (and eu-central-1, ap-south-1) whatever region is priced
PRICING_REGION = "us-east-1"
DEFAULT_TIMEOUT = 10.0
#: botocore's standard retry mode backs off on throttling; bounded (first try included) so a slow API
#: cannot stall a listing
MAX_ATTEMPTS = 3

CREDENTIALS_HINT = ("set AWS_PROFILE (or 'gpuctl config set aws.profile NAME'), or AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY; 'aws sso login' renews an expired SSO session")
PERMISSIONS_HINT = ("allow ec2:DescribeInstanceTypes, ec2:DescribeInstanceTypeOfferings, "
                    "ec2:DescribeSpotPriceHistory and pricing:GetProducts for these credentials")
LISTING_CALLS = {"DescribeInstanceTypes", "DescribeInstanceTypeOfferings", "DescribeSpotPriceHistory", "GetProducts"}
_REJECTED = {"AuthFailure", "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken",
             "ExpiredTokenException", "RequestExpired", "SignatureDoesNotMatch", "IncompleteSignature"}
_DENIED = {"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"}
_THROTTLED = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
#: what a region the account cannot use answers; ``list_by_tag`` skips it (nothing can run there)
_CLOSED_REGION = {"AuthFailure", "UnauthorizedOperation", "OptInRequired"}


class AWSProvider(Provider):
    name = "aws"
    display_name = "AWS EC2"
    capabilities = frozenset({Capability.LAUNCH, Capability.LIST_BY_TAG, Capability.SSH_MACHINE,
                              Capability.WEIGHTS_CACHE, Capability.WEIGHTS_MIRROR})
    #: importing boto3 and building its clients costs ~0.25 s of CPU before the first request
    own_process = True

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, session: Session | None = None,
                 regions: list[str] | None = None) -> None:
        #: seconds one API call may take before botocore gives up (the pricing layer may lower it)
        self.timeout = timeout
        self._session = session
        #: where ``list_by_tag`` looks; None: every region enabled for the account
        self.regions = regions
        self._lifecycle_session: Session | None = None
        self._clients: dict[tuple[str, str], Any] = {}

    def credentials(self) -> CredentialStatus:
        return resolve_aws_credentials()

    def offers(self, query: OfferQuery) -> list[Offer]:
        """Live offers in ``query.regions`` (default: ``aws.region`` / AWS_DEFAULT_REGION, else us-east-1)."""
        regions = query.regions or [default_region()]
        as_of = datetime.now(timezone.utc)
        with aws_errors():
            session = self._session or new_session(listing=True)
            # clients are built here: boto3 sessions are not safe to share across threads, clients are
            pricing = make_client(session, "pricing", PRICING_REGION, self.timeout)
            calls = {region: partial(region_offers, make_client(session, "ec2", region, self.timeout),
                                     pricing, region, query, as_of)
                     for region in regions}
            found = values_or_raise(run_all(calls))
        return [offer for offers in found.values() for offer in offers if matches(offer, query)]

    def launch(self, request: LaunchRequest) -> Instance:
        """Launch one GPU VM for ``request``, or return the live instance already carrying its launch token."""
        from gpuctl.providers import aws_launch

        offer = request.offer
        if offer.provider != self.name:
            raise UsageError(f"offer {offer.id} is not an AWS offer")
        if not request.ssh_public_key:
            raise UsageError("an AWS instance is reached over SSH, but the launch request has no public key")
        with aws_errors():
            ec2 = self._client("ec2", offer.region)
            # EC2 matches a ClientToken only for so long (moto never does); the tag lasts as long as the instance
            earlier = aws_launch.find_by_token(ec2, request.idempotency_token)
            if earlier is not None:
                log.info("AWS: instance %s already carries launch token %s; not launching another",
                         earlier["InstanceId"], request.idempotency_token)
                return aws_launch.ec2_instance(earlier, offer.region)
            from gpuctl.providers.caller import caller_cidrs

            cidrs = caller_cidrs("the AWS security group")
            raw = aws_launch.launch(ec2, self._client("ssm", offer.region), request, cidrs)
        return aws_launch.ec2_instance(raw, offer.region)

    def get(self, instance_id: str) -> Instance:
        from gpuctl.providers import aws_launch

        region, ec2_id = aws_launch.parse_ref(instance_id, default_region())
        with aws_errors():
            raw = aws_launch.describe(self._client("ec2", region), ec2_id)
        if raw is None:
            raise NotFoundError(f"AWS EC2 has no instance {ec2_id} in {region}",
                                "EC2 forgets terminated instances after about an hour")
        return aws_launch.ec2_instance(raw, region)

    def terminate(self, instance_id: str) -> None:
        """Terminate an instance gpuctl launched (never another), then sweep security groups no longer used."""
        from gpuctl.providers import aws_launch

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
        from gpuctl.providers import aws_launch

        with aws_errors():
            regions = self.regions or enabled_regions(self._client("ec2", default_region()))
            clients = {region: self._client("ec2", region) for region in regions}
            outcomes = run_all({region: partial(aws_launch.tagged_instances, ec2, tags)
                                for region, ec2 in clients.items()})
            found: list[Instance] = []
            for region, outcome in outcomes.items():
                if _closed_region(outcome.error):
                    log.debug("AWS: skipping region %s: %s", region, outcome.error)
                    continue
                if outcome.error is not None:
                    raise outcome.error
                found += [aws_launch.ec2_instance(raw, region) for raw in outcome.value or []]
        return found

    # -- weights cache: an S3 bucket per region ------------------------------------------------------------
    def weights_caches(self) -> list[WeightsCache]:
        """gpuctl's buckets (``gpuctl-hf-cache-ACCOUNT-REGION``) of this account, every region."""
        from gpuctl.providers import aws_mirror

        with aws_errors():
            return aws_mirror.list_caches(partial(self._client, "s3"), default_region())

    def ensure_weights_cache(self, region: str, *, min_gb: int, tags: dict[str, str]) -> WeightsCache:
        """The region's bucket, created when missing; ``min_gb`` does not matter (a bucket grows)."""
        from gpuctl.providers import aws_mirror

        with aws_errors():
            account = self._client("sts", region).get_caller_identity()["Account"]
            return aws_mirror.ensure_bucket(self._client("s3", region), aws_mirror.bucket_name(account, region),
                                            region, tags)

    def delete_weights_cache(self, cache: WeightsCache) -> None:
        from gpuctl.providers import aws_mirror

        with aws_errors():
            aws_mirror.delete_bucket(self._client("s3", cache.region), cache.id)

    def weights_mirror(self, cache: WeightsCache) -> WeightsMirror:
        """The bucket as the instance's source and destination of weights (pre-signed URLs; it has no IAM role)."""
        from gpuctl.providers.aws_mirror import S3Mirror

        return S3Mirror(self._client("s3", cache.region), cache.id)

    def _client(self, service: str, region: str) -> Any:
        """One client per service and region for this provider's life (teardown polls ``get`` every few seconds)."""
        key = (service, region)
        if key not in self._clients:
            session = self._session or self._lifecycle_session
            if session is None:  # the full EC2 model: the listing's cut-down one cannot launch
                session = self._lifecycle_session = new_session()
            self._clients[key] = make_client(session, service, region, self.timeout)
        return self._clients[key]


def enabled_regions(ec2: Any) -> list[str]:
    """The regions this account may use (opt-in regions only once opted in)."""
    return sorted(r["RegionName"] for r in ec2.describe_regions()["Regions"] if r.get("OptInStatus") != "not-opted-in")


def _closed_region(error: BaseException | None) -> bool:
    response = getattr(error, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") in _CLOSED_REGION


def region_offers(ec2: Any, pricing: Any, region: str, query: OfferQuery, as_of: datetime) -> list[Offer]:
    """Offers of one region: types, regional offerings and on-demand prices are asked at once."""
    catalog = provider_catalog(AWSProvider.name)
    calls = {
        "types": partial(all_pages, ec2, "describe_instance_types", "InstanceTypes",
                         Filters=[{"Name": "instance-type", "Values": list(GPU_TYPE_PATTERNS)}]),
        "offered": partial(all_pages, ec2, "describe_instance_type_offerings", "InstanceTypeOfferings",
                           LocationType="region", Filters=[{"Name": "location", "Values": [region]}]),
    }
    if query.spot is not True:
        calls["on_demand"] = partial(all_pages, pricing, "get_products", "PriceList",
                                     ServiceCode="AmazonEC2", Filters=price_filters(region))
    answers = values_or_raise(run_all(calls))
    offered = {row["InstanceType"] for row in answers["offered"]}
    types = [t for t in gpu_instance_types(answers["types"], catalog.gpu_ids if catalog else {})
             if t.name in offered and _wanted(t, query)]
    markets: dict[bool, dict[str, float]] = {}
    if query.spot is not True:
        markets[False] = on_demand_prices(answers["on_demand"])
    if query.spot is not False and types:
        markets[True] = cheapest_spot(all_pages(
            ec2, "describe_spot_price_history", "SpotPriceHistory", InstanceTypes=[t.name for t in types],
            ProductDescriptions=["Linux/UNIX"], StartTime=as_of))
    unpriced = sorted(t.name for t in types if not any(t.name in prices for prices in markets.values()))
    if unpriced:
        log.debug("AWS %s: no price for %s", region, ", ".join(unpriced))
    return [_offer(t, region, prices[t.name], spot, as_of)
            for spot, prices in markets.items() for t in types if t.name in prices]


def _wanted(instance_type: GpuInstanceType, query: OfferQuery) -> bool:
    # narrow before asking for spot prices; the full query is applied to the offers afterwards
    return ((query.gpus is None or instance_type.gpu in query.gpus)
            and (query.gpu_count is None or instance_type.gpu_count == query.gpu_count))


def _offer(instance_type: GpuInstanceType, region: str, price: float, spot: bool, as_of: datetime) -> Offer:
    return Offer(
        provider=AWSProvider.name, gpu=instance_type.gpu, gpu_count=instance_type.gpu_count,
        vram_gb=gpu_spec(instance_type.gpu).vram_gb, vcpus=instance_type.vcpus, ram_gb=instance_type.ram_gb,
        region=region, price_per_hour=price, price_per_gpu_hour=round(price / instance_type.gpu_count, 4),
        spot=spot, availability="unknown", instance_type=instance_type.name, source="live", as_of=as_of,
    )


def all_pages(client: Any, operation: str, key: str, **params: Any) -> list[Any]:
    return [item for page in client.get_paginator(operation).paginate(**params) for item in page.get(key, [])]


def default_region() -> str:
    """``aws.region`` (AWS_DEFAULT_REGION, then the config file), else us-east-1."""
    return credential_value("aws.region") or DEFAULT_REGION


def new_session(*, listing: bool = False) -> Session:
    """A boto3 session on the standard credential chain, with gpuctl's profile when one is set.

    ``listing=True`` loads a cut-down EC2 model (see aws_models): faster, but its EC2 clients can
    only make the read calls of the price listing.
    """
    import boto3
    import botocore.session

    core = botocore.session.Session()
    data_path = listing_data_path() if listing else None
    if data_path is not None:
        others = core.get_config_variable("data_path")  # AWS_DATA_PATH keeps working
        core.set_config_variable("data_path", os.pathsep.join(filter(None, [str(data_path), others])))
    return boto3.session.Session(botocore_session=core, profile_name=aws_profile_name())


def make_client(session: Session, service: str, region: str, timeout: float) -> Any:
    """A client with bounded standard retries; ``AWS_ENDPOINT_URL[_SERVICE]`` is honoured by botocore."""
    from botocore.config import Config

    # S3: SigV4, so a pre-signed URL signs only the host (the fetcher's Content-Type does not matter)
    extra = {"signature_version": "s3v4"} if service == "s3" else {}
    config = Config(retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
                    connect_timeout=min(timeout, 5.0), read_timeout=timeout, **extra)
    return session.client(service, region_name=region, config=config)


@contextmanager
def aws_errors() -> Iterator[None]:
    """Turn boto3/botocore failures into gpuctl errors that name AWS, the API and what to do."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        CredentialRetrievalError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
        SSOError,
        TokenRetrievalError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    try:
        yield
    except GpuctlError:
        raise
    except ClientError as exc:
        raise client_error(exc) from exc
    except ProfileNotFound as exc:
        raise CredentialsError(f"AWS profile '{exc.kwargs.get('profile')}' is not in ~/.aws/config "
                               "or ~/.aws/credentials", CREDENTIALS_HINT) from exc
    except (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError, SSOError,
            TokenRetrievalError) as exc:
        raise CredentialsError(f"AWS credentials are missing or unusable: {exc}", CREDENTIALS_HINT) from exc
    except (BotoConnectionError, HTTPClientError) as exc:
        raise ProviderError(f"AWS API unreachable: {exc}",
                            "check the network (and AWS_ENDPOINT_URL if set), then retry") from exc
    except BotoCoreError as exc:
        raise ProviderError(f"AWS request failed: {exc}") from exc


def client_error(exc: ClientError) -> GpuctlError:
    """The gpuctl error for an AWS API error response."""
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "Unknown"), " ".join(str(error.get("Message", "")).split())
    if len(message) > 160:  # a proxy's HTML error page, say
        message = message[:157] + "..."
    api = exc.operation_name
    if code in _REJECTED:
        return CredentialsError(f"AWS rejected the credentials ({code} on {api})", CREDENTIALS_HINT)
    if code in _DENIED:
        hint = (PERMISSIONS_HINT if api in LISTING_CALLS else
                f"allow the {api} action for these credentials (docs/providers.md lists what a deployment needs)")
        return CredentialsError(f"AWS denied {api} ({code})", hint)
    hint = ("AWS is throttling this account's requests; wait a minute and retry" if code in _THROTTLED
            else None)
    return ProviderError(f"AWS API {api} failed: {code}: {message}", hint)
