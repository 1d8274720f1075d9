"""The Lambda Cloud weights cache: a filesystem per region, against the spec-checked stand-in.

Listing, creating once and reusing, deleting (gone is fine, in use is refused), launching with it
mounted (its region only), and the stand-in's side of it: content that outlives instances.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gpuctl.errors import ExitCode, ProviderError, UsageError
from gpuctl.models.weights_cache import WeightsCache
from gpuctl.providers.lambda_cloud import client as api_module
from gpuctl.providers.lambda_cloud.caches import CACHE_MOUNT_POINT
from gpuctl.providers.lambda_cloud.provider import LambdaProvider
from tests.providers.launch_fakes import offer, request
from tests.standins.lambda_server import FilesystemRecord

FILESYSTEMS = "/api/v1/filesystems"
LIST = "/api/v1/file-systems"
LAUNCH = "/api/v1/instance-operations/launch"
A10 = "gpu_1x_a10"


def a10(region: str = "us-east-1", **changes):
    return request(offer("lambda", A10, region, gpu="A10", price=0.75), **changes)


def ensure(region: str = "us-east-1") -> WeightsCache:
    return LambdaProvider().ensure_weights_cache(region, min_gb=20, tags={"gpuctl-project": "p-1a2b3c"})


def settle(provider: LambdaProvider, instance_id: str, reads: int = 3) -> None:
    """Read the instance until the stand-in has moved it on (booted, or terminated)."""
    for _ in range(reads):
        provider.get(instance_id)


class RecordingMachine:
    """Plays the instances' machine: remembers what is mounted where."""

    def __init__(self) -> None:
        self.mounted: dict[str, Path] = {}
        self.calls: list[tuple[str, str]] = []

    def mount(self, source: Path, path: str) -> None:
        self.mounted[path] = source
        self.calls.append(("mount", path))

    def unmount(self, path: str) -> None:
        self.mounted.pop(path)
        self.calls.append(("unmount", path))


def test_ensure_creates_the_regions_filesystem_once_and_reuses_it(lambda_api):
    created = ensure()
    assert created.model_dump(exclude={"id", "created_at"}) == {
        "provider": "lambda", "name": "gpuctl-hf-cache-us-east-1", "region": "us-east-1", "kind": "filesystem",
        "size_gb": None, "used_bytes": 0, "in_use": False, "mount_path": "/lambda/nfs/gpuctl-hf-cache"}
    [record] = lambda_api.state.filesystems.values()
    assert created.id == record.id and created.created_at is not None
    [post] = lambda_api.calls("POST", FILESYSTEMS)
    assert post.body == {"name": "gpuctl-hf-cache-us-east-1", "region": "us-east-1"}

    assert ensure() == created  # found by name and region: nothing created
    assert len(lambda_api.calls("POST", FILESYSTEMS)) == 1
    other = ensure("us-west-1")
    assert (other.name, other.region) == ("gpuctl-hf-cache-us-west-1", "us-west-1") and other.id != created.id


def test_weights_caches_lists_gpuctls_filesystems_only(lambda_api):
    lambda_api.state.filesystems["f0"] = FilesystemRecord(id="f0", name="team-datasets", region="us-east-1")
    east, south = ensure("us-east-1"), ensure("us-south-1")
    caches = LambdaProvider().weights_caches()
    assert sorted((c.name, c.region, c.id) for c in caches) == sorted(
        [(east.name, "us-east-1", east.id), (south.name, "us-south-1", south.id)])
    assert len(lambda_api.calls("GET", LIST)) >= 1


def test_a_filesystem_created_meanwhile_by_another_gpuctl_is_used(lambda_api, monkeypatch):
    theirs = FilesystemRecord(id="f1", name="gpuctl-hf-cache-us-east-1", region="us-east-1")
    lambda_api.state.filesystems[theirs.id] = theirs
    real = api_module.LambdaApi.list_filesystems
    listings = []

    def stale_then_real(self):
        listings.append(1)
        return [] if len(listings) == 1 else real(self)  # the first is from before the other gpuctl created it

    monkeypatch.setattr(api_module.LambdaApi, "list_filesystems", stale_then_real)
    assert ensure().id == "f1"
    [post] = lambda_api.calls("POST", FILESYSTEMS)
    assert post.response_body["error"]["code"] == "global/duplicate"


def test_a_refused_creation_is_reported(lambda_api):
    with pytest.raises(ProviderError, match="Unknown region 'mars-1'"):
        ensure("mars-1")
    assert lambda_api.state.filesystems == {}


def test_no_region_no_filesystem(lambda_api):
    with pytest.raises(UsageError, match="lives in one region"):
        ensure("any")
    assert lambda_api.requests == []


def test_delete_removes_it_and_gone_is_fine(lambda_api, tmp_path):
    lambda_api.state.filesystem_dir = tmp_path
    cache = ensure()
    (tmp_path / cache.id / "weights.bin").write_bytes(b"x" * 1000)
    [listed] = LambdaProvider().weights_caches()
    assert listed.used_bytes == 1000
    LambdaProvider().delete_weights_cache(cache)
    assert lambda_api.state.filesystems == {} and not (tmp_path / cache.id).exists()
    assert [r.path for r in lambda_api.calls("DELETE", f"{FILESYSTEMS}/{cache.id}")] == [f"{FILESYSTEMS}/{cache.id}"]
    LambdaProvider().delete_weights_cache(cache)  # already gone: fine
    assert [r.status for r in lambda_api.calls("DELETE", f"{FILESYSTEMS}/{cache.id}")] == [200, 404]
    assert LambdaProvider().weights_caches() == []


