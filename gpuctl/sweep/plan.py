"""The sweep's plan: one candidate offer per GPU asked, the loads each is benched at, what the whole costs.

Each candidate is the offer ``gpuctl up --optimize token-cost --gpu GPU`` would launch (with the
same fallbacks on a capacity error), planned with a TTL, so a sweep whose gpuctl dies still stops
billing. What a candidate costs is its price times the time it is billed for: start-up (boot and
image pull, an assumption; the weights at an assumed download rate), the bench (its requests at the
estimated speed) and the teardown.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from gpuctl.catalog import matches
from gpuctl.deploy.context import DeployContext
from gpuctl.errors import GpuctlError
from gpuctl.fit import effective_architecture, weight_bytes
from gpuctl.models.recipe import EngineName, QuantMethod, Recipe
from gpuctl.perf.estimate import Estimate
from gpuctl.perf.offers import Estimator, Serving
from gpuctl.plan import DeployPlan, ModelSummary, PlanInputs, PlanRequest

#: seconds from launch to a machine pulling the engine image and starting it (an assumption: providers
#: take one to five minutes to boot, and an engine image is 5-10 GB)
BOOT_S = 300.0
#: bytes per second the weights arrive at on a rented machine (an assumption)
WEIGHTS_BYTES_PER_S = 200e6
#: bytes per second an engine loads weights into GPU memory, plus its warm-up (CUDA graphs)
LOAD_BYTES_PER_S = 1e9
ENGINE_WARMUP_S = 60.0
#: seconds of billing after the bench while the instance is torn down
TEARDOWN_S = 60.0
#: requests of a bench run: at least this many, and at least REQUESTS_PER_SLOT per request in flight
MIN_REQUESTS = 100
REQUESTS_PER_SLOT = 4
#: a candidate's TTL: this many times its estimated time, and at least MIN_TTL_S
TTL_FACTOR = 3
MIN_TTL_S = 1800


class SweepRequest(BaseModel):
    """The flags of ``gpuctl bench --sweep``."""

    model_config = ConfigDict(extra="forbid")

    model: str
    gpus: list[str] = Field(min_length=1, description="GPU or family names (resolved), one candidate each")
    count: int | None = None
    providers: list[str] | None = None
    region: str | None = None
    spot: bool = False
    engine: EngineName = "vllm"
    quantization: QuantMethod | None = None
    load: Serving = Field(description="what the estimates are for: lengths, the SLO; its concurrency None: best")
    concurrency: list[int] | None = Field(default=None, description="loads to bench; None: each candidate's best")
    requests: int | None = Field(default=None, ge=1, description="requests per bench run; None: scaled to the load")
    budget_usd: float | None = Field(default=None, gt=0)
    parallel: int = Field(default=2, ge=1, description="candidates deployed at once")


class Candidate(BaseModel):
    """One offer to measure: its plans (best first, then fallbacks), the loads it is benched at, its cost."""

    label: str = Field(description="the GPU asked for")
    name: str = Field(description="its deployment's name")
    plans: list[DeployPlan]
    estimate: Estimate
    usd_per_1m_output_tokens: float | None
    concurrency: list[int]
    estimates: list[Estimate] = Field(description="the estimate at each load of concurrency, in its order")
    requests: int
    seconds: float = Field(description="estimated time billed: start-up, bench, teardown")
    cost_usd: float = Field(description="estimated cost at the plan's price")

    @property
    def plan(self) -> DeployPlan:
        return self.plans[0]


class Skipped(BaseModel):
    """A GPU asked for that no offer serves (or none that meets the SLO)."""

    label: str
    reason: str


class SweepPlan(BaseModel):
    """Everything ``gpuctl bench --sweep`` would rent and what it would cost, before the one confirmation."""

    model: ModelSummary
    load: str = Field(description="what the estimates are for")
    candidates: list[Candidate]
    skipped: list[Skipped] = Field(default_factory=list)
    estimated_cost_usd: float
    budget_usd: float | None
    parallel: int
    warnings: list[str] = Field(default_factory=list)


def start_seconds(recipe: Recipe, quantization: QuantMethod | None) -> float:
    """Estimated seconds from launch to a healthy engine: boot and pull, the weights' download and load."""
    size = weight_bytes(effective_architecture(recipe, quantization))
    return BOOT_S + size / WEIGHTS_BYTES_PER_S + size / LOAD_BYTES_PER_S + ENGINE_WARMUP_S


