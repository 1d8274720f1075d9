"""Entries of a provider's listing that did not become offers, and why: counted, never silent.

A provider's ``offers`` checks each entry of its API's answer on its own. An entry gpuctl cannot use
(a GPU it does not know, an availability value it has never seen, a null price) costs that entry
only: the provider calls :func:`skip` with the entry's id and a short reason and goes on with the
rest. The price listing (``gpuctl.pricing``) records the skips of each provider's ``offers`` call
(:func:`recording`) and shows them in ``gpuctl prices -v`` and its ``--json -v`` outcome data.

``skip`` records into the listing of the calling context; a provider that reads its answers in
threads of its own calls it from the thread that runs ``offers`` (or from a copied context).
Outside a recording it only logs at debug level.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

#: how many ids of each reason are kept (the count is exact)
EXAMPLES = 5
#: reason of an entry naming a GPU (or instance type) neither mapped nor left out on purpose in the catalog
UNKNOWN_GPU = "unknown GPU: not in the provider's catalog"


class SkippedEntries(BaseModel):
    """Entries of one provider's listing skipped for one reason."""

    reason: str
    count: int = Field(ge=1, description="distinct entries skipped for this reason")
    entries: list[str] = Field(description=f"the provider's ids of the first {EXAMPLES} of them")


class SkipLog:
    """The skips of one listing, by reason; an entry skipped twice for the same reason counts once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, None]] = {}

    def add(self, entry: str, reason: str) -> None:
        with self._lock:
            self._entries.setdefault(reason, {})[entry] = None

    def summary(self) -> list[SkippedEntries]:
        """One row per reason, the most frequent first."""
        with self._lock:
            rows = [SkippedEntries(reason=reason, count=len(entries), entries=list(entries)[:EXAMPLES])
                    for reason, entries in self._entries.items()]
        return sorted(rows, key=lambda row: (-row.count, row.reason))


_current: ContextVar[SkipLog | None] = ContextVar("gpuctl_skip_log", default=None)


def skip(entry: str, reason: str) -> None:
    """Count ``entry`` (the provider's own id for it) as skipped for ``reason`` in the current listing."""
    log.debug("skipping %s: %s", entry, reason)
    current = _current.get()
    if current is not None:
        current.add(entry, reason)


@contextmanager
def recording() -> Iterator[SkipLog]:
    """Collect the skips made in this context (and in contexts copied from it) while the block runs."""
    skips = SkipLog()
    token = _current.set(skips)
    try:
        yield skips
    finally:
        _current.reset(token)


def left_out(why: str) -> str:
    """The reason of an entry a provider's catalog leaves out on purpose (``unsupported``), with the catalog's why."""
    return f"left out on purpose: {why}"


def invalid(field: str, problem: str) -> str:
    """The reason of an entry whose ``field`` gpuctl cannot read (``problem`` says how it is wrong)."""
    return f"invalid entry: field '{field}': {problem}"


def entry_id(raw: Any, index: int, key: str = "id") -> str:
    """The provider's id of a raw entry (its ``key`` field), else its position in the answer (``#3``)."""
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, str) and value else f"#{index}"


def validated(model: type[M], raw: Any, entry: str) -> M | None:
    """``raw`` as ``model``; None, with the entry skipped and its first bad field named, when it is not one."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        skip(entry, invalid(".".join(str(p) for p in first["loc"]) or "(entry)", first["msg"]))
        return None
