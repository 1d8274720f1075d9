"""``gpuctl up --provider runpod`` with the weights cache, end to end: the stand-in API runs every pod on a fake GPU
host's dockerd, the network volume is a docker volume there, and the seeding CPU pod downloads from the host's
stand-in hub. The first ``up`` downloads every byte, the second none; the volume outlives ``down``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuctl.errors import ExitCode
from gpuctl.providers.runpod import seeding as runpod_seed
from gpuctl.providers.runpod.provider import RunPodProvider
from gpuctl.state import StateStore
from gpuctl.weights.fetcher import repo_folder
from tests.fakehost.cloud import write_recipe
from tests.fakehost.host import FakeGpuHost
from tests.standins.hub_server import GOOD_TOKEN, tiny_model

pytestmark = pytest.mark.integration

#: the recipe's model; the host's hub makes a tiny model for any repo
REPO, REVISION = "meta-llama/Meta-Llama-3-8B-Instruct", "8afb486c1db24fe5011ec46dfbe5b5dccdb575c2"
#: the stand-in's Secure Cloud L40S data center (network volumes attach to Secure Cloud pods only)
DC = "US-TX-3"
UP = ("up", "tiny", "--provider", "runpod", "--gpu", "L40S", "--region", DC, "-y", "--name")


@pytest.fixture
def runpod_host(runpod_api, make_fake_gpu_host, isolated: Path, monkeypatch) -> FakeGpuHost:
    host = make_fake_gpu_host()  # 1x L40S; HF_ENDPOINT is its hub
    runpod_api.state.docker_host = host.docker_env["DOCKER_HOST"]
    runpod_api.state.address, runpod_api.state.boot_polls = host.address, 1
    monkeypatch.setenv("GPUCTL_RUNPOD_PROXY_URL", f"http://{host.address}:{{port}}")
    monkeypatch.setattr(runpod_seed, "POLL_S", 0.2)
    return host


def seeding_bodies(runpod_api) -> list[dict]:
    return [body for body in runpod_api.state.created if "cpu" in body]


def engine_bodies(runpod_api) -> list[dict]:
    return [body for body in runpod_api.state.created if "gpu" in body]


def test_the_volume_is_filled_once_and_reused(gpuctl, runpod_api, runpod_host: FakeGpuHost, isolated: Path) -> None:
    host, hub = runpod_host, runpod_host.hub
    assert hub is not None
    write_recipe(isolated)

    first = gpuctl(*UP, "e2e")
    assert first.exit_code == 0, first.stderr
    [volume] = runpod_api.state.volumes.values()
    assert (volume["name"], volume["dataCenter"]) == (f"gpuctl-hf-cache-{DC}", DC)
    assert volume["size"] >= 10
    [seeder] = seeding_bodies(runpod_api)
    manifest = json.loads(seeder["env"][runpod_seed.JOB_ENV])["manifest"]
    wanted = sum(f["size"] for f in manifest["files"])
    # every file of the manifest came from the hub once (the index once more: read here, to pick the shards)
    assert hub.bytes_sent() == wanted + len(hub.repos[REPO].files["model.safetensors.index.json"])
    assert seeder["mounts"] == {"network": [{"volumeId": volume["id"], "path": runpod_seed.SEED_MOUNT}]}
    assert seeder["dataCenterIds"] == [DC] and seeder["image"] == runpod_seed.SEED_IMAGE
    [engine] = engine_bodies(runpod_api)
    assert engine["mounts"] == {"network": [{"volumeId": volume["id"], "path": "/root/.cache/huggingface"}]}
    assert engine["dataCenterIds"] == [DC] and engine["env"]["HF_HUB_OFFLINE"] == "1"
    # the seeding pod is gone; only the engine pod runs, and it sees the weights in its HF cache
    [pod] = runpod_api.state.pods.values()
    assert pod.body is engine and host.containers() == [f"runpod-{pod.id} running"]
    snapshot = host.docker("exec", f"runpod-{pod.id}", "ls", f"/root/.cache/huggingface/hub/{repo_folder(REPO)}/"
                           "snapshots/" + hub.repos[REPO].commit).stdout.split()
    assert "config.json" in snapshot and "model-00001-of-00003.safetensors" in snapshot
    record = StateStore(isolated).read().deployments["e2e"]
    assert record.weights_cache == volume["id"]

    down = gpuctl("down", "e2e")
    assert down.exit_code == 0, down.stderr
    assert runpod_api.state.pods == {} and list(runpod_api.state.volumes) == [volume["id"]]

    hub.clear_log()
    second = gpuctl(*UP, "e2e2")
    assert second.exit_code == 0, second.stderr
    assert list(runpod_api.state.volumes) == [volume["id"]]  # reused, not created again
    assert len(runpod_api.calls("POST", "/v2/network-volumes")) == 1
    assert hub.bytes_sent() == 0
    assert len(seeding_bodies(runpod_api)) == 2 and len(engine_bodies(runpod_api)) == 2
    [pod] = runpod_api.state.pods.values()
    assert "gpu" in pod.body and host.containers() == [f"runpod-{pod.id} running"]
    assert gpuctl("down", "e2e2").exit_code == 0
    assert runpod_api.state.pods == {} and list(runpod_api.state.volumes) == [volume["id"]]


def test_a_failed_seeding_launches_no_gpu_pod(gpuctl, runpod_api, runpod_host: FakeGpuHost, isolated: Path,
                                             monkeypatch) -> None:
    hub = runpod_host.hub
    assert hub is not None
    hub.add(tiny_model(REPO, gated=True, commit=REVISION))
    write_recipe(isolated, gated=True)
    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
    ensure = RunPodProvider.ensure_weights_cache

    def revoke_after_preflight(self, *args, **kwargs):  # the token is revoked between the check and the download
        hub.tokens.clear()
        return ensure(self, *args, **kwargs)

    monkeypatch.setattr(RunPodProvider, "ensure_weights_cache", revoke_after_preflight)
    result = gpuctl(*UP, "e2e")
    assert result.exit_code == ExitCode.CREDENTIALS, result.stderr
    assert "gated" in result.stderr.lower() or "access" in result.stderr.lower()
    [seeder] = seeding_bodies(runpod_api)
    assert seeder["env"]["HF_TOKEN"] == GOOD_TOKEN and GOOD_TOKEN not in seeder["args"]
    assert engine_bodies(runpod_api) == []  # no GPU was rented
    assert runpod_api.state.pods == {} and runpod_host.containers() == []
    assert StateStore(isolated).read().deployments["e2e"].status in ("failed", "terminated")


def test_weights_pull_to_runpod_fills_the_volume_with_a_cpu_pod_only(gpuctl, runpod_api, runpod_host: FakeGpuHost,
                                                                     isolated: Path) -> None:
    hub = runpod_host.hub
    assert hub is not None
    write_recipe(isolated)
    pulled = gpuctl("weights", "pull", "tiny", "--to", f"runpod:{DC}", "--gpu", "L40S", "-y", "--json")
    assert pulled.exit_code == 0, pulled.stderr
    assert f"fill RunPod's weights cache in {DC} with {REPO}" in pulled.stderr
    report = json.loads(pulled.stdout)
    assert report["repo"] == REPO and report["downloaded_bytes"] == report["total_bytes"] > 1_500_000
    assert engine_bodies(runpod_api) == [] and len(seeding_bodies(runpod_api)) == 1  # no GPU was rented
    assert runpod_api.state.pods == {}
    [volume] = runpod_api.state.volumes.values()
    listed = json.loads(gpuctl("weights", "ls", "--to", "runpod", "--json").stdout)
    assert [(r["id"], r["region"], [m["repo"] for m in r["models"]]) for r in listed] == [(volume["id"], DC, [REPO])]

    hub.clear_log()
    up = gpuctl(*UP, "after-pull")
    assert up.exit_code == 0, up.stderr
    assert hub.bytes_sent() == 0  # the seeding pod of 'up' found every file in the volume
    assert gpuctl("down", "after-pull").exit_code == 0
    removed = gpuctl("weights", "rm", "--to", f"runpod:{DC}", "-y")
    assert removed.exit_code == 0, removed.stderr
    assert runpod_api.state.volumes == {}
