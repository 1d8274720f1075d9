"""The Tiny Cloud provider: gpuctl's contract (``gpuctl.testing``), then what is Tiny Cloud's own."""

from __future__ import annotations

import pytest
from gpuctl_tinycloud.provider import TinyCloudProvider

from gpuctl.errors import CredentialsError, NoCapacityError
from gpuctl.models.offer import OfferQuery
from gpuctl.testing import ProviderContract


class TestContract(ProviderContract):
    provider_class = TinyCloudProvider

    @pytest.fixture(autouse=True)
    def api(self, tinycloud):
        return tinycloud


def test_gpus_gpuctl_has_no_name_for_are_skipped(tinycloud) -> None:
    offers = TinyCloudProvider().offers(OfferQuery(include_unavailable=True))
    assert sorted((o.instance_type, o.gpu, o.availability) for o in offers) == [
        ("tc.h100.8x", "H100-SXM", "none"), ("tc.l40s.1x", "L40S", "high")]


def test_a_sold_out_type_is_no_capacity(tinycloud) -> None:
    provider = TinyCloudProvider()
    [h100] = provider.offers(OfferQuery(gpus=["H100-SXM"], include_unavailable=True))
    request = TestContract().launch_request(h100)
    with pytest.raises(NoCapacityError, match="out of stock"):
        provider.launch(request)


def test_a_wrong_key_is_a_credentials_error_saying_how_to_set_it(tinycloud, monkeypatch) -> None:
    monkeypatch.setenv("TINYCLOUD_API_KEY", "wrong")
    with pytest.raises(CredentialsError) as info:
        TinyCloudProvider().offers(OfferQuery())
    assert "TINYCLOUD_API_KEY" in info.value.hint


def test_machines_carry_gpuctls_tags_and_report_their_address_once_booted(tinycloud) -> None:
    provider = TinyCloudProvider()
    [l40s] = provider.offers(OfferQuery(gpus=["L40S"]))
    launched = provider.launch(TestContract().launch_request(l40s))
    assert (launched.status, launched.ssh_host, launched.gpu) == ("pending", None, "L40S")
    assert launched.tags["gpuctl-deployment"] == "contract"
    running = TestContract().wait_running(provider, launched.id)
    assert (running.ssh_host, running.ssh_port, running.ssh_user) == ("127.0.0.1", 22, "root")
