"""RunPod, through its REST v2 API."""

from __future__ import annotations

from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.providers.base import Provider


class RunPodProvider(Provider):
    name = "runpod"
    display_name = "RunPod"
    credential_keys = ("runpod.api_key",)

    def offers(self, query: OfferQuery) -> list[Offer]:
        raise NotImplementedError("RunPod offers are not implemented yet")
