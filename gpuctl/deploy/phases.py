"""Recording a cold start on the deployment's record, phase by phase, as ``gpuctl up`` goes through it.

A phase is written when it starts and again when it ends (with the bytes it moved), so a record left
by an ``up`` that died says where it was. :func:`cold_start` sums a record up for ``up``, ``status``
and ``--json``: each phase, the whole wait, and what the billed part of it cost at the offer's price.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from gpuctl.events import LayerProgress, LayerUpdate, Reporter
from gpuctl.models.deployment import Deployment
from gpuctl.models.phases import ColdStart, Phase, PhaseName


class PhaseLog:
    """Writes phases through ``update`` (the lifecycle's record writer) and reads them from ``current``."""

    def __init__(self, update: Callable[..., Any], current: Callable[[], Deployment]) -> None:
        self._update = update
        self._current = current

    @contextmanager
    def phase(self, name: PhaseName, *, source: str | None = None, detail: str | None = None) -> Iterator[Phase]:
        """The block is phase ``name``; set ``bytes``/``source``/``detail`` on the yielded phase before it ends.

        A phase that fails stays on the record as started but not ended.
        """
        phase = Phase(name=name, started_at=_now(), source=source, detail=detail)
        self._write(phase)
        yield phase
        phase.ended_at = _now()
        self._write(phase)

    def begin(self, name: PhaseName) -> None:
        """Phase ``name`` starts now (for a phase that spans steps; ``end`` closes it)."""
        self._write(Phase(name=name, started_at=_now()))

    def end(self, name: PhaseName, **fields: Any) -> None:
        """Phase ``name``, begun earlier, ends now; nothing when it was never begun."""
        begun = next((p for p in self._current().phases if p.name == name), None)
        if begun is not None:
            self._write(begun.model_copy(update={"ended_at": _now(), **fields}))

    def mark(self, name: PhaseName, started_at: datetime, ended_at: datetime, **fields: Any) -> None:
        """A phase timed elsewhere (the engine's health wait reports when the model was listed)."""
        self._write(Phase(name=name, started_at=started_at, ended_at=ended_at, **fields))

    def _write(self, phase: Phase) -> None:
        phases = [p for p in self._current().phases if p.name != phase.name]
        self._update(phases=[*phases, phase.model_copy()])


def cold_start(deployment: Deployment) -> ColdStart | None:
    """The record's cold start summed up; None when it has no phases (an older record, or nothing started)."""
    phases = sorted(deployment.phases, key=lambda p: p.started_at)
    if not phases:
        return None
    first = phases[0].started_at
    ends = [p.ended_at for p in phases if p.ended_at is not None]
    last = max(ends) if ends else None
    seconds = (last - first).total_seconds() if last is not None else None
    billed_from = deployment.launched_at or (deployment.created_at if deployment.instance_id else None)
    billed = max(0.0, (last - billed_from).total_seconds()) if last is not None and billed_from is not None else None
    cost = (round(deployment.price_per_hour * billed / 3600, 4)
            if billed is not None and deployment.price_per_hour is not None else None)
    return ColdStart(phases=phases, seconds=round(seconds, 3) if seconds is not None else None,
                     billed_seconds=round(billed, 3) if billed is not None else None, cost_usd=cost)


class PullTally:
    """A reporter that passes everything on and counts the bytes an image pull downloads (cached layers: none)."""

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner
        self.seen: dict[str, LayerProgress] = {}

    @property
    def downloaded_bytes(self) -> int:
        return sum(layer.total_bytes or layer.done_bytes for layer in self.seen.values() if layer.phase != "cached")

    def info(self, message: str) -> None:
        self.inner.info(message)

    def warn(self, message: str) -> None:
        self.inner.warn(message)

    def step(self, message: str) -> Any:
        return self.inner.step(message)

    def transfer(self, message: str, total: int) -> Any:
        return self.inner.transfer(message, total)

    @contextmanager
    def layers(self, message: str) -> Iterator[LayerUpdate]:
        with self.inner.layers(message) as update:
            def tally(layer: LayerProgress) -> None:
                self.seen[layer.layer] = layer
                update(layer)

            yield tally


def weights_source(downloaded: int, mirror: int) -> str:
    """Where a fetch got its bytes: nothing fetched (the machine's cache), the provider's mirror, or the hub."""
    if downloaded == 0:
        return "cache"
    return "mirror" if mirror >= downloaded else "hub"


def _now() -> datetime:
    return datetime.now(timezone.utc)
