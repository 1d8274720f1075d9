"""The small interface every provider plugin implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel

from gpuctl.credentials import CredentialStatus, resolve_credential
from gpuctl.errors import UnsupportedError
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.providers.capabilities import Capability

if TYPE_CHECKING:  # listing prices never needs the lifecycle models; importing them costs ~40 ms
    from gpuctl.events import Reporter
    from gpuctl.models.instance import Instance, LaunchRequest
    from gpuctl.models.weights_cache import WeightsCache
    from gpuctl.weights.mirror import WeightsMirror
    from gpuctl.weights.models import CacheReport, SeedRequest


class Provider(ABC):
    """A place that rents GPUs.

    Read side (``offers``) is required. Everything else is declared in ``capabilities``
    (:class:`~gpuctl.providers.capabilities.Capability` names the methods each one requires); callers
    ask ``can`` before calling, and a method the provider did not declare raises ``UnsupportedError``.
    """

    #: short lowercase name used on the command line and in state (``--provider NAME``)
    name: ClassVar[str]
    #: human name for tables and messages
    display_name: ClassVar[str]
    #: config keys (see gpuctl.config.KEYS) holding this provider's credentials
    credential_keys: ClassVar[tuple[str, ...]] = ()
    #: what this provider can do beyond listing offers
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: True when ``offers`` spends much CPU of its own (imports, client set-up, parsing): the price
    #: listing then runs it in a forked child (where possible) so it does not hold up the other providers
    own_process: ClassVar[bool] = False

    @classmethod
    def can(cls, capability: Capability) -> bool:
        """Whether this provider declared ``capability``."""
        return capability in cls.capabilities

    def _unsupported(self, what: str) -> UnsupportedError:
        return UnsupportedError(f"{self.display_name} cannot {what}")

    def credentials(self) -> CredentialStatus:
        """Whether credentials are present and where they come from (never their values)."""
        statuses = [resolve_credential(key) for key in self.credential_keys]
        missing = [s for s in statuses if not s.present]
        if missing:
            return missing[0]
        if statuses:
            return statuses[0]
        return CredentialStatus(key="", present=True, source="none needed")

    @abstractmethod
    def offers(self, query: OfferQuery) -> list[Offer]:
        """Live offers matching ``query`` (source ``live``)."""

    def launch(self, request: LaunchRequest) -> Instance:
        """Start one instance; must be idempotent for the same ``request.idempotency_token``."""
        raise self._unsupported("launch instances")

    def get(self, instance_id: str) -> Instance:
        """Current view of one instance (``NotFoundError`` when the provider has no such id)."""
        raise self._unsupported("look up instances")

    def terminate(self, instance_id: str) -> None:
        """Ask the provider to destroy an instance; succeeds if it is already gone."""
        raise self._unsupported("terminate instances")

    def list_by_tag(self, tags: dict[str, str]) -> list[Instance]:
        """Instances carrying all of ``tags`` (how orphans are found)."""
        raise self._unsupported("list instances")

    def engine_logs(self, instance_id: str, tail: int | None = None) -> str:
        """The engine's recent output (``ENGINE_LOGS``)."""
        raise self._unsupported("show engine logs")

    # -- weights caches (docs/weights.md): one per region, named ``cache_name(region)``, outliving ``down`` --
    def weights_caches(self) -> list[WeightsCache]:
        """gpuctl's weights caches at this provider, every region."""
        raise self._unsupported("keep a weights cache")

    def weights_cache_region(self, offer: Offer) -> str | None:
        """The region whose weights cache a machine of ``offer`` can use; None when it can use none (then the
        engine downloads the weights itself). The offer's region unless the provider knows better."""
        return offer.region

    def ensure_weights_cache(self, region: str, *, min_gb: int, tags: dict[str, str]) -> WeightsCache:
        """The weights cache of ``region``, created (or grown) to hold at least ``min_gb``; reused when it exists."""
        raise self._unsupported("keep a weights cache")

    def delete_weights_cache(self, cache: WeightsCache) -> None:
        """Delete a weights cache and everything in it; succeeds if it is already gone."""
        raise self._unsupported("keep a weights cache")

    def weights_mirror(self, cache: WeightsCache) -> WeightsMirror | None:
        """``cache`` as a mirror the fetcher reads and fills through URLs, for a cache the machine does not mount (S3).

        None (the default): the cache is a directory on the machine (``cache.mount_path``) or none at all.
        """
        return None

    def seed_weights(self, cache: WeightsCache, request: SeedRequest, reporter: Reporter) -> CacheReport:
        """Download and verify ``request.manifest`` into ``cache`` (``SEED_WEIGHTS``).

        Machines reached over SSH get their weights from the lifecycle instead (``gpuctl.weights.ensure_cached``).
        """
        raise self._unsupported("fill a weights cache by itself")


class ProviderInfo(BaseModel):
    """One row of ``gpuctl providers``: a plugin, where it came from, and its credential state."""

    name: str
    display_name: str | None = None
    package: str | None = None
    version: str | None = None
    status: str  # "ok" or "broken"
    credentials: str | None = None  # "present" / "missing"; never a value
    credential_source: str | None = None
    hint: str | None = None
    error: str | None = None
