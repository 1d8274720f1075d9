"""The deploy plan: which offer, whether the model fits, the exact engine command, what it costs.

``gpuctl up --dry-run`` prints it; the deploy lifecycle executes it. Building a plan never changes
anything at a provider: it only reads prices (live, cached or from the shipped snapshot).

Offers are ranked by price per hour, or (``--optimize token-cost``) by the estimated price per
million output tokens (gpuctl.perf.offers); ``--slo`` leaves out offers whose estimate misses the
latency targets. A plan chosen with estimates says why it took its offer over the cheapest hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from gpuctl.errors import NoCapacityError, UsageError
from gpuctl.events import NullReporter, Reporter
from gpuctl.fit import FitRow, FitSettings, check_context, fit
from gpuctl.models.bench import BenchRecord
from gpuctl.models.engine import EngineOptions, EngineSpec
from gpuctl.models.limits import Limits
from gpuctl.models.offer import AVAILABILITY_RANK, Offer, OfferQuery
from gpuctl.models.phases import ColdStartPrediction
from gpuctl.models.recipe import EngineName, QuantMethod, Recipe, RecipeOrigin
from gpuctl.perf.cost import Slo
from gpuctl.perf.estimate import Estimate
from gpuctl.perf.offers import Serving

if TYPE_CHECKING:
    from gpuctl.perf.offers import EstimatedOffer
    from gpuctl.plugins import ProviderRegistry

HfTokenStatus = Literal["present", "missing", "not needed"]
Optimize = Literal["price", "token-cost"]


class PlanRequest(BaseModel):
    """The flags of ``gpuctl up`` after project defaults were applied."""

    model_config = ConfigDict(extra="forbid")

    model: str
    hf_config: str | None = None
    gpu: str | None = Field(default=None, description="canonical GPU or GPU family name (gpuctl.catalog.resolve_gpu); "
                                                        "None: any that fits")
    count: int | None = Field(default=None, ge=1)
    providers: list[str] | None = Field(default=None, description="None: every installed provider")
    region: str | None = None
    engine: EngineName = "vllm"
    spot: bool = False
    max_price: float | None = Field(default=None, gt=0, description="USD per hour for the whole instance")
    ttl_seconds: int | None = Field(default=None, gt=0)
    idle_seconds: int | None = Field(default=None, gt=0, description="end it after this long without a request")
    budget_usd: float | None = Field(default=None, gt=0, description="end it when price x uptime reaches this")
    max_model_len: int | None = Field(default=None, ge=1)
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    quantization: QuantMethod | None = None
    served_model_name: str | None = None
    public: bool = False
    image: str | None = Field(default=None, description="an image to run instead of the engine's own; its CPU "
                                                        "architecture and CUDA version are then the user's call")
    nodes: int = Field(default=1, ge=1, description="machines one engine spans (vLLM multi-node); 1: one machine")
    optimize: Optimize = Field(default="price", description="rank offers by price per hour, or per output token")
    load: Serving | None = Field(default=None, description="what estimates are for (--optimize token-cost, --slo); "
                                 "its engine and quantization are this request's")

    def offer_query(self) -> OfferQuery:
        """What the providers are asked: with the engine's own image, only machines whose driver runs its CUDA."""
        from gpuctl.catalog import gpu_names
        from gpuctl.engines import image_facts

        return OfferQuery(gpus=gpu_names(self.gpu) if self.gpu else None,
                          regions=[self.region] if self.region else None, gpu_count=self.count, spot=self.spot,
                          min_cuda_version=None if self.image else image_facts(self.engine).cuda)

    def fit_settings(self) -> FitSettings:
        return FitSettings(engine=self.engine, gpu_memory_utilization=self.gpu_memory_utilization,
                           quantization=self.quantization)

    def serving(self) -> Serving | None:
        """The estimates' settings, with this request's engine and quantization; None without estimates."""
        if self.load is None:
            return None
        return self.load.model_copy(update={"engine": self.engine, "quantization": self.quantization})


