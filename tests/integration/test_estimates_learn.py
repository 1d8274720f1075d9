"""Estimates that learn, end to end: a bench on a fake GPU whose engine has a known speed corrects later
estimates for that GPU, engine and model family, and only those."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakehost.cloud import write_recipe
from tests.fakehost.host import FakeGpuHost, FakeHostEnv

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fake_host_hub")]

#: a slow L40S: 20 ms per decode step plus 2 ms per running request, a KV cache of 4096 tokens
SPEED = {"NVIDIA L40S": {"prefill_tokens_per_s": 4000, "decode_ms": 20, "decode_ms_per_sequence": 2,
                         "kv_cache_tokens": 4096}}
LOAD = ["--input-len", "32", "--output-len", "16"]


def _estimate(gpuctl, *args: str) -> dict:
    result = gpuctl("fit", "tiny", "--gpu", "l40s", "--count", "1", *LOAD, *args, "--json")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    return row["estimate"]


def test_a_bench_corrects_the_estimates_of_its_gpu_engine_and_family(
        gpuctl, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv, isolated: Path) -> None:
    write_recipe(isolated, env={"FAKE_ENGINE_SPEED": json.dumps(SPEED)})
    before = _estimate(gpuctl, "--concurrency", "4")
    assert (before["basis"], before["runs"]) == ("model", None)
    up = gpuctl("up", "tiny", "--host", fake_gpu_host.target, "--identity", str(fakehost_env.client_key),
                "--accept-host-key", "--name", "learn", "-y", "--price-per-hour", "0.8")
    assert up.exit_code == 0, up.stderr
    try:
        logs = gpuctl("logs", "learn", "--tail", "20").stdout
        assert "fake engine: NVIDIA L40S at Speed(" in logs, "the engine knows its GPU from the NVIDIA hook"
        bench = gpuctl("bench", "learn", "-c", "4", "--requests", "24", *LOAD, "--json")
        assert bench.exit_code == 0, bench.stderr
        (run,) = json.loads(bench.stdout)["runs"]
    finally:
        assert gpuctl("down", "learn").exit_code == 0
    # the stand-in's own arithmetic: up to four requests share each step of 20 ms + 2 ms per request
    assert 22 < run["itl_ms"]["mean"] < 40
    after = _estimate(gpuctl, "--concurrency", "4")
    assert (after["basis"], after["runs"], after["correction"]["same_load"]) == ("measured", 1, True)
    assert after["output_tokens_per_s"] == pytest.approx(run["output_tokens_per_s"], rel=0.01)
    assert after["itl_ms"] == pytest.approx(run["itl_ms"]["mean"], rel=0.01)
    assert after["ttft_ms"] == pytest.approx(run["ttft_ms"]["mean"], rel=0.01)
    # another load of the same GPU learns the same factors; another engine or GPU learns nothing
    other_load = _estimate(gpuctl, "--concurrency", "8")
    assert (other_load["basis"], other_load["correction"]["same_load"]) == ("measured", False)
    assert other_load["correction"]["itl_ms"] == after["correction"]["itl_ms"]
    assert _estimate(gpuctl, "--concurrency", "4", "--engine", "sglang")["basis"] == "model"
    h100 = json.loads(gpuctl("fit", "tiny", "--gpu", "h100-sxm", "--count", "1", *LOAD, "--json").stdout)[0]
    assert h100["estimate"]["basis"] == "model"
    history = json.loads(gpuctl("bench", "--history", "--json").stdout)
    assert [(h["recipe"], h["engine"], h["gpu"], h["estimate"]["basis"]) for h in history] == [
        ("tiny", "vllm", "L40S", "model")], "the stored estimate is the model's own, never a corrected one"
