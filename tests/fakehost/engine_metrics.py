"""The fake engine's Prometheus ``/metrics``, in the format of the engine it plays (vLLM, SGLang or TGI).

Standard library only: it is copied into the fake engine image next to mock_openai and the engine shim,
which installs it (:func:`install`). Every figure comes from the mock's own state, so a test can check
what gpuctl reads against the mock's records:

* running: the mock's requests in flight; waiting: 0 unless set through ``POST /_mock/metrics``;
* the request counter: generation requests answered with 200 (vLLM counts finished requests by reason);
* prompt and generation token counters: the sums over those requests;
* time to first token: first event - request received; inter-token latency: (last event - first event) /
  (tokens - 1), both of streamed requests, in each engine's own histogram buckets;
* KV cache usage: in-flight requests / 100 (capped at 1) unless set through ``POST /_mock/metrics``.

``POST /_mock/metrics`` takes ``{"waiting": N, "kv_cache_usage": X}`` (null: back to derived).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

#: the metrics format for an engine command line, overridden by the environment (none: no /metrics)
FORMAT_ENV = "FAKE_ENGINE_METRICS"
FORMATS = ("vllm", "sglang", "tgi", "none")
_KV_REQUESTS = 100.0

# each engine's own bucket bounds (seconds)
_VLLM_TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
              40.0, 80.0, 160.0, 640.0, 2560.0)
_VLLM_ITL = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
             80.0)
_SGLANG_TTFT = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 200.0,
                400.0)
_SGLANG_ITL = (0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060, 0.080, 0.100,
               0.200, 0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000)
_TGI_DURATION = tuple(round(0.0001 * 1.5 ** i, 6) for i in range(40))
_TGI_TOKENS = tuple(float(2 ** i) for i in range(16))

overrides: dict[str, float | None] = {"waiting": None, "kv_cache_usage": None}


def format_for(argv: Sequence[str]) -> str:
    """The engine an engine command line starts: ``vllm serve`` (vLLM), ``--model-id`` (TGI's launcher),
    ``--model-path`` (SGLang's launch_server); the environment's choice first."""
    chosen = os.environ.get(FORMAT_ENV, "")
    if chosen in FORMATS:
        return chosen
    if "--model-id" in argv or any(a.startswith("--model-id=") for a in argv):
        return "tgi"
    if "--model-path" in argv or any(a.startswith("--model-path=") for a in argv):
        return "sglang"
    return "vllm"


def install(fmt: str, routes: dict[tuple[str, str], Callable[[Any, bytes], bytes]]) -> None:
    """Serve ``/metrics`` in ``fmt`` (and ``/_mock/metrics``) through mock_openai's extra routes."""
    if fmt == "none":
        return
    routes[("GET", "/metrics")] = lambda mock, body: _http(200, render(fmt, mock), "text/plain; version=0.0.4")
    routes[("POST", "/_mock/metrics")] = _configure


def _configure(mock: Any, body: bytes) -> bytes:
    try:
        changes = json.loads(body or b"{}")
        for key, value in changes.items():
            if key not in overrides:
                raise ValueError(f"unknown metric setting {key!r}")
            overrides[key] = None if value is None else float(value)
    except (ValueError, TypeError, AttributeError) as exc:
        return _http(400, json.dumps({"error": str(exc)}), "application/json")
    return _http(200, json.dumps(overrides), "application/json")


def _http(status: int, text: str, content_type: str) -> bytes:
    body = text.encode()
    reason = {200: "OK", 400: "Bad Request"}[status]
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "\r\n").encode() + body


class _Figures:
    """What the mock has done, in the terms every engine reports."""

    def __init__(self, mock: Any) -> None:
        done = [r for r in mock.records if r.get("status") == 200 and r.get("end") is not None]
        self.running = float(mock.in_flight)
        self.waiting = overrides["waiting"] if overrides["waiting"] is not None else 0.0
        kv = overrides["kv_cache_usage"]
        self.kv = kv if kv is not None else min(1.0, mock.in_flight / _KV_REQUESTS)
        self.requests = len(done)
        self.prompt_tokens = [float(r.get("prompt_tokens") or 0) for r in done]
        self.generation_tokens = [float(r.get("tokens") or 0) for r in done]
        streamed = [r for r in done if r.get("first") is not None and r["first"] < r["end"]]
        self.ttft = [r["first"] - r["recv"] for r in done if r.get("first") is not None]
        self.itl = [(r["end"] - r["first"]) / (r["tokens"] - 1) for r in streamed if r.get("tokens", 0) > 1]


def render(fmt: str, mock: Any) -> str:
    figures = _Figures(mock)
    model = mock.settings.model
    if fmt == "vllm":
        labels = f'engine="0",model_name="{model}"'
        return "".join([
            _gauge("vllm:num_requests_running", "Number of requests in model execution batches.", labels,
                   figures.running),
            _gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", labels,
                   figures.waiting),
            _gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", labels, figures.kv),
            _counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.", labels,
                     sum(figures.prompt_tokens)),
            _counter("vllm:generation_tokens_total", "Number of generation tokens processed.", labels,
                     sum(figures.generation_tokens)),
            _counter("vllm:request_success_total", "Count of successfully processed requests.",
                     f'{labels},finished_reason="length"', float(figures.requests)),
            _histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", labels,
                       _VLLM_TTFT, figures.ttft),
            _histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", labels,
                       _VLLM_ITL, figures.itl),
        ])
    if fmt == "sglang":
        labels = f'model_name="{model}"'
        return "".join([
            _gauge("sglang:num_running_reqs", "The number of running requests.", labels, figures.running),
            _gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue.", labels, figures.waiting),
            _gauge("sglang:token_usage", "The token usage.", labels, figures.kv),
            _counter("sglang:prompt_tokens_total", "Number of prefill tokens processed.", labels,
                     sum(figures.prompt_tokens)),
            _counter("sglang:generation_tokens_total", "Number of generation tokens processed.", labels,
                     sum(figures.generation_tokens)),
            _counter("sglang:num_requests_total", "Number of requests processed.", labels, float(figures.requests)),
            _histogram("sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.", labels,
                       _SGLANG_TTFT, figures.ttft),
            _histogram("sglang:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", labels,
                       _SGLANG_ITL, figures.itl),
        ])
    # TGI's router (Rust, metrics-exporter-prometheus): no HELP lines, counters without _total, no labels
    return "".join([
        _gauge("tgi_batch_current_size", None, "", figures.running),
        _gauge("tgi_queue_size", None, "", figures.waiting),
        _counter("tgi_request_count", None, "", float(figures.requests)),
        _counter("tgi_request_success", None, "", float(figures.requests)),
        _histogram("tgi_request_input_length", None, "", _TGI_TOKENS, figures.prompt_tokens),
        _histogram("tgi_request_generated_tokens", None, "", _TGI_TOKENS, figures.generation_tokens),
        _histogram("tgi_request_mean_time_per_token_duration", None, "", _TGI_DURATION, figures.itl),
    ])


