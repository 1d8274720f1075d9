"""The contract every provider plugin implements (docs/plugins.md walks through writing one).

A provider is a subclass of :class:`Provider` registered in the ``gpuctl.providers`` entry-point group.
It declares, once, on its class: its name, what it can do (``capabilities``), the settings it reads
(``config_keys``), its catalog (``catalog_file``) and how long its calls may take; gpuctl reads those
declarations and never probes the class. gpuctl hands every caller a guarded wrapper of it
(:mod:`gpuctl.providers.guard`): whatever the provider raises, hangs on or returns wrongly costs only
that provider.

REQUIRED: ``name``, ``display_name``, ``offers``. Each capability adds the methods it names
(:data:`gpuctl.providers.capabilities.METHODS`); an undeclared one is never called.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, Field

from gpuctl.config import ConfigKey
from gpuctl.credentials import CredentialStatus, resolve_credential
from gpuctl.errors import UnsupportedError
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.providers.capabilities import Capability

if TYPE_CHECKING:  # listing prices never needs the lifecycle models; importing them costs ~40 ms
    from datetime import datetime

    from gpuctl.events import Reporter
    from gpuctl.models.billing import BilledAmount
    from gpuctl.models.instance import Instance, LaunchRequest
    from gpuctl.models.weights_cache import WeightsCache
    from gpuctl.providers.catalog import ProviderCatalog
    from gpuctl.weights.mirror import WeightsMirror
    from gpuctl.weights.models import CacheReport, SeedRequest

#: seconds one API request may take, retries included, unless the provider says otherwise
DEFAULT_TIMEOUT = 10.0
#: seconds gpuctl waits for one bounded call (listing, get, terminate, ...) unless the provider says otherwise
DEFAULT_CALL_TIMEOUT = 120.0


class ProviderCheck(BaseModel):
    """One finding of a provider's own ``gpuctl doctor`` check; ``fix`` says what to do unless it is ``ok``."""

    name: str = Field(description="short name of the check, e.g. 'api'")
    status: Literal["ok", "warning", "problem", "skipped"]
    detail: str
    fix: str | None = None
    server_date: str | None = Field(default=None, description="the Date header of an answer, for the clock check")


