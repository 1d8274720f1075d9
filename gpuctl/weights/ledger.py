"""What gpuctl put in each provider's weights cache, remembered on this machine.

A Lambda filesystem or a RunPod network volume cannot be looked into without renting a machine,
so ``gpuctl weights ls`` shows the models this machine's gpuctl filled them with (and when); the
fetcher re-checks every file the next time the cache is used, so the ledger is only a guide.
Kept in ``cache_dir()/weights-caches.json``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock
from pydantic import BaseModel, Field, ValidationError

from gpuctl.fsutil import atomic_write
from gpuctl.models.weights_cache import WeightsCache
from gpuctl.paths import cache_dir
from gpuctl.weights.models import CacheReport


class FilledModel(BaseModel):
    """One model gpuctl fetched into a provider's cache."""

    repo: str
    commit: str
    files: int
    total_bytes: int
    filled_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


def _path() -> Path:
    return cache_dir() / "weights-caches.json"


def _key(cache: WeightsCache) -> str:
    return f"{cache.provider}:{cache.id}"


def _load(path: Path) -> dict[str, list[FilledModel]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {key: [FilledModel.model_validate(row) for row in rows] for key, rows in raw.items()}
    except (OSError, ValueError, ValidationError, AttributeError):
        return {}


def _save(path: Path, ledger: dict[str, list[FilledModel]]) -> None:
    data = {key: [row.model_dump(mode="json") for row in rows] for key, rows in ledger.items() if rows}
    atomic_write(path, json.dumps(data, indent=1), durable=False)


def record_filled(cache: WeightsCache, report: CacheReport) -> None:
    """Remember that ``cache`` holds ``report``'s model at its commit (replacing an older record of that commit)."""
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        ledger = _load(path)
        rows = [row for row in ledger.get(_key(cache), []) if (row.repo, row.commit) != (report.repo, report.commit)]
        rows.append(FilledModel(repo=report.repo, commit=report.commit, files=report.files,
                                total_bytes=report.total_bytes))
        ledger[_key(cache)] = rows
        _save(path, ledger)


def filled_models(cache: WeightsCache) -> list[FilledModel]:
    """The models gpuctl filled ``cache`` with, oldest first."""
    return _load(_path()).get(_key(cache), [])


def forget_cache(cache: WeightsCache) -> None:
    """Drop what is remembered of a deleted cache."""
    path = _path()
    if not path.exists():
        return
    with FileLock(str(path) + ".lock"):
        ledger = _load(path)
        if ledger.pop(_key(cache), None) is not None:
            _save(path, ledger)
