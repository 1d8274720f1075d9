"""The in-test fake cloud (tests/fakehost/cloud.py) behaves like a cloud: idempotent launches, tags, faults."""

from __future__ import annotations

import pytest

from gpuctl.errors import NoCapacityError, ProviderError
from gpuctl.models.instance import LaunchRequest
from gpuctl.models.offer import Offer
from tests.fakehost.cloud import Cloud, FakeCloud, make_offer


def _request(offer: Offer, token: str) -> LaunchRequest:
    return LaunchRequest(name="x", offer=offer, idempotency_token=token, tags={"gpuctl": "managed", "k": "v"})


def test_launch_is_idempotent_and_listed_by_tag(fake_cloud: Cloud) -> None:
    offer = fake_cloud.add_offer(make_offer("fakecloud", "fc.l40s", 1.0))
    provider = FakeCloud()
    first, again = provider.launch(_request(offer, "t1")), provider.launch(_request(offer, "t1"))
    assert first.id == again.id == "fakecloud-1"
    assert [i.id for i in provider.list_by_tag({"k": "v"})] == ["fakecloud-1"]
    assert provider.list_by_tag({"k": "other"}) == []
    provider.terminate(first.id)
    assert provider.get(first.id).status == "terminated" and fake_cloud.live() == []


def test_faults_raise_the_provider_errors(fake_cloud: Cloud) -> None:
    sold_out = fake_cloud.add_offer(make_offer("fakecloud", "fc.a", 1.0), fault="capacity")
    broken = fake_cloud.add_offer(make_offer("fakecloud", "fc.b", 1.0), fault="error")
    with pytest.raises(NoCapacityError):
        FakeCloud().launch(_request(sold_out, "t1"))
    with pytest.raises(ProviderError, match="HTTP 500"):
        FakeCloud().launch(_request(broken, "t2"))
    assert fake_cloud.live() == [] and len(fake_cloud.world["launches"]) == 2
