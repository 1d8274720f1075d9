"""What every provider stand-in shares: a threaded HTTP server on loopback, routing, bearer auth,
fault injection, a request log, and checking all traffic against the provider's OpenAPI spec.

A provider stand-in subclasses :class:`StandinServer`, lists its routes, and says how its API
spells an error. Start one in a test with the fixtures in ``fixtures.py``, or standalone::

    python -m tests.standins.runpod_server --port 8101 --delay-ms 300
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from tests.standins.openapi import OpenApiSpec, SpecViolation

FaultKind = Literal["status", "payload", "malformed", "truncated", "hang", "delay"]
#: faults whose answers are broken on purpose, so they are exempt from the spec check
OFF_SPEC_FAULTS = frozenset({"payload", "malformed", "truncated", "hang"})


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour. Build with the class methods; ``path`` limits it to paths
    starting with that prefix, ``method`` to requests with that method."""

    kind: FaultKind
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # status faults: JSON body; None means the provider's usual error body
    seconds: float = 30.0  # hang: how long before giving up (stop() ends it sooner)
    path: str | None = None
    method: str | None = None

    @classmethod
    def error(cls, status: int, *, retry_after: float | None = None, body: Any = None,
              path: str | None = None, method: str | None = None) -> Fault:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        return cls("status", status=status, headers=headers, body=body, path=path,
                   method=method.upper() if method else None)

    def applies(self, method: str, path: str) -> bool:
        return ((self.path is None or path.startswith(self.path))
                and (self.method is None or self.method == method.upper()))

    @classmethod
    def payload(cls, body: Any, *, status: int = 200, path: str | None = None) -> Fault:
        """Valid JSON the spec does not allow (missing fields, wrong types), sent as is."""
        return cls("payload", status=status, body=body, path=path)

    @classmethod
    def malformed(cls, path: str | None = None) -> Fault:
        """200 with a body that is not JSON."""
        return cls("malformed", status=200, path=path)

    @classmethod
    def truncated(cls, path: str | None = None) -> Fault:
        """200 whose body stops halfway, then the connection closes."""
        return cls("truncated", status=200, path=path)

    @classmethod
    def delay(cls, seconds: float, *, path: str | None = None, method: str | None = None) -> Fault:
        """The usual answer, handled only after ``seconds`` (a slow create: the call is in flight meanwhile)."""
        return cls("delay", seconds=seconds, path=path, method=method.upper() if method else None)

    @classmethod
    def hang(cls, seconds: float = 30.0, path: str | None = None) -> Fault:
        """No answer at all for ``seconds`` (the client should time out first)."""
        return cls("hang", seconds=seconds, path=path)


class FaultPlan:
    """Faults for the next requests (``next``, used once each, in order), a standing fault
    (``always``), and a delay added before every answer (``delay_s``)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self._queue: deque[Fault] = deque()
        self._always: Fault | None = None
        self._lock = threading.Lock()

    def next(self, *faults: Fault) -> None:
        with self._lock:
            self._queue.extend(faults)

    def always(self, fault: Fault | None) -> None:
        with self._lock:
            self._always = fault

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._always = None
            self.delay_s = 0.0

    def take(self, path: str, method: str = "GET") -> Fault | None:
        with self._lock:
            for fault in self._queue:
                if fault.applies(method, path):
                    self._queue.remove(fault)
                    return fault
            if self._always and self._always.applies(method, path):
                return self._always
            return None


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-serialisable; None means no body
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    """What a route handler sees."""

    method: str
    path: str
    params: dict[str, str]  # path parameters by name
    query: dict[str, list[str]]
    body: Any


@dataclass
class RecordedRequest:
    """One request as the stand-in saw it (the Authorization value is never kept) and its answer."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic() on arrival
    authorized: bool = False
    request_errors: list[str] = field(default_factory=list)
    fault: FaultKind | None = None
    status: int | None = None
    response_body: Any = None
    response_content_type: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    answered_at: float | None = None  # time.monotonic() as the answer was sent


