"""Fault injection, the request log and standalone use of the stand-ins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.standins.runpod_server import RunPodStandin
from tests.standins.server import Fault

KEY = "rpa_FAULTS_TEST_KEY_000003"
GPUS = "/v2/catalog/gpus"
KEYS = "/v2/account/ssh-keys"


@pytest.fixture
def server() -> Iterator[RunPodStandin]:
    with RunPodStandin(api_key=KEY) as standin:
        yield standin


@pytest.fixture
def http(server: RunPodStandin) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=5) as client:
        yield client


def test_delay_applies_to_every_answer(server, http):
    server.faults.delay_s = 0.3
    for path in (GPUS, KEYS):
        started = time.monotonic()
        assert http.get(path).status_code == 200
        assert time.monotonic() - started >= 0.3


def test_queued_faults_are_used_once_in_order_and_by_path(server, http):
    server.faults.next(Fault.error(500, path=KEYS), Fault.error(502), Fault.error(429, retry_after=2))
    assert http.get(GPUS).status_code == 502  # the first fault whose path matches
    answer = http.get(KEYS)
    assert answer.status_code == 500 and "retry-after" not in answer.headers
    limited = http.get(GPUS)
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "2")
    assert [http.get(p).status_code for p in (GPUS, KEYS)] == [200, 200]
    assert [r.fault for r in server.requests] == ["status", "status", "status", None, None]


def test_faults_can_target_one_method(server, http):
    server.faults.next(Fault.error(500, method="put", path=KEYS))
    assert http.get(KEYS).status_code == 200  # same path, other method: untouched
    assert http.put(KEYS, json={"keys": []}).status_code == 500
    assert http.put(KEYS, json={"keys": []}).status_code == 200


def test_standing_fault_until_cleared(server, http):
    server.faults.always(Fault.error(503))
    assert [http.get(GPUS).status_code for _ in range(3)] == [503, 503, 503]
    server.faults.clear()
    assert http.get(GPUS).status_code == 200


def test_malformed_body_is_not_json(server, http):
    server.faults.next(Fault.malformed())
    answer = http.get(GPUS)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        answer.json()
    assert server.contract_violations() == []  # broken on purpose, so not held against the stand-in


def test_truncated_body_breaks_the_connection(server, http):
    server.faults.next(Fault.truncated())
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(GPUS)
    assert http.get(GPUS).status_code == 200  # the next request is served normally


def test_hang_outlasts_the_client_and_stop_is_prompt(server):
    server.faults.always(Fault.hang(seconds=60))
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(server.url + GPUS, headers={"Authorization": f"Bearer {KEY}"}, timeout=0.3)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2


def test_status_faults_with_off_spec_bodies_are_flagged(server, http):
    server.faults.next(Fault.error(500, body={"message": "not a problem document"}))
    http.get(GPUS)
    [problem] = server.contract_violations()
    assert "GET /v2/catalog/gpus -> 500" in problem and "'title' is a required property" in problem


def test_request_log_keeps_no_key(server, http):
    http.put(KEYS, json={"keys": []}, params={})
    httpx.get(server.url + GPUS, headers={"Authorization": "Bearer not-the-key"})
    put, anonymous = server.requests
    assert (put.method, put.path, put.body, put.status, put.authorized) == ("PUT", KEYS, {"keys": []}, 200, True)
    assert put.headers["authorization"] == "Bearer <redacted>"
    assert (anonymous.status, anonymous.authorized) == (401, False)
    assert KEY not in repr(server.requests) and "not-the-key" not in repr(server.requests)


@pytest.mark.parametrize("module", ["tests.standins.runpod_server", "tests.standins.lambda_server"])
def test_runs_standalone_with_a_delay(module):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root}
    proc = subprocess.Popen([sys.executable, "-m", module, "--port", "0", "--delay-ms", "300",
                             "--api-key", KEY], stdout=subprocess.PIPE, text=True, env=env, cwd=root)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        path = GPUS if "runpod" in module else "/api/v1/instance-types"
        started = time.monotonic()
        answer = httpx.get(url + path, headers={"Authorization": f"Bearer {KEY}"}, timeout=5)
        assert answer.status_code == 200
        assert time.monotonic() - started >= 0.3
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0


def test_fixture_teardown_fails_the_test_on_contract_drift(monkeypatch):
    from tests.standins.fixtures import _serve

    serving = _serve(RunPodStandin(api_key=KEY), monkeypatch, "GPUCTL_RUNPOD_API_URL", "RUNPOD_API_KEY")
    server = next(serving)
    assert os.environ["GPUCTL_RUNPOD_API_URL"] == server.url and os.environ["RUNPOD_API_KEY"] == KEY
    server.state.gpus["NVIDIA L40S"].price["secure"] = "0.86"  # type: ignore[assignment]
    httpx.get(server.url + GPUS, headers={"Authorization": f"Bearer {KEY}"})
    with pytest.raises(pytest.fail.Exception, match=r"RunPod stand-in broke its spec:\n .*'0.86' is not"):
        next(serving)
