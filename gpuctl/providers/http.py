"""The small JSON-over-HTTP client the REST providers share: auth, deadline, retries, error mapping.

Each provider subclasses :class:`JsonApiClient` in its ``client`` module, adds typed endpoint
methods, and overrides :meth:`JsonApiClient.describe_error` to read its own error envelope.
httpx is imported only when a request is made, so ``gpuctl --help`` never pays for it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from gpuctl import __version__
from gpuctl.config import ConfigKey
from gpuctl.credentials import credential_value, resolve_credential, set_hint
from gpuctl.errors import (
    ConfigError,
    CredentialsError,
    GpuctlError,
    NotFoundError,
    ProviderError,
    TimeoutError_,
)
from gpuctl.logs import SECRET_MASK

if TYPE_CHECKING:
    import ssl

    import httpx

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})

M = TypeVar("M", bound=BaseModel)
C = TypeVar("C", bound="JsonApiClient")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries: a few retries, short waits, never past the caller's deadline."""

    max_retries: int = 3
    #: first wait when the server gives no Retry-After; doubles on each retry
    backoff_s: float = 0.5
    #: total sleeping allowed across one call's retries; a longer Retry-After fails the call at once
    max_wait_s: float = 5.0


DEFAULT_RETRY = RetryPolicy()

_tls_lock = threading.Lock()
_tls: ssl.SSLContext | None = None


def shared_tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every client: each new one reads the whole CA bundle (~25 ms of CPU)."""
    global _tls
    with _tls_lock:
        if _tls is None:
            import httpx

            _tls = httpx.create_ssl_context()
        return _tls


@dataclass(frozen=True)
class ErrorInfo:
    """A failed response, read out of the provider's error envelope."""

    status: int
    message: str
    code: str | None = None
    suggestion: str | None = None
    #: seconds the answer's ``Retry-After`` asks to wait before trying again (a 429's, say)
    retry_after: float | None = None

    def summary(self) -> str:
        head = f"{self.status} {self.code}" if self.code else str(self.status)
        return f"{head}: {self.message}" if self.message else head


