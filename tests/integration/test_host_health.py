"""The engine health wait against mock_openai on loopback: ready, smoke completion, failures."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuctl.errors import ExitCode, HealthCheckError
from gpuctl.host.health import EngineHealthError, wait_for_engine

pytestmark = pytest.mark.integration

MOCK = Path(__file__).resolve().parents[1] / "standins" / "mock_openai.py"
KEY = "sk-health-test-3131"


def _start_mock(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, str(MOCK), "--host", "127.0.0.1", "--port", "0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    assert process.stdout is not None
    ready = process.stdout.readline().split()
    assert ready[0] == "READY", ready
    return process, ready[1]


@pytest.fixture(scope="module")
def mock_engine() -> Iterator[str]:
    process, url = _start_mock("--model", "org/health-model", "--api-key", KEY)
    yield url
    process.terminate()
    process.wait(timeout=5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthy_engine_lists_its_model_and_completes(mock_engine: str) -> None:
    result = wait_for_engine(mock_engine, api_key=KEY, timeout=10, interval=0.05)
    assert result.base_url == mock_engine
    assert result.models == ["org/health-model"]
    assert len(result.smoke_text.split()) == 4  # max_tokens=4, one word per token in the mock
    assert 0 < result.seconds < 10


def test_wrong_api_key_fails_the_smoke_completion(mock_engine: str) -> None:
    with pytest.raises(EngineHealthError) as caught:
        wait_for_engine(mock_engine, api_key="sk-wrong", timeout=10, interval=0.05,
                        log_tail=lambda: "INFO started\nERROR rejected a key\n")
    assert caught.value.exit_code == ExitCode.HEALTH
    assert caught.value.message == (f"the smoke completion against {mock_engine} failed (HTTP 401 from "
                                    "/v1/completions); last log line: ERROR rejected a key")
    assert caught.value.log_tail == "INFO started\nERROR rejected a key\n"


def test_nothing_listening_times_out_within_the_bound() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    with pytest.raises(HealthCheckError) as caught:
        wait_for_engine(url, timeout=1.0, interval=0.2)
    assert 0.6 < time.monotonic() - started < 3
    assert caught.value.message.startswith(f"the engine at {url} was not healthy after 1s (ConnectError")


def test_wrong_health_path_is_reported() -> None:
    process, url = _start_mock("--model", "m")
    try:
        with pytest.raises(HealthCheckError) as caught:
            wait_for_engine(url, health_path="/ready", timeout=0.5, interval=0.1)
    finally:
        process.terminate()
        process.wait(timeout=5)
    assert caught.value.message == f"the engine at {url} was not healthy after 0.5s (HTTP 404 from /ready)"


def test_stopped_container_fails_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(EngineHealthError) as caught:
        wait_for_engine(f"http://127.0.0.1:{_free_port()}", timeout=60, exited=lambda: "exited with code 137",
                        log_tail=lambda: "")
    assert time.monotonic() - started < 2
    assert caught.value.message == "the engine container stopped before it became healthy (exited with code 137)"