class Provider(ABC):
    """A place that rents GPUs.

    Read side (``offers``) is required. Everything else is declared in ``capabilities``
    (:class:`~gpuctl.providers.capabilities.Capability` names the methods each one requires); callers
    ask ``can`` before calling, and a method the provider did not declare raises ``UnsupportedError``.

    gpuctl constructs a provider without arguments, then may lower ``timeout`` (``prices --timeout``,
    ``doctor --timeout``). Methods raise :class:`gpuctl.errors.GpuctlError` subclasses for what goes
    wrong at the provider (``CredentialsError`` for a missing or refused key, ``NotFoundError`` for an
    unknown instance, ``NoCapacityError`` when an offer cannot be placed, ``ProviderError`` otherwise);
    anything else is taken for a bug of the provider.
    """

    #: REQUIRED: short lowercase name used on the command line and in state (``--provider NAME``); it must
    #: equal the name of the provider's entry point
    name: ClassVar[str]
    #: REQUIRED: human name for tables and messages
    display_name: ClassVar[str]
    #: what this provider can do beyond listing offers
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: the settings this provider reads (``gpuctl config`` knows them); those marked ``credential`` are what
    #: the default ``credentials`` checks. Name them ``<provider name>.<setting>``.
    config_keys: ClassVar[tuple[ConfigKey, ...]] = ()
    #: the provider's catalog (GPU mapping and dated price snapshot), a YAML file shipped in the package of
    #: the provider's module, relative to it; None: no catalog (no snapshot prices without credentials)
    catalog_file: ClassVar[str | None] = None
    #: seconds one API request may take, retries included; gpuctl may lower it for one command
    timeout: float = DEFAULT_TIMEOUT
    #: seconds gpuctl waits for one call of a bounded method (every method but ``launch``,
    #: ``ensure_weights_cache`` and ``seed_weights``) before it gives the provider up as hung
    call_timeout: ClassVar[float] = DEFAULT_CALL_TIMEOUT
    #: True when ``offers`` spends much CPU of its own (imports, client set-up, parsing): the price
    #: listing then runs it in a forked child (where possible) so it does not hold up the other providers
    own_process: ClassVar[bool] = False

    @classmethod
    def can(cls, capability: Capability) -> bool:
        """Whether this provider declared ``capability``."""
        return capability in cls.capabilities

    @classmethod
    def catalog(cls) -> ProviderCatalog | None:
        """The catalog shipped with this provider (``catalog_file``), read once; None when it ships none."""
        if cls.catalog_file is None:
            return None
        from gpuctl.providers.catalog import load_catalog

        package = sys.modules[cls.__module__].__spec__.parent  # type: ignore[union-attr]
        return load_catalog(package, cls.catalog_file, cls.name)

    def _unsupported(self, what: str) -> UnsupportedError:
        return UnsupportedError(f"{self.display_name} cannot {what}")

    def credentials(self) -> CredentialStatus:
        """Whether credentials are present and where they come from (never their values); offline and fast.

        The default checks every ``credential`` key of ``config_keys``.
        """
        statuses = [resolve_credential(key) for key in self.config_keys if key.credential]
        missing = [s for s in statuses if not s.present]
        if missing:
            return missing[0]
        if statuses:
            return statuses[0]
        return CredentialStatus(key="", present=True, source="none needed")

    def doctor_checks(self) -> list[ProviderCheck]:
        """``gpuctl doctor``'s checks of this provider, run once its credentials are present: typically one
        cheap, read-only API call proving they are accepted (``gpuctl.providers.checks.api_check``).
        The default has none."""
        return []

    @abstractmethod
    def offers(self, query: OfferQuery) -> list[Offer]:
        """REQUIRED. Live offers matching ``query`` (source ``live``), every one of this provider."""

    def launch(self, request: LaunchRequest) -> Instance:
        """Start one instance (``LAUNCH``); must be idempotent for the same ``request.idempotency_token``."""
        raise self._unsupported("launch instances")

    def get(self, instance_id: str) -> Instance:
        """Current view of one instance (``LAUNCH``; ``NotFoundError`` when the provider has no such id)."""
        raise self._unsupported("look up instances")

    def terminate(self, instance_id: str) -> None:
        """Ask the provider to destroy an instance (``LAUNCH``); succeeds if it is already gone."""
        raise self._unsupported("terminate instances")

    def list_by_tag(self, tags: dict[str, str]) -> list[Instance]:
        """Instances carrying all of ``tags`` (``LIST_BY_TAG``: how orphans are found)."""
        raise self._unsupported("list instances")

    def engine_logs(self, instance_id: str, tail: int | None = None) -> str:
        """The engine's recent output (``ENGINE_LOGS``)."""
        raise self._unsupported("show engine logs")

    def launch_nodes(self, request: LaunchRequest, nodes: int) -> list[Instance]:
        """Start ``nodes`` machines of ``request.offer`` placed together, each reaching the others on every port
        (``MULTI_NODE``): one engine spans them. Every machine carries ``request.tags`` (``list_by_tag`` finds
        them all; ``terminate`` ends each). Idempotent for the same ``request.idempotency_token``; a failure
        after some machines started raises, and the caller tears down what the tags find."""
        raise self._unsupported("place machines together")

    def release_nodes(self, tags: dict[str, str]) -> None:
        """Remove what ``launch_nodes`` made besides the machines (a placement group, a security group) once the
        machines carrying ``tags`` are gone (``MULTI_NODE``); succeeds if there is nothing."""
        raise self._unsupported("place machines together")

    # -- weights caches (docs/weights.md): one per region, named ``cache_name(region)``, outliving ``down`` --
    def weights_caches(self) -> list[WeightsCache]:
        """gpuctl's weights caches at this provider, every region (``WEIGHTS_CACHE``)."""
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
        """``cache`` as a mirror the fetcher reads and fills through URLs, for a cache the machine does not mount
        (``WEIGHTS_MIRROR``, S3). None: the cache is a directory on the machine (``cache.mount_path``)."""
        return None

    def seed_weights(self, cache: WeightsCache, request: SeedRequest, reporter: Reporter) -> CacheReport:
        """Download and verify ``request.manifest`` into ``cache`` (``SEED_WEIGHTS``).

        Machines reached over SSH get their weights from the lifecycle instead (``gpuctl.weights.ensure_cached``).
        """
        raise self._unsupported("fill a weights cache by itself")

    def billed(self, instance_ids: list[str], start: datetime, end: datetime) -> list[BilledAmount]:
        """What the provider's billing records charge each of ``instance_ids`` between ``start`` and ``end``
        (``BILLING``); an instance it has no record of is left out. Records come in the provider's own time
        buckets, so the window it answers for (``BilledAmount.start``/``end``) may be wider."""
        raise self._unsupported("report what it billed")


class ProviderInfo(BaseModel):
    """One row of ``gpuctl providers``: a plugin, where it came from, what it can do and its credential state."""

    name: str
    display_name: str | None = None
    package: str | None = None
    version: str | None = None
    status: Literal["ok", "broken"]
    capabilities: list[str] = Field(default_factory=list, description="what it declares beyond listing offers")
    config_keys: list[str] = Field(default_factory=list, description="the settings it reads ('gpuctl config')")
    credentials: str | None = None  # "present" / "missing"; never a value
    credential_source: str | None = None
    hint: str | None = None
    error: str | None = Field(default=None, description="why it is broken")
