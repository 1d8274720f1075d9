"""The real ``vllm-router`` (PyPI) started, fed and stopped by gpuctl.deploy.router, in front of mock engines."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from gpuctl.deploy import router
from tests.standins.mock_openai import MockProcess

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(__import__("importlib.util").util.find_spec("vllm_router") is None,
                                 reason="vllm-router is not installed (test extra)")]

KEY = "gpuctl-router-test-key-0123456789"
BODY = {"model": "mock-model", "prompt": "hi", "max_tokens": 2}


def _complete(url: str, key: str | None = KEY) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}/v1/completions", json=BODY, headers=headers, timeout=30).status_code


def test_local_router_adds_removes_and_stops(tmp_path: Path) -> None:
    with MockProcess("--api-key", KEY) as one, MockProcess("--api-key", KEY) as two:
        record = router.start_local(tmp_path, "svc", policy="round_robin", api_key=KEY, workers=[one.url])
        try:
            assert record.url.startswith("http://127.0.0.1:") and record.pid is not None
            cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes().decode()
            assert KEY not in cmdline, "the key reaches the router on stdin, never in its command line"
            assert [w.url for w in router.workers(record.url)] == [one.url]
            router.add_worker(record.url, two.url)
            assert sorted(w.url for w in router.workers(record.url)) == sorted([one.url, two.url])
            assert [_complete(record.url) for _ in range(4)] == [200] * 4
            assert one.stats()["requests"] and two.stats()["requests"], "round robin reached both"
            assert _complete(record.url, key=None) == 401, "the replicas' key guards them behind the router"
            router.remove_worker(record.url, one.url)
            router.remove_worker(record.url, one.url)  # twice: absent is fine
            assert [w.url for w in router.workers(record.url)] == [two.url]
        finally:
            router.stop_local(record)
        assert not router.is_ours(record.pid, record.pid_start)
        assert not os.path.exists(f"/proc/{record.pid}/cmdline") or router.process_start(record.pid) is None


def test_the_router_stops_itself_when_the_ttl_ends(tmp_path: Path) -> None:
    from tests.fakehost.cloud import wait_until

    record = router.start_local(tmp_path, "ttl", policy="round_robin", api_key=KEY, ttl_seconds=2)
    try:
        assert record.pid is not None and router.is_ours(record.pid, record.pid_start)
        wait_until(lambda: not router.is_ours(record.pid or 0, record.pid_start), "the router to stop itself",
                   timeout=30)
    finally:
        router.stop_local(record)


def test_a_router_on_another_machine_over_ssh(tmp_path: Path, fake_gpu_host, fakehost_env) -> None:
    """``--router USER@HOST``: started over SSH with its key on stdin, reached through a tunnel, stopped by pid."""
    import subprocess

    from gpuctl.deploy.hosts import connect, opened
    from gpuctl.host.target import parse_target
    from tests.fakehost.cloud import wait_until
    from tests.standins import mock_openai

    host = fake_gpu_host
    host.install_vllm_router()
    engine = subprocess.Popen([*host._nsenter(), "/usr/bin/python3", mock_openai.__file__, "--host", "127.0.0.1",
                               "--port", "8100", "--api-key", KEY], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert engine.stdout is not None and engine.stdout.readline().startswith("READY")
        target = parse_target(host.target)
        with opened(connect(target, tmp_path, identity=fakehost_env.client_key, accept_host_key=True)) as session:
            record = router.start_remote(session, "svc", policy="round_robin", api_key=KEY, port=30000)
            try:
                assert (record.placement, record.port, record.pid is not None) == ("remote", 30000, True)
                with session.forward(30000) as local_port:
                    url = f"http://127.0.0.1:{local_port}"
                    router.wait_ready(url)
                    assert router.workers(url) == []
                    router.add_worker(url, "http://127.0.0.1:8100")
                    assert [_complete(url) for _ in range(3)] == [200] * 3
                router_lines = [cmd for _, cmd in host.processes() if "mock_openai" not in cmd]  # the test's engine
                assert any("vllm::router" in cmd for cmd in router_lines), "the router names itself so"
                assert not any(KEY in cmd for cmd in router_lines), "the key is in no command line there"
            finally:
                router.stop_remote(session, record)
            wait_until(lambda: not any("vllm::router" in cmd for _, cmd in host.processes()), "the router to stop",
                       timeout=20)
    finally:
        engine.kill()
        engine.wait()
        host.uninstall_vllm_router()
