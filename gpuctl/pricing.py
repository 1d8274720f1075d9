"""Offers from every provider at once, with a cache and a dated snapshot to fall back on.

``collect_offers`` is the one way gpuctl gathers prices (``gpuctl prices``, ``gpuctl up``):

- a provider whose answer to the same query is in the cache and younger than ``max_age`` is not
  asked again (rows come back with source ``cache`` and their original ``as_of``);
- providers with credentials are asked concurrently, each with ``timeout`` seconds; one whose
  ``own_process`` is set runs in a forked child on Linux when others are asked too, so its CPU
  work takes another core;
- a provider without credentials, or one that fails or times out, contributes the dated snapshot of
  its catalog (source ``snapshot``); each failure becomes one warning line, except a plugin's bug
  (``PluginError``), which the registry names once for the whole command.

So ``gpuctl prices`` answers on a fresh machine without any credentials. ``filter_and_sort``
applies the filters no provider API understands (memory, price, stock) and the ranking.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from gpuctl.catalog import matches
from gpuctl.concurrency import ChildCall, can_fork, run_all
from gpuctl.errors import GpuctlError
from gpuctl.events import NullReporter, Reporter
from gpuctl.models.offer import AVAILABILITY_RANK, Offer, OfferQuery, OfferSource
from gpuctl.price_cache import read_cached, write_cached
from gpuctl.providers.capabilities import Capability
from gpuctl.providers.catalog import snapshot_offers
from gpuctl.providers.guard import PluginError
from gpuctl.providers.skips import SkippedEntries, recording

if TYPE_CHECKING:
    from gpuctl.plugins import ProviderRegistry
    from gpuctl.providers.base import Provider

log = logging.getLogger(__name__)

#: seconds each provider gets to answer (config key prices.timeout)
DEFAULT_TIMEOUT = 10.0
#: seconds a cached answer stays fresh (config key prices.max_age)
DEFAULT_MAX_AGE = 300.0

ProviderStatus = Literal["live", "cache", "no-credentials", "failed", "timed-out"]
SortKey = Literal["price", "vram", "provider"]


class ProviderOutcome(BaseModel):
    """How one provider's rows were obtained."""

    provider: str
    status: ProviderStatus
    source: OfferSource | None = Field(description="source of its rows; None when it has none at all")
    offers: int
    as_of: datetime | None = Field(default=None, description="oldest as_of among its rows")
    seconds: float | None = Field(default=None, description="how long the live call took")
    detail: str | None = Field(default=None, description="why it is not live: the error or the hint")
    skipped: list[SkippedEntries] = Field(
        default_factory=list, description="entries of its live answer that did not become offers, by reason")


class PriceResult(BaseModel):
    """Offers ranked cheapest per GPU-hour first, the warnings to show, and each provider's outcome."""

    offers: list[Offer]
    warnings: list[str] = Field(default_factory=list)
    sources: dict[str, ProviderOutcome] = Field(default_factory=dict)


class OfferFilters(BaseModel):
    """What ``filter_and_sort`` applies after collection. Add a field and a predicate to extend."""

    min_vram_gb: float | None = Field(default=None, description="memory per GPU, at least")
    max_price_per_gpu_hour: float | None = None
    available_only: bool = Field(default=False, description="only high/medium/low stock (not unknown)")
    sort: SortKey = "price"
    limit: int | None = Field(default=None, ge=1)


