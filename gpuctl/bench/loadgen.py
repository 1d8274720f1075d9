#!/usr/bin/env python3
"""Load generator for OpenAI-compatible LLM endpoints (vLLM, TGI, ...): latency, throughput, goodput.

This one file is the whole measuring client. It imports only the standard library and aiohttp (and
uvloop when it is installed), nothing from gpuctl, so it can be copied to a GPU host and run there
with the engine image's Python against localhost::

    python3 loadgen.py --url http://127.0.0.1:8000 --concurrency 1,8,32 --requests 200 --json

``--config -`` reads every setting (the API key included) as one JSON object from stdin, which keeps
secrets out of the process list. Progress goes to stderr; the result goes to stdout (``--json``: the
document gpuctl parses). Metric definitions and the client self-check are described in docs/bench.md.
Exit status: 0 with a result (even when requests failed: the result says which and why), 2 bad
settings or dataset, 3 server unreachable, 4 the server does not answer like the OpenAI API, 6 it
refused the API key, 1 anything unexpected (a traceback only with GPUCTL_DEBUG=1).

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
import hashlib
import itertools
import json
import math
import os
import random
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from typing import Any

RESULT_VERSION = 1
ENDPOINTS = ("completions", "chat")
SLO_KEYS = ("ttft", "tpot", "e2e")
DEFAULT_REQUESTS = 100
POOL_SIZE = 1000  # prompt texts built before a run; longer runs cycle through them (each request's tag stays unique)
TAG_WORDS = 4  # words at the start of every prompt, unique per request (100**4 requests per point)
RETAIN_BYTES = 256 << 20  # raw responses held for parsing after the run before parsing starts early
UNLIMITED_POOL_RETRIES = 256  # re-sends on dead pooled connections when the pool has no size limit
MIN_JUDGED_WINDOW_S = 1.0  # shorter measured windows are too short to judge the client's CPU use

# Self-check limits: above them, the client's own timestamps are no longer trustworthy.
MAX_CPU_UTIL = 0.85  # of one core (the event loop is single-threaded)
MAX_LOOP_LAG_P90_MS = 5.0
MAX_SEND_LAG_P90_MS = 10.0
MAX_SEND_LAG_SHARE = 0.05  # ... and the mean send lag above this share of the mean request time
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
    seed: int | None = None  # None: a fresh seed per run; a given seed reproduces a run's prompts exactly
    prefix_share: float = 0.0  # fraction of each prompt that all prompts of a point share
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
        if self.seed is not None and self.seed < 0:
            raise ValueError("seed cannot be negative")
        if not 0 <= self.prefix_share <= 1:
            raise ValueError(f"prefix_share {self.prefix_share} must be a fraction between 0 and 1")
        if self.prefix_share and self.dataset != "random":
            raise ValueError("prefix_share applies to random prompts; a dataset's prompts share what they share")


class BadInput(ValueError):
    """A setting or dataset the user gave cannot be used (exit 2)."""


class Unreachable(RuntimeError):
    """The server cannot be reached at all (exit 3)."""


class NotOpenAI(RuntimeError):
    """The server answers, but not the way the OpenAI API does: HTML, broken JSON, an error status (exit 4)."""


class Refused(RuntimeError):
    """The server refused the API key (exit 6)."""


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

    __slots__ = ("cached_tokens", "due", "e2e", "ended", "error", "error_detail", "estimated", "input_counted",
                 "input_tokens", "itl", "output_tokens", "prompt", "reads", "retries", "reused", "sent", "short",
                 "tpot", "ttft")

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
        self.cached_tokens = 0
        self.estimated = False  # output tokens counted by the client (one per text event), not from usage
        self.input_counted = False  # input tokens are the client's own count of the prompt, not from usage
        self.short = False  # fewer output tokens than asked, where exactly that many were asked for
        self.reused = False  # the current attempt went out on a pooled (kept-alive) connection
        self.retries = 0

    def fail(self, kind: str, detail: str = "") -> RequestResult:
        self.error = kind
        self.error_detail = " ".join(detail[:600].split())[:300]  # one line, even for an HTML error page
        self.reads = None
        return self


@dataclass
class Prompt:
    """A serialised request, built before the run, split where each request's unique tag goes."""

    head: bytes
    tail: bytes
    input_tokens: int  # the client's own count (words), used when the server reports no usage
    max_tokens: int
    ignore_eos: bool = True

    def body(self, tag: bytes) -> bytes:
        return self.head + tag + self.tail


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
    payloads = sse_payloads(reads)
    if not payloads:
        start = b"".join(data for _, data in reads[:4])[:200].decode("utf-8", "replace")
        return result.fail("invalid response", f"not an event stream: {start}")
    for stamp, payload in payloads:
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
    if finish is None and usage is None:
        # without a finish reason nothing says the answer is complete: a [DONE] after it (a proxy or a
        # server giving up) ends the stream, not the answer
        if done:
            return result.fail("truncated", f"[DONE] after {len(content)} text events, with no finish reason "
                                            "and no usage")
        return result.fail("broken stream", "the stream ended without a finish reason or [DONE]")
    if usage and isinstance(usage.get("completion_tokens"), int):
        tokens = usage["completion_tokens"]
    else:
        # one token per event, as servers stream when they send no usage; never max_tokens, which a
        # server stopped by its context did not reach
        tokens = len(content)
        result.estimated = True
    result.output_tokens = tokens
    result.short = tokens < prompt.max_tokens and (prompt.ignore_eos or finish == "length")
    prompt_tokens = usage.get("prompt_tokens") if usage else None
    if isinstance(prompt_tokens, int):
        result.input_tokens = prompt_tokens
        details = usage.get("prompt_tokens_details") if usage else None
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        result.cached_tokens = cached if isinstance(cached, int) else 0
    else:
        result.input_tokens = prompt.input_tokens
        result.input_counted = True
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
_TAG_SLOT = "\x00tag\x00"  # where each request's tag goes in its serialised body
_TAG_SLOT_JSON = json.dumps(_TAG_SLOT)[1:-1].encode()


