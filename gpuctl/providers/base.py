"""The small interface every provider plugin implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel

from gpuctl.credentials import CredentialStatus, resolve_credential
from gpuctl.models.offer import Offer, OfferQuery

if TYPE_CHECKING:  # listing prices never needs the lifecycle models; importing them costs ~40 ms
    from gpuctl.models.instance import Instance, LaunchRequest


class Provider(ABC):
    """A place that rents GPUs.

    Read side (``offers``) is required. The lifecycle methods are filled in by providers that can
    deploy; a provider that cannot says so through ``NotImplementedError``.
    """

    #: short lowercase name used on the command line and in state (``--provider NAME``)
    name: ClassVar[str]
    #: human name for tables and messages
    display_name: ClassVar[str]
    #: config keys (see gpuctl.config.KEYS) holding this provider's credentials
    credential_keys: ClassVar[tuple[str, ...]] = ()
    #: True when ``launch`` starts ``LaunchRequest.engine`` itself and the instance's ``endpoint_url``
    #: serves it (RunPod); False for machines the lifecycle reaches over SSH to run docker (Lambda, AWS)
    runs_engine: ClassVar[bool] = False
    #: True when the machine belongs to the user (``--host``): gpuctl never stops or terminates it
    user_owned: ClassVar[bool] = False
    #: True when ``offers`` spends much CPU of its own (imports, client set-up, parsing): the price
    #: listing then runs it in a forked child (where possible) so it does not hold up the other providers
    own_process: ClassVar[bool] = False

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
        raise NotImplementedError(f"{self.display_name} cannot launch instances yet")

    def get(self, instance_id: str) -> Instance:
        """Current view of one instance (``NotFoundError`` when the provider has no such id)."""
        raise NotImplementedError(f"{self.display_name} cannot look up instances yet")

    def terminate(self, instance_id: str) -> None:
        """Ask the provider to destroy an instance; succeeds if it is already gone."""
        raise NotImplementedError(f"{self.display_name} cannot terminate instances yet")

    def list_by_tag(self, tags: dict[str, str]) -> list[Instance]:
        """Instances carrying all of ``tags`` (how orphans are found)."""
        raise NotImplementedError(f"{self.display_name} cannot list instances yet")

    def engine_logs(self, instance_id: str, tail: int | None = None) -> str:
        """The engine's recent output, for providers that run the engine themselves (``runs_engine``)."""
        raise NotImplementedError(f"{self.display_name} cannot show engine logs")


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
