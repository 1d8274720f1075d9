"""``gpuctl up --provider lambda`` end to end: the real Lambda provider against the API stand-in, whose
instance is a fake GPU host (real SSH, real dockerd, the fake engine image), then ``gpuctl down``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuctl.providers import lambda_cloud
from gpuctl.state import StateStore
from tests.fakehost.cloud import write_recipe
from tests.fakehost.host import FakeGpu

pytestmark = pytest.mark.integration


def test_up_and_down_on_lambda(gpuctl, lambda_api, make_fake_gpu_host, isolated: Path, monkeypatch) -> None:
    host = make_fake_gpu_host([FakeGpu(name="NVIDIA H100 80GB HBM3", memory_total_mib=81559)])
    state = lambda_api.state
    state.address, state.boot_polls, state.ip_polls = host.address, 1, 1
    state.authorized_keys = str(host.home / ".ssh" / "authorized_keys")  # what Lambda's cloud-init does
    monkeypatch.setattr(lambda_cloud, "SSH_USER", host.user)  # Lambda logs in as ubuntu; the fake host has root
    write_recipe(isolated)

    result = gpuctl("up", "tiny", "--provider", "lambda", "--gpu", "H100-80GB", "--name", "e2e", "--ttl", "1h", "-y")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "e2e is ready: http://127.0.0.1:8000/v1"  # private: SSH tunnel
    [instance] = state.instances.values()
    assert (instance.type_name, instance.region, instance.status) == ("gpu_1x_h100_sxm5", "us-south-1", "active")
    record = StateStore(isolated).read().deployments["e2e"]
    assert (record.provider, record.instance_id, record.price_per_hour) == ("lambda", instance.id, 3.29)
    tags = {t["key"]: t["value"] for t in instance.tags}
    assert tags["gpuctl-deployment"] == "e2e" and tags["gpuctl-launch-token"] == record.idempotency_token
    assert "gpuctl-watchdog" in (instance.user_data or "")
    assert host.containers() == ["gpuctl-e2e running"]
    [key] = state.ssh_keys.values()
    assert key["public_key"] in Path(state.authorized_keys).read_text()

    status = json.loads(gpuctl("status", "--json").stdout)
    assert [(row["name"], row["status"], row["provider"]) for row in status] == [("e2e", "running", "lambda")]
    logs = gpuctl("logs", "e2e", "--tail", "20")
    assert logs.exit_code == 0 and "INFO fake engine: serving meta-llama/Meta-Llama-3-8B-Instruct" in logs.stdout
    env = gpuctl("env", "e2e")  # private: the engine listens on the machine's loopback, reached through a tunnel
    assert env.stdout == "export OPENAI_BASE_URL=http://127.0.0.1:8000/v1\nexport OPENAI_API_KEY=EMPTY\n"

    down = gpuctl("down", "e2e")
    assert down.exit_code == 0, down.stderr
    assert [i.status for i in state.instances.values()] == ["terminated"]
    assert len(lambda_api.calls("POST", "/api/v1/instance-operations/terminate")) == 1
    assert len(lambda_api.calls("POST", "/api/v1/instance-operations/launch")) == 1