def resolve_seed(seed: int | None) -> int:
    """The seed a run uses: the one given, or a fresh one (so that no two runs send the same prompts)."""
    return seed if seed is not None else random.SystemRandom().randrange(1 << 32)


def salt_for(seed: int) -> str:
    """A run's salt, from its seed: every prompt of the run starts with words derived from it."""
    return hashlib.sha256(b"gpuctl-bench-salt:%d" % seed).hexdigest()[:8]


@dataclass
class DatasetEntry:
    prompt: str | list[dict[str, Any]]  # completion text, or chat messages
    words: int
    max_tokens: int | None


class PromptPool:
    """The requests of one point (one concurrency x rate) of a run.

    Every prompt starts with ``TAG_WORDS`` words unique to its request, derived from the run's salt and
    the point: no two requests, points or runs share a prefix that a server's prefix cache could answer
    (vLLM's and llama.cpp's caches are on by default, and a cached prompt makes TTFT read several times
    too low). ``prefix_share`` deliberately puts a prefix shared by every request of the point (a system
    prompt) before the tags. The prompt texts are built before the run; requests past the pool cycle
    through them, each with its own tag.
    """

    def __init__(self, spec: LoadSpec, model: str, point: int, size: int,
                 dataset: list[DatasetEntry] | None = None) -> None:
        if spec.seed is None:
            raise ValueError("resolve the seed first")
        rng = random.Random(f"{salt_for(spec.seed)}:{point}")
        self._digits = [[w.encode() for w in rng.sample(_PROMPT_WORDS, len(_PROMPT_WORDS))]
                        for _ in range(TAG_WORDS)]
        self.prompts: list[Prompt] = []
        if dataset is None:
            shared = round(spec.prefix_share * spec.input_len)
            self._tag_words = min(TAG_WORDS, spec.input_len - shared)
            prefix = [rng.choice(_PROMPT_WORDS) for _ in range(shared)]
            rest = spec.input_len - shared - self._tag_words
            for _ in range(min(size, POOL_SIZE)):
                words = [*prefix, *([_TAG_SLOT] if self._tag_words else []),
                         *(rng.choice(_PROMPT_WORDS) for _ in range(rest))]
                self.prompts.append(self._serialise(spec, model, " ".join(words), spec.input_len, None))
        else:
            self._tag_words = TAG_WORDS
            for entry in dataset[:size]:
                self.prompts.append(self._serialise(spec, model, _tagged(entry.prompt), entry.words + TAG_WORDS,
                                                    entry.max_tokens))

    def _serialise(self, spec: LoadSpec, model: str, prompt: str | list[dict[str, Any]], input_tokens: int,
                   max_tokens: int | None) -> Prompt:
        max_tokens = max_tokens or spec.output_len
        body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "stream": True,
                                "stream_options": {"include_usage": True}}
        if spec.endpoint == "chat":
            body["messages"] = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt if isinstance(prompt, str) else "\n".join(
                str(m.get("content", "")) for m in prompt)
        if spec.ignore_eos:
            body["ignore_eos"] = True
        head, _, tail = json.dumps(body, separators=(",", ":")).encode().partition(_TAG_SLOT_JSON)
        return Prompt(head, tail, input_tokens, max_tokens, spec.ignore_eos)

    def tag(self, index: int) -> bytes:
        """The unique first words of request ``index`` (its digits in base 100, lowest first)."""
        words = []
        for digits in self._digits[: self._tag_words]:
            index, digit = divmod(index, len(digits))
            words.append(digits[digit])
        return b" ".join(words)

    def request(self, index: int) -> tuple[Prompt, bytes]:
        """Request ``index`` of the point: its prompt and its serialised body."""
        prompt = self.prompts[index % len(self.prompts)]
        return prompt, prompt.body(self.tag(index))


