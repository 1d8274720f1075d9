"""Estimates where users choose: per GPU and count (``gpuctl fit``), per offer (``prices --for``, ``up``).

``Estimator`` answers for one model served one way (``Serving``): the estimate on a GPU SKU and
count, corrected by bench history when there is some (gpuctl.perf.history), and what a million
output tokens cost at an offer's price. The load is the user's (``--concurrency``), else the best one:
with latency targets (``--slo``) the largest concurrency whose estimate meets them (ITL and TTFT
grow with the load), without them the throughput-optimal ``max``. Dollars per token are compared at
that load, which is what an operator would run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gpuctl.errors import UsageError
from gpuctl.fit import FitRow
from gpuctl.models.bench import BenchRecord
from gpuctl.models.offer import AVAILABILITY_RANK, Offer
from gpuctl.models.recipe import QuantMethod, Recipe
from gpuctl.perf.cost import Slo, meets, usd_per_1m_output_tokens
from gpuctl.perf.engines import PerfEngine
from gpuctl.perf.estimate import Estimate, KvCacheDtype, Workload, estimate
from gpuctl.perf.history import learned, model_family

DEFAULT_INPUT_TOKENS = 1024
DEFAULT_OUTPUT_TOKENS = 256


class Serving(BaseModel):
    """How the model is served and the load estimated (the options of ``fit``, ``prices --for`` and ``up``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: PerfEngine = "vllm"
    quantization: QuantMethod | None = None
    kv_cache_dtype: KvCacheDtype = "auto"
    input_tokens: int = Field(default=DEFAULT_INPUT_TOKENS, ge=1)
    output_tokens: int = Field(default=DEFAULT_OUTPUT_TOKENS, ge=1)
    concurrency: int | Literal["max"] | None = Field(
        default=None, description="requests in flight; None: the best load (max, or the largest meeting the SLO)")
    slo: Slo | None = None

    def describe(self) -> str:
        """``1024/256 tokens at the best load meeting ttft<=500ms`` and the like."""
        if self.concurrency is None:
            load = "the best load"
        else:
            load = "max load" if self.concurrency == "max" else f"concurrency {self.concurrency}"
        where = f" meeting {self.slo.describe()}" if self.slo and self.concurrency is None else ""
        return f"{self.input_tokens}/{self.output_tokens} tokens, {self.engine}, at {load}{where}"


class EstimatedOffer(Offer):
    """One offer with the estimate of serving the model on it (``gpuctl prices --for MODEL`` rows)."""

    estimate: Estimate | None = Field(description="None: no estimate (the GPU's figures are unknown)")
    usd_per_1m_output_tokens: float | None
    meets_slo: bool | None = Field(description="whether the estimate meets --slo; None without one")


class EstimatedFit(FitRow):
    """A ``gpuctl fit`` row with the estimate there and, when an offer's price is known, the cost per token."""

    estimate: Estimate | None = Field(default=None, description="None when the model does not fit")
    meets_slo: bool | None = None
    offer: str | None = Field(default=None, description="the cheapest offer known for this GPU and count")
    price_per_hour: float | None = None
    usd_per_1m_output_tokens: float | None = None


class Estimator:
    """Estimates for one model served one way, corrected by ``history``; each GPU and count is worked out once."""

    def __init__(self, recipe: Recipe, serving: Serving, history: Sequence[BenchRecord] = ()) -> None:
        from gpuctl.fit import effective_architecture

        self.recipe = recipe
        self.serving = serving
        self.history = list(history)
        self.family = model_family(effective_architecture(recipe, serving.quantization))
        self._known: dict[tuple[str, int], Estimate | None] = {}

    def at(self, gpu: str, count: int) -> Estimate | None:
        """The estimate on ``count`` x ``gpu`` at the serving's load; None when the model does not fit there."""
        key = (gpu, count)
        if key not in self._known:
            self._known[key] = self._best(gpu, count)
        return self._known[key]

    def meets(self, found: Estimate | None) -> bool | None:
        """Whether ``found`` meets the SLO (None without an SLO or an estimate)."""
        if self.serving.slo is None or found is None:
            return None
        return meets(found, self.serving.slo)

    def offer(self, offer: Offer) -> EstimatedOffer:
        found = self.at(offer.gpu, offer.gpu_count)
        return EstimatedOffer(**{name: getattr(offer, name) for name in Offer.model_fields}, estimate=found,
                              meets_slo=self.meets(found),
                              usd_per_1m_output_tokens=usd_per_1m_output_tokens(found, offer.price_per_hour)
                              if found else None)

    def fit_row(self, row: FitRow, offers: Iterable[Offer] = ()) -> EstimatedFit:
        """``row`` with its estimate, priced by the cheapest available offer of the same GPU and count."""
        found = self.at(row.gpu, row.gpu_count) if row.fits else None
        same = [o for o in offers if o.gpu == row.gpu and o.gpu_count == row.gpu_count and o.availability != "none"]
        cheapest = min(same, key=lambda o: (o.price_per_hour, AVAILABILITY_RANK[o.availability], o.id), default=None)
        price = cheapest.price_per_hour if cheapest else None
        return EstimatedFit(**row.model_dump(), estimate=found, meets_slo=self.meets(found),
                            offer=cheapest.id if cheapest else None, price_per_hour=price,
                            usd_per_1m_output_tokens=usd_per_1m_output_tokens(found, price)
                            if found and price is not None else None)

    def _estimate(self, gpu: str, count: int, concurrency: int | Literal["max"]) -> Estimate:
        s = self.serving
        raw = estimate(self.recipe, gpu, count, engine=s.engine, quantization=s.quantization,
                       kv_cache_dtype=s.kv_cache_dtype,
                       workload=Workload(input_tokens=s.input_tokens, output_tokens=s.output_tokens,
                                         concurrency=concurrency))
        return learned(raw, self.family, self.history)

    def _best(self, gpu: str, count: int) -> Estimate | None:
        try:
            top = self._estimate(gpu, count, self.serving.concurrency or "max")
        except UsageError:  # does not fit there
            return None
        slo = self.serving.slo
        if self.serving.concurrency is not None or slo is None or meets(top, slo):
            return top
        # the largest load that meets the SLO: latencies grow with the load, so bisect
        low = self._estimate(gpu, count, 1)
        if not meets(low, slo):
            return low  # even one request at a time misses: shown as missing
        lo, hi = 1, top.inputs.concurrency
        while hi - lo > 1:
            mid = (lo + hi) // 2
            candidate = self._estimate(gpu, count, mid)
            if meets(candidate, slo):
                lo, low = mid, candidate
            else:
                hi = mid
        return low


def token_cost_key(row: EstimatedOffer) -> tuple:
    """Cheapest per output token first; offers that miss the SLO, then those without an estimate, last."""
    return (row.meets_slo is False, row.usd_per_1m_output_tokens is None, row.usd_per_1m_output_tokens or 0.0,
            row.price_per_hour, AVAILABILITY_RANK[row.availability], row.id)
