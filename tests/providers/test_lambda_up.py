"""``gpuctl up --provider lambda`` end to end: the real Lambda provider against the API stand-in, whose
instance is a fake GPU host (real SSH, real dockerd, the fake engine image), then ``gpuctl down``.

The region's filesystem (the weights cache) keeps its content in a test directory that the stand-in
bind-mounts on whichever fake host plays the instance, as Lambda's NFS mount would appear on a VM.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gpuctl.providers.lambda_cloud import mapping as lambda_mapping
from gpuctl.providers.lambda_cloud.caches import CACHE_MOUNT_POINT
from gpuctl.providers.lambda_cloud.provider import LambdaProvider
from gpuctl.state import StateStore
from gpuctl.weights.fetcher import repo_folder
from tests.fakehost.cloud import write_recipe
from tests.fakehost.host import FakeGpu, FakeGpuHost
from tests.standins.lambda_server import LambdaState

pytestmark = pytest.mark.integration

H100 = [FakeGpu(name="NVIDIA H100 80GB HBM3", memory_total_mib=81559)]
UP = ("up", "tiny", "--provider", "lambda", "--gpu", "H100-SXM", "-y")
LAUNCH = "/api/v1/instance-operations/launch"
#: the recipe's model, and the files of it gpuctl caches
REPO = "meta-llama/Meta-Llama-3-8B-Instruct"
WANTED = ["config.json", "generation_config.json", "model-00001-of-00003.safetensors",
          "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json",
          "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]


@pytest.fixture(autouse=True)
def login_as_root(monkeypatch) -> None:
    monkeypatch.setattr(lambda_mapping, "SSH_USER", "root")  # Lambda logs in as ubuntu; the fake host has root


def run_instances_on(state: LambdaState, host: FakeGpuHost, filesystems: Path) -> None:
    """Every instance launched from now on is ``host``; filesystems keep their content under ``filesystems``."""
    state.address, state.boot_polls, state.ip_polls = host.address, 1, 1
    state.authorized_keys = str(host.home / ".ssh" / "authorized_keys")  # what Lambda's cloud-init does
    state.machine, state.filesystem_dir = host, filesystems


def test_up_and_down_on_lambda(gpuctl, lambda_api, make_fake_gpu_host, isolated: Path, tmp_path: Path) -> None:
    host = make_fake_gpu_host(H100)
    state = lambda_api.state
    run_instances_on(state, host, tmp_path / "filesystems")
    write_recipe(isolated)

    result = gpuctl("up", "tiny", "--provider", "lambda", "--gpu", "H100-SXM", "--name", "e2e", "--ttl", "1h", "-y")
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
    assert len(lambda_api.calls("POST", LAUNCH)) == 1


def test_the_regions_filesystem_caches_the_weights_for_every_later_instance(
        gpuctl, lambda_api, make_fake_gpu_host, isolated: Path, tmp_path: Path) -> None:
    state = lambda_api.state
    filesystems = tmp_path / "filesystems"
    write_recipe(isolated)
    first_host = make_fake_gpu_host(H100)
    run_instances_on(state, first_host, filesystems)

    first = gpuctl(*UP, "--name", "w1")
    assert first.exit_code == 0, first.stderr
    [fs] = state.filesystems.values()
    assert (fs.name, fs.region) == ("gpuctl-hf-cache-us-south-1", "us-south-1")
    mount = {"file_system_id": fs.id, "mount_point": CACHE_MOUNT_POINT}
    assert lambda_api.calls("POST", LAUNCH)[0].body["file_system_mounts"] == [mount]
    assert StateStore(isolated).read().deployments["w1"].weights_cache == fs.id
    # the engine serves the mounted filesystem, read-only
    mounts = json.loads(first_host.docker("inspect", "--format", "{{json .Mounts}}", "gpuctl-w1").stdout)
    assert [(m["Source"], m["Destination"], m["RW"]) for m in mounts] == [
        (CACHE_MOUNT_POINT, "/root/.cache/huggingface", False)]
    # every byte came from the hub (plus the weight index, read once here to pick the shards), and landed in
    # the filesystem, not on the host's own disk
    assert first_host.hub is not None
    [model] = first_host.hub.repos.values()
    wanted = sum(len(model.files[name]) for name in WANTED)
    assert first_host.hub.bytes_sent() == wanted + len(model.files["model.safetensors.index.json"])
    blobs = filesystems / fs.id / "hub" / repo_folder(REPO) / "blobs"
    assert sum(blob.stat().st_size for blob in blobs.iterdir()) == wanted
    assert not first_host.private_path("/var/lib/gpuctl/hf-cache").exists()
    assert os.listdir(first_host.private_path(CACHE_MOUNT_POINT)) == []  # the mountpoint under the mount

    assert gpuctl("down", "w1").exit_code == 0
    [instance] = state.instances.values()
    assert instance.status in ("terminating", "terminated")
    [cache] = LambdaProvider().weights_caches()  # the filesystem outlives the instance
    assert (cache.id, cache.used_bytes) == (fs.id, sum(f.stat().st_size for f in (filesystems / fs.id).rglob("*")
                                                       if f.is_file() and not f.is_symlink()))

    # a later 'up' gets a new machine (another fake host, with a hub of its own): the filesystem has it all
    second_host = make_fake_gpu_host(H100)
    run_instances_on(state, second_host, filesystems)
    second = gpuctl(*UP, "--name", "w2")
    assert second.exit_code == 0, second.stderr
    assert f"{REPO}: all 9 files already cached and verified" in second.stderr
    assert second_host.hub is not None and second_host.hub.log == []  # not one byte downloaded
    assert len(lambda_api.calls("POST", "/api/v1/filesystems")) == 1  # created once, then reused
    assert [launch.body["file_system_mounts"] for launch in lambda_api.calls("POST", LAUNCH)] == [[mount], [mount]]
    assert second_host.containers() == ["gpuctl-w2 running"]
    assert gpuctl("down", "w2").exit_code == 0

    provider = LambdaProvider()
    for record in state.instances.values():  # Lambda refuses to delete it until they have terminated
        provider.get(record.id)
    provider.delete_weights_cache(cache)
    assert state.filesystems == {} and not (filesystems / fs.id).exists()
    assert provider.weights_caches() == []


def test_weights_pull_to_lambda_fills_the_filesystem_from_a_machine_it_tears_down(
        gpuctl, lambda_api, make_fake_gpu_host, isolated: Path, tmp_path: Path) -> None:
    state = lambda_api.state
    filesystems = tmp_path / "filesystems"
    write_recipe(isolated)
    run_instances_on(state, make_fake_gpu_host(H100), filesystems)

    refused = gpuctl("weights", "pull", "tiny", "--to", "lambda:us-south-1", "--gpu", "H100-SXM")
    assert refused.exit_code == 2 and "pass -y" in refused.stderr and state.instances == {}
    assert "fill Lambda Cloud's weights cache in us-south-1 with meta-llama/Meta-Llama-3-8B-Instruct" in refused.stderr

    pulled = gpuctl("weights", "pull", "tiny", "--to", "lambda:us-south-1", "--gpu", "H100-SXM", "-y", "--json")
    assert pulled.exit_code == 0, pulled.stderr
    report = json.loads(pulled.stdout)
    assert (report["repo"], report["files"], report["cache_dir"]) == (REPO, 9, CACHE_MOUNT_POINT)
    assert report["downloaded_bytes"] == report["total_bytes"] > 1_500_000
    [instance] = state.instances.values()  # the machine that filled it is gone, and its record says so
    assert instance.status in ("terminating", "terminated")
    [record] = StateStore(isolated).read().deployments.values()
    assert record.status == "terminated" and record.container is None
    [fs] = state.filesystems.values()
    assert record.weights_cache == fs.id

    listed = json.loads(gpuctl("weights", "ls", "--json").stdout)
    assert [(r["provider"], r["region"], r["name"], [m["repo"] for m in r["models"]]) for r in listed] == [
        ("lambda", "us-south-1", "gpuctl-hf-cache-us-south-1", [REPO])]

    second_host = make_fake_gpu_host(H100)
    run_instances_on(state, second_host, filesystems)
    up = gpuctl(*UP, "--name", "after-pull")
    assert up.exit_code == 0, up.stderr
    assert second_host.hub is not None and second_host.hub.log == []  # filled ahead: nothing to download
    assert gpuctl("down", "after-pull").exit_code == 0
    for launched in state.instances.values():
        LambdaProvider().get(launched.id)  # let the stand-in finish terminating (the filesystem is in use until then)
    removed = gpuctl("weights", "rm", "--to", "lambda:us-south-1", "-y")
    assert removed.exit_code == 0, removed.stderr
    assert state.filesystems == {} and json.loads(gpuctl("weights", "ls", "--json").stdout) == []