def _tagged(prompt: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """The prompt with the tag slot at its very start (the first message's, for chat)."""
    if isinstance(prompt, str):
        return f"{_TAG_SLOT} {prompt}"
    first = dict(prompt[0])
    content = first.get("content")
    if isinstance(content, list):
        first["content"] = [{"type": "text", "text": _TAG_SLOT}, *content]
    else:
        first["content"] = f"{_TAG_SLOT} {content or ''}"
    return [first, *prompt[1:]]


def read_dataset(path: str, seed: int) -> list[DatasetEntry]:
    """JSONL lines with "prompt" (text) or "messages" (chat), and optionally "max_tokens", shuffled by
    ``seed``. Any problem with the file is ``BadInput`` naming the file (and line)."""
    entries = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    entries.append(_dataset_entry(line, f"{path}:{number}"))
    except OSError as exc:
        raise BadInput(f"cannot read dataset {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BadInput(f"dataset {path} is not UTF-8 text (expected JSON lines)") from None
    if not entries:
        raise BadInput(f"dataset {path} has no prompts")
    random.Random(seed).shuffle(entries)
    return entries


def _dataset_entry(line: str, where: str) -> DatasetEntry:
    try:
        item = json.loads(line)
    except ValueError:
        raise BadInput(f"{where}: not a JSON object") from None
    if not isinstance(item, dict):
        raise BadInput(f"{where}: not a JSON object")
    prompt = item.get("messages") or item.get("prompt")
    if isinstance(prompt, list):
        if not all(isinstance(m, dict) and "role" in m for m in prompt):
            raise BadInput(f"{where}: \"messages\" must be a list of {{\"role\": ..., \"content\": ...}} objects")
        words = " ".join(str(m.get("content", "")) for m in prompt)
    elif isinstance(prompt, str) and prompt:
        words = prompt
    else:
        raise BadInput(f"{where}: needs a non-empty \"prompt\" (text) or \"messages\" (list)")
    max_tokens = item.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)
                                   or max_tokens < 1):
        raise BadInput(f"{where}: \"max_tokens\" must be a whole number >= 1")
    return DatasetEntry(prompt, len(words.split()), max_tokens)


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

    def __init__(self, session: Any, url: str, headers: dict[str, str], chat: bool, retries: int,
                 monitor: Monitor | None = None) -> None:
        self.session = session
        self.url = url
        self.headers = headers
        self.chat = chat
        self.retries = retries  # the pool size: how many dead pooled connections a request can meet
        self.monitor = monitor
        self.results: list[RequestResult] = []
        self.retained = 0  # bytes of raw responses waiting for analysis

    async def send(self, pool: PromptPool, index: int, due: float) -> RequestResult:
        """One streaming request. Each read is stamped as it arrives; parsing waits until after the run
        (or until RETAIN_BYTES of responses are held), so it never delays another stream's timestamps."""
        perf = time.perf_counter
        monitor = self.monitor
        if monitor:
            monitor.in_flight += 1
            monitor.max_in_flight = max(monitor.max_in_flight, monitor.in_flight)
        prompt, body = pool.request(index)
        result = RequestResult(prompt, due)
        reads: list[tuple[float, bytes]] = []
        size = 0
        while True:
            answered = False
            result.reused = False
            try:
                async with self.session.post(self.url, data=body, headers=self.headers,
                                             trace_request_ctx=result) as response:
                    answered = True
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
                # A server may close a kept-alive connection after a response (llama.cpp's does, while
                # advertising keep-alive); a request written to it in the meantime dies before any byte
                # of an answer. The server never saw it, so it is sent again, at most once per pooled
                # connection that can be dead.
                if not answered and result.reused and result.retries < self.retries and _connection_lost(exc):
                    result.retries += 1
                    continue
                result.fail(*classify_exception(exc))
            break
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

    async def closed_loop(self, pool: PromptPool, first: int, workers: int, count: int | None,
                          deadline: float | None) -> None:
        """``workers`` coroutines send back to back, each one concurrency slot, requests ``first``,
        ``first + 1``, ... of ``pool`` until ``count`` were sent or the ``deadline`` passed."""
        cursor = itertools.count(first) if count is None else iter(range(first, first + count))

        async def worker() -> None:
            due = time.perf_counter()
            for index in cursor:
                if deadline is not None and due >= deadline:
                    return
                result = await self.send(pool, index, due)
                due = result.ended  # the slot was free from then on: a later send is client lag

        await asyncio.gather(*(worker() for _ in range(workers)))

    async def open_loop(self, pool: PromptPool, first: int, offsets: list[float], limit: int | None) -> None:
        """Requests leave at planned times; with a limit, waiting for a free slot delays the send but is
        neither latency nor client lag."""
        slots = asyncio.Semaphore(limit) if limit else None
        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()

        async def one(index: int, due: float) -> None:
            try:
                await self.send(pool, index, due)
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
            task = asyncio.create_task(one(first + index, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))


