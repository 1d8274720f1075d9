"""``gpuctl top``: what each deployment is doing right now, sampled again and again.

Each sample reads the engine's Prometheus ``/metrics`` (through the SSH session for a private
endpoint, as ``gpuctl logs`` reaches the host) and, on a machine gpuctl reaches, ``nvidia-smi`` and the
watchdog's note of the last request. Rates (tokens/s) are the counters' change since the previous
sample; latency percentiles come from the engine's histograms: over the last interval when requests
finished in it, else since the engine started. The session and the tunnel stay open between samples.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field

from gpuctl.deploy.bill import billing_start
from gpuctl.deploy.context import DeployContext
from gpuctl.errors import GpuctlError
from gpuctl.host.nvidia import GpuInfo
from gpuctl.host.shell import Shell
from gpuctl.limits import budget_left, idle_left
from gpuctl.metrics.engines import EngineReading, Percentiles, Scrape
from gpuctl.metrics.prometheus import Histogram
from gpuctl.models.deployment import Deployment, DeploymentStatus
from gpuctl.models.limits import Enforcer

#: seconds one read (metrics, nvidia-smi) may take before the sample goes on without it
READ_TIMEOUT_S = 5.0


class TopRow(BaseModel):
    """One deployment at one moment (``gpuctl top --json`` prints one per line)."""

    name: str
    at: datetime
    status: DeploymentStatus
    provider: str
    engine: str | None
    gpus: list[GpuInfo] | None = Field(description="per GPU, from nvidia-smi on the host; None where gpuctl "
                                                    "reaches no host (the provider runs the engine)")
    running: float | None
    waiting: float | None
    kv_cache_usage: float | None = Field(description="share of the KV cache in use, 0..1")
    requests_total: float | None
    prompt_tokens_per_s: float | None = Field(description="since the previous sample; None on the first")
    generation_tokens_per_s: float | None
    ttft: Percentiles | None
    itl: Percentiles | None = Field(description="inter-token latency")
    latency_window: Literal["interval", "since start"] | None = Field(
        description="interval: requests finished since the previous sample; since start: none did, so the "
                    "engine's whole history")
    price_per_hour: float | None
    cost_usd: float | None = Field(description="so far: price x time since the launch")
    ttl_left_seconds: float | None
    idle_left_seconds: float | None = Field(description="before the idle limit ends it")
    budget_left_usd: float | None
    limits_enforced_by: Enforcer
    problems: list[str] = Field(default_factory=list, description="what could not be read this time")


class Probe:
    """Keeps what one deployment's samples need open (SSH session, tunnel) and the previous sample."""

    def __init__(self, ctx: DeployContext, deployment: Deployment) -> None:
        self.ctx = ctx
        self.deployment = deployment
        self.stack = ExitStack()
        self.shell: Shell | None = None
        self.base_url: str | None = None
        self.previous: tuple[float, Scrape] | None = None
        #: gpuctl's own idle clock (no watchdog on the machine): when the engine was last seen busy
        self.last_activity: float | None = None
        self.api_key: str | None = None

    @property
    def enforced_by(self) -> Enforcer:
        return "host" if self.deployment.host else "gpuctl"

    def open(self) -> None:
        """The session (for a host gpuctl reaches) and the endpoint's base URL from here."""
        from gpuctl.deploy.access import open_host
        from gpuctl.deploy.endpoint import reach
        from gpuctl.deploy.secrets import read_api_key

        self.api_key = read_api_key(self.ctx.state_dir, self.deployment.name)
        if self.deployment.host:
            self.shell = self.stack.enter_context(open_host(self.ctx, self.deployment, timeout=READ_TIMEOUT_S * 3))
        if self.deployment.endpoint:
            self.base_url = self.stack.enter_context(reach(self.deployment, self.shell))

    def close(self) -> None:
        self.stack.close()

    def sample(self) -> TopRow:
        """One look at the deployment; what cannot be read is named in ``problems``, never raised."""
        problems: list[str] = []
        deployment = self.deployment
        now = datetime.now(timezone.utc)
        scrape, at = self._scrape(problems)
        gpus = self._gpus(problems) if self.shell is not None else None
        reading = scrape.reading if scrape is not None else None
        rates = self._rates(at, scrape) if scrape is not None else (None, None)
        ttft, itl, window = self._latency(scrape)
        idle = self._idle_left(reading, problems)
        if scrape is not None:
            self.previous = (at, scrape)
        started = billing_start(deployment)
        cost = (round(deployment.price_per_hour * max(0.0, (now - started).total_seconds()) / 3600, 4)
                if deployment.price_per_hour is not None and started is not None else None)
        return TopRow(
            name=deployment.name, at=now, status=deployment.status, provider=deployment.provider,
            engine=(reading.engine if reading else None) or deployment.engine, gpus=gpus,
            running=reading.running if reading else None, waiting=reading.waiting if reading else None,
            kv_cache_usage=reading.kv_cache_usage if reading else None,
            requests_total=reading.requests_total if reading else None,
            prompt_tokens_per_s=rates[0], generation_tokens_per_s=rates[1], ttft=ttft, itl=itl, latency_window=window,
            price_per_hour=deployment.price_per_hour, cost_usd=cost,
            ttl_left_seconds=round((deployment.expires_at - now).total_seconds(), 1) if deployment.expires_at else None,
            idle_left_seconds=idle, budget_left_usd=budget_left(deployment, cost),
            limits_enforced_by=self.enforced_by, problems=problems)

    # -- the reads ---------------------------------------------------------------------------------------
    def _scrape(self, problems: list[str]) -> tuple[Scrape | None, float]:
        import httpx

        from gpuctl.metrics.engines import read

        at = time.monotonic()
        if self.base_url is None:
            problems.append("no endpoint yet")
            return None, at
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            with httpx.Client(base_url=self.base_url, headers=headers, timeout=READ_TIMEOUT_S) as client:
                response = client.get("/metrics")
            at = time.monotonic()
        except httpx.HTTPError as exc:
            problems.append(f"metrics: {type(exc).__name__}")
            return None, at
        if response.status_code != 200:
            problems.append(f"metrics: HTTP {response.status_code}")
            return None, at
        scrape = read(response.text, self.deployment.engine)
        if scrape.reading.engine is None:
            problems.append("metrics: no engine metrics in the answer")
        return scrape, at

    def _gpus(self, problems: list[str]) -> list[GpuInfo] | None:
        from gpuctl.host.nvidia import QUERY_ARGV, parse_query_output

        assert self.shell is not None
        try:
            result = self.shell.run(QUERY_ARGV, timeout=READ_TIMEOUT_S)
            if not result.ok:
                problems.append(f"nvidia-smi: exit {result.exit_code}: {result.last_error_line()}")
                return None
            return parse_query_output(result.stdout)
        except GpuctlError as exc:
            problems.append(f"nvidia-smi: {exc.message}")
            return None

    def _rates(self, at: float, scrape: Scrape) -> tuple[float | None, float | None]:
        if self.previous is None:
            return None, None
        before_at, before = self.previous
        seconds = at - before_at
        if seconds <= 0:
            return None, None

        def rate(now: float | None, then: float | None) -> float | None:
            return None if now is None or then is None else round(max(0.0, now - then) / seconds, 2)

        return (rate(scrape.reading.prompt_tokens_total, before.reading.prompt_tokens_total),
                rate(scrape.reading.generation_tokens_total, before.reading.generation_tokens_total))

    def _latency(self, scrape: Scrape | None) -> tuple[Percentiles | None, Percentiles | None,
                                                       Literal["interval", "since start"] | None]:
        if scrape is None:
            return None, None, None
        if self.previous is not None:
            before = self.previous[1]
            ttft, itl = _since(scrape.ttft, before.ttft), _since(scrape.itl, before.itl)
            if any(h is not None and h.count > 0 for h in (ttft, itl)):
                return _percentiles(ttft), _percentiles(itl), "interval"
        return _percentiles(scrape.ttft), _percentiles(scrape.itl), "since start"

    def _idle_left(self, reading: EngineReading | None, problems: list[str]) -> float | None:
        idle = self.deployment.idle_seconds
        if not idle:
            return None
        if self.enforced_by == "gpuctl":
            self._observe(reading)
            return idle_left(idle, self.last_activity, time.monotonic())
        path = self.deployment.watchdog_activity
        if self.shell is None or not path:
            return None
        try:
            result = self.shell.run(["sh", "-c", 'date +%s; cat "$1" 2>/dev/null || true', "sh", path],
                                    timeout=READ_TIMEOUT_S)
        except GpuctlError as exc:
            problems.append(f"watchdog: {exc.message}")
            return None
        values = result.stdout.split()
        if len(values) < 2 or not all(v.isdigit() for v in values[:2]):
            return None  # the watchdog has not seen the engine answer yet
        return idle_left(idle, float(values[1]), float(values[0]))

    def _observe(self, reading: EngineReading | None) -> None:
        """gpuctl's own idle clock: it starts at the first reading and restarts whenever the engine is busy or
        finished a request since the previous one."""
        if reading is None or reading.requests_total is None:
            return
        before = self.previous[1].reading.requests_total if self.previous is not None else None
        busy = bool(reading.running) or bool(reading.waiting)
        if self.last_activity is None or busy or reading.requests_total != before:
            self.last_activity = time.monotonic()


def limit_reached(row: TopRow) -> str | None:
    """Which limit a deployment gpuctl enforces itself has reached, if any (the watchdog ends the others)."""
    if row.limits_enforced_by != "gpuctl" or row.status != "running":
        return None
    if row.ttl_left_seconds is not None and row.ttl_left_seconds <= 0:
        return "its TTL passed"
    if row.budget_left_usd is not None and row.budget_left_usd <= 0:
        return "its budget is spent"
    if row.idle_left_seconds is not None and row.idle_left_seconds <= 0:
        return "it was idle for its idle limit"
    return None


def _since(now: Histogram | None, then: Histogram | None) -> Histogram | None:
    return now.minus(then) if now is not None and then is not None else None


def _percentiles(histogram: Histogram | None) -> Percentiles | None:
    if histogram is None or histogram.count <= 0:
        return None
    return Percentiles.of(histogram)