class OfferCost(BaseModel):
    """One offer as an estimate sees it."""

    offer: str = Field(description="offer id")
    description: str
    price_per_hour: float
    estimate: Estimate | None
    usd_per_1m_output_tokens: float | None
    meets_slo: bool | None

    @classmethod
    def of(cls, row: EstimatedOffer) -> OfferCost:
        where = f"{row.provider}{f' {row.tier}' if row.tier else ''} {row.gpu_count} x {row.gpu}"
        return cls(offer=row.id, description=where, price_per_hour=row.price_per_hour, estimate=row.estimate,
                   usd_per_1m_output_tokens=row.usd_per_1m_output_tokens, meets_slo=row.meets_slo)

    def line(self) -> str:
        """``runpod community 1 x L40S at $0.79/h: est. 1,273 tok/s at concurrency 152 = $0.172/1M tokens``."""
        head = f"{self.description} at ${self.price_per_hour:.2f}/h"
        est = self.estimate
        if est is None or self.usd_per_1m_output_tokens is None:
            return f"{head}: no estimate"
        return (f"{head}: est. {est.output_tokens_per_s:,.0f} tok/s at concurrency {est.inputs.concurrency} "
                f"(TTFT {est.ttft_ms:,.0f} ms, ITL {est.itl_ms:.1f} ms, {est.basis}) = "
                f"${self.usd_per_1m_output_tokens:.3f}/1M output tokens")


class OfferChoice(BaseModel):
    """Why the plan's offer was chosen, when estimates chose it (``--optimize token-cost`` or ``--slo``)."""

    optimize: Optimize
    load: str = Field(description="what the estimates are for")
    slo: Slo | None
    chosen: OfferCost
    cheapest_hour: OfferCost = Field(description="the cheapest available offer per hour that fits and is affordable")
    reason: str


def _choice(request: PlanRequest, chosen: EstimatedOffer, cheapest: EstimatedOffer) -> OfferChoice:
    serving = request.serving()
    assert serving is not None
    mine, hourly = OfferCost.of(chosen), OfferCost.of(cheapest)
    slo = serving.slo
    if chosen.id == cheapest.id:
        reason = "the cheapest hour" + (" is also the cheapest token" if request.optimize == "token-cost" else "")
        if slo:
            reason += f" and meets {slo.describe()}"
    elif cheapest.meets_slo is False:
        assert slo is not None
        missed = cheapest.estimate
        reason = (f"the cheapest hour ({hourly.description}, ${hourly.price_per_hour:.2f}/h) misses {slo.describe()}"
                  + (f": est. TTFT {missed.ttft_ms:,.0f} ms, ITL {missed.itl_ms:.1f} ms at concurrency 1"
                     if missed and missed.inputs.concurrency == 1 else ""))
    elif mine.usd_per_1m_output_tokens is not None and hourly.usd_per_1m_output_tokens is not None:
        ratio = hourly.usd_per_1m_output_tokens / mine.usd_per_1m_output_tokens
        reason = (f"{ratio:.1f}x cheaper per token than the cheapest hour ({hourly.description}, "
                  f"${hourly.price_per_hour:.2f}/h, ${hourly.usd_per_1m_output_tokens:.3f}/1M output tokens)")
    else:
        reason = f"the cheapest hour ({hourly.description}) has no estimate"
    return OfferChoice(optimize=request.optimize, load=serving.describe(), slo=slo, chosen=mine,
                       cheapest_hour=hourly, reason=reason)

class ModelSummary(BaseModel):
    name: str
    repo: str
    revision: str
    pinned: bool
    gated: bool | None
    license: str
    origin: RecipeOrigin

    @classmethod
    def of(cls, recipe: Recipe) -> ModelSummary:
        return cls(name=recipe.name, repo=recipe.repo, revision=recipe.revision, pinned=recipe.pinned,
                   gated=recipe.gated, license=recipe.license, origin=recipe.origin)


