"""Benchmark results: what the load generator reports, what ``gpuctl bench --json`` prints, what is stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gpuctl.models.deployment import utcnow
from gpuctl.perf.estimate import Estimate

TokenSource = Literal["usage", "counted", "mixed"]


class LatencyStats(BaseModel):
    """Milliseconds."""

    mean: float
    p50: float
    p90: float
    p99: float


class ClientCheck(BaseModel):
    """The load generator's view of itself: whether its own timestamps can be trusted."""

    cpu_util: float = Field(description="CPU seconds per wall second of the client process (1.0 = a full core)")
    send_lag_ms: LatencyStats | None = Field(description="actual minus planned send time of each request")
    loop_lag_ms: LatencyStats | None = Field(description="lateness of a 10 ms timer on the client's event loop")
    saturated: bool = Field(description="its own timestamps may be late: latencies read high")
    reasons: list[str] = Field(default_factory=list)
    sent_late: bool = Field(False, description="requests left later than planned: the load was lighter than asked")


class LoadgenRun(BaseModel):
    """One (concurrency, rate) point as gpuctl/bench/loadgen.py reports it."""

    concurrency: int | None
    rate: float | None
    burstiness: float | None = None
    requests_ok: int
    requests_failed: int
    errors: dict[str, int] = Field(default_factory=dict, description="failed requests per cause")
    error_examples: dict[str, str] = Field(default_factory=dict)
    duration_s: float
    input_tokens: int
    output_tokens: int
    output_tokens_estimated: int = Field(0, description="requests whose output tokens the client counted")
    output_tokens_requested: int = 0
    output_tokens_source: TokenSource | None = None
    input_tokens_source: TokenSource | None = None
    cached_input_tokens: int = Field(0, description="prompt tokens the server says it answered from its cache")
    short_responses: int = 0
    truncated_responses: int = 0
    retried: int = Field(0, description="requests sent again after a kept-alive connection turned out dead")
    ttft_ms: LatencyStats | None
    itl_ms: LatencyStats | None
    tpot_ms: LatencyStats | None
    e2e_ms: LatencyStats | None
    output_tokens_per_s: float
    total_tokens_per_s: float
    requests_per_s: float
    goodput_requests_per_s: float | None = None
    max_in_flight: int = 0
    client: ClientCheck


class LoadgenReport(BaseModel):
    """The whole document loadgen.py prints with --json."""

    version: int
    url: str
    model: str
    event_loop: str
    settings: dict[str, Any] = Field(default_factory=dict)
    runs: list[LoadgenRun]


class BenchRun(BaseModel):
    """One run as ``gpuctl bench --json`` prints it. The keys are an interface: exactly these, null where a
    figure does not apply. (Keys added later have defaults, so older stored runs still load.)"""

    model_config = ConfigDict(extra="forbid")

    concurrency: int | None
    rate: float | None
    requests_ok: int
    requests_failed: int
    failed_by_cause: dict[str, int] = Field(default_factory=dict)
    truncated_responses: int = Field(0, description="streams that ended without a finish reason (failed)")
    short_responses: int = Field(0, description="answers with fewer output tokens than asked (succeeded)")
    retried_requests: int = Field(0, description="re-sent after the server had closed a kept-alive connection")
    input_tokens: int = 0
    output_tokens: int = 0
    output_tokens_requested: int = 0
    input_tokens_source: TokenSource | None = Field(None, description="usage (the server's), counted, mixed")
    output_tokens_source: TokenSource | None = None
    cached_input_tokens: int = 0
    seed: int | None = Field(None, description="--seed reproduces this run's prompts exactly")
    salt: str | None = Field(None, description="derived from the seed; every prompt of the run starts from it")
    prefix_share: float = 0.0
    duration_s: float
    ttft_ms: LatencyStats | None
    itl_ms: LatencyStats | None
    tpot_ms: LatencyStats | None
    e2e_ms: LatencyStats | None
    output_tokens_per_s: float
    total_tokens_per_s: float
    requests_per_s: float
    cost_per_1m_output_tokens: float | None
    cost_per_1m_total_tokens: float | None
    goodput_requests_per_s: float | None
    client_saturated: bool
    client_sent_late: bool = False


class BenchReport(BaseModel):
    runs: list[BenchRun]


class BenchRecord(BaseModel):
    """A deployment bench kept in the state file, for ``gpuctl bench --history``, with its exact conditions:
    what was served how on which hardware, and what the performance model expected there (later
    estimates for the same GPU, engine and model family are corrected by it: gpuctl.perf.history)."""

    model_config = ConfigDict(extra="allow")

    at: datetime = Field(default_factory=utcnow)
    deployment: str
    model: str
    provider: str | None = None
    gpu: str | None = None
    gpu_count: int | None = None
    price_per_hour: float | None = None
    recipe: str | None = Field(default=None, description="gpuctl's name of the model (model: what it answers as)")
    engine: str | None = None
    quantization: str | None = Field(default=None, description="how the weights were served (None: as published)")
    family: str | None = Field(default=None, description="the model's architecture family (gpuctl.perf.history)")
    estimate: Estimate | None = Field(default=None, description="the performance model's estimate for these conditions")
    endpoint: Literal["completions", "chat"] = "completions"
    input_len: int
    output_len: int
    dataset: str = "random"
    source: Literal["local", "host"] = "local"
    errors: dict[str, int] = Field(default_factory=dict)
    run: BenchRun
