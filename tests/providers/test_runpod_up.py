"""``gpuctl up --provider runpod`` end to end: the real RunPod provider against the API stand-in, which
runs each pod's container on a fake GPU host's dockerd (its proxy URL aimed at that host), then
``gpuctl down``."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gpuctl.state import StateStore
from tests.fakehost.cloud import write_recipe

pytestmark = pytest.mark.integration


def test_up_and_down_on_runpod(gpuctl, runpod_api, make_fake_gpu_host, isolated: Path, monkeypatch) -> None:
    host = make_fake_gpu_host()  # 1x L40S
    runpod_api.state.docker_host = host.docker_env["DOCKER_HOST"]
    runpod_api.state.address, runpod_api.state.boot_polls = host.address, 1
    monkeypatch.setenv("GPUCTL_RUNPOD_PROXY_URL", f"http://{host.address}:{{port}}")
    write_recipe(isolated)

    result = gpuctl("up", "tiny", "--provider", "runpod", "--gpu", "L40S", "--name", "e2e", "-y")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"e2e is ready: http://{host.address}:8000/v1"
    [pod] = runpod_api.state.pods.values()
    [create] = runpod_api.calls("POST", "/v2/pods")
    # the cheapest L40S offer of the stand-in's catalog is Community Cloud in US-CA-2, at $0.79/h
    assert (create.body["cloud"], create.body["dataCenterIds"], pod.cost) == ("COMMUNITY", ["US-CA-2"], 0.79)
    # Community Cloud pods cannot mount a network volume: no weights cache, the engine downloads the weights itself
    assert runpod_api.state.volumes == {} and "mounts" not in create.body
    record = StateStore(isolated).read().deployments["e2e"]
    assert (record.provider, record.instance_id, record.public) == ("runpod", pod.id, True)
    assert host.containers() == [f"runpod-{pod.id} running"]

    key = (isolated / ".gpuctl" / "secrets" / "e2e.env").read_text().strip().split("=", 1)[1]
    assert create.body["env"]["VLLM_API_KEY"] == key
    assert key not in result.stdout + result.stderr
    models = httpx.get(f"http://{host.address}:8000/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert models.status_code == 200

    logs = gpuctl("logs", "e2e", "--tail", "20")
    assert logs.exit_code == 0 and "INFO fake engine: serving meta-llama/Meta-Llama-3-8B-Instruct" in logs.stdout
    env = gpuctl("env", "e2e")  # a pod is public behind the proxy: its own API key, shown only here
    assert env.stdout == f"export OPENAI_BASE_URL=http://{host.address}:8000/v1\nexport OPENAI_API_KEY={key}\n"

    status = json.loads(gpuctl("status", "--json").stdout)
    assert [(row["name"], row["status"], row["provider"]) for row in status] == [("e2e", "running", "runpod")]

    down = gpuctl("down", "e2e")
    assert down.exit_code == 0, down.stderr
    assert runpod_api.state.pods == {} and runpod_api.state.terminated == [pod.id]
    assert host.containers() == []