class DeployPlan(BaseModel):
    """Everything ``gpuctl up`` would do, as one document (``--dry-run --json``). No secret values."""

    model: ModelSummary
    offer: Offer
    fit: FitRow
    engine: EngineSpec
    command: str = Field(description="the docker command line run on the host")
    environment: dict[str, str] = Field(description="container environment; secrets shown as placeholders")
    hf_token: HfTokenStatus
    ttl_seconds: int | None
    estimated_cost_usd: float | None = Field(description="price_per_hour x TTL; None without a TTL")
    limits: Limits | None = Field(default=None, description="TTL, idle limit, budget, who enforces them, worst case")
    cold_start: ColdStartPrediction | None = Field(default=None, description="the wait forecast for this offer")
    offers_considered: int
    offers_fitting: int
    choice: OfferChoice | None = Field(default=None, description="why this offer, when estimates chose it")
    warnings: list[str] = Field(default_factory=list)
    nodes: int = Field(default=1, description="machines of `offer` one engine spans (vLLM multi-node)")


SECRET_PLACEHOLDERS = {"HF_TOKEN": "<secret: your Hugging Face token>"}
API_KEY_PLACEHOLDER = "<secret: generated at launch>"


def ranked_offers(recipe: Recipe, offers: Sequence[Offer], request: PlanRequest,
                  history: Sequence[BenchRecord] = ()) -> tuple[list[tuple[Offer, FitRow]], int]:
    """Every available offer that fits, is affordable (and meets ``--slo``), best first, and how many fit at all.

    Best is cheapest (per hour, or per output token with ``--optimize token-cost``; estimates are
    corrected by ``history``), then better availability; ``gpuctl up`` tries them in this order
    when a provider has no capacity. Raises like ``choose_offer`` when none qualifies.
    """
    context = request.max_model_len or recipe.default_context
    check_context(recipe, context)
    settings = request.fit_settings()
    if request.gpu and request.count:
        # the user named the hardware: a model that fits none of its SKUs is their error, whatever is for rent
        from gpuctl.catalog import gpu_names, gpu_spec

        tries = [fit(recipe, name, gpu_spec(name).vram_gb, request.count, context, settings, nodes=request.nodes)
                 for name in gpu_names(request.gpu)]
        wanted = max(tries, key=lambda row: (row.fits, row.kv_cache_tokens))
        if not wanted.fits:
            raise UsageError(f"{recipe.name} does not fit on {request.count} x {request.gpu}{_nodes(request)} at "
                             f"{context} tokens: {wanted.reason}",
                             _look_up_hint(recipe, [], context, request) or f"'gpuctl fit {recipe.name}' shows "
                             "what it needs")
    available = [o for o in offers if o.availability != "none"]
    if not available:
        raise NoCapacityError(f"no available offer matches {_describe(request)}")
    available = runnable_offers(available, request)
    rows = [(o, fit(recipe, o.gpu, o.vram_gb, o.gpu_count, context, settings, nodes=request.nodes)) for o in available]
    fitting = [(o, row) for o, row in rows if row.fits]
    if not fitting:
        raise NoCapacityError(f"none of {len(available)} offers for {_describe(request)} can serve {recipe.name}"
                              f"{_nodes(request)} at {context} tokens",
                              _look_up_hint(recipe, available, context, request)
                              or f"'gpuctl fit {recipe.name}' shows what it needs")
    affordable = [(o, row) for o, row in fitting
                  if request.max_price is None or o.price_per_hour <= request.max_price]
    if not affordable:
        cheapest = min(o.price_per_hour for o, _ in fitting)
        raise NoCapacityError(f"the cheapest offer that fits costs ${cheapest:.2f}/h, above --max-price "
                              f"${request.max_price:.2f}/h", "raise --max-price or try a smaller context")
    ranked = sorted(affordable, key=lambda pair: (pair[0].price_per_hour, AVAILABILITY_RANK[pair[0].availability],
                                                  pair[0].provider, pair[0].id))
    if request.load is not None:
        ranked = _by_estimate(recipe, ranked, request, history)
    return ranked, len(fitting)


