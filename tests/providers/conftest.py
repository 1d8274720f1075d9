"""Fixtures shared by the provider tests (the stand-in servers come from tests.standins.fixtures)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gpuctl.providers import http


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> http.RetryPolicy:
    """Backoff shrunk to milliseconds so exhausting retries stays quick; Retry-After is still honoured."""
    policy = replace(http.DEFAULT_RETRY, backoff_s=0.01)
    monkeypatch.setattr(http, "DEFAULT_RETRY", policy)
    return policy
