"""Each provider's last live answer, kept on disk for a few minutes (``cache_dir()/prices``).

One file per provider and query, replaced atomically. A file that cannot be read, belongs to
another query or format, or is older than the caller's ``max_age`` is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ValidationError

from gpuctl.fsutil import atomic_write
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.paths import cache_dir
from gpuctl.providers.skips import SkippedEntries

log = logging.getLogger(__name__)

FORMAT = 1


class CacheEntry(BaseModel):
    format: int = FORMAT
    provider: str
    query: OfferQuery
    fetched_at: datetime
    offers: list[Offer]
    #: entries of the answer that did not become offers (``gpuctl prices -v`` shows them for cached rows too)
    skipped: list[SkippedEntries] = []


def cache_path(provider: str, query: OfferQuery) -> Path:
    """Where the answer of ``provider`` to ``query`` is kept."""
    digest = hashlib.sha256(query.model_dump_json().encode()).hexdigest()[:16]
    return cache_dir() / "prices" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', provider)}-{digest}.json"


def read_cached(provider: str, query: OfferQuery, max_age: float) -> CacheEntry | None:
    """The stored answer if it is at most ``max_age`` seconds old; its offers keep their ``as_of``."""
    path = cache_path(provider, query)
    try:
        entry = CacheEntry.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        log.debug("ignoring unreadable price cache %s: %s", path, exc)
        return None
    age = (datetime.now(timezone.utc) - entry.fetched_at).total_seconds()
    if entry.format != FORMAT or entry.provider != provider or entry.query != query or not 0 <= age <= max_age:
        return None
    return entry


def write_cached(provider: str, query: OfferQuery, offers: list[Offer],
                 skipped: list[SkippedEntries] | None = None) -> None:
    """Store a live answer; a cache that cannot be written only costs the next call a request."""
    entry = CacheEntry(provider=provider, query=query, fetched_at=datetime.now(timezone.utc), offers=offers,
                       skipped=skipped or [])
    path = cache_path(provider, query)
    try:
        atomic_write(path, entry.model_dump_json(), durable=False)
    except OSError as exc:
        log.debug("cannot write price cache %s: %s", path, exc)
