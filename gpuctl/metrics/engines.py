"""What each engine calls the figures gpuctl reads from its ``/metrics``, and one reading in gpuctl's terms.

The names are the engines' own (checked against their sources and docs):

* vLLM (``vllm/v1/metrics/loggers.py``): ``vllm:num_requests_running`` / ``_waiting``,
  ``vllm:kv_cache_usage_perc`` (``vllm:gpu_cache_usage_perc`` before 0.10), the counters
  ``vllm:request_success_total``, ``vllm:prompt_tokens_total``, ``vllm:generation_tokens_total``, the
  histograms ``vllm:time_to_first_token_seconds`` and ``vllm:inter_token_latency_seconds``
  (``vllm:time_per_output_token_seconds`` before 0.11). Labels: ``model_name``, ``engine``.
* SGLang (its scheduler and tokenizer metrics collectors; served only with ``--enable-metrics``):
  ``sglang:num_running_reqs``, ``sglang:num_queue_reqs``, ``sglang:token_usage`` (the KV pool's used
  share), the counters ``sglang:num_requests_total``, ``sglang:prompt_tokens_total``,
  ``sglang:generation_tokens_total``, the histograms ``sglang:time_to_first_token_seconds`` and
  ``sglang:inter_token_latency_seconds`` (``sglang:time_per_output_token_seconds`` in older releases).
* TGI (``docs/source/reference/metrics.md``; ``/metrics`` stays open with an API key):
  ``tgi_batch_current_size`` (running), ``tgi_queue_size`` (waiting), the counter ``tgi_request_count``,
  the histograms ``tgi_request_input_length`` and ``tgi_request_generated_tokens`` (their sums are the
  token totals) and ``tgi_request_mean_time_per_token_duration`` (inter-token latency). TGI reports no KV cache usage
  and no time to first token.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from gpuctl.metrics.prometheus import Exposition, Histogram

#: the quantiles gpuctl shows of a latency histogram
QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True)
class EngineMetricNames:
    """Per figure, the metric names to look for, newest first; an empty tuple: the engine does not report it."""

    running: tuple[str, ...]
    waiting: tuple[str, ...]
    kv_cache_usage: tuple[str, ...]
    requests: tuple[str, ...]
    prompt_tokens: tuple[str, ...]
    generation_tokens: tuple[str, ...]
    ttft: tuple[str, ...]
    itl: tuple[str, ...]


NAMES: dict[str, EngineMetricNames] = {
    "vllm": EngineMetricNames(
        running=("vllm:num_requests_running",), waiting=("vllm:num_requests_waiting",),
        kv_cache_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        requests=("vllm:request_success_total",), prompt_tokens=("vllm:prompt_tokens_total",),
        generation_tokens=("vllm:generation_tokens_total",), ttft=("vllm:time_to_first_token_seconds",),
        itl=("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")),
    "sglang": EngineMetricNames(
        running=("sglang:num_running_reqs",), waiting=("sglang:num_queue_reqs",),
        kv_cache_usage=("sglang:token_usage",), requests=("sglang:num_requests_total",),
        prompt_tokens=("sglang:prompt_tokens_total",), generation_tokens=("sglang:generation_tokens_total",),
        ttft=("sglang:time_to_first_token_seconds",),
        itl=("sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds")),
    "tgi": EngineMetricNames(
        running=("tgi_batch_current_size",), waiting=("tgi_queue_size",), kv_cache_usage=(),
        requests=("tgi_request_count",), prompt_tokens=("tgi_request_input_length_sum",),
        generation_tokens=("tgi_request_generated_tokens_sum",), ttft=(),
        itl=("tgi_request_mean_time_per_token_duration",)),
}

#: the prefix that gives an engine away in a scrape, for a record that does not name its engine
_PREFIXES = {"vllm:": "vllm", "sglang:": "sglang", "tgi_": "tgi"}


def names_for(engine: str | None) -> EngineMetricNames | None:
    return NAMES.get(engine or "")


def detect(exposition: Exposition) -> str | None:
    """The engine whose metric names the scrape carries, if any."""
    for name in exposition.by_name:
        for prefix, engine in _PREFIXES.items():
            if name.startswith(prefix):
                return engine
    return None


def activity_names(engine: str) -> tuple[list[str], list[str]]:
    """What the idle watchdog reads: (gauges of requests in the engine, counters that move with each request)."""
    names = NAMES[engine]
    return [*names.running[:1], *names.waiting[:1]], [*names.requests[:1]]


class Percentiles(BaseModel):
    """p50/p90/p99 of a latency histogram, in milliseconds, and how many observations they come from."""

    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    count: int

    @classmethod
    def of(cls, histogram: Histogram) -> Percentiles:
        values = [histogram.quantile(q) for q in QUANTILES]
        p50, p90, p99 = (None if v is None else round(v * 1000, 3) for v in values)
        return cls(p50_ms=p50, p90_ms=p90, p99_ms=p99, count=int(histogram.count))


class EngineReading(BaseModel):
    """One scrape of an engine's ``/metrics`` in gpuctl's terms; None where the engine does not report a figure."""

    engine: str | None
    running: float | None = Field(description="requests being generated")
    waiting: float | None = Field(description="requests queued")
    kv_cache_usage: float | None = Field(description="share of the KV cache in use, 0..1")
    requests_total: float | None = Field(description="requests finished since the engine started")
    prompt_tokens_total: float | None
    generation_tokens_total: float | None


@dataclass
class Scrape:
    """A reading with the histograms it came from (kept to compute latency over a window)."""

    reading: EngineReading
    ttft: Histogram | None
    itl: Histogram | None


def read(text: str, engine: str | None = None) -> Scrape:
    """A scrape of ``/metrics`` in ``engine``'s names (found from the names themselves when not given)."""
    exposition = Exposition.of(text)
    engine = engine if engine in NAMES else detect(exposition)
    names = names_for(engine)
    if names is None:
        return Scrape(EngineReading(engine=engine, running=None, waiting=None, kv_cache_usage=None,
                                    requests_total=None, prompt_tokens_total=None, generation_tokens_total=None),
                      None, None)
    reading = EngineReading(
        engine=engine, running=exposition.total(names.running), waiting=exposition.total(names.waiting),
        kv_cache_usage=_mean(exposition, names.kv_cache_usage), requests_total=exposition.total(names.requests),
        prompt_tokens_total=exposition.total(names.prompt_tokens),
        generation_tokens_total=exposition.total(names.generation_tokens))
    return Scrape(reading, exposition.histogram(names.ttft), exposition.histogram(names.itl))


def _mean(exposition: Exposition, names: tuple[str, ...]) -> float | None:
    """A usage share averaged over the series (one per engine core or data-parallel rank)."""
    for name in names:
        series = exposition.by_name.get(name)
        if series:
            return round(sum(s.value for s in series) / len(series), 4)
    return None
