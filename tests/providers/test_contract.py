"""The built-in providers pass the same contract kit a plugin author runs (``gpuctl.testing``): one shared
suite, each provider against its stand-in (RunPod and Lambda: the spec-checked API stand-ins; AWS: moto
with the Price List answered from tables). What is particular to one provider stays in its own files."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.providers import vm
from gpuctl.providers.aws import client as aws_client
from gpuctl.providers.aws import provider as aws_provider
from gpuctl.providers.aws.provider import AWSProvider
from gpuctl.providers.lambda_cloud.provider import LambdaProvider
from gpuctl.providers.runpod.provider import RunPodProvider
from gpuctl.testing import ProviderContract
from tests.providers.aws_fakes import FakeAws, register_dlami
from tests.standins.fixtures import lambda_api, runpod_api  # noqa: F401 (fixtures)


class TestRunPod(ProviderContract):
    provider_class = RunPodProvider
    offer_query = OfferQuery(gpus=["L40S"])

    @pytest.fixture(autouse=True)
    def api(self, runpod_api):  # noqa: F811
        return runpod_api

    def weights_cache_region(self, launch_offer: Offer) -> str:
        return "US-TX-3"  # a network volume lives in one data center


class TestLambda(ProviderContract):
    provider_class = LambdaProvider
    offer_query = OfferQuery(gpus=["A10"])

    @pytest.fixture(autouse=True)
    def api(self, lambda_api):  # noqa: F811
        return lambda_api


class TestAWS(ProviderContract):
    provider_class = AWSProvider
    offer_query = OfferQuery(gpus=["L40S"], regions=["us-east-1"], spot=False)

    @pytest.fixture(autouse=True)
    def aws(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
        """moto with a DLAMI, prices from tables, the caller's range set, and a few regions only."""
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("GPUCTL_CALLER_CIDR", "203.0.113.7/32"), ("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")):
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(vm, "CHECKIP_URL", "http://127.0.0.1:9/")  # never the real service
        real = aws_client.new_session
        prices = FakeAws()
        monkeypatch.setattr(aws_client, "new_session", lambda **kw: prices.install(real(**kw)))
        # list_by_tag asks every enabled region; moto has 30: two show the behaviour
        monkeypatch.setattr(aws_provider, "enabled_regions", lambda ec2: ["us-east-1", "us-west-2"])
        with mock_aws():
            register_dlami(real())
            yield

    @pytest.fixture
    def without_credentials(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(name)

    def unknown_instance_id(self) -> str:
        return "us-east-1/i-0123456789abcdef0"
