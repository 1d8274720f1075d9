"""Model weights on GPU hosts: fetched once into a persistent cache, verified, and served offline.

:func:`ensure_cached` is the weights step of ``gpuctl up``; :func:`serve_from_cache` turns the
engine spec into one that reads that cache read-only with ``HF_HUB_OFFLINE=1``. The layout and the
downloader that runs on the host live in :mod:`gpuctl.weights.fetcher` (standard library only).
"""

from __future__ import annotations

from gpuctl.weights.ensure import ensure_cached, serve_from_cache

__all__ = ["ensure_cached", "serve_from_cache"]
