"""SGLang as gpuctl's third engine, end to end on a fake GPU host, as the vLLM tests do it.

The fake image answers ``python3 -m sglang.launch_server`` (a package of that name runs the engine
stand-in) and is served under SGLang's image name by the host's registry mirror, so ``gpuctl up
--engine sglang`` pulls, starts and checks it exactly as it would the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gpuctl.engines import sglang
from gpuctl.state import StateStore
from tests.fakehost.cloud import write_recipe
from tests.fakehost.host import FakeGpuHost, FakeHostEnv

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fake_host_hub")]

HF_TOKEN = "hf_SGLangNeverPrintsThis_0123456789"
SERVED = "meta-llama/Meta-Llama-3-8B-Instruct"


def _host(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv) -> list[str]:
    return ["--host", fake_gpu_host.target, "--identity", str(fakehost_env.client_key), "--accept-host-key"]


def test_private_sglang_up_bench_logs_down(gpuctl, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
                                           isolated: Path) -> None:
    write_recipe(isolated)
    up = gpuctl("up", "tiny", "--engine", "sglang", *_host(fake_gpu_host, fakehost_env), "--name", "sg", "-y",
                "--price-per-hour", "1.0")
    assert up.exit_code == 0, up.stderr
    assert up.stdout.splitlines()[0] == "sg is ready: http://127.0.0.1:8000/v1"
    assert "health bench: TTFT p50 " in up.stderr
    try:
        inspect = json.loads(fake_gpu_host.docker("inspect", "gpuctl-sg").stdout)[0]
        assert inspect["Config"]["Image"] == sglang.IMAGE
        command = [inspect["Path"], *inspect["Args"]]
        assert command[:3] == ["python3", "-m", "sglang.launch_server"]
        assert command[command.index("--model-path") + 1] == SERVED
        assert command[command.index("--port") + 1] == "30000" and "--enable-metrics" in command
        assert inspect["HostConfig"]["PortBindings"] == {"30000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000"}]}
        mounts = [(m["Source"], m["Destination"], m["RW"]) for m in inspect["Mounts"]]
        assert mounts == [("/var/lib/gpuctl/hf-cache", "/root/.cache/huggingface", False)]
        assert "HF_HUB_OFFLINE=1" in inspect["Config"]["Env"], "served offline from the host's cache"

        (row,) = json.loads(gpuctl("status", "--json").stdout)
        assert (row["name"], row["status"], row["health"]) == ("sg", "running", "healthy")
        logs = gpuctl("logs", "sg", "--tail", "5")
        assert f"fake engine: serving {SERVED}" in logs.stdout
        bench = gpuctl("bench", "sg", "--requests", "6", "--output-len", "8", "--json")
        assert bench.exit_code == 0, bench.stderr
        (run,) = json.loads(bench.stdout)["runs"]
        assert (run["requests_ok"], run["requests_failed"]) == (6, 0)
        (stored,) = StateStore(isolated).read().bench_runs
        assert (stored.recipe, stored.engine, stored.gpu, stored.gpu_count, stored.quantization) == (
            "tiny", "sglang", "L40S", 1, None)
        assert stored.estimate is not None and stored.estimate.inputs.engine == "sglang"
        assert stored.estimate.inputs.workload.output_tokens == 8 and stored.estimate.inputs.concurrency == 1
    finally:
        down = gpuctl("down", "sg")
    assert down.exit_code == 0, down.stderr
    assert fake_gpu_host.containers() == []


def test_public_sglang_checks_its_key_which_no_command_line_shows(
        gpuctl, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv, isolated: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    write_recipe(isolated, "gated", gated=True)
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    result = gpuctl("up", "gated", "--engine", "sglang", *_host(fake_gpu_host, fakehost_env), "--public",
                    "--name", "sgpub", "-y", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    endpoint = f"http://{fake_gpu_host.address}:8000"
    assert (doc["endpoint"], doc["public"], doc["engine"]) == (endpoint, True, "sglang")
    key = (isolated / ".gpuctl" / "secrets" / "sgpub.env").read_text().strip().split("=", 1)[1]
    try:
        body = {"model": SERVED, "prompt": "hi", "max_tokens": 2}
        assert httpx.get(f"{endpoint}/health").status_code == 200, "SGLang leaves /health open"
        assert httpx.post(f"{endpoint}/v1/completions", json=body).status_code == 401
        authorized = httpx.post(f"{endpoint}/v1/completions", json=body, headers={"Authorization": f"Bearer {key}"})
        assert authorized.status_code == 200
        inspect = json.loads(fake_gpu_host.docker("inspect", "gpuctl-sgpub").stdout)[0]
        command_lines = " ".join(cmd for _, cmd in fake_gpu_host.processes()) + " ".join(inspect["Args"])
        assert "sglang.launch_server" in command_lines
        for secret in (HF_TOKEN, key):
            assert secret not in json.dumps(inspect), "docker inspect shows no secret"
            assert secret not in command_lines
            assert secret not in result.stdout + result.stderr
            assert secret not in (isolated / ".gpuctl" / "state.json").read_text()
        env = gpuctl("env", "sgpub").stdout
        assert env == f"export OPENAI_BASE_URL={endpoint}/v1\nexport OPENAI_API_KEY={key}\n"
    finally:
        down = gpuctl("down", "sgpub")
    assert down.exit_code == 0, down.stderr
    assert fake_gpu_host.containers() == []
