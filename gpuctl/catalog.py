"""The canonical GPU catalog and each provider's mapping and dated price snapshot (``providers/*.yaml``)."""

from __future__ import annotations

import difflib
import re
from datetime import date, datetime, time, timezone
from functools import cache

from pydantic import BaseModel, Field, ValidationError, model_validator

from gpuctl.errors import ConfigError, UsageError
from gpuctl.models.offer import Availability, Offer, OfferQuery
from gpuctl.resources import data_dir, read_text
from gpuctl.yamlio import load_yaml

GPUS_FILE = "gpus.yaml"


class GpuSpec(BaseModel):
    name: str
    vram_gb: float
    aliases: list[str] = Field(default_factory=list)


class CatalogInstanceType(BaseModel):
    gpu: str
    gpu_count: int = Field(ge=1)
    vcpus: int | None = None
    ram_gb: float | None = None


class SnapshotRow(BaseModel):
    """One dated, sourced price observation."""

    instance_type: str
    gpu: str
    gpu_count: int = Field(ge=1)
    region: str
    tier: str | None = None
    spot: bool = False
    vcpus: int | None = None
    ram_gb: float | None = None
    price_per_hour: float = Field(ge=0)
    availability: Availability = "unknown"
    as_of: date
    source: str


class ProviderCatalog(BaseModel):
    provider: str
    gpu_ids: dict[str, str] = Field(default_factory=dict)
    instance_types: dict[str, CatalogInstanceType] = Field(default_factory=dict)
    snapshot: list[SnapshotRow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_gpus_only(self) -> ProviderCatalog:
        known = {g.name for g in known_gpus()}
        used = [*self.gpu_ids.values(), *(t.gpu for t in self.instance_types.values()),
                *(r.gpu for r in self.snapshot)]
        unknown = sorted(set(used) - known)
        if unknown:
            raise ValueError(f"unknown canonical GPU(s) {', '.join(unknown)} (add them to {GPUS_FILE})")
        return self


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


@cache
def provider_catalog(provider: str) -> ProviderCatalog | None:
    """The shipped catalog of ``provider``, or None when gpuctl ships none (third-party plugins)."""
    name = f"{provider}.yaml"
    if not (data_dir("providers") / name).is_file():
        return None
    try:
        return ProviderCatalog.model_validate(_load_yaml(name))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"providers/{name}: field '{where}': {first['msg']}") from exc


def snapshot_offers(provider: str, query: OfferQuery) -> list[Offer]:
    """Offers from the dated snapshot of ``provider`` (source ``snapshot``), filtered by ``query``."""
    catalog = provider_catalog(provider)
    if catalog is None:
        return []
    offers = []
    for row in catalog.snapshot:
        offer = Offer(
            provider=provider, gpu=row.gpu, gpu_count=row.gpu_count, vram_gb=gpu_spec(row.gpu).vram_gb,
            vcpus=row.vcpus, ram_gb=row.ram_gb, region=row.region, price_per_hour=row.price_per_hour,
            price_per_gpu_hour=round(row.price_per_hour / row.gpu_count, 4), spot=row.spot,
            availability=row.availability, instance_type=row.instance_type, tier=row.tier,
            source="snapshot", as_of=datetime.combine(row.as_of, time(), tzinfo=timezone.utc),
        )
        if matches(offer, query):
            offers.append(offer)
    return offers


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
