"""``gpuctl up --host`` with the weights step: fetched once into the host's cache, served read-only and offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuctl.models.engine import HOST_CACHE_DIR
from tests.fakehost.cloud import write_recipe
from tests.fakehost.host import FakeGpuHost, FakeHostEnv
from tests.standins.hub_server import HubServer

pytestmark = pytest.mark.integration


def test_up_fetches_once_and_serves_the_cache_read_only_offline(
        gpuctl, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv, fake_host_hub: HubServer,
        isolated: Path) -> None:
    hub = fake_host_hub
    write_recipe(isolated)
    host = ["--host", fake_gpu_host.target, "--identity", str(fakehost_env.client_key), "--accept-host-key"]
    first = gpuctl("up", "tiny", *host, "--name", "w1", "-y")
    assert first.exit_code == 0, first.stderr
    assert "downloading meta-llama/Meta-Llama-3-8B-Instruct: 1.6 MB ..." in first.stderr
    [repo] = hub.repos.values()
    assert repo.commit == "8afb486c1db24fe5011ec46dfbe5b5dccdb575c2"  # the recipe's pinned revision
    assert hub.bytes_sent() > 1_500_000
    mounts = json.loads(fake_gpu_host.docker("inspect", "--format", "{{json .Mounts}}", "gpuctl-w1").stdout)
    assert [(m["Source"], m["Destination"], m["RW"]) for m in mounts] == [
        (HOST_CACHE_DIR, "/root/.cache/huggingface", False)]
    env = fake_gpu_host.docker("inspect", "--format", "{{json .Config.Env}}", "gpuctl-w1").stdout
    assert "HF_HUB_OFFLINE=1" in env
    assert gpuctl("down", "w1").exit_code == 0

    hub.clear_log()
    second = gpuctl("up", "tiny", *host, "--name", "w2", "-y")
    assert second.exit_code == 0, second.stderr
    assert "meta-llama/Meta-Llama-3-8B-Instruct: all 9 files already cached and verified" in second.stderr
    assert hub.log == []  # the recipe pins its revision: the host's cache answers everything
    assert gpuctl("down", "w2").exit_code == 0