async def _stamp_sent(_session: Any, context: Any, _params: Any) -> None:
    # aiohttp calls this right before it writes the request body to the socket. On Python < 3.12 that
    # write happens in a task one loop iteration after session.post() was called, so a stamp taken
    # before post() would count the client's own queueing as server latency.
    context.trace_request_ctx.sent = time.perf_counter()


async def _mark_reused(_session: Any, context: Any, _params: Any) -> None:
    if isinstance(context.trace_request_ctx, RequestResult):
        context.trace_request_ctx.reused = True


def _connection_lost(exc: BaseException) -> bool:
    """The connection broke (not a timeout, not a malformed answer)."""
    import aiohttp

    return isinstance(exc, (aiohttp.ClientConnectionError, ConnectionError)) and not isinstance(
        exc, asyncio.TimeoutError)


def _new_session(limit: int | None, timeout_s: float) -> Any:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=limit or 0, limit_per_host=0, ttl_dns_cache=300,
                                     keepalive_timeout=60, enable_cleanup_closed=False)
    stamping = aiohttp.TraceConfig()
    stamping.on_request_chunk_sent.append(_stamp_sent)
    stamping.on_connection_reuseconn.append(_mark_reused)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s),
                                 read_bufsize=1 << 20, auto_decompress=False, trust_env=False,
                                 trace_configs=[stamping])