def _head(name: str, help_text: str | None, kind: str) -> str:
    return (f"# HELP {name} {help_text}\n" if help_text else "") + f"# TYPE {name} {kind}\n"


def _braces(labels: str) -> str:
    return f"{{{labels}}}" if labels else ""


def _gauge(name: str, help_text: str | None, labels: str, value: float) -> str:
    return _head(name, help_text, "gauge") + f"{name}{_braces(labels)} {value!r}\n"


def _counter(name: str, help_text: str | None, labels: str, value: float) -> str:
    family = name[:-len("_total")] if name.endswith("_total") else name
    return _head(family, help_text, "counter") + f"{name}{_braces(labels)} {value!r}\n"


def _histogram(name: str, help_text: str | None, labels: str, bounds: Sequence[float],
               values: Sequence[float]) -> str:
    prefix = f"{labels}," if labels else ""
    lines = [_head(name, help_text, "histogram")]
    for bound in bounds:
        count = sum(1 for v in values if v <= bound)
        lines.append(f'{name}_bucket{{{prefix}le="{bound!r}"}} {float(count)!r}\n')
    lines.append(f'{name}_bucket{{{prefix}le="+Inf"}} {float(len(values))!r}\n')
    lines.append(f"{name}_count{_braces(labels)} {float(len(values))!r}\n")
    lines.append(f"{name}_sum{_braces(labels)} {float(sum(values))!r}\n")
    return "".join(lines)
