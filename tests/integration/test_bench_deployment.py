"""``gpuctl bench NAME`` against a deployment on the fake GPU host: through the SSH tunnel of a private
endpoint, and ``--from host`` inside the engine container; ``up`` ends with its short health bench."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakehost.cloud import write_recipe
from tests.fakehost.host import FakeGpuHost, FakeHostEnv

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fake_host_hub")]


def test_bench_a_private_deployment_from_here_and_from_its_host(
        gpuctl, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv, isolated: Path) -> None:
    write_recipe(isolated)
    up = gpuctl("up", "tiny", "--host", fake_gpu_host.target, "--identity", str(fakehost_env.client_key),
                "--accept-host-key", "--name", "b1", "-y", "--price-per-hour", "2.0")
    assert up.exit_code == 0, up.stderr
    assert "health bench: TTFT p50 " in up.stderr and " output tokens/s" in up.stderr
    try:
        for source in ("local", "host"):
            result = gpuctl("bench", "b1", "--from", source, "--requests", "6", "--output-len", "8", "--json")
            assert result.exit_code == 0, (source, result.stderr)
            (run,) = json.loads(result.stdout)["runs"]
            assert (run["requests_ok"], run["requests_failed"]) == (6, 0), source
            assert run["ttft_ms"]["p50"] > 0 and run["output_tokens_per_s"] > 0
            assert run["cost_per_1m_output_tokens"] == pytest.approx(2.0 / 3600 / run["output_tokens_per_s"] * 1e6,
                                                                     rel=0.01)
        history = json.loads(gpuctl("bench", "--history", "--json").stdout)
        assert [row["deployment"] for row in history] == ["b1", "b1"]
    finally:
        assert gpuctl("down", "b1").exit_code == 0
    assert fake_gpu_host.containers() == []


def test_from_host_needs_a_deployment(gpuctl) -> None:
    result = gpuctl("bench", "--url", "http://127.0.0.1:9", "--from", "host")
    assert result.exit_code == 2
    assert "--from host benchmarks a deployment" in result.stderr
