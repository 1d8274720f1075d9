"""What the wizard offers and what its answers mean, without any UI.

The wizard (``gpuctl`` on a terminal, ``gpuctl up -i``, ``gpuctl init -i``) only fills in flags
``gpuctl up`` already takes: its answers become ``up``'s own command line (:meth:`WizardAnswers.to_argv`),
so the command it prints deploys exactly what was chosen. The choices come from the same code as
``up``'s: :func:`gpuctl.plan.ranked_offers` ranks the offers, so the cheapest offer a provider shows
here is the one ``up --gpu G --count N --provider P`` picks from the same prices.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, Field

from gpuctl.durations import format_duration, parse_duration
from gpuctl.errors import GpuctlError
from gpuctl.fit import FitRow
from gpuctl.models.offer import Offer
from gpuctl.models.recipe import EngineName, Recipe
from gpuctl.plan import PlanRequest, build_plan, ranked_offers
from gpuctl.project import ProjectFile

TTL_CHOICES = ("1h", "2h", "4h", "8h", "24h")
DEFAULT_TTL = "2h"
ENGINES: tuple[EngineName, ...] = get_args(EngineName)
#: follows a price that comes from gpuctl's dated snapshot rather than the provider's API
SNAPSHOT_MARK = "*"


class WizardStart(BaseModel):
    """What the command line already decided: those questions are skipped or their choices narrowed.

    ``constraints`` are the other :class:`~gpuctl.plan.PlanRequest` fields set by flags (``--gpu``,
    ``--count``, ``--region``, ``--spot``, ``--max-price``, ``--max-model-len``, ...); ``defaults``
    are the project's (gpuctl.yaml), used as the pre-selected answers.
    """

    model: str | None = None
    engine: EngineName | None = None
    ttl: str | None = None
    constraints: dict[str, Any] = Field(default_factory=dict)
    defaults: ProjectFile = Field(default_factory=ProjectFile)

    def request(self, model: str) -> PlanRequest:
        """The plan request for ``model`` under these constraints (and the engine given, else the project's)."""
        return PlanRequest(model=model, engine=self.engine or self.defaults.engine or "vllm", **self.constraints)


class ModelChoice(BaseModel):
    """One recipe as the wizard lists it."""

    name: str
    repo: str
    parameters_b: float
    quantization: str | None
    gated: bool | None
    default_context: int

    @classmethod
    def of(cls, recipe: Recipe) -> ModelChoice:
        quant = recipe.architecture.quantization
        return cls(name=recipe.name, repo=recipe.repo, parameters_b=round(recipe.architecture.parameters / 1e9, 1),
                   quantization=quant.method if quant else None, gated=recipe.gated,
                   default_context=recipe.default_context)

    def label(self, hf_token_present: bool) -> str:
        """'llama-3-8b  8B  8192 ctx  gated, needs HF_TOKEN' (the token note only when it is not set)."""
        gate = {False: "open", None: "may be gated", True: "gated"}[self.gated]
        if self.gated is not False and not hf_token_present:
            gate += ", needs HF_TOKEN"
        size = f"{self.parameters_b:g}B" + (f" {self.quantization}" if self.quantization else "")
        return f"{self.name:<18} {size:>9}  {self.default_context:>6} ctx  {gate}"


def model_choices(project_root: Path | None) -> list[ModelChoice]:
    """Every recipe visible from the project, smallest model first (the cheapest to try)."""
    from gpuctl.recipes import RecipeBook

    return sorted((ModelChoice.of(r) for r in RecipeBook(project_root).all()),
                  key=lambda c: (c.parameters_b, c.name))


class GpuChoice(BaseModel):
    """One GPU configuration that serves the model, with the cheapest offer of each provider, cheapest first."""

    gpu: str
    gpu_count: int
    vram_gb: float
    fit: FitRow
    offers: list[Offer]

    def label(self) -> str:
        """'1 x L40S  48 GB  from $0.79/h  23 seqs of 8192  (runpod $0.79*, aws $1.86*)'; * marks a snapshot price."""
        prices = ", ".join(f"{o.provider} ${o.price_per_hour:.2f}{SNAPSHOT_MARK if o.source == 'snapshot' else ''}"
                           for o in self.offers)
        cheapest = f"${self.offers[0].price_per_hour:.2f}/h"
        return (f"{self.gpu_count} x {self.gpu:<10} {self.vram_gb:>4g} GB  from {cheapest:>9}  "
                f"{self.fit.concurrent_sequences:>3} seqs of {self.fit.context}  ({prices})")


def gpu_choices(recipe: Recipe, offers: Sequence[Offer], request: PlanRequest,
                can_launch: Callable[[str], bool] = lambda provider: True) -> list[GpuChoice]:
    """The GPU configurations that fit ``recipe``, cheapest first, each with one offer per provider.

    Offers are ranked exactly as ``gpuctl up`` ranks them (fit, availability, ``--max-price``), so a
    provider's offer shown here is the one ``up`` launches for that GPU, count and provider. Raises
    like ``up`` (``NoCapacityError``, exit 5) when nothing fits.
    """
    ranked, _ = ranked_offers(recipe, offers, request)
    groups: dict[tuple[str, int], GpuChoice] = {}
    for offer, row in ranked:
        if not can_launch(offer.provider):
            continue
        group = groups.setdefault((offer.gpu, offer.gpu_count), GpuChoice(
            gpu=offer.gpu, gpu_count=offer.gpu_count, vram_gb=offer.vram_gb, fit=row, offers=[]))
        if all(shown.provider != offer.provider for shown in group.offers):
            group.offers.append(offer)
    return list(groups.values())  # ranked is cheapest first, so its groups are too


def offer_label(offer: Offer) -> str:
    """'runpod  L40S  US-KS-2 community  $0.79/h  live' (snapshot rows say so, with their date)."""
    where = " ".join(part for part in (offer.region, offer.tier, "spot" if offer.spot else None) if part)
    source = f"snapshot price of {offer.as_of:%Y-%m-%d}" if offer.source == "snapshot" else f"{offer.source} price"
    price = f"${offer.price_per_hour:.2f}/h"
    return f"{offer.provider:<7} {offer.instance_type:<22} {where:<22} {price:>9}  {offer.availability} stock, {source}"


class EngineChoice(BaseModel):
    engine: EngineName
    problem: str | None = Field(default=None, description="why it cannot serve the chosen offer")


def engine_choices(recipe: Recipe, offer: Offer, request: PlanRequest, *, public: bool) -> list[EngineChoice]:
    """Each engine, and why it cannot serve ``recipe`` on ``offer`` (None when it can).

    The check is building ``up``'s plan for that engine: the memory fit, the recipe's support, and
    that a provider whose endpoint is public (``public``) gets an engine that checks API keys.
    """
    choices = []
    for engine in ENGINES:
        planned = request.model_copy(update={"engine": engine, "public": request.public or public})
        try:
            build_plan(planned, recipe, [offer], hf_token_present=True)
            problem = None
        except GpuctlError as exc:
            problem = exc.message
        choices.append(EngineChoice(engine=engine, problem=problem))
    return choices


def ttl_total(price_per_hour: float, ttl: str | None) -> float | None:
    """What ``ttl`` costs at most at ``price_per_hour`` (None: no TTL, no bound)."""
    return None if ttl is None else round(price_per_hour * parse_duration(ttl) / 3600, 2)


def price_ceiling(price_per_hour: float) -> str:
    """``price_per_hour`` as a ``--max-price`` value: at most 4 decimals, never below the price."""
    return str(Decimal(repr(price_per_hour)).quantize(Decimal("0.0001"), rounding=ROUND_CEILING).normalize())


class WizardAnswers(BaseModel):
    """What the user chose; ``to_argv`` is the equivalent ``gpuctl up`` command line."""

    model: str
    gpu: str
    gpu_count: int
    provider: str
    engine: EngineName
    ttl: str | None = Field(description="None: no TTL")
    offer: Offer = Field(description="the offer confirmed; its price becomes --max-price")

    @property
    def total_usd(self) -> float | None:
        return ttl_total(self.offer.price_per_hour, self.ttl)

    def to_argv(self) -> list[str]:
        """``up``'s arguments: the choices, and the confirmed price as ``--max-price``.

        ``--max-price`` makes the confirmation binding: if the price rose since, or ``up`` falls back
        to another offer, nothing dearer than what was confirmed is launched.
        """
        argv = ["up", self.model, "--gpu", self.gpu, "--count", str(self.gpu_count), "--provider", self.provider,
                "--engine", self.engine]
        if self.ttl:
            argv += ["--ttl", self.ttl]
        return [*argv, "--max-price", price_ceiling(self.offer.price_per_hour)]

    def command_line(self, extra: Sequence[str] = (), before: Sequence[str] = ()) -> str:
        """The shell command: ``gpuctl [before] up ... [extra]``."""
        return shlex.join(["gpuctl", *before, *self.to_argv(), *extra])

    def summary(self) -> str:
        """One line with the price per hour and what the TTL costs at most."""
        offer = self.offer
        ttl = (f"TTL {format_duration(parse_duration(self.ttl))}, at most ${self.total_usd:.2f} in total" if self.ttl
               else "no TTL: bills until 'gpuctl down'")
        price = f"${offer.price_per_hour:.2f}/h" + ("" if offer.source == "live" else f" ({offer.source} price)")
        return (f"{self.model} with {self.engine} on {offer.provider} {offer.gpu_count} x {offer.gpu} "
                f"({offer.instance_type}, {offer.region}) at {price}; {ttl}")

    def project_defaults(self, current: ProjectFile) -> ProjectFile:
        """``current`` (gpuctl.yaml) with the answers as the project's defaults."""
        return current.model_copy(update={"model": self.model, "gpu": self.gpu, "provider": self.provider,
                                          "engine": self.engine, "ttl": self.ttl})