def runnable_offers(offers: Sequence[Offer], request: PlanRequest) -> list[Offer]:
    """The offers whose machines can run the engine's image: its CPU architecture (an arm64 Grace machine
    cannot run an amd64-only image). An image the user names (``--image``) is taken to suit any offer.

    Raises NoCapacityError, saying why, when ``offers`` has some and none is runnable.
    """
    if request.image is not None or not offers:
        return list(offers)
    from gpuctl.catalog import offer_arch
    from gpuctl.engines import image_facts

    facts = image_facts(request.engine)
    runnable = [o for o in offers if offer_arch(o) in facts.archs]
    if not runnable:
        archs = sorted({offer_arch(o) for o in offers})
        raise NoCapacityError(f"every available offer for {_describe(request)} is an {'/'.join(archs)} machine, and "
                              f"{request.engine}'s image {facts.image} is built for {'/'.join(facts.archs)} only",
                              f"name an image built for {'/'.join(archs)} with --image, or pick another --gpu")
    return runnable


def _estimated(recipe: Recipe, offers: Sequence[Offer], request: PlanRequest,
               history: Sequence[BenchRecord]) -> list[EstimatedOffer]:
    from gpuctl.perf.offers import Estimator

    serving = request.serving()
    assert serving is not None
    estimator = Estimator(recipe, serving, history)
    return [estimator.offer(offer) for offer in offers]


def _by_estimate(recipe: Recipe, ranked: list[tuple[Offer, FitRow]], request: PlanRequest,
                 history: Sequence[BenchRecord]) -> list[tuple[Offer, FitRow]]:
    """``ranked`` without the offers whose estimate misses --slo, by token cost when asked."""
    from gpuctl.perf.offers import token_cost_key

    rows = _estimated(recipe, [offer for offer, _ in ranked], request, history)
    pairs = {offer.id: (offer, row) for offer, row in ranked}
    kept = [row for row in rows if row.meets_slo is not False]
    if not kept:
        slo = request.load.slo if request.load else None
        best = min(rows, key=lambda r: r.estimate.itl_ms if r.estimate else float("inf"))
        quickest = f" (the quickest, {OfferCost.of(best).line()})" if best.estimate else ""
        raise NoCapacityError(f"none of the {len(rows)} offers that fit meets {slo.describe() if slo else 'the SLO'}"
                              f" by its estimate{quickest}", "relax --slo, or allow more GPUs (--count)")
    if request.optimize == "token-cost":
        kept.sort(key=token_cost_key)
    return [pairs[row.id] for row in kept]


def choose_offer(recipe: Recipe, offers: Sequence[Offer], request: PlanRequest,
                 rank: int = 0, history: Sequence[BenchRecord] = ()) -> tuple[Offer, FitRow, int]:
    """The cheapest available offer that fits (ties: better availability); also how many fit.

    ``rank`` picks the next-best offers instead (1: the runner-up), for falling back on a capacity error.
    """
    ranked, fitting = ranked_offers(recipe, offers, request, history)
    if rank >= len(ranked):
        raise NoCapacityError(f"only {len(ranked)} offer(s) for {_describe(request)} fit and are affordable")
    offer, row = ranked[rank]
    return offer, row, fitting


def _nodes(request: PlanRequest) -> str:
    return f" on {request.nodes} nodes" if request.nodes > 1 else ""


