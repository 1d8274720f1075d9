"""The weights caches providers keep for gpuctl (``--to PROVIDER[:REGION]``): listing, finding, deleting."""

from __future__ import annotations

from pydantic import BaseModel, Field

from gpuctl.errors import GpuctlError, NotFoundError, UsageError
from gpuctl.events import NullReporter, Reporter
from gpuctl.models.weights_cache import CacheKind, WeightsCache
from gpuctl.plugins import ProviderRegistry
from gpuctl.providers.base import Provider
from gpuctl.providers.capabilities import Capability
from gpuctl.providers.guard import PluginError
from gpuctl.weights.ledger import FilledModel, filled_models


class ProviderCacheRow(BaseModel):
    """One provider cache as ``gpuctl weights ls`` shows it, with the models gpuctl filled it with from here."""

    provider: str
    region: str
    name: str
    id: str
    kind: CacheKind
    size_gb: int | None
    used_bytes: int | None
    in_use: bool | None
    models: list[FilledModel] = Field(default_factory=list, description="as recorded on this machine")

    @classmethod
    def of(cls, cache: WeightsCache) -> ProviderCacheRow:
        return cls(provider=cache.provider, region=cache.region, name=cache.name, id=cache.id, kind=cache.kind,
                   size_gb=cache.size_gb, used_bytes=cache.used_bytes, in_use=cache.in_use,
                   models=filled_models(cache))


def parse_to(text: str) -> tuple[str, str | None]:
    """``PROVIDER[:REGION]`` -> (provider, region or None)."""
    provider, _, region = text.partition(":")
    if not provider or (_ and not region):
        raise UsageError(f"'{text}' is not PROVIDER[:REGION]", "e.g. --to runpod:US-KS-2 or --to lambda")
    return provider, region or None


def cache_provider(registry: ProviderRegistry, name: str) -> Provider:
    """Provider ``name``, refusing one without weights caches."""
    provider = registry.create(name)
    if not provider.can(Capability.WEIGHTS_CACHE):
        with_caches = [n for n in registry.names() if registry.classes[n].can(Capability.WEIGHTS_CACHE)]
        raise UsageError(f"{provider.display_name} keeps no weights cache",
                         f"providers with one: {', '.join(with_caches)}; for a machine of yours use --host")
    return provider


def list_caches(registry: ProviderRegistry, only: str | None = None, region: str | None = None,
                reporter: Reporter | None = None) -> list[ProviderCacheRow]:
    """Every provider's caches (or ``only``'s, in ``region``); a provider that fails is named in a warning."""
    reporter = reporter or NullReporter()
    names = [only] if only else [n for n in registry.names() if registry.classes[n].can(Capability.WEIGHTS_CACHE)]
    rows: list[ProviderCacheRow] = []
    for name in names:
        try:
            provider = cache_provider(registry, name)
            if not (only or provider.credentials().present):
                continue  # asking every provider: those without credentials have nothing to say
            caches = provider.weights_caches()
        except PluginError:
            if only:
                raise
            continue  # a plugin's bug: the registry names it once for the whole command
        except GpuctlError as exc:
            if only:
                raise
            reporter.warn(f"{registry.classes[name].display_name}: {exc.one_line()}")
            continue
        rows += [ProviderCacheRow.of(c) for c in caches if region is None or c.region == region]
    return sorted(rows, key=lambda r: (r.provider, r.region, r.name))


def find_cache(provider: Provider, region: str | None) -> WeightsCache:
    """gpuctl's cache at ``provider`` in ``region`` (any region when there is exactly one)."""
    caches = provider.weights_caches()
    found = [c for c in caches if region is None or c.region == region]
    if len(found) == 1:
        return found[0]
    where = f" in {region}" if region else ""
    if not found:
        raise NotFoundError(f"{provider.display_name} has no gpuctl weights cache{where}",
                            f"'gpuctl weights ls --to {provider.name}' lists them")
    regions = ", ".join(sorted(c.region for c in found))
    raise UsageError(f"{provider.display_name} has a gpuctl weights cache in several regions ({regions})",
                     f"name one: --to {provider.name}:REGION")