def collect_offers(
    query: OfferQuery,
    *,
    providers: list[str] | None = None,
    refresh: bool = False,
    max_age: float = DEFAULT_MAX_AGE,
    timeout: float = DEFAULT_TIMEOUT,
    registry: ProviderRegistry | None = None,
    reporter: Reporter | None = None,
) -> PriceResult:
    """Offers matching ``query`` from ``providers`` (default: every installed one), cheapest first.

    ``refresh`` skips the cache (answers are still stored), ``max_age`` is how old a cached answer
    may be, ``timeout`` how long each provider may take. An unknown provider name raises
    ``UsageError`` (exit 2) before anything is asked. Never raises because a provider failed.
    """
    from gpuctl.plugins import ProviderRegistry

    registry = registry or ProviderRegistry.discover()
    reporter = reporter or NullReporter()
    asked = _provider_query(query)
    # a user-owned host (--host) has no market to list: its offer is read from the host itself
    names = list(dict.fromkeys(providers)) if providers is not None else [
        name for name in registry.names() if not registry.classes[name].can(Capability.USER_HOST)]
    unknown = next((name for name in names if name not in registry.classes), None)
    if unknown is not None:
        registry.create(unknown)  # raises: an unknown or broken name is exit 2 before anything is asked

    gathered = _Gathered(query, [])
    to_ask: dict[str, Provider] = {}
    for name in names:
        cached = None if refresh else read_cached(name, asked, max_age)
        if cached is not None:
            gathered.add(name, "cache", [offer.model_copy(update={"source": "cache"}) for offer in cached.offers],
                          skipped=cached.skipped)
            continue
        try:
            # its calls stop soon after the listing stops waiting for them
            provider = gathered.providers[name] = registry.create(name, timeout=timeout)
            status = provider.credentials()
        except GpuctlError as exc:  # costs this provider's rows only
            gathered.fall_back(name, "failed", exc)
            continue
        if status.present:
            to_ask[name] = provider
        else:
            gathered.fall_back(name, "no-credentials", status.hint)

    if to_ask:
        # a child only pays when others are asked meanwhile; forked before any thread starts (the
        # progress spinner's included): see can_fork
        children = {name: ChildCall(partial(_live_offers, provider, asked))
                    for name, provider in to_ask.items() if provider.own_process and len(to_ask) > 1 and can_fork()}
        calls = {name: children[name].result if name in children else partial(_live_offers, provider, asked)
                 for name, provider in to_ask.items()}
        try:
            with reporter.step(f"Asking {', '.join(to_ask)} for prices"):
                answers = run_all(calls, timeout=timeout)
        finally:
            for child in children.values():
                child.stop()
        for name, answer in answers.items():
            if not answer.finished:
                gathered.fall_back(name, "timed-out", f"no answer within {timeout:g}s")
            elif answer.error is not None:
                log.debug("%s failed", name, exc_info=answer.error)
                if isinstance(answer.error, PluginError):  # from a child: the registry here has not heard of it
                    registry.note_failure(answer.error)
                gathered.fall_back(name, "failed", answer.error)
            elif answer.value is not None:
                write_cached(name, asked, answer.value.offers, answer.value.skipped)
                gathered.add(name, "live", answer.value.offers, seconds=round(answer.seconds, 3),
                             skipped=answer.value.skipped)

    offers = sorted((offer for name in names for offer in gathered.rows[name]), key=_SORT_KEYS["price"])
    return PriceResult(offers=offers, warnings=gathered.warnings,
                       sources={name: gathered.outcomes[name] for name in names})


def known_offers(query: OfferQuery, *, registry: ProviderRegistry | None = None) -> list[Offer]:
    """Offers known here without asking any provider: its cached answer of any age, else its dated snapshot.

    For commands that price what they show but must not wait on the network (``gpuctl fit``).
    """
    from gpuctl.plugins import ProviderRegistry

    registry = registry or ProviderRegistry.discover()
    asked = _provider_query(query)
    gathered = _Gathered(query, [])
    names = [name for name in registry.names() if not registry.classes[name].can(Capability.USER_HOST)]
    for name in names:
        cached = read_cached(name, asked, float("inf"))
        if cached is not None:
            gathered.add(name, "cache", [offer.model_copy(update={"source": "cache"}) for offer in cached.offers])
            continue
        try:
            gathered.providers[name] = registry.create(name)
        except GpuctlError:  # a broken plugin: the registry names it
            continue
        gathered.fall_back(name, "no-credentials", None)
    return sorted((offer for name in names for offer in gathered.rows.get(name, [])), key=_SORT_KEYS["price"])


def filter_and_sort(offers: Iterable[Offer], filters: OfferFilters) -> list[Offer]:
    """The offers passing every filter, ranked by ``filters.sort`` and cut to ``filters.limit``."""
    kept = sorted((offer for offer in offers if all(check(offer, filters) for check in _CHECKS)),
                  key=_SORT_KEYS[filters.sort])
    return kept[: filters.limit] if filters.limit else kept