def estimate_at(estimator: Estimator, found: Estimate, concurrency: int) -> Estimate:
    """``found`` (the estimate at the candidate's best load) at ``concurrency`` requests in flight instead."""
    if found.inputs.concurrency == concurrency:
        return found
    serving = estimator.serving.model_copy(update={"concurrency": concurrency})
    return Estimator(estimator.recipe, serving, estimator.history).at(found.inputs.gpu, found.inputs.gpu_count) or found


def bench_seconds(at: Estimate, concurrency: int, requests: int) -> float:
    """Estimated seconds of one bench run of ``requests`` (plus one warm-up per slot) at ``concurrency``, from the
    estimate ``at`` that load."""
    return (requests + concurrency) * at.inputs.workload.output_tokens / max(at.output_tokens_per_s, 1e-9)


def plan_sweep(ctx: DeployContext, request: SweepRequest, inputs: PlanInputs) -> SweepPlan:
    """One candidate per GPU in ``request.gpus`` from ``inputs.offers`` (the cheapest per token by estimate
    that meets the SLO; estimates corrected by ``inputs.history``), with its loads, TTL and cost. GPUs
    without one are listed as skipped."""
    from gpuctl.deploy import naming
    from gpuctl.deploy.planning import MAX_OFFERS, candidate_plans

    serving = request.load.model_copy(update={"engine": request.engine, "quantization": request.quantization})
    estimator = Estimator(inputs.recipe, serving, inputs.history)
    candidates: list[Candidate] = []
    skipped: list[Skipped] = []
    for label in request.gpus:
        wanted = PlanRequest(model=request.model, gpu=label, count=request.count, providers=request.providers,
                             region=request.region, engine=request.engine, spot=request.spot,
                             quantization=request.quantization, optimize="token-cost", load=serving)
        mine = inputs.model_copy(update={"offers": [o for o in inputs.offers if matches(o, wanted.offer_query())]})
        try:
            first = candidate_plans(ctx, wanted, mine, limit=1)[0]
        except GpuctlError as exc:
            skipped.append(Skipped(label=label, reason=exc.message))
            continue
        found = estimator.at(first.offer.gpu, first.offer.gpu_count)
        if found is None:
            skipped.append(Skipped(label=label, reason=f"no estimate for {first.offer.gpu}"))
            continue
        loads = request.concurrency or [found.inputs.concurrency]
        at_loads = [estimate_at(estimator, found, c) for c in loads]
        requests = request.requests or max(MIN_REQUESTS, REQUESTS_PER_SLOT * max(loads))
        seconds = (start_seconds(inputs.recipe, request.quantization) + TEARDOWN_S
                   + sum(bench_seconds(at, c, requests) for at, c in zip(at_loads, loads, strict=True)))
        ttl = max(MIN_TTL_S, math.ceil(TTL_FACTOR * seconds / 60) * 60)
        plans = candidate_plans(ctx, wanted.model_copy(update={"ttl_seconds": ttl}), mine, limit=MAX_OFFERS)
        price = plans[0].offer.price_per_hour
        candidates.append(Candidate(
            label=label, name=naming.default_name(inputs.recipe.name, f"sweep-{label}"), plans=plans,
            estimate=found, usd_per_1m_output_tokens=estimator.offer(plans[0].offer).usd_per_1m_output_tokens,
            concurrency=loads, estimates=at_loads, requests=requests, seconds=round(seconds),
            cost_usd=round(price * seconds / 3600, 2)))
    total = round(sum(c.cost_usd for c in candidates), 2)
    return SweepPlan(model=ModelSummary.of(inputs.recipe), load=serving.describe(), candidates=candidates,
                     skipped=skipped, estimated_cost_usd=total, budget_usd=request.budget_usd,
                     parallel=request.parallel, warnings=list(inputs.warnings))

