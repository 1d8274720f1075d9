"""``gpuctl logs NAME``: the engine's output, from the provider or from the container on the host.

Logs from a real container (and ``-f``) are covered end to end in tests/integration/test_lifecycle.py.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakehost.cloud import Cloud, add_deployment


def test_a_provider_run_engine_logs_come_from_the_provider(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    add_deployment(isolated, "pod", provider="fakepod", instance_id="fakepod-7")
    result = gpuctl("logs", "pod", "--tail", "10")
    assert result.exit_code == 0
    assert result.stdout == "engine log of fakepod-7\n"


def test_a_host_deployment_without_a_container_yet(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    add_deployment(isolated, "early", provider="ssh", status="starting", host="local")
    result = gpuctl("logs", "early")
    assert result.exit_code == 2
    assert "'early' has no engine container yet (status starting)" in result.stderr


def test_unknown_name(gpuctl, fake_cloud: Cloud) -> None:
    result = gpuctl("logs", "nope")
    assert result.exit_code == 3 and "no deployment named 'nope'" in result.stderr
