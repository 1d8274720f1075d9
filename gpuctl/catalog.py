"""The canonical GPU catalog (``providers/gpus.yaml``) and the provider-independent offer filter.

Each provider's own catalog (GPU mapping, dated price snapshot) ships with the provider: see
``gpuctl.providers.catalog``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gpuctl.errors import ConfigError, UsageError
from gpuctl.models.offer import HostArch, Offer, OfferQuery
from gpuctl.resources import read_text
from gpuctl.yamlio import load_yaml

GPUS_FILE = "gpus.yaml"


Interconnect = Literal["nvlink", "pcie", "infinity-fabric"]


class GpuSpec(BaseModel):
    """One canonical GPU (a SKU) and its datasheet figures; see providers/gpus.yaml for their meaning."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    vram_gb: float = Field(gt=0, description="memory per GPU, decimal GB as marketed")
    memory_bandwidth_gbps: float = Field(gt=0, description="peak memory bandwidth, GB/s")
    bf16_tflops: float = Field(gt=0, description="dense 16-bit tensor TFLOPS (BF16, or FP16 where bf16 is false)")
    bf16: bool = Field(default=True, description="False: the GPU has FP16 but no BF16")
    fp8_tflops: float | None = Field(gt=0, description="dense FP8 tensor TFLOPS; None: no FP8")
    interconnect: Interconnect
    interconnect_gbps: float = Field(gt=0, description="GPU-to-GPU bandwidth per GPU, both directions, GB/s")
    host_arch: HostArch = "x86_64"
    aliases: list[str] = Field(default_factory=list)
    source: str = Field(min_length=10, description="datasheet (name, URL) and any derivation of the figures")


class GpuFamily(BaseModel):
    """Several SKUs of one GPU (``h100``: SXM, PCIe, NVL); naming the family means all of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    members: list[str] = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)


class GpuCatalog(BaseModel):
    """providers/gpus.yaml: the canonical GPUs and their families."""

    gpus: list[GpuSpec]
    families: list[GpuFamily] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> GpuCatalog:
        names = [g.name for g in self.gpus]
        unknown = sorted({m for f in self.families for m in f.members} - set(names))
        if unknown:
            raise ValueError(f"families name unknown GPU(s) {', '.join(unknown)}")
        owners: dict[str, str] = {}
        for owner, texts in [*((g.name, [g.name, *g.aliases]) for g in self.gpus),
                             *((f.name, [f.name, *f.aliases]) for f in self.families)]:
            for text in texts:
                previous = owners.setdefault(_key(text), owner)
                if previous != owner:
                    raise ValueError(f"'{text}' names both {previous} and {owner}")
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
def gpu_catalog() -> GpuCatalog:
    """The canonical GPUs and their families, as shipped."""
    try:
        return GpuCatalog.model_validate(_load_yaml(GPUS_FILE))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"providers/{GPUS_FILE}: invalid GPU catalog at '{where}': {first['msg']}") from exc


def known_gpus() -> list[GpuSpec]:
    """Every canonical GPU, in catalog order."""
    return gpu_catalog().gpus


@cache
def _alias_index() -> dict[str, str]:
    """Normalized name or alias -> canonical GPU or family name."""
    catalog = gpu_catalog()
    names: list[tuple[str, list[str]]] = [(g.name, g.aliases) for g in catalog.gpus]
    names += [(f.name, f.aliases) for f in catalog.families]
    return {_key(text): name for name, aliases in names for text in (name, *aliases)}


@cache
def _members() -> dict[str, list[str]]:
    """Canonical GPU or family name -> the canonical GPUs it means."""
    catalog = gpu_catalog()
    return {**{g.name: [g.name] for g in catalog.gpus}, **{f.name: list(f.members) for f in catalog.families}}


def resolve_gpu(text: str) -> str:
    """The canonical name a user's GPU name or alias stands for (case-insensitive): one GPU
    (``h100-sxm`` -> ``H100-SXM``) or a family (``h100`` -> ``H100``, see :func:`gpu_names`).

    Exit 2 with the closest names when nothing matches.
    """
    found = _alias_index().get(_key(text))
    if found:
        return found
    names = [g.name for g in known_gpus()]
    close = difflib.get_close_matches(text.upper(), [*names, *(f.name for f in gpu_catalog().families)],
                                      n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known GPUs: {', '.join(names)}"
    raise UsageError(f"unknown GPU '{text}'", hint)


def gpu_names(name: str) -> list[str]:
    """The canonical GPUs a GPU or family name (or alias) means, in catalog order of the family."""
    return list(_members()[resolve_gpu(name)])


def resolve_gpus(texts: Iterable[str]) -> list[str]:
    """Every canonical GPU the user's names mean (families expanded), each once, in the order given."""
    return list(dict.fromkeys(gpu for text in texts for gpu in gpu_names(text)))


def gpu_spec(name: str) -> GpuSpec:
    """The spec of canonical GPU ``name`` (aliases accepted); a family with several SKUs is a usage error."""
    members = gpu_names(name)
    if len(members) > 1:
        raise UsageError(f"'{name}' names {len(members)} GPUs ({', '.join(members)})", "name one of them")
    return next(g for g in known_gpus() if g.name == members[0])


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


def offer_arch(offer: Offer) -> HostArch:
    """The CPU architecture of the offer's machine: as the provider says, else the usual one of its GPU."""
    if offer.arch is not None:
        return offer.arch
    spec = next((g for g in known_gpus() if g.name == offer.gpu), None)
    return spec.host_arch if spec is not None else "x86_64"
