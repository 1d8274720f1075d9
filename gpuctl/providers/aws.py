"""AWS EC2 GPU instances, through boto3."""

from __future__ import annotations

from gpuctl.credentials import CredentialStatus, resolve_aws_credentials
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.providers.base import Provider


class AWSProvider(Provider):
    name = "aws"
    display_name = "AWS EC2"

    def credentials(self) -> CredentialStatus:
        return resolve_aws_credentials()

    def offers(self, query: OfferQuery) -> list[Offer]:
        raise NotImplementedError("AWS offers are not implemented yet")
