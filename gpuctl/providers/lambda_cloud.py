"""Lambda Cloud, through its v1 REST API."""

from __future__ import annotations

from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.providers.base import Provider


class LambdaProvider(Provider):
    name = "lambda"
    display_name = "Lambda Cloud"
    credential_keys = ("lambda.api_key",)

    def offers(self, query: OfferQuery) -> list[Offer]:
        raise NotImplementedError("Lambda offers are not implemented yet")