async def run_point(spec: LoadSpec, url: str, headers: dict[str, str], model: str, concurrency: int | None,
                    rate: float | None, label: str, point: int = 1,
                    dataset: list[DatasetEntry] | None = None) -> dict[str, Any]:
    """Warm up, then measure one (concurrency, rate) point; returns its result object. ``spec.seed`` must
    be resolved (see ``resolve_seed``)."""
    assert spec.seed is not None
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
    pool = PromptPool(spec, model, point, warmup + (count or POOL_SIZE), dataset)
    retries = concurrency or UNLIMITED_POOL_RETRIES
    total = count if spec.duration_s is None else None
    if spec.progress:
        what = f"{count} requests" if total else f"{spec.duration_s:g}s"
        print(f"{label}: concurrency {concurrency or 'unlimited'}, rate {rate or 'max'}, {what}, "
              f"warm-up {warmup}", file=sys.stderr, flush=True)
    async with _new_session(concurrency, spec.timeout_s) as session:
        if warmup:
            await PointRunner(session, url, headers, chat, retries).closed_loop(
                pool, 0, min(warmup, concurrency or warmup), warmup, None)
        monitor = Monitor(label, total, spec.progress)
        runner = PointRunner(session, url, headers, chat, retries, monitor)
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
                await runner.closed_loop(pool, warmup, concurrency or 1, count, deadline)
            else:
                await runner.open_loop(pool, warmup, offsets, concurrency)
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
    counted_out = sum(1 for r in ok if r.estimated)
    counted_in = sum(1 for r in ok if r.input_counted)
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
    # Saturated: the client's own timestamps may be late, so latencies read high. Its CPU use says so
    # only over a window long enough to mean anything (a few ms of sending is all CPU).
    reasons = []
    if cpu_util > MAX_CPU_UTIL and wall_s >= MIN_JUDGED_WINDOW_S:
        reasons.append(f"client CPU {cpu_util:.0%} of a core")
    if loop_stats and loop_stats["p90"] > MAX_LOOP_LAG_P90_MS:
        reasons.append(f"event-loop lag p90 {loop_stats['p90']:.1f} ms")
    # Sent late: requests left later than planned, so the load was lighter than asked (by about the mean
    # lag over the mean request time); each latency is still measured from the actual send.
    e2e_mean = math.fsum(r.e2e for r in ok) / len(ok) if ok else 0.0
    sent_late = bool(lag_stats and lag_stats["p90"] > MAX_SEND_LAG_P90_MS
                     and lag_stats["mean"] / 1000 > MAX_SEND_LAG_SHARE * e2e_mean)
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
        "output_tokens_estimated": counted_out,
        "output_tokens_requested": sum(r.prompt.max_tokens for r in ok),
        "output_tokens_source": _source(counted_out, len(ok)),
        "input_tokens_source": _source(counted_in, len(ok)),
        "cached_input_tokens": sum(r.cached_tokens for r in ok),
        "short_responses": sum(1 for r in ok if r.short),
        "truncated_responses": errors.get("truncated", 0),
        "retried": sum(r.retries for r in results),
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
                   "saturated": bool(reasons), "reasons": reasons, "sent_late": sent_late},
    }


def _source(counted: int, total: int) -> str | None:
    """Where a token total came from: the server's usage, the client's count, or both (mixed)."""
    if not total:
        return None
    return "usage" if counted == 0 else "counted" if counted == total else "mixed"


# -- whole benchmark --------------------------------------------------------------------------------
def api_base(url: str) -> str:
    """``http://h:8000``, ``http://h:8000/`` and ``http://h:8000/v1`` all mean ``http://h:8000/v1``."""
    base = url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