def test_launch_mounts_the_cache_and_bootstraps_it_as_the_weights_directory(lambda_api):
    cache = ensure()
    provider = LambdaProvider()
    launched = provider.launch(a10(weights_cache=cache, ttl_seconds=3600))
    [launch] = lambda_api.calls("POST", LAUNCH)
    assert launch.body["file_system_mounts"] == [{"file_system_id": cache.id, "mount_point": CACHE_MOUNT_POINT}]
    assert "file_system_names" not in launch.body
    # the first-boot bootstrap prepares the weights directory the fetcher and the engine are given
    assert re.search(r"^cache_dir=/lambda/nfs/gpuctl-hf-cache$", launch.body["user_data"], re.M)
    settle(provider, launched.id)
    instance = lambda_api.calls("GET", f"/api/v1/instances/{launched.id}")[-1].response_body["data"]
    assert instance["file_system_names"] == ["gpuctl-hf-cache-us-east-1"]
    assert instance["file_system_mounts"] == [{"file_system_id": cache.id, "mount_point": CACHE_MOUNT_POINT}]
    [listed] = provider.weights_caches()
    assert listed.in_use is True


def test_launch_without_a_cache_mounts_nothing_and_bootstraps_the_host_directory(lambda_api):
    LambdaProvider().launch(a10(ttl_seconds=3600))
    [launch] = lambda_api.calls("POST", LAUNCH)
    assert "file_system_mounts" not in launch.body
    assert re.search(r"^cache_dir=/var/lib/gpuctl/hf-cache$", launch.body["user_data"], re.M)


def test_a_cache_of_another_region_is_refused_before_anything_is_launched(lambda_api):
    cache = ensure("us-west-1")
    with pytest.raises(UsageError, match="is in us-west-1, but the instance would be in us-east-1") as caught:
        LambdaProvider().launch(a10("us-east-1", weights_cache=cache))
    assert caught.value.exit_code == ExitCode.USAGE
    assert lambda_api.calls("POST", LAUNCH) == []


def test_a_cache_of_another_provider_is_refused(lambda_api):
    volume = WeightsCache(provider="runpod", id="v1", name="gpuctl-hf-cache-us-east-1", region="us-east-1",
                          kind="network-volume", size_gb=20, mount_path="/workspace")
    with pytest.raises(UsageError, match="is a runpod network-volume"):
        LambdaProvider().launch(a10(weights_cache=volume))
    assert lambda_api.calls("POST", LAUNCH) == []


def test_lambdas_wrong_region_refusal_is_a_clear_error(lambda_api):
    cache = ensure("us-west-1")
    stale = cache.model_copy(update={"region": "us-east-1"})  # what gpuctl believed; Lambda knows better
    with pytest.raises(ProviderError, match="will not mount the weights cache on gpu_1x_a10 in us-east-1") as caught:
        LambdaProvider().launch(a10("us-east-1", weights_cache=stale))
    assert caught.value.exit_code == ExitCode.PROVIDER
    assert "file-system-in-wrong-region" in caught.value.message
    assert lambda_api.state.instances == {}


def test_a_filesystem_in_use_is_not_deleted_until_its_instance_has_terminated(lambda_api):
    provider = LambdaProvider()
    cache = ensure()
    launched = provider.launch(a10(weights_cache=cache))
    with pytest.raises(UsageError, match="attached to a running instance") as caught:
        provider.delete_weights_cache(cache)
    assert "gpuctl down" in (caught.value.hint or "")
    provider.terminate(launched.id)
    with pytest.raises(UsageError):  # terminating is not terminated yet
        provider.delete_weights_cache(cache)
    settle(provider, launched.id, reads=1)
    provider.delete_weights_cache(cache)
    assert lambda_api.state.filesystems == {}


def test_the_standin_mounts_a_filesystems_content_on_each_instances_machine(lambda_api, tmp_path):
    state = lambda_api.state
    state.filesystem_dir, state.machine = tmp_path, RecordingMachine()
    provider = LambdaProvider()
    cache = ensure()
    first = provider.launch(a10(weights_cache=cache))
    assert state.machine.mounted == {CACHE_MOUNT_POINT: tmp_path / cache.id}
    provider.terminate(first.id)
    assert state.machine.mounted == {}
    second = provider.launch(a10(weights_cache=cache, token="gpuctl-" + "1" * 40))
    assert second.id != first.id and state.machine.mounted == {CACHE_MOUNT_POINT: tmp_path / cache.id}
    assert state.machine.calls == [("mount", CACHE_MOUNT_POINT), ("unmount", CACHE_MOUNT_POINT),
                                   ("mount", CACHE_MOUNT_POINT)]


def test_the_standin_mounts_a_filesystem_named_at_launch_at_its_default_mount_point(lambda_api, tmp_path):
    state = lambda_api.state
    state.filesystem_dir, state.machine = tmp_path, RecordingMachine()
    cache = ensure()
    launch = {"region_name": "us-east-1", "instance_type_name": A10, "ssh_key_names": ["k"],
              "file_system_names": [cache.name]}
    state.ssh_keys["k"] = {"id": "k", "name": "k", "public_key": "ssh-ed25519 AAAA"}
    with api_module.LambdaApi.from_env() as api:
        [instance_id] = api.launch(launch)
        [listed] = api.list_filesystems()
    assert state.machine.mounted == {"/lambda/nfs/gpuctl-hf-cache-us-east-1": tmp_path / cache.id}
    assert listed.mount_point == "/lambda/nfs/gpuctl-hf-cache-us-east-1" and listed.is_in_use
    assert state.instances[instance_id].mounts == {cache.id: "/lambda/nfs/gpuctl-hf-cache-us-east-1"}
