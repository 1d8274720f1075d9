"""A provider's own catalog: its names for gpuctl's canonical GPUs, and a dated, sourced price snapshot.

Each provider ships it as package data next to its code (``Provider.catalog_file``, read through
``importlib.resources``), so a third-party plugin carries its catalog exactly as the built-ins do.
The canonical GPU list itself (``providers/gpus.yaml``) stays gpuctl's: a catalog naming a GPU that
is not in it is refused, because ``--gpu``, the memory fit and every provider must agree on what a
GPU name means (a provider meeting a GPU gpuctl does not know skips it; see docs/plugins.md).
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from functools import cache

from pydantic import BaseModel, Field, ValidationError, model_validator

from gpuctl.catalog import GPUS_FILE, gpu_spec, known_gpus, matches
from gpuctl.models.offer import Availability, Offer, OfferQuery


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
    """The content of a provider's catalog file (every GPU it names must be canonical)."""

    provider: str
    #: the provider's GPU id -> canonical GPU name
    gpu_ids: dict[str, str] = Field(default_factory=dict)
    #: the provider's instance type -> what it holds
    instance_types: dict[str, CatalogInstanceType] = Field(default_factory=dict)
    #: the provider's GPU ids or instance types gpuctl leaves out on purpose -> why (shown when they are skipped)
    unsupported: dict[str, str] = Field(default_factory=dict)
    snapshot: list[SnapshotRow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_gpus_only(self) -> ProviderCatalog:
        known = {g.name for g in known_gpus()}
        used = [*self.gpu_ids.values(), *(t.gpu for t in self.instance_types.values()),
                *(r.gpu for r in self.snapshot)]
        unknown = sorted(set(used) - known)
        if unknown:
            raise ValueError(f"unknown canonical GPU(s) {', '.join(unknown)} (gpuctl's {GPUS_FILE} names the GPUs "
                             "a catalog may use)")
        both = sorted(set(self.unsupported) & (set(self.gpu_ids) | set(self.instance_types)))
        if both:
            raise ValueError(f"{', '.join(both)} both mapped and left out on purpose (unsupported)")
        return self


class CatalogError(ValueError):
    """A provider's catalog file cannot be read or is invalid: a bug of the provider, named by the guard."""


@cache
def load_catalog(package: str, filename: str, provider: str) -> ProviderCatalog:
    """The catalog ``filename`` shipped in ``package``; it must name ``provider``."""
    from importlib.resources import files

    import yaml

    from gpuctl.yamlio import load_yaml

    where = f"{package}/{filename}"
    try:
        data = load_yaml((files(package) / filename).read_text(encoding="utf-8"))
    except (OSError, ModuleNotFoundError, TypeError) as exc:
        raise CatalogError(f"{where}: cannot be read ({type(exc).__name__}: {exc})") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(f"{where}: not valid YAML ({exc})") from exc
    try:
        catalog = ProviderCatalog.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise CatalogError(f"{where}: field '{field}': {first['msg']}") from None
    if catalog.provider != provider:
        raise CatalogError(f"{where}: names provider '{catalog.provider}', not '{provider}'")
    return catalog


def snapshot_offers(catalog: ProviderCatalog, query: OfferQuery) -> list[Offer]:
    """Offers from the dated snapshot of ``catalog`` (source ``snapshot``), filtered by ``query``."""
    offers = []
    for row in catalog.snapshot:
        spec = gpu_spec(row.gpu)
        offer = Offer(
            provider=catalog.provider, gpu=row.gpu, gpu_count=row.gpu_count, vram_gb=spec.vram_gb, arch=spec.host_arch,
            vcpus=row.vcpus, ram_gb=row.ram_gb, region=row.region, price_per_hour=row.price_per_hour,
            price_per_gpu_hour=round(row.price_per_hour / row.gpu_count, 4), spot=row.spot,
            availability=row.availability, instance_type=row.instance_type, tier=row.tier,
            source="snapshot", as_of=datetime.combine(row.as_of, time(), tzinfo=timezone.utc),
        )
        if matches(offer, query):
            offers.append(offer)
    return offers
