"""Step 7 of ``gpuctl up``, the end: wait for the engine's health path and ``/v1/models``, then one smoke completion."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from pydantic import BaseModel

from gpuctl.errors import GpuctlError, HealthCheckError
from gpuctl.events import NullReporter, Reporter
from gpuctl.polling import pauses

if TYPE_CHECKING:
    import httpx

    from gpuctl.host.docker import ContainerState, DockerEngine

SMOKE_PROMPT = "Hello"
_REQUEST_TIMEOUT_S = 30.0


#: inspect calls in a row that may fail (an SSH hiccup) before the watch gives up on the container
WATCH_TOLERATED_ERRORS = 3
LOG_TAIL_LINES = 30


class HealthResult(BaseModel):
    base_url: str
    models: list[str]
    smoke_text: str
    seconds: float
    #: when the engine listed its model (the smoke completion, its first token, came after)
    listed_at: datetime


class EngineHealthError(HealthCheckError):
    """HealthCheckError (exit 8) carrying the engine's last log lines for the CLI to show."""

    def __init__(self, message: str, log_tail: str) -> None:
        last = next((line.strip() for line in reversed(log_tail.splitlines()) if line.strip()), "")
        super().__init__(f"{message}{f'; last log line: {last}' if last else ''}")
        self.log_tail = log_tail


class EngineWatch:
    """Whether an engine container died, asked once per health poll, so a dead engine fails in seconds.

    Dead means: gone, exited (OOM-killed or not), or restarting again and again (its restart count rose
    since the watch began: a restart policy hides a crash loop behind "running"). A few failed
    inspections in a row are tolerated (the connection may hiccup); more than that is an answer too.
    Use as ``wait_for_engine(..., exited=watch.problem, log_tail=watch.log_tail)``.
    """

    def __init__(self, engine: DockerEngine, container: str, *, tolerated_errors: int = WATCH_TOLERATED_ERRORS) -> None:
        self.engine = engine
        self.container = container
        self.tolerated_errors = tolerated_errors
        self.errors = 0
        self.baseline: int | None = None

    def problem(self) -> str | None:
        """Why the engine is dead, or None while it may still come up."""
        try:
            state = self.engine.inspect(self.container)
        except GpuctlError as exc:
            self.errors += 1
            if self.errors > self.tolerated_errors:
                return f"its state cannot be read ({exc.message})"
            return None
        self.errors = 0
        if state is None:
            return "the container is gone"
        if self.baseline is None:
            self.baseline = state.restart_count
        return death(state, self.baseline)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The container's last lines ('' when they cannot be read: the error is about the engine, not its log)."""
        try:
            return self.engine.logs(self.container, tail=lines)
        except GpuctlError:
            return ""


def death(state: ContainerState, restarts_before: int = 0) -> str | None:
    """Why a container in ``state`` is dead (exit code, OOM kill, crash loop), or None when it runs."""
    oom = ", killed for lack of memory (OOM)" if state.oom_killed else ""
    crashes = state.restart_count - restarts_before
    if state.status == "restarting" or crashes > 0:
        return (f"crash-looping: restarted {state.restart_count} time(s), last exit code {state.exit_code}{oom}")
    if state.running:
        return None
    if state.status == "created":
        return None if state.exit_code in (None, 0) and not state.error else f"it did not start ({state.error})"
    detail = f"{state.status}, exit code {state.exit_code}{oom}"
    return f"{detail}: {state.error}" if state.error else detail


def wait_for_engine(
    base_url: str,
    *,
    health_path: str = "/health",
    timeout: float = 1800.0,
    api_key: str | None = None,
    exited: Callable[[], str | None] | None = None,
    log_tail: Callable[[], str] | None = None,
    interval: float = 2.0,
    reporter: Reporter | None = None,
) -> HealthResult:
    """Poll until the engine answers, then prove it generates; bounded by ``timeout`` seconds.

    ``exited`` returns why the container stopped (or None while it runs), so a crashed engine fails
    at once instead of at the deadline; ``log_tail`` supplies the log lines attached to the error.
    The pause between polls starts short and grows to ``interval`` seconds.
    """
    import httpx

    reporter = reporter or NullReporter()
    started = time.monotonic()
    deadline = started + timeout
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def fail(message: str) -> EngineHealthError:
        return EngineHealthError(message, log_tail() if log_tail else "")

    with httpx.Client(base_url=base_url, headers=headers, timeout=_REQUEST_TIMEOUT_S) as client, \
            reporter.step(f"waiting for the engine at {base_url}"):
        problem = "no answer yet"
        waits = pauses(interval)
        while True:
            gone = exited() if exited else None
            if gone:
                raise fail(f"the engine container stopped before it became healthy ({gone})")
            try:
                models = _ready_models(client, health_path)
                if models:
                    break
                problem = "/v1/models lists no model yet"
            except (httpx.HTTPError, ValueError) as exc:
                problem = _describe(exc)
            pause = next(waits)
            if time.monotonic() + pause > deadline:
                raise fail(f"the engine at {base_url} was not healthy after {timeout:g}s ({problem})")
            time.sleep(pause)
        listed_at = datetime.now(timezone.utc)
        try:
            text = _smoke_completion(client, models[0], max(1.0, deadline - time.monotonic()))
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise fail(f"the smoke completion against {base_url} failed ({_describe(exc)})") from exc
    return HealthResult(base_url=base_url, models=models, smoke_text=text, seconds=time.monotonic() - started,
                        listed_at=listed_at)


def _ready_models(client: httpx.Client, health_path: str) -> list[str]:
    health = client.get(health_path)
    health.raise_for_status()
    listing = client.get("/v1/models")
    listing.raise_for_status()
    return [str(m["id"]) for m in listing.json().get("data", []) if isinstance(m, dict) and "id" in m]


def _smoke_completion(client: httpx.Client, model: str, timeout: float) -> str:
    body = {"model": model, "prompt": SMOKE_PROMPT, "max_tokens": 4, "temperature": 0}
    response = client.post("/v1/completions", json=body, timeout=min(timeout, 120.0))
    response.raise_for_status()
    return str(response.json()["choices"][0]["text"])


def _describe(exc: BaseException) -> str:
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code} from {exc.request.url.path}"
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
