"""Building blocks of a provider's ``gpuctl doctor`` checks (``Provider.doctor_checks``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gpuctl.errors import CredentialsError, GpuctlError
from gpuctl.providers.base import ProviderCheck

if TYPE_CHECKING:
    from gpuctl.providers.http import JsonApiClient


def api_check(call: str, probe: Callable[[], str | None]) -> ProviderCheck:
    """Run ``probe``, one cheap read-only call that needs valid credentials and returns its answer's ``Date``
    header (or None), and grade it: a refusal (``CredentialsError``) is a problem, any other failure a
    warning (the credentials are not proven wrong), an answer ok."""
    started = time.monotonic()
    try:
        date = probe()
    except CredentialsError as exc:
        return ProviderCheck(name="api", status="problem", detail=f"credentials rejected: {exc.message}", fix=exc.hint)
    except GpuctlError as exc:
        return ProviderCheck(name="api", status="warning",
                             detail=f"could not reach it, credentials not verified: {exc.message}",
                             fix=exc.hint or "try again later")
    return ProviderCheck(name="api", status="ok", server_date=date,
                         detail=f"credentials accepted ({call}, {time.monotonic() - started:.2f}s)")


def http_probe(api_cls: type[JsonApiClient], path: str, timeout: float) -> str | None:
    """A GET of ``path`` with the provider's own client (its key, base URL and error mapping; no retries);
    returns the ``Date`` header of the answer."""
    import httpx

    from gpuctl.providers.http import RetryPolicy, base_url_from_env, require_credential

    class DateRecorder(httpx.HTTPTransport):
        date: str | None = None

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            self.date = response.headers.get("date")
            return response

    if api_cls.credential is None:
        raise TypeError(f"{api_cls.__name__} declares no credential")
    recorder = DateRecorder()
    url = (base_url_from_env(api_cls.base_url_env, api_cls.default_base_url) if api_cls.base_url_env
           else api_cls.default_base_url)
    with api_cls(require_credential(api_cls.credential, api_cls.provider), url, timeout=timeout,
                 retry=RetryPolicy(max_retries=0), transport=recorder) as api:
        api.request("GET", path)
    return recorder.date