async def discover_model(base: str, headers: dict[str, str], timeout_s: float) -> str:
    """The first model the server lists under /v1/models."""
    import aiohttp

    where = f"GET {base}/models"
    async with _new_session(1, min(timeout_s, 30.0)) as session:
        try:
            async with session.get(base + "/models", headers=headers) as response:
                body = await response.read()
                kind = response.headers.get("Content-Type", "no content type").split(";")[0]
                status = response.status
        except (OSError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise Unreachable(f"cannot reach {base}/models: {classify_exception(exc)[1]}") from None
    if status in (401, 403):
        raise Refused(f"{where} answered HTTP {status}: the server refused the API key")
    if status != 200:
        raise NotOpenAI(f"{where} answered HTTP {status} ({kind}): {_excerpt(body)}")
    try:
        data = json.loads(body)
    except ValueError:
        raise NotOpenAI(f"{where} answered {kind} that is not JSON: {_excerpt(body)}") from None
    models = data.get("data") if isinstance(data, dict) else None
    if not isinstance(models, list) or not models or not isinstance(models[0], dict) or "id" not in models[0]:
        raise NotOpenAI(f"{where} lists no model: {_excerpt(body)}")
    return str(models[0]["id"])


def _excerpt(body: bytes) -> str:
    text = " ".join(body[:160].decode("utf-8", "replace").split())
    return repr(text) if text else "an empty body"


async def run_benchmark(spec: LoadSpec) -> dict[str, Any]:
    """Every point of the sweep, one after the other; returns the result document."""
    base = api_base(spec.url)
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if spec.api_key:
        headers["Authorization"] = f"Bearer {spec.api_key}"
    given = spec.seed is not None
    spec = replace(spec, seed=resolve_seed(spec.seed))
    assert spec.seed is not None
    dataset = None if spec.dataset == "random" else read_dataset(spec.dataset, spec.seed)
    model = spec.model or await discover_model(base, headers, spec.timeout_s)
    url = base + ("/chat/completions" if spec.endpoint == "chat" else "/completions")
    points = [(c, r) for c in spec.concurrency for r in spec.rate]
    if spec.progress:
        fresh = "the prompts of an earlier run with this seed" if given else "prompts no earlier run sent"
        print(f"seed {spec.seed}, salt {salt_for(spec.seed)}: {fresh} (--seed {spec.seed} sends them again)",
              file=sys.stderr, flush=True)
    runs = []
    for i, (concurrency, rate) in enumerate(points, 1):
        label = f"run {i}/{len(points)}"
        runs.append(await run_point(spec, url, headers, model, concurrency, rate, label, i, dataset))
    settings = {k: v for k, v in asdict(spec).items() if k not in ("api_key", "url", "model", "progress")}
    settings["salt"] = salt_for(spec.seed)
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
    p.add_argument("--seed", type=int, help="reproduce a run's prompts exactly (default: fresh ones every run)")
    p.add_argument("--prefix-share", type=float, default=0.0,
                   help="fraction of each prompt shared by all requests of a point (a system prompt)")
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
        "prefix_share": args.prefix_share,
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


EXIT_CODES = ((BadInput, 2), (Unreachable, 3), (NotOpenAI, 4), (Refused, 6))


def main(argv: list[str] | None = None) -> int:
    """Run from the command line; every failure is one ``loadgen: ...`` line on stderr and an exit code."""
    args = _parser().parse_args(argv)
    try:
        spec = spec_from_args(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    try:
        report = run(spec)
    except KeyboardInterrupt:
        print("loadgen: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        code = next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), 1)
        if os.environ.get("GPUCTL_DEBUG"):
            traceback.print_exc()
        message = str(exc) if code != 1 else f"unexpected error: {type(exc).__name__}: {exc}"
        print(f"loadgen: {message}", file=sys.stderr, flush=True)
        return code
    print(json.dumps(report) if args.json else format_text(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