def _look_up_hint(recipe: Recipe, offers: Sequence[Offer], context: int, request: PlanRequest) -> str | None:
    """Look up before out: what would serve ``recipe`` when nothing on offer does as asked.

    Over the GPU kinds on offer (or the one named): more GPUs in one machine first, then FP8 where
    the GPU has it, and only then several machines (``--nodes``).
    """
    from gpuctl.catalog import gpu_names
    from gpuctl.lookup import look_up

    kinds = list(dict.fromkeys(o.gpu for o in offers)) or (gpu_names(request.gpu) if request.gpu else None)
    found = look_up(recipe, context, request.fit_settings(), kinds)
    single = []
    if found.machine is not None:
        single.append(f"{found.machine.describe()} in one machine (--count {found.machine.gpu_count})")
    if found.fp8_machine is not None:
        single.append(f"{found.fp8_machine.describe()} (--quantization fp8: the GPU computes in FP8, the weights "
                      "halve)")
    if single:
        return f"look up before out: {' or '.join(single)} serves it; 'gpuctl fit {recipe.name}' shows the rest"
    if found.multi_node is not None and request.nodes == 1:
        return (f"no single machine holds it: --nodes {found.multi_node.nodes} spreads it over "
                f"{found.multi_node.describe()} (pipeline parallel); 'gpuctl fit {recipe.name} --nodes "
                f"{found.multi_node.nodes}'")
    return None


def _describe(request: PlanRequest) -> str:
    parts = [f"{request.count} x " if request.count else "", request.gpu or "any GPU"]
    if request.region:
        parts.append(f" in {request.region}")
    if request.providers:
        parts.append(f" at {', '.join(request.providers)}")
    if request.spot:
        parts.append(" (spot)")
    return "".join(parts)


def build_plan(request: PlanRequest, recipe: Recipe, offers: Sequence[Offer], *, hf_token_present: bool,
               warnings: Sequence[str] = (), rank: int = 0, ttl_by_gpuctl: bool = False,
               history: Sequence[BenchRecord] = ()) -> DeployPlan:
    """The plan for ``request`` given the offers found; pure, so the same inputs give the same plan.

    ``rank`` plans the next-best offer instead (see ``choose_offer``); ``history`` corrects estimates.
    ``ttl_by_gpuctl``: nothing at the offer's provider ends the instance at its TTL (no machine to arm
    gpuctl's watchdog on, no expiry of the provider's own), so only a later gpuctl run does; the plan says so.
    """
    from gpuctl.engines import build_engine_spec, engine_notice
    from gpuctl.limits import plan_limits

    offer, row, fitting = choose_offer(recipe, offers, request, rank, history)
    needs_token = recipe.gated is not False
    options = EngineOptions(
        engine=request.engine, gpu_count=offer.gpu_count, max_model_len=row.context,
        gpu_memory_utilization=request.gpu_memory_utilization, quantization=request.quantization,
        served_model_name=request.served_model_name, public=request.public,
        # a public endpoint always gets a key; a private one is only reachable through an SSH tunnel
        api_key=request.public, hf_token=recipe.gated is True or (needs_token and hf_token_present),
    )
    spec = build_engine_spec(recipe, options)
    if request.image is not None:
        spec = spec.model_copy(update={"image": request.image, "cuda_version": None})
    notes = list(warnings)
    notice = engine_notice(spec.engine)
    if notice:
        notes.append(notice)
    if needs_token and not hf_token_present:
        gated = "is gated" if recipe.gated else "may be gated"
        notes.append(f"{recipe.repo} {gated}: set HF_TOKEN (or 'gpuctl config set hf.token') before deploying")
    if not recipe.pinned:
        notes.append(f"revision '{recipe.revision}' is a branch, not a pinned commit: weights may change")
    if not spec.safetensors_only:
        notes.append(f"{spec.engine} converts pickled .bin weights when a repo has no safetensors")
    if offer.gpu_count > 1 and request.nodes == 1 and not fit(recipe, offer.gpu, offer.vram_gb, 1, row.context,
                                                              request.fit_settings()).fits:
        notes.append(f"{recipe.name} fits no single {offer.gpu}: planned on one machine with {offer.gpu_count} x "
                     f"{offer.gpu} (tensor parallel) before any multi-node plan")
    if request.ttl_seconds is None and request.budget_usd is None:
        notes.append("no --ttl or --budget: the instance runs (and bills) until 'gpuctl down'")
    elif request.ttl_seconds is not None and ttl_by_gpuctl:
        notes.append(f"{offer.provider} cannot end an instance at its TTL by itself: the TTL is enforced only when "
                     "gpuctl runs after the deadline ('gpuctl gc' or 'gpuctl down' terminates it); until then it bills")
    limits = plan_limits(price_per_hour=offer.price_per_hour, ttl_seconds=request.ttl_seconds,
                         idle_seconds=request.idle_seconds, budget_usd=request.budget_usd,
                         enforced_by="gpuctl" if ttl_by_gpuctl else "host", provider=offer.provider)
    notes += limits.notes
    if offer.source != "live":
        notes.append(f"price from the {offer.source} ({offer.as_of:%Y-%m-%d}); the live price may differ")
    environment = {**spec.env, **{name: SECRET_PLACEHOLDERS.get(name, API_KEY_PLACEHOLDER)
                                  for name in spec.secret_env}}
    cost = round(offer.price_per_hour * request.ttl_seconds / 3600, 2) if request.ttl_seconds else None
    choice = None
    if request.load is not None:
        by_hour = ranked_offers(recipe, offers, request.model_copy(update={"load": None}))[0][0][0]
        chosen, cheapest = _estimated(recipe, [offer, by_hour], request, history)
        choice = _choice(request, chosen, cheapest)
    return DeployPlan(
        model=ModelSummary.of(recipe), offer=offer, fit=row, engine=spec, command=spec.command_line(),
        environment=environment, hf_token=("present" if hf_token_present else "missing") if needs_token
        else "not needed", ttl_seconds=request.ttl_seconds, estimated_cost_usd=cost,
        offers_considered=len(offers), offers_fitting=fitting, choice=choice, warnings=notes, limits=limits,
    )


