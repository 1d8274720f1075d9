#!/usr/bin/env python3
"""Load generator for OpenAI-compatible LLM endpoints (vLLM, TGI, ...): latency, throughput, goodput.

This one file is the whole measuring client. It imports only the standard library and aiohttp (and
uvloop when it is installed), nothing from gpuctl, so it can be copied to a GPU host and run there
with the engine image's Python against localhost::

    python3 loadgen.py --url http://127.0.0.1:8000 --concurrency 1,8,32 --requests 200 --json

``--config -`` reads every setting (the API key included) as one JSON object from stdin, which keeps
secrets out of the process list. Progress goes to stderr; the result goes to stdout (``--json``: the
document gpuctl parses). Metric definitions and the client self-check are described in docs/bench.md.

How it keeps its own overhead out of the figures: one shared HTTP session whose connection pool is
sized to the concurrency; pre-serialised request bodies; each read from the socket is timestamped as
it arrives and parsed only after the response ended; no tokenizing; the time a request waits for a
concurrency slot is not latency; warm-up requests are not counted; the cyclic garbage collector is
kept out of the measured window. It also measures its own CPU use and event-loop lag and marks a run
``client_saturated`` when its timestamps cannot be trusted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

RESULT_VERSION = 1
ENDPOINTS = ("completions", "chat")
SLO_KEYS = ("ttft", "tpot", "e2e")
DEFAULT_REQUESTS = 100
POOL_SIZE = 1000  # distinct prompts built before a run; longer runs cycle through them
RETAIN_BYTES = 256 << 20  # raw responses held for parsing after the run before parsing starts early

# Self-check limits: above them, the client's own timestamps are no longer trustworthy.
MAX_CPU_UTIL = 0.85  # of one core (the event loop is single-threaded)
MAX_LOOP_LAG_P90_MS = 5.0
MAX_SEND_LAG_P90_MS = 10.0
LAG_PROBE_S = 0.01

# Words that are a single token in the common BPE vocabularies, for prompts of a known length.
_PROMPT_WORDS = (
    "the", "of", "and", "to", "in", "is", "it", "that", "for", "on", "with", "as", "was", "at", "by", "be",
    "this", "from", "or", "an", "are", "not", "have", "but", "one", "all", "we", "can", "has", "more",
    "also", "new", "time", "its", "which", "when", "will", "other", "were", "there", "after", "what",
    "first", "two", "up", "some", "would", "so", "out", "no", "into", "than", "about", "who", "any",
    "been", "only", "many", "most", "over", "make", "like", "then", "each", "these", "said", "people",
    "use", "do", "could", "year", "now", "him", "back", "way", "part", "such", "well", "work", "good",
    "just", "made", "where", "see", "long", "down", "day", "get", "come", "state", "world", "life",
    "house",
)


@dataclass
class LoadSpec:
    """Everything that defines a benchmark. Also the JSON object ``--config`` reads."""

    url: str
    model: str | None = None
    api_key: str | None = None
    endpoint: str = "completions"
    concurrency: list[int | None] = field(default_factory=lambda: [1])
    rate: list[float | None] = field(default_factory=lambda: [None])
    burstiness: float = 1.0
    requests: int | None = None
    duration_s: float | None = None
    warmup: int | None = None
    input_len: int = 128
    output_len: int = 128
    dataset: str = "random"
    ignore_eos: bool = True
    seed: int = 0
    timeout_s: float = 300.0
    slo_ms: dict[str, float] = field(default_factory=dict)
    progress: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadSpec:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        spec = cls(**data)
        spec.validate()
        return spec

    def validate(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)}, not {self.endpoint!r}")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, not {self.url!r}")
        if self.requests is not None and self.duration_s is not None:
            raise ValueError("give a number of requests or a duration, not both")
        for name in ("requests", "input_len", "output_len"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError("duration must be positive")
        if self.warmup is not None and self.warmup < 0:
            raise ValueError("warmup cannot be negative")
        if self.burstiness <= 0:
            raise ValueError("burstiness must be positive")
        if self.timeout_s <= 0:
            raise ValueError("timeout must be positive")
        if not self.concurrency or not self.rate:
            raise ValueError("concurrency and rate need at least one value")
        if any(c is not None and c < 1 for c in self.concurrency):
            raise ValueError("concurrency must be at least 1")
        if any(r is not None and r <= 0 for r in self.rate):
            raise ValueError("rate must be positive")
        if any(c is None and r is None for c in self.concurrency for r in self.rate):
            raise ValueError("an unlimited concurrency needs a request rate")
        for key, value in self.slo_ms.items():
            if key not in SLO_KEYS or value <= 0:
                raise ValueError(f"SLO {key}={value}: keys are {', '.join(SLO_KEYS)}, values positive ms")


# -- argument parsing helpers (also used by gpuctl's CLI) --------------------------------------------
def parse_concurrency_list(text: str) -> list[int | None]:
    """``"1,8,32"`` -> [1, 8, 32]; ``"none"`` or ``"inf"`` means no limit (needs a rate)."""
    values: list[int | None] = []
    for part in _split_list(text):
        if part.lower() in ("none", "inf", "unlimited"):
            values.append(None)
            continue
        if not part.isdigit() or int(part) < 1:
            raise ValueError(f"concurrency {part!r} is not a whole number >= 1")
        values.append(int(part))
    return values


def parse_rate_list(text: str) -> list[float | None]:
    """``"5,10"`` -> [5.0, 10.0] requests/s; ``"inf"`` means send as fast as the concurrency allows."""
    values: list[float | None] = []
    for part in _split_list(text):
        if part.lower() in ("inf", "none", "max"):
            values.append(None)
            continue
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"rate {part!r} is not a number of requests per second") from None
        if not value > 0 or math.isinf(value):
            raise ValueError(f"rate {part!r} must be a positive number (or inf)")
        values.append(value)
    return values


def parse_slo(text: str) -> dict[str, float]:
    """``"ttft=500,tpot=50"`` -> {"ttft": 500.0, "tpot": 50.0} (milliseconds)."""
    slo: dict[str, float] = {}
    for part in _split_list(text):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        try:
            number = float(value.strip().removesuffix("ms"))
        except ValueError:
            number = -1.0
        if not sep or key not in SLO_KEYS or not number > 0:
            raise ValueError(f"SLO {part!r} is not KEY=MS with KEY one of {', '.join(SLO_KEYS)}")
        slo[key] = number
    return slo


def _split_list(text: str) -> list[str]:
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ValueError("empty list")
    return parts


# -- statistics -------------------------------------------------------------------------------------
def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) on an already sorted list."""
    if not sorted_values:
        raise ValueError("no values")
    pos = (len(sorted_values) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def summarize_ms(values_s: list[float]) -> dict[str, float] | None:
    """mean/p50/p90/p99 in milliseconds of values in seconds; None when there are none."""
    if not values_s:
        return None
    ordered = sorted(values_s)
    return {
        "mean": round(1000 * math.fsum(ordered) / len(ordered), 4),
        "p50": round(1000 * percentile(ordered, 50), 4),
        "p90": round(1000 * percentile(ordered, 90), 4),
        "p99": round(1000 * percentile(ordered, 99), 4),
    }


def apportion(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` into whole parts proportional to ``weights`` (largest remainder method)."""
    weight_sum = sum(weights)
    if total <= 0 or weight_sum <= 0:
        return [0] * len(weights)
    quotas = [total * w / weight_sum for w in weights]
    parts = [int(q) for q in quotas]
    order = sorted(range(len(weights)), key=lambda i: quotas[i] - parts[i], reverse=True)
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


# -- one request ------------------------------------------------------------------------------------
class RequestResult:
    """What one request measured. Times are seconds on the perf_counter clock."""

    __slots__ = ("due", "e2e", "ended", "error", "error_detail", "estimated", "input_tokens", "itl",
                 "output_tokens", "prompt", "reads", "sent", "tpot", "ttft")

    def __init__(self, prompt: Prompt, due: float) -> None:
        self.prompt = prompt
        self.due = due  # when the request could have left: its planned time, or when its slot freed
        self.sent = self.ended = time.perf_counter()  # ``sent`` is moved to the body write (see _stamp_sent)
        self.reads: list[tuple[float, bytes]] | None = None  # raw response, kept until analysed
        self.error: str | None = None
        self.error_detail = ""
        self.ttft = self.e2e = self.tpot = 0.0
        self.itl: list[float] = []
        self.input_tokens = 0
        self.output_tokens = 0
        self.estimated = False

    def fail(self, kind: str, detail: str = "") -> RequestResult:
        self.error = kind
        self.error_detail = detail[:300]
        self.reads = None
        return self


@dataclass
class Prompt:
    body: bytes  # the serialised request, built before the run
    input_tokens: int
    max_tokens: int


def sse_payloads(reads: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
    """The ``data:`` payloads of an SSE stream, each stamped with the arrival of the read that completed it."""
    payloads = []
    pending = b""
    for stamp, data in reads:
        if pending:
            data = pending + data
        if b"\n" not in data:
            pending = data
            continue
        lines = data.split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line.startswith(b"data:"):
                payloads.append((stamp, line[5:].strip()))
    if pending.startswith(b"data:"):
        payloads.append((reads[-1][0], pending[5:].strip()))
    return payloads


def analyse_stream(result: RequestResult, chat: bool) -> RequestResult:
    """Turn the timestamped reads of one streamed response into its metrics (after the fact)."""
    reads, prompt = result.reads, result.prompt
    result.reads = None
    if not reads:
        return result.fail("empty response", "the response had no body")
    content: list[tuple[float, int]] = []  # (arrival, characters) of each event that carried text
    usage: dict[str, Any] | None = None
    finish = None
    done = False
    for stamp, payload in sse_payloads(reads):
        if payload == b"[DONE]":
            done = True
            continue
        try:
            event = json.loads(payload)
        except ValueError:
            return result.fail("invalid response", payload[:200].decode("utf-8", "replace"))
        if not isinstance(event, dict):
            return result.fail("invalid response", payload[:200].decode("utf-8", "replace"))
        if event.get("error") or event.get("object") == "error":
            return result.fail("stream error", json.dumps(event.get("error", event))[:300])
        choices = event.get("choices")
        if choices:
            choice = choices[0]
            if chat:
                delta = choice.get("delta") or {}
                text = delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning")
            else:
                text = choice.get("text")
            if text:
                content.append((stamp, len(text)))
            finish = choice.get("finish_reason") or finish
        if event.get("usage"):
            usage = event["usage"]
    if not content:
        return result.fail("empty response", "no event carried generated text")
    if not done and finish is None:
        return result.fail("broken stream", "the stream ended without a finish reason or [DONE]")
    if usage and isinstance(usage.get("completion_tokens"), int):
        tokens = usage["completion_tokens"]
    elif finish == "length":
        tokens = prompt.max_tokens  # the server stopped at max_tokens, so it produced exactly that many
    else:
        tokens = len(content)  # a lower bound when events carry several tokens; flagged as estimated
        result.estimated = True
    result.output_tokens = tokens
    prompt_tokens = usage.get("prompt_tokens") if usage else None
    result.input_tokens = prompt_tokens if isinstance(prompt_tokens, int) else prompt.input_tokens
    first = content[0][0]
    result.ttft = first - result.sent
    result.e2e = reads[-1][0] - result.sent
    if tokens > 1:
        result.tpot = (result.e2e - result.ttft) / (tokens - 1)
    # Per-token inter-token latency: an event that carries k tokens accounts for k gaps of gap/k.
    per_event = [1] * len(content) if tokens == len(content) else apportion(tokens, [c for _, c in content])
    itl = result.itl
    previous = first
    for (stamp, _), k in zip(content[1:], per_event[1:], strict=True):
        if k:
            gap = (stamp - previous) / k
            itl.extend([gap] * k)
            previous = stamp
    return result


def classify_exception(exc: BaseException) -> tuple[str, str]:
    """Error category and detail of an exception raised while sending or reading."""
    import aiohttp

    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout", detail
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "broken stream", detail
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected", detail
    if isinstance(exc, (aiohttp.ClientConnectionError, OSError)):
        return "connection error", detail
    return "client error", detail


# -- prompts ----------------------------------------------------------------------------------------
def build_prompts(spec: LoadSpec, model: str, count: int) -> list[Prompt]:
    """Up to ``count`` serialised requests (random or from a JSONL file, reproducible by seed); runs cycle
    through them."""
    rng = random.Random(spec.seed)
    if spec.dataset == "random":
        texts = [(" ".join(rng.choice(_PROMPT_WORDS) for _ in range(spec.input_len)), spec.input_len, None)
                 for _ in range(min(count, POOL_SIZE))]
    else:
        texts = _read_dataset(spec.dataset)
        rng.shuffle(texts)
    prompts = []
    for i in range(min(count, max(POOL_SIZE, len(texts)))):
        text, input_tokens, max_tokens = texts[i % len(texts)]
        max_tokens = max_tokens or spec.output_len
        body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "stream": True,
                                "stream_options": {"include_usage": True}}
        if spec.endpoint == "chat":
            body["messages"] = text if isinstance(text, list) else [{"role": "user", "content": text}]
        else:
            body["prompt"] = text if isinstance(text, str) else "\n".join(m.get("content", "") for m in text)
        if spec.ignore_eos:
            body["ignore_eos"] = True
        prompts.append(Prompt(json.dumps(body, separators=(",", ":")).encode(), input_tokens, max_tokens))
    return prompts


def _read_dataset(path: str) -> list[tuple[Any, int, int | None]]:
    """JSONL lines with "prompt" (text) or "messages" (chat), and optionally "max_tokens"."""
    entries = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    raise ValueError(f"{path}:{number}: not a JSON object") from None
                prompt = item.get("messages") or item.get("prompt") if isinstance(item, dict) else None
                if not isinstance(prompt, (str, list)) or not prompt:
                    raise ValueError(f"{path}:{number}: needs a non-empty \"prompt\" or \"messages\"")
                words = prompt if isinstance(prompt, str) else " ".join(str(m.get("content", "")) for m in prompt)
                max_tokens = item.get("max_tokens")
                entries.append((prompt, len(words.split()), int(max_tokens) if max_tokens else None))
    except OSError as exc:
        raise ValueError(f"cannot read dataset {path}: {exc.strerror}") from None
    if not entries:
        raise ValueError(f"dataset {path} has no prompts")
    return entries


def arrival_offsets(count: int | None, rate: float, burstiness: float, seed: int,
                    horizon_s: float | None = None) -> list[float]:
    """Send times (s from the start) of a Poisson process, or gamma-distributed gaps with burstiness."""
    rng = random.Random(seed)
    offsets: list[float] = []
    now = 0.0
    while True:
        now += rng.gammavariate(burstiness, 1.0 / (rate * burstiness))
        if (count is not None and len(offsets) >= count) or (horizon_s is not None and now > horizon_s):
            return offsets
        offsets.append(now)


# -- one run (one concurrency x rate point) ---------------------------------------------------------
class Monitor:
    """Event-loop lag probe and live progress, both on one timer task."""

    def __init__(self, label: str, total: int | None, progress: bool) -> None:
        self.label = label
        self.total = total
        self.progress = progress
        self.lags: list[float] = []
        self.done = 0
        self.failed = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.started = time.perf_counter()

    async def run(self) -> None:
        perf = time.perf_counter
        next_report = perf() + 1.0
        while True:
            before = perf()
            await asyncio.sleep(LAG_PROBE_S)
            now = perf()
            self.lags.append(max(0.0, now - before - LAG_PROBE_S))
            if self.progress and now >= next_report:
                next_report = now + 1.0
                self.report(now)

    def report(self, now: float) -> None:
        elapsed = now - self.started
        of = f"/{self.total}" if self.total else ""
        rate = self.done / elapsed if elapsed > 0 else 0.0
        print(f"{self.label}: {self.done}{of} done, {self.failed} failed, {self.in_flight} in flight, "
              f"{rate:.1f} req/s, {elapsed:.0f}s", file=sys.stderr, flush=True)


class PointRunner:
    """Sends the requests of one run over one shared session and keeps what they measured."""

    def __init__(self, session: Any, url: str, headers: dict[str, str], chat: bool,
                 monitor: Monitor | None = None) -> None:
        self.session = session
        self.url = url
        self.headers = headers
        self.chat = chat
        self.monitor = monitor
        self.results: list[RequestResult] = []
        self.retained = 0  # bytes of raw responses waiting for analysis

    async def send(self, prompt: Prompt, due: float) -> RequestResult:
        """One streaming request. Each read is stamped as it arrives; parsing waits until after the run
        (or until RETAIN_BYTES of responses are held), so it never delays another stream's timestamps."""
        perf = time.perf_counter
        monitor = self.monitor
        if monitor:
            monitor.in_flight += 1
            monitor.max_in_flight = max(monitor.max_in_flight, monitor.in_flight)
        result = RequestResult(prompt, due)
        reads: list[tuple[float, bytes]] = []
        size = 0
        try:
            async with self.session.post(self.url, data=prompt.body, headers=self.headers,
                                         trace_request_ctx=result) as response:
                if response.status != 200:
                    text = await response.text(errors="replace")
                    result.fail(f"http {response.status}", text)
                else:
                    append = reads.append
                    readany = response.content.readany
                    while data := await readany():
                        append((perf(), data))
                        size += len(data)
                    result.reads = reads
        except Exception as exc:
            result.fail(*classify_exception(exc))
        result.ended = perf()
        self.results.append(result)
        self.retained += size
        if self.retained > RETAIN_BYTES:
            self.analyse()
        if monitor:
            monitor.in_flight -= 1
            monitor.done += 1
            monitor.failed += result.error is not None
        return result

    def analyse(self) -> list[RequestResult]:
        """Parse every response not parsed yet; returns all results."""
        for result in self.results:
            if result.reads is not None:
                analyse_stream(result, self.chat)
        self.retained = 0
        return self.results

    async def closed_loop(self, prompts: list[Prompt], workers: int, count: int | None,
                          deadline: float | None) -> None:
        """``workers`` coroutines send back to back, each one concurrency slot, until ``count`` requests
        were sent or the ``deadline`` passed."""
        cursor = itertools.count() if count is None else iter(range(count))

        async def worker() -> None:
            due = time.perf_counter()
            for index in cursor:
                if deadline is not None and due >= deadline:
                    return
                result = await self.send(prompts[index % len(prompts)], due)
                due = result.ended  # the slot was free from then on: a later send is client lag

        await asyncio.gather(*(worker() for _ in range(workers)))

    async def open_loop(self, prompts: list[Prompt], offsets: list[float], limit: int | None) -> None:
        """Requests leave at planned times; with a limit, waiting for a free slot delays the send but is
        neither latency nor client lag."""
        slots = asyncio.Semaphore(limit) if limit else None
        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()

        async def one(prompt: Prompt, due: float) -> None:
            try:
                await self.send(prompt, due)
            finally:
                if slots:
                    slots.release()

        for index, offset in enumerate(offsets):
            due = start + offset
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if slots:
                await slots.acquire()
                due = max(due, time.perf_counter())
            task = asyncio.create_task(one(prompts[index % len(prompts)], due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))


async def _stamp_sent(_session: Any, context: Any, _params: Any) -> None:
    # aiohttp calls this right before it writes the request body to the socket. On Python < 3.12 that
    # write happens in a task one loop iteration after session.post() was called, so a stamp taken
    # before post() would count the client's own queueing as server latency.
    context.trace_request_ctx.sent = time.perf_counter()


def _new_session(limit: int | None, timeout_s: float) -> Any:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=limit or 0, limit_per_host=0, ttl_dns_cache=300,
                                     keepalive_timeout=60, enable_cleanup_closed=False)
    stamping = aiohttp.TraceConfig()
    stamping.on_request_chunk_sent.append(_stamp_sent)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s),
                                 read_bufsize=1 << 20, auto_decompress=False, trust_env=False,
                                 trace_configs=[stamping])


async def run_point(spec: LoadSpec, url: str, headers: dict[str, str], model: str, concurrency: int | None,
                    rate: float | None, label: str) -> dict[str, Any]:
    """Warm up, then measure one (concurrency, rate) point; returns its result object."""
    chat = spec.endpoint == "chat"
    warmup = spec.warmup if spec.warmup is not None else (concurrency or 1)
    offsets = None
    if rate is not None:
        offsets = arrival_offsets(spec.requests if spec.duration_s is None else None, rate, spec.burstiness,
                                  spec.seed, spec.duration_s)
        count = len(offsets)
    elif spec.duration_s is not None:
        count = None  # workers stop at the deadline
    else:
        count = spec.requests or DEFAULT_REQUESTS
    prompts = build_prompts(spec, model, warmup + (count or POOL_SIZE))
    total = count if spec.duration_s is None else None
    if spec.progress:
        what = f"{count} requests" if total else f"{spec.duration_s:g}s"
        print(f"{label}: concurrency {concurrency or 'unlimited'}, rate {rate or 'max'}, {what}, "
              f"warm-up {warmup}", file=sys.stderr, flush=True)
    async with _new_session(concurrency, spec.timeout_s) as session:
        if warmup:
            await PointRunner(session, url, headers, chat).closed_loop(
                prompts, min(warmup, concurrency or warmup), warmup, None)
        monitor = Monitor(label, total, spec.progress)
        runner = PointRunner(session, url, headers, chat, monitor)
        measured = prompts[warmup:] or prompts
        probe = asyncio.create_task(monitor.run())
        # No cyclic GC pauses inside the measured window (they would delay timestamps by milliseconds).
        # A request leaves almost no cyclic garbage (a few hundred objects per 3000 requests), and the
        # raw responses held are bounded by RETAIN_BYTES, so memory stays bounded without it.
        gc.collect()
        gc_was_enabled = gc.isenabled()
        gc.disable()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        monitor.started = wall0
        try:
            if offsets is None:
                deadline = wall0 + spec.duration_s if spec.duration_s is not None else None
                await runner.closed_loop(measured, concurrency or 1, count, deadline)
            else:
                await runner.open_loop(measured, offsets, concurrency)
        finally:
            wall1, cpu1 = time.perf_counter(), time.process_time()
            probe.cancel()
            if gc_was_enabled:
                gc.enable()
        if spec.progress:
            monitor.report(wall1)
    results = runner.analyse()
    elapsed = wall1 - wall0
    cpu_util = (cpu1 - cpu0) / elapsed if elapsed > 0 else 0.0
    # the window is the planned duration at least: an arrival process that fell quiet early still ran
    window = max(elapsed, spec.duration_s or 0.0)
    return summarize_point(results, concurrency, rate, spec, window, cpu_util, monitor)


def summarize_point(results: list[RequestResult], concurrency: int | None, rate: float | None, spec: LoadSpec,
                    wall_s: float, cpu_util: float, monitor: Monitor) -> dict[str, Any]:
    """Aggregate the requests of one run into the result document's run object."""
    ok = [r for r in results if r.error is None]
    errors: dict[str, int] = {}
    examples: dict[str, str] = {}
    for r in results:
        if r.error is not None:
            errors[r.error] = errors.get(r.error, 0) + 1
            examples.setdefault(r.error, r.error_detail)
    output_tokens = sum(r.output_tokens for r in ok)
    input_tokens = sum(r.input_tokens for r in ok)
    duration = wall_s if wall_s > 0 else float("nan")
    itl = [gap for r in ok for gap in r.itl]
    goodput = None
    if spec.slo_ms:
        limits = {k: v / 1000 for k, v in spec.slo_ms.items()}
        good = sum(1 for r in ok if r.ttft <= limits.get("ttft", math.inf) and r.e2e <= limits.get("e2e", math.inf)
                   and (r.output_tokens < 2 or r.tpot <= limits.get("tpot", math.inf)))
        goodput = round(good / duration, 4)
    send_lag = [max(0.0, r.sent - r.due) for r in results]
    lag_stats = summarize_ms(send_lag)
    loop_stats = summarize_ms(monitor.lags)
    reasons = []
    if cpu_util > MAX_CPU_UTIL:
        reasons.append(f"client CPU {cpu_util:.0%} of a core")
    if loop_stats and loop_stats["p90"] > MAX_LOOP_LAG_P90_MS:
        reasons.append(f"event-loop lag p90 {loop_stats['p90']:.1f} ms")
    if lag_stats and lag_stats["p90"] > MAX_SEND_LAG_P90_MS:
        reasons.append(f"send lag p90 {lag_stats['p90']:.1f} ms")
    return {
        "concurrency": concurrency,
        "rate": rate,
        "burstiness": spec.burstiness if rate is not None else None,
        "requests_ok": len(ok),
        "requests_failed": len(results) - len(ok),
        "errors": errors,
        "error_examples": examples,
        "duration_s": round(wall_s, 6),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "output_tokens_estimated": sum(1 for r in ok if r.estimated),
        "ttft_ms": summarize_ms([r.ttft for r in ok]),
        "itl_ms": summarize_ms(itl),
        "tpot_ms": summarize_ms([r.tpot for r in ok if r.output_tokens > 1]),
        "e2e_ms": summarize_ms([r.e2e for r in ok]),
        "output_tokens_per_s": round(output_tokens / duration, 4),
        "total_tokens_per_s": round((input_tokens + output_tokens) / duration, 4),
        "requests_per_s": round(len(ok) / duration, 4),
        "goodput_requests_per_s": goodput,
        "max_in_flight": monitor.max_in_flight,
        "client": {"cpu_util": round(cpu_util, 4), "send_lag_ms": lag_stats, "loop_lag_ms": loop_stats,
                   "saturated": bool(reasons), "reasons": reasons},
    }


# -- whole benchmark --------------------------------------------------------------------------------
def api_base(url: str) -> str:
    """``http://h:8000``, ``http://h:8000/`` and ``http://h:8000/v1`` all mean ``http://h:8000/v1``."""
    base = url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


async def discover_model(base: str, headers: dict[str, str], timeout_s: float) -> str:
    """The first model the server lists under /v1/models."""
    async with _new_session(1, min(timeout_s, 30.0)) as session:
        try:
            async with session.get(base + "/models", headers=headers) as response:
                if response.status != 200:
                    raise RuntimeError(f"GET {base}/models answered HTTP {response.status}")
                data = await response.json(content_type=None)
        except (OSError, asyncio.TimeoutError) as exc:
            raise RuntimeError(f"cannot reach {base}/models: {classify_exception(exc)[1]}") from None
    models = data.get("data") if isinstance(data, dict) else None
    if not models or not isinstance(models[0], dict) or "id" not in models[0]:
        raise RuntimeError(f"{base}/models lists no model")
    return str(models[0]["id"])


async def run_benchmark(spec: LoadSpec) -> dict[str, Any]:
    """Every point of the sweep, one after the other; returns the result document."""
    base = api_base(spec.url)
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if spec.api_key:
        headers["Authorization"] = f"Bearer {spec.api_key}"
    model = spec.model or await discover_model(base, headers, spec.timeout_s)
    url = base + ("/chat/completions" if spec.endpoint == "chat" else "/completions")
    points = [(c, r) for c in spec.concurrency for r in spec.rate]
    runs = []
    for i, (concurrency, rate) in enumerate(points, 1):
        label = f"run {i}/{len(points)}"
        runs.append(await run_point(spec, url, headers, model, concurrency, rate, label))
    settings = {k: v for k, v in asdict(spec).items() if k not in ("api_key", "url", "model", "progress")}
    return {"version": RESULT_VERSION, "url": spec.url, "model": model, "event_loop": _loop_name(),
            "settings": settings, "runs": runs}


def _loop_name() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def run(spec: LoadSpec) -> dict[str, Any]:
    """Run the benchmark on a fresh event loop (uvloop when installed)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run_benchmark(spec))
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(run_benchmark(spec))
    finally:
        loop.close()


# -- command line -----------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="loadgen.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", metavar="PATH", help="read all settings as one JSON object ('-' = stdin)")
    p.add_argument("--url", help="base URL of the server, e.g. http://127.0.0.1:8000")
    p.add_argument("--model", help="model name (default: the first one /v1/models lists)")
    p.add_argument("--api-key", help="bearer token (default: $OPENAI_API_KEY)")
    p.add_argument("--endpoint", choices=ENDPOINTS, default="completions")
    p.add_argument("--concurrency", default="1", help="comma list sweeps, e.g. 1,8,32")
    p.add_argument("--rate", default="inf", help="requests/s (Poisson arrivals), comma list sweeps")
    p.add_argument("--burstiness", type=float, default=1.0, help="gamma shape of the gaps; 1 = Poisson")
    p.add_argument("--requests", type=int, help=f"measured requests per run (default {DEFAULT_REQUESTS})")
    p.add_argument("--duration", type=float, help="measure for this many seconds instead")
    p.add_argument("--warmup", type=int, help="warm-up requests per run (default: one per slot)")
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--dataset", default="random", help="'random' or a JSONL file of prompts")
    p.add_argument("--no-ignore-eos", dest="ignore_eos", action="store_false")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=300.0, help="per-request timeout, seconds")
    p.add_argument("--slo", help="goodput SLOs in ms, e.g. ttft=500,tpot=50")
    p.add_argument("--json", action="store_true", help="print the result document as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return p


def spec_from_args(args: argparse.Namespace) -> LoadSpec:
    if args.config:
        if args.config == "-":
            text = sys.stdin.read()
        else:
            with open(args.config, encoding="utf-8") as handle:
                text = handle.read()
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("--config must hold a JSON object")
        data.setdefault("api_key", os.environ.get("OPENAI_API_KEY"))
        if args.quiet:
            data["progress"] = False
        return LoadSpec.from_dict(data)
    if not args.url:
        raise ValueError("--url is required (or --config)")
    return LoadSpec.from_dict({
        "url": args.url, "model": args.model, "api_key": args.api_key or os.environ.get("OPENAI_API_KEY"),
        "endpoint": args.endpoint, "concurrency": parse_concurrency_list(args.concurrency),
        "rate": parse_rate_list(args.rate), "burstiness": args.burstiness, "requests": args.requests,
        "duration_s": args.duration, "warmup": args.warmup, "input_len": args.input_len,
        "output_len": args.output_len, "dataset": args.dataset, "ignore_eos": args.ignore_eos, "seed": args.seed,
        "timeout_s": args.timeout, "slo_ms": parse_slo(args.slo) if args.slo else {}, "progress": not args.quiet,
    })


def format_text(report: dict[str, Any]) -> str:
    lines = [f"model {report['model']} at {report['url']} ({report['event_loop']})"]
    for run_ in report["runs"]:
        lines.append(f"concurrency {run_['concurrency'] or '-'} rate {run_['rate'] or 'max'}: "
                     f"{run_['requests_ok']} ok, {run_['requests_failed']} failed {run_['errors'] or ''} "
                     f"in {run_['duration_s']:.2f}s, {run_['requests_per_s']:.2f} req/s, "
                     f"{run_['output_tokens_per_s']:.1f} output tok/s")
        for name in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
            s = run_[name]
            if s:
                lines.append(f"  {name[:-3]:5} mean {s['mean']:.2f}  p50 {s['p50']:.2f}  p90 {s['p90']:.2f}  "
                             f"p99 {s['p99']:.2f} ms")
        if run_["client"]["saturated"]:
            lines.append(f"  client saturated: {'; '.join(run_['client']['reasons'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        spec = spec_from_args(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    try:
        report = run(spec)
    except RuntimeError as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("loadgen: interrupted", file=sys.stderr)
        return 130
    print(json.dumps(report) if args.json else format_text(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