class _Retryable(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(self, failure: GpuctlError, wait: float | None) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.wait = wait


class ProviderHttpError(ProviderError):
    """An error answer from a provider's API; ``info`` keeps status and code for callers that branch."""

    def __init__(self, message: str, hint: str | None = None, *, info: ErrorInfo) -> None:
        super().__init__(message, hint)
        self.info = info


def require_credential(key: ConfigKey, provider: str) -> str:
    """The value of credential ``key`` (env var, then config file), or exit 6 saying how to set it."""
    value = credential_value(key)
    if not value:
        status = resolve_credential(key)
        raise CredentialsError(f"{provider} API key is not set", status.hint)
    return value


def base_url_from_env(var: str, default: str) -> str:
    """The API base URL: ``$var`` when set (tests, proxies), else ``default``; must be http(s)."""
    url = os.environ.get(var) or default
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{var}={url!r} is not an http(s) URL", f"unset {var} to use {default}")
    return url


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class QuotaWindow:
    """One window of a ``RateLimit`` header: requests left in it and seconds until it resets."""

    name: str
    remaining: int
    reset_s: float


def parse_rate_limit(value: str | None) -> list[QuotaWindow]:
    """The windows of a ``RateLimit`` header (IETF ratelimit-headers draft, as RunPod sends it:
    ``"minute";r=0;t=12, "hour";r=2800;t=1812``); members that do not parse are left out."""
    windows = []
    for member in (value or "").split(","):
        name, *params = [part.strip() for part in member.split(";")]
        values = dict(param.split("=", 1) for param in params if "=" in param)
        try:
            windows.append(QuotaWindow(name.strip('"'), int(values["r"]), float(values["t"])))
        except (KeyError, ValueError):
            continue
    return windows


class JsonApiClient:
    """A thin client for one provider's JSON API.

    ``timeout`` bounds a whole call, retries and waits included: every attempt gets only the time
    left, and a wait that would end past the deadline is not started.
    """

    #: human name used in every message ("RunPod")
    provider: str = "provider"
    #: path prefix of every endpoint; added to the base URL unless the URL already ends with it
    api_prefix: str = ""
    #: config key of the API key (its env var is named in credential errors)
    credential: ConfigKey | None = None
    #: where the API lives unless ``base_url_env`` says otherwise
    default_base_url: str = ""
    #: environment variable overriding the base URL (named in connection errors)
    base_url_env: str | None = None

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        if self.api_prefix and not base.endswith(self.api_prefix):
            base += self.api_prefix
        self.base_url = base
        self.timeout = timeout
        self.retry = retry or DEFAULT_RETRY
        self._api_key = api_key
        self._sleep = sleep
        self._clock = clock
        self._transport = transport
        self._client: httpx.Client | None = None
        #: the quota the last answer with a ``RateLimit`` header reported, and when (``clock``) it came
        self._quota: tuple[list[QuotaWindow], float] = ([], 0.0)

    @classmethod
    def from_env(cls: type[C], timeout: float = DEFAULT_TIMEOUT) -> C:
        """A client with the user's key and base URL (exit 6 when the key is missing)."""
        url = base_url_from_env(cls.base_url_env, cls.default_base_url) if cls.base_url_env else (
            cls.default_base_url)
        if cls.credential is None:
            raise TypeError(f"{cls.__name__} declares no credential")
        return cls(require_credential(cls.credential, cls.provider), url, timeout=timeout)

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(
                base_url=self.base_url,
                headers={
                    "Authorization": f"Bearer {self._api_key}",
                    "Accept": "application/json",
                    "User-Agent": f"gpuctl/{__version__}",
                },
                transport=self._transport,
                verify=shared_tls_context(),
                follow_redirects=False,
            )
        return self._client

    def pace(self, requests: int) -> float:
        """Seconds to wait before the next ``requests`` requests so that the quota the API last reported
        (``RateLimit``) lasts until its windows reset: 0 without a report, the rest of a window when fewer
        than ``requests`` are left in it, else that window's time shared out over what is left."""
        windows, seen = self._quota
        elapsed = self._clock() - seen
        waits = [0.0]
        for window in windows:
            left = max(0.0, window.reset_s - elapsed)
            waits.append(left if window.remaining < requests else left * requests / window.remaining)
        return max(waits)

    # -- hooks for subclasses ----------------------------------------------------------------------

    def describe_error(self, status: int, payload: Any) -> ErrorInfo | None:
        """Read the provider's error envelope; None when ``payload`` is not one."""
        return None

    def exception_for(self, info: ErrorInfo, method: str, path: str) -> GpuctlError:
        """The gpuctl error for an error answer; subclasses refine it for provider codes."""
        detail = self._scrub(info.summary())
        if info.status in (401, 403):
            how = set_hint(self.credential) if self.credential else "check the API key"
            if info.status == 401:
                return CredentialsError(f"{self.provider} rejected the API key ({detail})",
                                        f"set a valid key: {how}")
            return CredentialsError(f"{self.provider} refused access with this API key ({detail})",
                                    f"use a key of an active account whose scope allows {method} {path}: {how}")
        if info.status == 404:
            return NotFoundError(f"{self.provider}: {method} {path} found nothing ({detail})",
                                 self._scrub(info.suggestion) if info.suggestion else None)
        if info.status == 429:
            return ProviderHttpError(f"{self.provider} API rate limit hit ({detail})",
                                     "wait a minute and try again", info=info)
        return ProviderHttpError(
            f"{self.provider} API failed on {method} {path} ({detail})",
            self._scrub(info.suggestion) if info.suggestion else None,
            info=info,
        )

    # -- requests ------------------------------------------------------------------------------------

    def get(self, path: str, model: type[M], *, params: Mapping[str, Any] | None = None) -> M:
        """GET ``path`` and validate the JSON answer as ``model``."""
        return self.parse(model, self.request("GET", path, params=params), f"answer to GET {path}")

    def parse(self, model: type[M], payload: Any, what: str) -> M:
        """``payload`` validated as ``model``; a mismatch is a ProviderError naming the first bad field."""
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            count = exc.error_count()
            more = f" and {count - 1} more problem(s)" if count > 1 else ""
            raise ProviderError(
                f"{self.provider} API sent an unexpected {what}: field '{where}': {first['msg']}{more}",
                "the API may have changed; upgrade gpuctl, or rerun with -vv and report it",
            ) from None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Send one request (with retries) and return its decoded JSON body (None when empty).

        Retried: 429 always; 5xx and answers broken mid-way only for idempotent methods (a POST
        that reached the server must not run twice, unless the caller vouches with ``idempotent``
        that running it twice is harmless); refused connections always. The wait is
        ``Retry-After`` when given, else an exponential backoff.
        """
        import httpx

        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        budget = self.timeout if timeout is None else timeout
        deadline = self._clock() + budget
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise self._timeout_error(method, path, budget)
            try:
                return self._attempt(method, path, params, json_body, remaining, attempt, idempotent)
            except httpx.TimeoutException:
                raise self._timeout_error(method, path, budget) from None
            except _Retryable as retryable:
                failure, wait = retryable.failure, retryable.wait
            if attempt > self.retry.max_retries:
                raise failure
            if wait is None:
                wait = self.retry.backoff_s * 2 ** (attempt - 1)
            if waited + wait > self.retry.max_wait_s or self._clock() + wait >= deadline:
                raise failure  # waiting that long would overrun the caller's budget
            log.info("%s; retrying in %.1f s", failure.message, wait)
            self._sleep(wait)
            waited += wait

    def _attempt(self, method: str, path: str, params: Mapping[str, Any] | None, json_body: Any,
                 remaining: float, attempt: int, idempotent: bool) -> Any:
        """One try: the decoded answer, or ``_Retryable`` when another try may help."""
        import httpx

        started = self._clock()
        try:
            response = self._http().request(method, path, params=params, json=json_body,
                                            timeout=httpx.Timeout(remaining))
        except httpx.TimeoutException:
            raise  # a timeout is an HTTPError too, but the caller turns it into exit 7, not a retry
        except httpx.HTTPError as exc:
            failure: GpuctlError = self._transport_error(exc, method, path)
            if idempotent or isinstance(exc, httpx.ConnectError):
                raise _Retryable(failure, None) from None
            raise failure from None
        status = response.status_code
        log.debug("%s %s %s -> %d in %.2f s (attempt %d)", self.provider, method, path, status,
                  self._clock() - started, attempt)
        quota = parse_rate_limit(response.headers.get("RateLimit"))
        if quota:
            self._quota = (quota, self._clock())
        if status < 400:
            return self._decode(response, method, path)
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        failure = self.exception_for(replace(self._error_info(response), retry_after=wait), method, path)
        if status == 429 or (status in RETRY_STATUSES and idempotent):
            raise _Retryable(failure, wait)
        raise failure

    # -- helpers ---------------------------------------------------------------------------------------

    def _decode(self, response: httpx.Response, method: str, path: str) -> Any:
        if not response.content:
            return None
        try:
            return json.loads(response.content)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProviderError(
                f"{self.provider} API sent invalid JSON in its answer to {method} {path} "
                f"(status {response.status_code}: {exc.__class__.__name__} at byte "
                f"{getattr(exc, 'pos', getattr(exc, 'start', '?'))} of {len(response.content)})",
                "the API may be having trouble; try again, or rerun with -vv and report it",
            ) from None

    def _error_info(self, response: httpx.Response) -> ErrorInfo:
        try:
            payload = json.loads(response.content) if response.content else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            payload = None
        info = self.describe_error(response.status_code, payload)
        return info or ErrorInfo(status=response.status_code, message=response.reason_phrase)

    def _timeout_error(self, method: str, path: str, budget: float) -> TimeoutError_:
        return TimeoutError_(
            f"{self.provider} API did not answer {method} {path} within {budget:g} s",
            "the provider may be slow or unreachable; try again later",
        )

    def _transport_error(self, exc: Exception, method: str, path: str) -> ProviderError:
        import httpx

        if isinstance(exc, httpx.ConnectError):
            where = f" (set by {self.base_url_env})" if self.base_url_env and os.environ.get(
                self.base_url_env) else ""
            return ProviderError(
                f"cannot reach the {self.provider} API at {self.base_url}{where}: {self._scrub(str(exc))}",
                "check the network connection" + (f" or {self.base_url_env}" if self.base_url_env else ""),
            )
        return ProviderError(
            f"{self.provider} API connection broke during {method} {path}: "
            f"{exc.__class__.__name__}: {self._scrub(str(exc))}",
            "try again; the provider may be having trouble",
        )

    def _scrub(self, text: str) -> str:
        """``text`` with the API key masked, in case a server echoes it back."""
        return text.replace(self._api_key, SECRET_MASK) if self._api_key else text
