"""pytest fixtures that start the provider stand-ins and point gpuctl at them.

``runpod_api`` and ``lambda_api`` each yield a started server (``.url``, ``.state``, ``.faults``,
``.requests``, ``.api_key``) and set the provider's base-URL and key variables. At teardown the
test fails if any answer the server gave, or any request it received, breaks the provider's
OpenAPI spec; a test that sends bad requests on purpose sets ``allow_invalid_requests = True``.
Enable them with ``pytest_plugins = ["tests.standins.fixtures"]`` in a conftest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import TypeVar

import pytest

from gpuctl.envvars import Env
from tests.standins.lambda_server import LambdaStandin
from tests.standins.mock_openai import MockProcess, Settings
from tests.standins.runpod_server import RunPodStandin
from tests.standins.server import StandinServer

# Recognisable, long enough to be masked by gpuctl's redaction, and never a real key.
RUNPOD_TEST_KEY = "rpa_STANDIN_7f3a9c1e5b2d4f60"
LAMBDA_TEST_KEY = "secret_standin_4e8b2a6c9d1f3e57"

S = TypeVar("S", bound=StandinServer)


def _serve(server: S, monkeypatch: pytest.MonkeyPatch, url_var: str, key_var: str) -> Iterator[S]:
    server.start()
    monkeypatch.setenv(url_var, server.url)
    monkeypatch.setenv(key_var, server.api_key)
    try:
        yield server
    finally:
        server.stop()
    problems = server.contract_violations()
    if problems:
        pytest.fail(f"{server.display_name} stand-in broke its spec:\n  " + "\n  ".join(problems))


@pytest.fixture
def runpod_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunPodStandin]:
    """A RunPod REST v2 stand-in; sets GPUCTL_RUNPOD_API_URL and RUNPOD_API_KEY."""
    yield from _serve(RunPodStandin(api_key=RUNPOD_TEST_KEY), monkeypatch, Env.RUNPOD_API_URL,
                      Env.RUNPOD_API_KEY)


@pytest.fixture
def lambda_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaStandin]:
    """A Lambda Cloud API stand-in; sets GPUCTL_LAMBDA_API_URL and LAMBDA_API_KEY."""
    yield from _serve(LambdaStandin(api_key=LAMBDA_TEST_KEY), monkeypatch, Env.LAMBDA_API_URL,
                      Env.LAMBDA_API_KEY)


@pytest.fixture(scope="module")
def mock_server() -> Iterator[MockProcess]:
    """The mock OpenAI server (tests/standins/mock_openai.py), one process per test module."""
    with MockProcess() as server:
        yield server


@pytest.fixture
def mock(mock_server: MockProcess) -> MockProcess:
    """The module's mock server with default settings and empty records."""
    mock_server.configure(**asdict(Settings()))
    mock_server.reset()
    return mock_server
