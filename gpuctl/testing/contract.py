"""The provider contract as a pytest test class: subclass it, point it at your provider, and every promise
gpuctl relies on is tested (docs/plugins.md, "Testing your provider").

Example::

    import pytest
    from gpuctl.testing import ProviderContract
    from my_gpus.provider import MyProvider

    class TestMyProvider(ProviderContract):
        provider_class = MyProvider

        @pytest.fixture(autouse=True)
        def api(self, monkeypatch):          # your stand-in API, and credentials for it
            with StandIn() as server:
                monkeypatch.setenv("MY_GPUS_API_URL", server.url)
                monkeypatch.setenv("MY_GPUS_API_KEY", server.key)
                yield server

Tests that need a capability the provider does not declare are skipped. Each test gets its own
provider from the ``provider`` fixture (``provider_class()`` unless you override it), and for
launches the request of ``launch_request`` (a generic one unless you override it). Every call goes
through the guard gpuctl itself uses, so an answer gpuctl would refuse fails here too.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import ClassVar

import pytest

from gpuctl.catalog import matches
from gpuctl.errors import CredentialsError, NotFoundError
from gpuctl.models.engine import EngineSpec
from gpuctl.models.instance import Instance, LaunchRequest
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.plugins import ProviderRegistry
from gpuctl.providers.base import Provider
from gpuctl.providers.capabilities import Capability
from gpuctl.providers.catalog import snapshot_offers

#: what a launch from the kit carries; an engine with an API key (container providers need one) and a key
TEST_TAGS = {"gpuctl": "managed", "gpuctl-project": "p-contract", "gpuctl-deployment": "contract"}
TEST_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICN+lJwsONkwrdsSnQsu1ydUkIuIg5oOC+Eslvmtt60T contract@test"
TEST_ENGINE_KEY = "sk-contract-0123456789abcdef"
#: how often ``wait_running`` asks ``get`` before giving up
RUNNING_POLLS = 30


def contract_engine() -> EngineSpec:
    """A vLLM engine spec with an API key, as gpuctl builds one (for providers that run the engine)."""
    return EngineSpec(
        engine="vllm", image="vllm/vllm-openai:v0.11.0", args=["org/model", "--port", "8000"],
        secret_env=["VLLM_API_KEY"], port=8000, health_path="/health", shm_size="8g", gpus=1,
        cache_mount="/root/.cache/huggingface", public=False, supports_api_key=True, api_key_env="VLLM_API_KEY",
        served_model_name="model", max_model_len=4096, tensor_parallel_size=1, gpu_memory_utilization=0.9,
        safetensors_only=True)


class ProviderContract:
    """Contract tests for one provider class; set ``provider_class`` and provide its stand-in (see module doc)."""

    #: REQUIRED: the provider under test
    provider_class: ClassVar[type[Provider]]
    #: the query whose offers ``launch_offer`` picks from
    offer_query: ClassVar[OfferQuery] = OfferQuery()

    # -- fixtures a test class may override ---------------------------------------------------------------
    @pytest.fixture(autouse=True)
    def gpuctl_dirs(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """gpuctl's config and cache directories are the test's own: never the user's keys or caches."""
        monkeypatch.setenv("GPUCTL_CONFIG_DIR", str(tmp_path / "gpuctl-config"))
        monkeypatch.setenv("GPUCTL_CACHE_DIR", str(tmp_path / "gpuctl-cache"))

    @pytest.fixture
    def registry(self) -> ProviderRegistry:
        """A registry holding only ``provider_class``, as gpuctl would discover it."""
        return ProviderRegistry(classes={self.provider_class.name: self.provider_class})

    @pytest.fixture
    def provider(self, registry: ProviderRegistry) -> Provider:
        """The provider under test, behind gpuctl's guard."""
        return registry.create(self.provider_class.name)

    @pytest.fixture
    def without_credentials(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """No credential of the provider is set (its variables unset; the config file is the test's, empty)."""
        for key in self.provider_class.config_keys:
            if key.credential and key.env:
                monkeypatch.delenv(key.env, raising=False)

    @pytest.fixture
    def launch_offer(self, provider: Provider) -> Offer:
        """The offer launches are made from: the cheapest available one of ``offer_query``."""
        offers = sorted((o for o in provider.offers(self.offer_query) if o.availability != "none"),
                        key=lambda o: o.price_per_hour)
        if not offers:
            pytest.fail(f"{self.provider_class.name} has no available offer for {self.offer_query!r} to launch")
        return offers[0]

    def launch_request(self, offer: Offer, *, token: str = "gpuctl-contract-0001",
                       tags: dict[str, str] | None = None) -> LaunchRequest:
        """The request a launch sends; override to add what your provider needs."""
        return LaunchRequest(name="contract", offer=offer, idempotency_token=token, tags=tags or dict(TEST_TAGS),
                             ssh_public_key=TEST_PUBLIC_KEY, disk_gb=50, engine=contract_engine(),
                             secrets={"VLLM_API_KEY": TEST_ENGINE_KEY})

    def wait_running(self, provider: Provider, instance_id: str) -> Instance:
        """``get`` until the instance runs (stand-ins usually need a few polls)."""
        for _ in range(RUNNING_POLLS):
            instance = provider.get(instance_id)
            if instance.status == "running":
                return instance
        pytest.fail(f"instance {instance_id} was not running after {RUNNING_POLLS} polls")

    def needs(self, capability: Capability) -> None:
        if not self.provider_class.can(capability):
            pytest.skip(f"{self.provider_class.name} does not declare {capability.value}")

    # -- declarations -------------------------------------------------------------------------------------
    def test_declarations_are_sound(self, registry: ProviderRegistry) -> None:
        assert registry.broken == [], registry.broken[0].error if registry.broken else ""
        assert registry.names() == [self.provider_class.name]

    def test_config_keys_are_dotted_and_described(self) -> None:
        for key in self.provider_class.config_keys:
            assert key.name.count(".") >= 1, f"config key '{key.name}' is not dotted (name it PROVIDER.SETTING)"
            assert key.description, f"config key '{key.name}' has no description"

    def test_catalog_loads_with_canonical_gpus_and_dated_snapshot_rows(self) -> None:
        catalog = self.provider_class.catalog()
        if catalog is None:
            pytest.skip(f"{self.provider_class.name} ships no catalog")
        assert catalog.provider == self.provider_class.name
        rows = snapshot_offers(catalog, OfferQuery(include_unavailable=True))
        assert all(offer.source == "snapshot" and offer.provider == self.provider_class.name for offer in rows)

    # -- credentials and offers -------------------------------------------------------------------------
    def test_credentials_are_present_and_say_where_from_never_their_value(self, provider: Provider) -> None:
        status = provider.credentials()
        assert status.present, status.hint
        secrets = [os.environ.get(key.env or "") for key in self.provider_class.config_keys if key.secret]
        shown = f"{status.source} {status.hint}"
        assert not [value for value in secrets if value and value in shown], "a secret value is shown"

    def test_without_credentials_the_listing_is_a_credentials_error_with_a_hint(
            self, registry: ProviderRegistry, without_credentials: None) -> None:
        provider = registry.create(self.provider_class.name)
        status = provider.credentials()
        if status.present:
            pytest.skip(f"{self.provider_class.name} needs no credentials (or without_credentials left some)")
        assert status.hint, "say how to set them"
        named = [key for key in self.provider_class.config_keys if key.credential]
        assert not named or any(key.name in status.hint or (key.env or key.name) in status.hint for key in named)
        with pytest.raises(CredentialsError):
            provider.offers(OfferQuery())

    def test_offers_are_live_offers_of_this_provider(self, provider: Provider) -> None:
        offers = provider.offers(OfferQuery(include_unavailable=True))
        assert offers, "no offer at all: is the stand-in running?"
        for offer in offers:
            assert (offer.provider, offer.source) == (self.provider_class.name, "live")
            assert offer.price_per_hour == pytest.approx(offer.price_per_gpu_hour * offer.gpu_count, rel=0.01)

    def test_offers_honour_the_query(self, provider: Provider) -> None:
        everything = provider.offers(OfferQuery(include_unavailable=True))
        gpu, count = everything[0].gpu, everything[0].gpu_count
        query = OfferQuery(gpus=[gpu], gpu_count=count)
        narrowed = provider.offers(query)
        assert narrowed and all(matches(offer, query) for offer in narrowed)
        assert all(offer.availability != "none" for offer in provider.offers(OfferQuery()))

    # -- instances --------------------------------------------------------------------------------------
    def test_launch_get_terminate(self, provider: Provider, launch_offer: Offer) -> None:
        self.needs(Capability.LAUNCH)
        launched = provider.launch(self.launch_request(launch_offer))
        assert launched.provider == self.provider_class.name and launched.id
        running = self.wait_running(provider, launched.id)
        assert running.id == launched.id
        if provider.can(Capability.SSH_MACHINE):
            assert running.ssh_host and running.ssh_port, "an SSH machine must say where to connect once running"
        if provider.can(Capability.ENGINE_CONTAINER):
            assert running.endpoint_url, "an engine container must say where its engine answers once running"
        provider.terminate(launched.id)
        provider.terminate(launched.id)  # gone already is fine
        with contextlib.suppress(NotFoundError):  # forgotten at once is fine too
            assert provider.get(launched.id).status in ("stopping", "terminated")

    def test_the_same_launch_token_never_launches_twice(self, provider: Provider, launch_offer: Offer) -> None:
        self.needs(Capability.LAUNCH)
        first = provider.launch(self.launch_request(launch_offer))
        again = provider.launch(self.launch_request(launch_offer))
        other = provider.launch(self.launch_request(launch_offer, token="gpuctl-contract-0002"))
        try:
            assert again.id == first.id
            assert other.id != first.id, "another token is another launch"
        finally:
            provider.terminate(first.id)
            provider.terminate(other.id)

    def test_an_unknown_instance_is_not_found_and_terminating_it_is_fine(self, provider: Provider) -> None:
        self.needs(Capability.LAUNCH)
        with pytest.raises(NotFoundError):
            provider.get(self.unknown_instance_id())
        provider.terminate(self.unknown_instance_id())  # gone (or never there) is gone

    def unknown_instance_id(self) -> str:
        """An id the provider cannot know; override when ids have a required shape."""
        return "gpuctl-contract-no-such-instance"

    def test_list_by_tag_finds_its_own_launches_only(self, provider: Provider, launch_offer: Offer) -> None:
        self.needs(Capability.LIST_BY_TAG)
        launched = provider.launch(self.launch_request(launch_offer))
        try:
            found = [i.id for i in provider.list_by_tag({"gpuctl-project": TEST_TAGS["gpuctl-project"]})]
            assert launched.id in found
            assert launched.id not in [i.id for i in provider.list_by_tag({"gpuctl-project": "p-other"})]
        finally:
            provider.terminate(launched.id)
        after = {i.id: i.status for i in provider.list_by_tag(dict(TEST_TAGS))}
        assert after.get(launched.id, "terminated") in ("stopping", "terminated")

    def test_engine_logs_are_text(self, provider: Provider, launch_offer: Offer) -> None:
        self.needs(Capability.ENGINE_LOGS)
        launched = provider.launch(self.launch_request(launch_offer))
        try:
            self.wait_running(provider, launched.id)
            assert isinstance(provider.engine_logs(launched.id, tail=10), str)
        finally:
            provider.terminate(launched.id)

    # -- weights caches -----------------------------------------------------------------------------------
    def weights_cache_region(self, launch_offer: Offer) -> str:
        """The region the weights-cache tests use; override when the offer's own is not one."""
        return launch_offer.region

    def test_a_weights_cache_is_made_once_listed_and_deleted_idempotently(self, provider: Provider,
                                                                           launch_offer: Offer) -> None:
        self.needs(Capability.WEIGHTS_CACHE)
        region = self.weights_cache_region(launch_offer)
        cache = provider.ensure_weights_cache(region, min_gb=20, tags=dict(TEST_TAGS))
        assert (cache.provider, cache.region) == (self.provider_class.name, region)
        assert provider.ensure_weights_cache(region, min_gb=20, tags=dict(TEST_TAGS)).id == cache.id
        assert cache.id in [c.id for c in provider.weights_caches()]
        provider.delete_weights_cache(cache)
        provider.delete_weights_cache(cache)  # gone already is fine
        assert cache.id not in [c.id for c in provider.weights_caches()]

