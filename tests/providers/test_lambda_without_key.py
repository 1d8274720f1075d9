"""``gpuctl up --provider lambda -y`` without a Lambda key (issue 15): the snapshot offer it plans has region
``any``, and the weights cache of "no region" used to fail first, with exit 2, a misleading "filesystem region"
message and a hint naming a command that does not exist (``gpuctl offers``). The missing key is the error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuctl.errors import ExitCode
from gpuctl.models.offer import OfferQuery
from gpuctl.providers.catalog import snapshot_offers
from gpuctl.providers.lambda_cloud.provider import LambdaProvider
from tests.fakehost.cloud import write_recipe
from tests.standins.hub_server import HubServer


@pytest.fixture
def hub(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    with HubServer(auto=True) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def test_up_without_a_lambda_key_says_the_key_is_missing(gpuctl, isolated: Path, hub: HubServer) -> None:
    write_recipe(isolated)
    result = gpuctl("up", "tiny", "--provider", "lambda", "-y")
    assert result.exit_code == ExitCode.CREDENTIALS, result.stderr
    assert "Lambda Cloud" in result.stderr and "--host" in result.stderr  # before any price: nothing recorded
    assert "LAMBDA_API_KEY" in result.stderr
    assert "filesystem" not in result.stderr and "gpuctl offers" not in result.stderr


def test_an_offer_in_no_particular_region_has_no_cache_region() -> None:
    catalog = LambdaProvider.catalog()
    assert catalog is not None
    [anywhere] = snapshot_offers(catalog, OfferQuery(gpus=["H100-SXM"], gpu_count=1))
    assert anywhere.region == "any"
    assert LambdaProvider().weights_cache_region(anywhere) is None  # the launch picks the region, later
    assert LambdaProvider().weights_cache_region(anywhere.model_copy(update={"region": "us-east-1"})) == "us-east-1"