_CHECKS: list[Callable[[Offer, OfferFilters], bool]] = [
    lambda o, f: f.min_vram_gb is None or o.vram_gb >= f.min_vram_gb,
    lambda o, f: f.max_price_per_gpu_hour is None or o.price_per_gpu_hour <= f.max_price_per_gpu_hour,
    lambda o, f: not f.available_only or o.availability in ("high", "medium", "low"),
]

_SORT_KEYS: dict[str, Callable[[Offer], tuple]] = {
    "price": lambda o: (o.price_per_gpu_hour, AVAILABILITY_RANK[o.availability], o.price_per_hour, o.id),
    "vram": lambda o: (-o.vram_gb, o.price_per_gpu_hour, o.id),
    "provider": lambda o: (o.provider, o.price_per_gpu_hour, o.id),
}


def _provider_query(query: OfferQuery) -> OfferQuery:
    """What providers are asked: every GPU, sold-out included; the rest of ``query`` is applied here.

    GPU and stock filters do not change what a provider's API returns, only what is shown, so
    leaving them out lets ``prices --gpu h100`` reuse the cached answer of a plain ``prices``.
    Regions, GPU count and market do change the API calls (which regions, which pod size).
    """
    return query.model_copy(update={
        "gpus": None, "include_unavailable": True,
        "regions": sorted(set(query.regions)) if query.regions is not None else None,
    })


class LiveAnswer(BaseModel):
    """One provider's live offers, and the entries of its answer it skipped (it may cross a process boundary)."""

    offers: list[Offer]
    skipped: list[SkippedEntries] = Field(default_factory=list)


def _live_offers(provider: Provider, query: OfferQuery) -> LiveAnswer:
    with recording() as skips:
        offers = provider.offers(query)
    # the guard has checked that they are Offers of this provider
    return LiveAnswer(offers=[offer for offer in offers if matches(offer, query)], skipped=skips.summary())


@dataclass
class _Gathered:
    """Each provider's rows, narrowed to the caller's query, and how they were obtained."""

    query: OfferQuery
    warnings: list[str]
    providers: dict[str, Provider] = field(default_factory=dict)
    rows: dict[str, list[Offer]] = field(default_factory=dict)
    outcomes: dict[str, ProviderOutcome] = field(default_factory=dict)

    def add(self, name: str, status: ProviderStatus, offers: list[Offer], **extra: object) -> None:
        shown = [offer for offer in offers if matches(offer, self.query)]
        source = status if status in ("live", "cache") else "snapshot"
        self.rows[name] = shown
        self.outcomes[name] = ProviderOutcome(
            provider=name, status=status, source=source if shown else None, offers=len(shown),
            as_of=min((offer.as_of for offer in shown), default=None), **extra)  # type: ignore[arg-type]

    def fall_back(self, name: str, status: ProviderStatus, why: BaseException | str | None) -> None:
        """The snapshot rows of ``name``; unless credentials are simply missing or the registry names the failure
        (a plugin's bug), say so in a warning."""
        detail = _describe(why) if isinstance(why, BaseException) else why
        self.add(name, status, self._snapshot(name), detail=detail)
        if status != "no-credentials" and not isinstance(why, PluginError):
            dates = sorted({offer.as_of.date() for offer in self.rows[name]})
            instead = f"showing its snapshot prices ({_date_span(dates)})" if dates else "no snapshot rows to show"
            self.warnings.append(f"{name}: {detail}; {instead}")

    def _snapshot(self, name: str) -> list[Offer]:
        provider = self.providers.get(name)
        try:
            catalog = provider.catalog() if provider is not None else None
        except PluginError:  # an unreadable catalog: the registry names it
            return []
        return snapshot_offers(catalog, self.query) if catalog is not None else []


def _describe(exc: BaseException) -> str:
    if isinstance(exc, GpuctlError):
        return exc.one_line()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _date_span(dates: list[date]) -> str:
    return f"as of {dates[0]}" if len(dates) == 1 else f"as of {dates[0]} to {dates[-1]}"