Handler = Callable[[Request], Reply]
_S = TypeVar("_S", bound="StandinServer")


class StandinServer:
    """Base of the provider stand-ins. Subclasses set ``spec_name`` and ``display_name``, and
    implement ``routes`` and ``error``."""

    spec_name: ClassVar[str]
    display_name: ClassVar[str]

    def __init__(self, *, api_key: str = "standin-test-key-0123456789", host: str = "127.0.0.1",
                 port: int = 0, delay_s: float = 0.0) -> None:
        if not host.startswith("127."):
            raise ValueError("stand-ins listen on loopback only")
        self.api_key = api_key
        self.faults = FaultPlan(delay_s)
        self.requests: list[RecordedRequest] = []
        self.spec = OpenApiSpec.load(self.spec_name)
        self.crashes: list[str] = []  # handler exceptions: always a contract violation
        #: set by a test that sends requests the spec forbids on purpose
        self.allow_invalid_requests = False
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._routes = [(m.upper(), _pattern(t), h) for m, t, h in self.routes()]

    # -- to implement ------------------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, path template as in the spec, handler) for every endpoint served."""
        raise NotImplementedError

    def error(self, status: int, detail: str) -> Reply:
        """The provider's own error answer for ``status``."""
        raise NotImplementedError

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self: _S) -> _S:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.display_name} stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends hangs and delays at once
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def calls(self, method: str, path: str) -> list[RecordedRequest]:
        """The recorded requests of ``method`` to exactly ``path``, in order."""
        return [r for r in list(self.requests) if r.method == method.upper() and r.path == path]

    # -- contract checks ----------------------------------------------------------------------------------

    def contract_violations(self) -> list[str]:
        """Every answer given (broken-on-purpose faults aside) that the spec does not allow, and,
        unless ``allow_invalid_requests``, every request the spec does not allow."""
        problems = [f"stand-in handler crashed: {c}" for c in self.crashes]
        for rec in list(self.requests):
            if rec.request_errors and not self.allow_invalid_requests:
                problems += [f"{rec.method} {rec.path}: request: {e}" for e in rec.request_errors]
            if rec.status is None or rec.fault in OFF_SPEC_FAULTS:
                continue
            try:
                self.spec.validate_response(rec.method, rec.path, rec.status, rec.response_body,
                                            content_type=rec.response_content_type,
                                            headers=rec.response_headers)
            except SpecViolation as exc:
                problems.append(str(exc))
        return problems

    # -- request handling ---------------------------------------------------------------------------------

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        split = urlsplit(http.path)
        path = unquote(split.path)
        raw = http.rfile.read(int(http.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        auth = http.headers.get("Authorization", "")
        rec = RecordedRequest(
            method=http.command, path=path, query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): (auth.split(" ")[0] + " <redacted>" if k.lower() == "authorization" else v)
                     for k, v in http.headers.items()},
            body=body, at=time.monotonic(), authorized=auth == f"Bearer {self.api_key}",
        )
        self.requests.append(rec)
        if self.faults.delay_s and self._stopping.wait(self.faults.delay_s):
            return
        fault = self.faults.take(path, http.command)
        rec.fault = fault.kind if fault else None
        if fault is not None and fault.kind == "delay":
            if self._stopping.wait(fault.seconds):
                return
            fault = None
        if fault is None:
            reply = self._route(rec, raw_body=bool(raw)) if rec.authorized else self.error(
                401, "invalid bearer token" if auth else "missing bearer token")
        elif fault.kind == "status":
            reply = self.error(fault.status, "injected fault")
            if fault.body is not None:
                reply.body = fault.body
            reply.headers.update(fault.headers)
        elif fault.kind == "payload":
            reply = Reply(fault.status, fault.body)
        else:
            self._misbehave(http, fault, rec)
            return
        self._send(http, reply, rec)

    def _route(self, rec: RecordedRequest, *, raw_body: bool) -> Reply:
        allowed = []
        for method, pattern, handler in self._routes:
            match = pattern.match(rec.path)
            if not match:
                continue
            if method != rec.method:
                allowed.append(method)
                continue
            try:
                rec.request_errors = self.spec.validate_request(rec.method, rec.path, rec.query, rec.body,
                                                                has_body=raw_body)
            except SpecViolation as exc:
                rec.request_errors = [str(exc)]
            if rec.request_errors:
                return self.error(400, "; ".join(rec.request_errors))
            try:
                return handler(Request(rec.method, rec.path, match.groupdict(), rec.query, rec.body))
            except Exception as exc:  # a stand-in bug: answer, and make the test's contract check fail
                self.crashes.append(f"{rec.method} {rec.path}: {exc!r}")
                return self.error(500, "stand-in crashed")
        if allowed:
            reply = self.error(405, f"{rec.method} is not allowed here")
            reply.headers["Allow"] = ", ".join(allowed)
            return reply
        return self.error(404, f"no route for {rec.method} {rec.path}")

    def _send(self, http: BaseHTTPRequestHandler, reply: Reply, rec: RecordedRequest) -> None:
        if reply.body is None:
            data = b""
        elif isinstance(reply.body, str) and not reply.content_type.endswith("json"):
            data = reply.body.encode()  # text answers (event streams) go as they are
        else:
            data = json.dumps(reply.body).encode()
        headers = dict(reply.headers)
        if data:
            headers["Content-Type"] = reply.content_type
        rec.status, rec.response_body, rec.response_headers = reply.status, reply.body, headers
        rec.response_content_type = headers.get("Content-Type")
        rec.answered_at = time.monotonic()  # before writing: the client cannot have it any earlier
        self._write(http, reply.status, headers, data)

    def _misbehave(self, http: BaseHTTPRequestHandler, fault: Fault, rec: RecordedRequest) -> None:
        if fault.kind == "hang":
            self._stopping.wait(fault.seconds)
            http.close_connection = True
            return
        rec.status = 200
        if fault.kind == "malformed":
            self._write(http, 200, {"Content-Type": "application/json"}, b'{"data": {"oops": [1, 2,')
        else:  # truncated: promise the whole body, send half of it, hang up
            whole = json.dumps({"filler": "x" * 512}).encode()
            self._write(http, 200, {"Content-Type": "application/json"}, whole[: len(whole) // 2],
                        length=len(whole))
            http.close_connection = True
        rec.answered_at = time.monotonic()

    @staticmethod
    def _write(http: BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes,
               length: int | None = None) -> None:
        try:
            http.send_response(status)
            for name, value in headers.items():
                http.send_header(name, value)
            http.send_header("Content-Length", str(len(data) if length is None else length))
            http.end_headers()
            http.wfile.write(data)
            http.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            http.close_connection = True  # the client gave up (timeouts); nothing to tell it


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{([^/}]+)\}", template)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
    return re.compile(f"^{regex}$")


def _make_handler(standin: StandinServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _dispatch(self) -> None:
            standin._handle(self)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read .requests instead
            pass

    return _Handler


def serve_main(server_cls: type[StandinServer], argv: list[str] | None = None) -> None:
    """Run a stand-in until interrupted; prints its URL as the first line of stdout."""
    parser = argparse.ArgumentParser(description=f"Local {server_cls.display_name} API stand-in")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="delay before every answer")
    parser.add_argument("--api-key", default="standin-test-key-0123456789", help="the bearer token accepted")
    args = parser.parse_args(argv)
    server = server_cls(api_key=args.api_key, host=args.host, port=args.port, delay_s=args.delay_ms / 1000)
    server.start()
    print(server.url, flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop()
    sys.exit(0)
