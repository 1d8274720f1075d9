"""Reading docker's pull stream: per-layer phases and bytes from the engine's JSON progress messages."""

from __future__ import annotations

from typing import Any

from gpuctl.events import LayerPhase, LayerProgress

#: docker's status words (``docker pull`` prints the same) and the phase each starts
_PHASES: dict[str, LayerPhase] = {
    "pulling fs layer": "waiting",
    "waiting": "waiting",
    "downloading": "downloading",
    "verifying checksum": "downloading",
    "download complete": "extracting",
    "extracting": "extracting",
    "pull complete": "done",
    "already exists": "cached",
}


class PullTracker:
    """Turns pull events into :class:`LayerProgress` updates (only for layers, only on a change)."""

    def __init__(self) -> None:
        self.layers: dict[str, LayerProgress] = {}

    def feed(self, event: dict[str, Any]) -> LayerProgress | None:
        """The layer update ``event`` makes, or None (an image-wide message, or nothing changed)."""
        layer, status = event.get("id"), str(event.get("status", "")).lower()
        phase = _PHASES.get(status)
        if not layer or phase is None:
            return None
        before = self.layers.get(layer) or LayerProgress(layer=layer, phase=phase)
        done, total = before.done_bytes, before.total_bytes
        detail = event.get("progressDetail") or {}
        if status == "downloading":
            done = int(detail.get("current") or done)
            total = int(detail["total"]) if detail.get("total") else total
        elif phase in ("extracting", "done") and total:
            done = total  # downloaded in full; extraction is local work
        if status == "extracting" and not total and detail.get("total"):
            total = done = int(detail["total"])  # a layer small enough that docker skipped its download progress
        now = LayerProgress(layer=layer, phase=phase, done_bytes=done, total_bytes=total)
        if now == before and layer in self.layers:
            return None
        self.layers[layer] = now
        return now


def pull_error(event: dict[str, Any]) -> str | None:
    """The error a pull event reports, if any (a missing image, a registry refusing)."""
    detail = event.get("errorDetail") or {}
    error = event.get("error") or detail.get("message")
    return str(error) if error else None