class PlanInputs(BaseModel):
    """What a plan is built from: the recipe, the offers found, what collecting them had to say, and the
    project's benches (which correct estimates)."""

    recipe: Recipe
    offers: list[Offer]
    warnings: list[str] = Field(default_factory=list)
    hf_token_present: bool
    history: list[BenchRecord] = Field(default_factory=list)


def plan_inputs(request: PlanRequest, *, project_root: Path | None = None, registry: ProviderRegistry | None = None,
                reporter: Reporter | None = None, offers: Sequence[Offer] | None = None) -> PlanInputs:
    """Resolve the model and read the offers (live, else cache, else snapshot) unless ``offers`` are given."""
    from gpuctl.credentials import resolve_credential
    from gpuctl.recipes import resolve_model

    recipe = resolve_model(request.model, project_root, request.hf_config)
    warnings: list[str] = []
    if offers is None:
        from gpuctl.pricing import collect_offers

        result = collect_offers(request.offer_query(), providers=request.providers, registry=registry,
                                reporter=reporter or NullReporter())
        offers, warnings = result.offers, result.warnings
    history: list[BenchRecord] = []
    if request.load is not None and project_root is not None:
        history = _bench_history(project_root, warnings)
    return PlanInputs(recipe=recipe, offers=list(offers), warnings=warnings,
                      hf_token_present=resolve_credential("hf.token").present, history=history)


def _bench_history(project_root: Path, warnings: list[str]) -> list[BenchRecord]:
    """The project's stored benches; none (and a warning) when its state file cannot be read."""
    from gpuctl.errors import StateError
    from gpuctl.state import StateStore

    try:
        return StateStore(project_root).read().bench_runs
    except StateError as exc:
        warnings.append(f"estimates ignore bench history: {exc.one_line()}")
        return []


def plan_deployment(request: PlanRequest, *, project_root: Path | None = None, registry: ProviderRegistry | None = None,
                    reporter: Reporter | None = None) -> DeployPlan:
    """Resolve the model, read the offers (live, else cache, else snapshot) and build the plan."""
    inputs = plan_inputs(request, project_root=project_root, registry=registry, reporter=reporter)
    return build_plan(request, inputs.recipe, inputs.offers, warnings=inputs.warnings,
                      hf_token_present=inputs.hf_token_present, history=inputs.history)
