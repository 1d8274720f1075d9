#!/usr/bin/env python3
"""A stand-in for an OpenAI-compatible LLM server (vLLM, TGI) with known, recorded timing.

Standard library only, one file, starts in a few tens of milliseconds, so it can be copied into a
container image that plays vLLM on a fake GPU host. It streams Server-Sent Events exactly the way
vLLM does (one HTTP chunk per event, ``data: [DONE]`` at the end) and records, per request, when it
received the request and when it wrote each event, which is the ground truth a benchmark client is
checked against.

Timing model: the first content event leaves ``ttft_ms`` after the request was read; after that an
event leaves every ``tokens_per_event * itl_ms``, each carrying ``tokens_per_event`` tokens. Every
send is scheduled against the request's start, so lateness does not accumulate. A subclass may pace
responses otherwise by overriding ``Mock.pacing`` (the fake GPU hosts' engine stand-in simulates a
GPU's speed that way), and ``serve``/``main`` take the class to run.

    python3 mock_openai.py --host 127.0.0.1 --port 8000 --model NAME --ttft-ms 100 --itl-ms 20

Modes that imitate real servers' quirks (all off by default): ``close_after_stream`` answers with
keep-alive but drops the connection when the next request arrives on it after a streamed response
(llama.cpp's server does this); ``truncate_every`` ends every Nth stream half-way with ``[DONE]`` but no
finish reason and no usage; ``context_len`` stops generation where prompt + output fill the context
(finish reason "length", fewer tokens than asked); ``prefix_cache`` keeps the prompts it has seen in
blocks of ``cache_block`` words and prefills only the uncached part (``prefill_ms_per_token`` each),
so a reused prompt answers faster, as vLLM's and llama.cpp's prefix caches do.

Endpoints: ``GET /health``, ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions``
(streaming and not), and for tests ``GET /_mock/stats``, ``POST /_mock/reset``, ``POST /_mock/config``
(a JSON object of the settings below, applied at once). With ``--port 0`` it picks a free port; the
first line on stdout is always ``READY http://HOST:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

_WORDS = ("the", "of", "and", "to", "in", "is", "it", "that", "for", "on", "with", "as", "was", "at", "by")
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            411: "Length Required", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable"}
# Placeholder for the request number inside cached, already HTTP-chunked event templates. The number
# is written with the same width, so the chunk sizes stay right.
_ID = b"@@@@@@@@@@@@"
#: routes added by whoever runs the mock in-process (the fake engine's /metrics): (method, path) ->
#: a function of the mock and the request body returning the whole HTTP response
EXTRA_ROUTES: dict[tuple[str, str], Callable[[Mock, bytes], bytes]] = {}


@dataclass
class Settings:
    """What the mock does; every field can be changed at run time through ``POST /_mock/config``."""

    model: str = "mock-model"
    ttft_ms: float = 0.0
    itl_ms: float = 0.0
    tokens_per_event: int = 1
    role_delta: bool = False
    usage: bool = True
    default_max_tokens: int = 16
    stop_after: int = 0  # stop early (finish_reason "stop") after this many tokens unless ignore_eos
    api_key: str = ""
    models_need_key: bool = False  # /v1/models refuses a wrong key too (vLLM guards every /v1 route)
    fail_every: int = 0  # every Nth generation request gets HTTP fail_status
    fail_status: int = 500
    hang_every: int = 0  # every Nth never gets an answer
    cut_every: int = 0  # every Nth stream is cut half-way (connection dropped, no final chunk)
    truncate_every: int = 0  # every Nth stream ends half-way with [DONE], no finish reason, no usage
    close_after_stream: bool = False  # keep-alive advertised, but a connection carries one stream only
    context_len: int = 0  # prompt + output tokens the server can hold; 0 = unlimited
    prefix_cache: bool = False  # prompts seen before are prefilled only past their cached prefix
    prefill_ms_per_token: float = 0.0  # added to TTFT per uncached prompt token
    cache_block: int = 16  # prefix cache granularity, in prompt words (vLLM's block size)
    garbage: str = ""  # "html": every API route answers a 200 web page; "json": 200 with broken JSON
    record_events: bool = True


class _StampingProtocol(asyncio.StreamReaderProtocol):
    """Notes when bytes arrive, before any coroutine runs."""

    last_data = 0.0

    def data_received(self, data: bytes) -> None:
        self.last_data = time.monotonic()
        super().data_received(data)


class Pacing:
    """When each token of one response is due: ``ttft_ms`` after ``start``, then one every ``itl_ms``.

    ``wait(i)`` returns once token ``i`` (0-based) may be sent; ``done()`` is called once the response
    ended, however it ended. ``timed`` False means every token is due at once.
    """

    def __init__(self, start: float, ttft_ms: float, itl_ms: float) -> None:
        self.first_due = start + ttft_ms / 1000
        self.step = itl_ms / 1000
        self.timed = ttft_ms > 0 or itl_ms > 0 or start > time.monotonic()

    async def wait(self, token: int) -> None:
        await _sleep_until(self.first_due + token * self.step)

    def done(self) -> None:
        """Nothing to release for a fixed schedule."""


class Mock:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.seq = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.records: list[dict] = []
        self.dropped = 0  # requests that arrived on a connection the mock then closed unanswered
        self.cached_prefixes: set[int] = set()
        self._templates: dict[tuple, list[bytes]] = {}

    # -- HTTP plumbing -------------------------------------------------------------------------
    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               protocol: _StampingProtocol) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, version = [*lines[0].split(" "), "", "", ""][:3]
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                length = headers.get("content-length")
                if method == "POST" and length is None:
                    writer.write(_plain(411, {"error": "Content-Length required"}, close=True))
                    return
                body = await reader.readexactly(int(length)) if length else b""
                # when the last byte of the request arrived, not when this coroutine got to it: under a
                # burst the mock's own queueing must not shift the ground truth
                recv = protocol.last_data
                close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
                keep = await self.dispatch(method, path.split("?", 1)[0], headers, body, recv, reader, writer)
                if close or not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _drop_next_request(self, reader: asyncio.StreamReader) -> None:
        """Wait for the next request on this kept-alive connection and close it unanswered. Waiting for
        it (instead of closing at once) makes the race deterministic: the client has already reused the
        connection when it learns that it is dead."""
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5.0)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        self.dropped += 1

    async def dispatch(self, method: str, path: str, headers: dict, body: bytes, recv: float,
                       reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must not be reused."""
        if self.settings.garbage and not path.startswith("/_mock/"):
            writer.write(_garbage(self.settings.garbage))
            return True
        if path in ("/v1/completions", "/v1/chat/completions"):
            if method != "POST":
                writer.write(_plain(405, {"error": "use POST"}))
                return True
            return await self.generate(path.endswith("chat/completions"), headers, body, recv, reader, writer)
        if method == "GET" and path == "/health":
            writer.write(_plain(200, None))
        elif method == "GET" and path == "/v1/models":
            s = self.settings
            if s.models_need_key and s.api_key and headers.get("authorization") != f"Bearer {s.api_key}":
                writer.write(_plain(401, {"error": "invalid API key"}))
                return True
            model = self.settings.model
            writer.write(_plain(200, {"object": "list", "data": [
                {"id": model, "object": "model", "owned_by": "mock", "root": model}]}))
        elif method == "GET" and path == "/_mock/stats":
            writer.write(_plain(200, self.stats()))
        elif method == "POST" and path == "/_mock/reset":
            self.reset()
            writer.write(_plain(200, {"ok": True}))
        elif method == "POST" and path == "/_mock/config":
            try:
                self.configure(json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                writer.write(_plain(400, {"error": str(exc)}))
                return True
            writer.write(_plain(200, asdict(self.settings)))
        elif (method, path) in EXTRA_ROUTES:
            writer.write(EXTRA_ROUTES[(method, path)](self, body))
        else:
            writer.write(_plain(404, {"error": f"no route {method} {path}"}))
        return True

    # -- generation ------------------------------------------------------------------------------
    def pacing(self, start: float, prompt_tokens: int, prefill_tokens: int, tokens: int) -> Pacing:
        """The schedule of one response whose prefill (of ``prefill_tokens`` uncached prompt tokens) ends at
        ``start``: the settings' fixed TTFT and ITL."""
        return Pacing(start, self.settings.ttft_ms, self.settings.itl_ms)

    async def generate(self, chat: bool, headers: dict, body: bytes, recv: float,
                       reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        s = self.settings
        self.seq += 1
        n = self.seq
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        record: dict[str, Any] = {"n": n, "request_id": headers.get("x-request-id"), "recv": recv, "first": None,
                  "end": None, "status": 200, "tokens": 0, "events": []}
        self.records.append(record)
        pacing: Pacing | None = None
        try:
            status, error, req = self._check(headers, body, n)
            if status == -1:  # hang: hold the connection until the client gives up
                record["status"] = None
                await reader.read()
                return False
            if status != 200:
                record["status"] = status
                writer.write(_plain(status, {"object": "error", "message": error, "code": status}))
                record["end"] = time.monotonic()
                return True
            max_tokens = req.get("max_completion_tokens") or req.get("max_tokens") or s.default_max_tokens
            tokens = int(max_tokens)
            finish = "length"
            if s.stop_after and not req.get("ignore_eos") and s.stop_after < tokens:
                tokens, finish = s.stop_after, "stop"
            words = _prompt_words(req, chat)
            prompt_tokens = len(words)
            if s.context_len and prompt_tokens >= s.context_len:
                record["status"] = 400
                writer.write(_plain(400, {"object": "error", "code": 400, "message":
                                          f"the prompt ({prompt_tokens} tokens) fills the context ({s.context_len})"}))
                return True
            if s.context_len and prompt_tokens + tokens > s.context_len:
                tokens, finish = s.context_len - prompt_tokens, "length"
            cached = self._prefill(words) if s.prefix_cache else 0
            prefill_ms = s.prefill_ms_per_token * (prompt_tokens - cached)
            record["tokens"] = tokens
            record["prompt_tokens"] = prompt_tokens
            record["cached_tokens"] = cached
            rid = b"%012d" % n
            pacing = self.pacing(recv + prefill_ms / 1000, prompt_tokens, prompt_tokens - cached, tokens)
            if not req.get("stream"):
                await pacing.wait(max(tokens - 1, 0))
                writer.write(_plain(200, _full_response(chat, s.model, rid.decode(), tokens, finish,
                                                        prompt_tokens)))
                record["first"] = record["end"] = time.monotonic()
                return True
            include_usage = s.usage and bool((req.get("stream_options") or {}).get("include_usage"))
            cut = bool(s.cut_every and n % s.cut_every == 0)
            truncate = bool(s.truncate_every and n % s.truncate_every == 0)
            keep = await self._stream(writer, record, pacing, rid, chat, tokens, finish,
                                      prompt_tokens, include_usage, cut, truncate)
        finally:
            self.in_flight -= 1
            if pacing is not None:
                pacing.done()
        if keep and s.close_after_stream:
            await self._drop_next_request(reader)
            return False
        return keep

    def _prefill(self, words: list[str]) -> int:
        """Prompt words already in the prefix cache (whole blocks from the start); caches the rest."""
        block = max(1, self.settings.cache_block)
        cached = 0
        digest = 0
        for end in range(block, len(words) + 1, block):
            digest = hash((digest, *words[end - block:end]))
            if digest in self.cached_prefixes and cached == end - block:
                cached = end
            self.cached_prefixes.add(digest)
        return cached

    def _check(self, headers: dict, body: bytes, n: int) -> tuple[int, str, dict]:
        """HTTP status (-1: never answer), error message, and the parsed request."""
        s = self.settings
        if s.api_key and headers.get("authorization") != f"Bearer {s.api_key}":
            return 401, "invalid API key", {}
        if s.fail_every and n % s.fail_every == 0:
            return s.fail_status, "injected failure", {}
        if s.hang_every and n % s.hang_every == 0:
            return -1, "", {}
        try:
            req = json.loads(body)
        except ValueError:
            return 400, "body is not JSON", {}
        if not isinstance(req, dict) or req.get("model") != s.model:
            model = req.get("model") if isinstance(req, dict) else None
            return 404, f"The model `{model}` does not exist.", {}
        return 200, "", req

    async def _stream(self, writer: asyncio.StreamWriter, record: dict, pacing: Pacing, rid: bytes, chat: bool,
                      tokens: int, finish: str, prompt_tokens: int, include_usage: bool, cut: bool,
                      truncate: bool = False) -> bool:
        """Stream the response, each event when ``pacing`` says its first token is due."""
        s = self.settings
        k = max(1, s.tokens_per_event)
        events = self._events(chat, tokens, k, finish)
        lead = [_chunk(_role_event(s.model).replace(_ID, rid))] if chat and s.role_delta else []
        if truncate:  # a clean end of the HTTP body, but the answer stops half-way with no finish reason
            events = self._events(chat, tokens, k, None)[: max(1, len(events) // 2)]
            record["status"] = "truncated"
        usage = include_usage and not truncate
        cached = record.get("cached_tokens") if s.prefix_cache else None
        tail = [_chunk(_usage_event(chat, s.model, prompt_tokens, tokens, cached).replace(_ID, rid))] if usage else []
        tail.append(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        sizes = [min(k, tokens - i * k) for i in range(len(events))]
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        stop_at = len(events) // 2 if cut else len(events)
        if not pacing.timed and not cut:
            # zero delay: the whole response in one write, as fast as the mock can go
            writer.write(head + b"".join(lead) + b"".join(events).replace(_ID, rid) + b"".join(tail))
            now = time.monotonic()
            record["first"] = record["end"] = now
            if s.record_events:
                record["events"] = [[now, size] for size in sizes]
            await _drain_if_needed(writer)
            return True
        writer.write(head + b"".join(lead))
        for i in range(stop_at):
            await pacing.wait(i * k)
            writer.write(events[i].replace(_ID, rid))
            now = time.monotonic()
            if i == 0:
                record["first"] = now
            if s.record_events:
                record["events"].append([now, sizes[i]])
            await _drain_if_needed(writer)
        if cut:
            record["status"] = "cut"
            writer.transport.abort()
            return False
        writer.write(b"".join(tail))
        record["end"] = time.monotonic()
        await _drain_if_needed(writer)
        return True

    def _events(self, chat: bool, tokens: int, k: int, finish: str | None) -> list[bytes]:
        """The content events of one response, HTTP-chunked, cached by shape (ids filled in later)."""
        key = (chat, tokens, k, finish, self.settings.model)
        cached = self._templates.get(key)
        if cached is None:
            texts = ["".join(" " + _WORDS[j % len(_WORDS)] for j in range(i, min(i + k, tokens)))
                     for i in range(0, tokens, k)]
            cached = [_chunk(_content_event(chat, self.settings.model, text, finish if i == len(texts) - 1 else None))
                      for i, text in enumerate(texts)]
            if len(self._templates) > 256:
                self._templates.clear()
            self._templates[key] = cached
        return cached

    # -- control ---------------------------------------------------------------------------------
    def stats(self) -> dict:
        return {"requests": self.seq, "in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
                "dropped": self.dropped, "settings": asdict(self.settings), "records": self.records}

    def reset(self) -> None:
        self.seq = 0
        self.max_in_flight = self.in_flight
        self.records = []
        self.dropped = 0
        self.cached_prefixes.clear()

    def configure(self, changes: dict) -> None:
        known = {f.name: f.type for f in fields(Settings)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}")
            setattr(self.settings, name, value)


def _rid(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + _ID.decode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _content_event(chat: bool, model: str, text: str, finish: str | None) -> bytes:
    if chat:
        choice = {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": finish}
        return _sse({"id": _rid(True), "object": "chat.completion.chunk", "created": 1700000000, "model": model,
                     "choices": [choice]})
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None}
    return _sse({"id": _rid(False), "object": "text_completion", "created": 1700000000, "model": model,
                 "choices": [choice], "usage": None})


def _role_event(model: str) -> bytes:
    choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
    return _sse({"id": _rid(True), "object": "chat.completion.chunk", "created": 1700000000, "model": model,
                 "choices": [choice]})


def _usage_event(chat: bool, model: str, prompt_tokens: int, tokens: int, cached: int | None = None) -> bytes:
    usage: dict = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + tokens, "completion_tokens": tokens}
    if cached is not None:  # as vLLM reports prefix cache hits
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    kind = "chat.completion.chunk" if chat else "text_completion"
    return _sse({"id": _rid(chat), "object": kind, "created": 1700000000, "model": model, "choices": [],
                 "usage": usage})


def _full_response(chat: bool, model: str, rid: str, tokens: int, finish: str, prompt_tokens: int) -> dict:
    text = "".join(" " + _WORDS[j % len(_WORDS)] for j in range(tokens))
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + tokens, "completion_tokens": tokens}
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        return {"id": "chatcmpl-" + rid, "object": "chat.completion", "created": 1700000000, "model": model,
                "choices": [choice], "usage": usage}
    return {"id": "cmpl-" + rid, "object": "text_completion", "created": 1700000000, "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": finish}], "usage": usage}


def _prompt_words(req: dict, chat: bool) -> list[str]:
    """The mock's 'tokenizer': one token per whitespace-separated word."""
    if chat:
        parts: list[str] = []
        for message in req.get("messages") or []:
            content = message.get("content")
            if isinstance(content, list):
                parts.extend(p.get("text", "") for p in content if isinstance(p, dict))
            elif isinstance(content, str):
                parts.append(content)
        return [word for part in parts for word in part.split()]
    prompt = req.get("prompt")
    if isinstance(prompt, list):
        if all(isinstance(x, int) for x in prompt):
            return [str(x) for x in prompt]
        return [word for part in prompt for word in str(part).split()]
    return str(prompt or "").split()


def _plain(status: int, payload: object, close: bool = False) -> bytes:
    body = b"" if payload is None else json.dumps(payload).encode()
    connection = "Connection: close\r\n" if close else ""
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{connection}\r\n")
    return head.encode() + body


def _garbage(kind: str) -> bytes:
    """What a server that is not an OpenAI API (or a broken one) answers with status 200."""
    if kind == "html":
        body, content_type = b"<!DOCTYPE html><html><head><title>Welcome</title></head><body>It works!</body></html>", \
            "text/html"
    else:
        body, content_type = b'{"object": "list", "data": [{"id": "mock-mo', "application/json"
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def _drain_if_needed(writer: asyncio.StreamWriter) -> None:
    # draining on every write costs a loop iteration; only wait when the socket buffer backs up
    if writer.transport.get_write_buffer_size() > 1 << 16:
        await writer.drain()


def ground_truth(records: list[dict], skip: int = 0) -> dict[str, list[float]]:
    """Server-side TTFT and per-token ITL (seconds) of recorded requests, in arrival order, the first
    ``skip`` (warm-up) left out."""
    measured = sorted(records, key=lambda r: r["n"])[skip:]
    itl = []
    for r in measured:
        for (t0, _), (t1, k) in zip(r["events"], r["events"][1:], strict=False):
            itl.extend([(t1 - t0) / k] * k)
    return {"ttft": [r["first"] - r["recv"] for r in measured if r["first"] is not None], "itl": itl}


class MockProcess:
    """This file run as its own process, for tests and benchmarks::

        with MockProcess("--ttft-ms", "100") as mock:
            ...  # mock.url, mock.stats(), mock.configure(itl_ms=5), mock.reset()
    """

    def __init__(self, *args: str, host: str = "127.0.0.1", python: str = sys.executable) -> None:
        self.command = [python, __file__, "--host", host, "--port", "0", *args]
        self.process: Any = None
        self.url = ""

    def start(self) -> MockProcess:
        import subprocess  # here, not at the top: the server itself starts faster without it

        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"mock_openai did not start: {line!r}")
        self.url = line.split()[1]
        return self

    def stop(self) -> None:
        import subprocess

        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stdout:
            self.process.stdout.close()

    def call(self, path: str, payload: dict | None = None) -> dict:
        import urllib.request

        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, method="GET" if data is None else "POST")
        # no proxies: the mock is on loopback, whatever http_proxy says
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=30) as response:
            return json.loads(response.read())

    def stats(self) -> dict:
        return self.call("/_mock/stats")

    def reset(self) -> None:
        self.call("/_mock/reset", {})

    def configure(self, **settings: object) -> dict:
        return self.call("/_mock/config", settings)

    def __enter__(self) -> MockProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Settings]:
    parser = argparse.ArgumentParser(description="Mock OpenAI-compatible streaming server with ground truth.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="mock-model")
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--itl-ms", type=float, default=0.0)
    parser.add_argument("--tokens-per-event", type=int, default=1)
    parser.add_argument("--role-delta", action="store_true", help="send a role-only delta first (chat)")
    parser.add_argument("--no-usage", action="store_true", help="ignore stream_options.include_usage")
    parser.add_argument("--stop-after", type=int, default=0)
    parser.add_argument("--api-key", default="")
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--fail-status", type=int, default=500)
    parser.add_argument("--hang-every", type=int, default=0)
    parser.add_argument("--cut-every", type=int, default=0)
    parser.add_argument("--truncate-every", type=int, default=0)
    parser.add_argument("--close-after-stream", action="store_true",
                        help="drop a kept-alive connection after its first streamed response (like llama.cpp)")
    parser.add_argument("--context-len", type=int, default=0)
    parser.add_argument("--prefix-cache", action="store_true")
    parser.add_argument("--prefill-ms-per-token", type=float, default=0.0)
    parser.add_argument("--no-record-events", action="store_true", help="keep per-request times only")
    args = parser.parse_args(argv)
    settings = Settings(model=args.model, ttft_ms=args.ttft_ms, itl_ms=args.itl_ms,
                        tokens_per_event=args.tokens_per_event, role_delta=args.role_delta,
                        usage=not args.no_usage, stop_after=args.stop_after, api_key=args.api_key,
                        fail_every=args.fail_every, fail_status=args.fail_status, hang_every=args.hang_every,
                        cut_every=args.cut_every, truncate_every=args.truncate_every,
                        close_after_stream=args.close_after_stream, context_len=args.context_len,
                        prefix_cache=args.prefix_cache, prefill_ms_per_token=args.prefill_ms_per_token,
                        record_events=not args.no_record_events)
    return args, settings


async def serve(host: str, port: int, settings: Settings, mock_class: type[Mock] = Mock) -> None:
    mock = mock_class(settings)

    def factory() -> _StampingProtocol:
        protocol = _StampingProtocol(asyncio.StreamReader(), lambda r, w: mock.serve_connection(r, w, protocol))
        return protocol

    server = await asyncio.get_running_loop().create_server(factory, host, port, backlog=1024)
    bound = server.sockets[0].getsockname()
    print(f"READY http://{bound[0]}:{bound[1]}", flush=True)
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, on_signal)
    async with server:
        await stop


def main(argv: list[str] | None = None, mock_class: type[Mock] = Mock) -> int:
    args, settings = parse_args(argv)
    try:
        asyncio.run(serve(args.host, args.port, settings, mock_class))
    except OSError as exc:
        print(f"mock_openai: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
