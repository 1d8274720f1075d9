"""The canonical GPU catalog (``providers/gpus.yaml``) and the provider-independent offer filter.

Each provider's own catalog (GPU mapping, dated price snapshot) ships with the provider: see
``gpuctl.providers.catalog``.
"""

from __future__ import annotations

import difflib
import re
from functools import cache

from pydantic import BaseModel, Field, ValidationError

from gpuctl.errors import ConfigError, UsageError
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.resources import read_text
from gpuctl.yamlio import load_yaml

GPUS_FILE = "gpus.yaml"


class GpuSpec(BaseModel):
    name: str
    vram_gb: float
    aliases: list[str] = Field(default_factory=list)


def _key(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text.strip().lower())


def _load_yaml(name: str) -> object:
    import yaml

    try:
        return load_yaml(read_text("providers", name))
    except yaml.YAMLError as exc:
        raise ConfigError(f"providers/{name}: not valid YAML ({exc})") from exc


@cache
def known_gpus() -> list[GpuSpec]:
    """Every canonical GPU, in catalog order."""
    data = _load_yaml(GPUS_FILE)
    try:
        return [GpuSpec.model_validate(row) for row in data["gpus"]]  # type: ignore[index]
    except (TypeError, KeyError, ValidationError) as exc:
        raise ConfigError(f"providers/{GPUS_FILE}: invalid GPU list ({exc})") from exc


@cache
def _alias_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for spec in known_gpus():
        for alias in (spec.name, *spec.aliases):
            index[_key(alias)] = spec.name
    return index


def resolve_gpu(text: str) -> str:
    """The canonical name for a user's GPU name or alias (case-insensitive); exit 2 with close names."""
    found = _alias_index().get(_key(text))
    if found:
        return found
    names = [g.name for g in known_gpus()]
    close = difflib.get_close_matches(text.upper(), names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known GPUs: {', '.join(names)}"
    raise UsageError(f"unknown GPU '{text}'", hint)


def gpu_spec(name: str) -> GpuSpec:
    """The spec of canonical GPU ``name`` (aliases accepted)."""
    canonical = resolve_gpu(name)
    return next(g for g in known_gpus() if g.name == canonical)


def matches(offer: Offer, query: OfferQuery) -> bool:
    """Whether ``offer`` satisfies the provider-independent parts of ``query``."""
    if query.gpus is not None and offer.gpu not in query.gpus:
        return False
    if query.regions is not None and offer.region not in query.regions and offer.region != "any":
        return False
    if query.gpu_count is not None and offer.gpu_count != query.gpu_count:
        return False
    if query.spot is not None and offer.spot != query.spot:
        return False
    return query.include_unavailable or offer.availability != "none"
