"""AWS sessions and clients (boto3, imported only when AWS is actually asked), the settings gpuctl reads for
AWS, its offline credential check, and how AWS failures read as gpuctl errors."""

from __future__ import annotations

import configparser
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuctl.config import ConfigKey
from gpuctl.credentials import CredentialStatus, credential_value
from gpuctl.envvars import Env
from gpuctl.errors import CredentialsError, GpuctlError, ProviderError
from gpuctl.providers.aws.botocore_models import listing_data_path

if TYPE_CHECKING:
    from boto3.session import Session
    from botocore.exceptions import ClientError

PROFILE = ConfigKey("aws.profile", "AWS profile from ~/.aws/config", env=Env.AWS_PROFILE)
REGION = ConfigKey("aws.region", "default AWS region", env="AWS_DEFAULT_REGION")
AMI_TYPE = ConfigKey("aws.ami_type", "Deep Learning AMI type of AWS launches (default "
                     "base-oss-nvidia-driver-gpu-ubuntu-22.04)")

DEFAULT_REGION = "us-east-1"
#: the Price List API is served from us-east-1 (and eu-central-1, ap-south-1) whatever region is priced
PRICING_REGION = "us-east-1"
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
_ENV_SOURCES = ("AWS_ACCESS_KEY_ID", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_WEB_IDENTITY_TOKEN_FILE")


def profile_name() -> str | None:
    """The AWS profile gpuctl should use: ``AWS_PROFILE``, then ``aws.profile`` from the config file."""
    return credential_value(PROFILE)


def credentials_status() -> CredentialStatus:
    """Presence of AWS credentials along the standard chain, read offline.

    boto3's own resolver would fall through to the instance metadata service, a network call;
    this check only reads the environment and the shared files, which is what a laptop has.
    """
    for var in _ENV_SOURCES:
        if os.environ.get(var):
            return CredentialStatus(key="aws", present=True, source=f"env {var}")
    profile = profile_name() or "default"
    creds_file = Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")).expanduser()
    config_file = Path(os.environ.get("AWS_CONFIG_FILE", "~/.aws/config")).expanduser()
    for path, section in ((creds_file, profile), (config_file, "default" if profile == "default" else
                                                  f"profile {profile}")):
        if _has_section(path, section):
            return CredentialStatus(key="aws", present=True, source=f"aws profile {profile}")
    return CredentialStatus(
        key="aws",
        present=False,
        hint="export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run 'aws configure'",
    )


def _has_section(path: Path, section: str) -> bool:
    if not path.is_file():
        return False
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error:
        return False
    return parser.has_section(section)


def default_region() -> str:
    """``aws.region`` (AWS_DEFAULT_REGION, then the config file), else us-east-1."""
    return credential_value(REGION) or DEFAULT_REGION


def new_session(*, listing: bool = False) -> Session:
    """A boto3 session on the standard credential chain, with gpuctl's profile when one is set.

    ``listing=True`` loads a cut-down EC2 model (see botocore_models): faster, but its EC2 clients can
    only make the read calls of the price listing.
    """
    import boto3
    import botocore.session

    core = botocore.session.Session()
    data_path = listing_data_path() if listing else None
    if data_path is not None:
        others = core.get_config_variable("data_path")  # AWS_DATA_PATH keeps working
        core.set_config_variable("data_path", os.pathsep.join(filter(None, [str(data_path), others])))
    return boto3.session.Session(botocore_session=core, profile_name=profile_name())


def make_client(session: Session, service: str, region: str, timeout: float) -> Any:
    """A client with bounded standard retries; ``AWS_ENDPOINT_URL[_SERVICE]`` is honoured by botocore."""
    from botocore.config import Config

    # S3: SigV4, so a pre-signed URL signs only the host (the fetcher's Content-Type does not matter)
    extra = {"signature_version": "s3v4"} if service == "s3" else {}
    config = Config(retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
                    connect_timeout=min(timeout, 5.0), read_timeout=timeout, **extra)
    return session.client(service, region_name=region, config=config)


def all_pages(client: Any, operation: str, key: str, **params: Any) -> list[Any]:
    return [item for page in client.get_paginator(operation).paginate(**params) for item in page.get(key, [])]


def enabled_regions(ec2: Any) -> list[str]:
    """The regions this account may use (opt-in regions only once opted in)."""
    return sorted(r["RegionName"] for r in ec2.describe_regions()["Regions"] if r.get("OptInStatus") != "not-opted-in")


def closed_region(error: BaseException | None) -> bool:
    response = getattr(error, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") in _CLOSED_REGION


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
    throttled = "AWS is throttling this account's requests; wait a minute and retry" if code in _THROTTLED else None
    return ProviderError(f"AWS API {api} failed: {code}: {message}", throttled)
