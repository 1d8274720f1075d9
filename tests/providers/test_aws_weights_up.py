"""The AWS weights cache end to end: two ``gpuctl up`` on AWS (moto) whose instances are two fake GPU hosts,
the second a fresh one with an empty disk. The first downloads the model from the hub and mirrors it into
the region's S3 bucket; the second copies it from there and asks the hub for nothing. The bucket outlives
``down``."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from gpuctl.models.engine import HOST_CACHE_DIR
from gpuctl.providers.aws.caches import blob_key, manifest_key
from gpuctl.state import StateStore
from gpuctl.weights.fetcher import repo_folder
from gpuctl.weights.models import Manifest
from tests.fakehost.cloud import write_recipe
from tests.providers.aws_fakes import ec2_on_fake_hosts, s3_for
from tests.providers.test_aws_lifecycle import register_dlami

pytestmark = pytest.mark.integration

BUCKET = "gpuctl-hf-cache-123456789012-us-east-1"  # moto's account, the offer's region


def test_the_second_instance_in_a_region_gets_the_weights_from_s3_not_the_hub(
        gpuctl, make_fake_gpu_host, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = ec2_on_fake_hosts(monkeypatch, isolated / ".gpuctl")
    write_recipe(isolated)

    with mock_aws():
        register_dlami(world.session())
        s3 = boto3.client("s3", region_name="us-east-1")  # in-process: the same state as the servers'

        first = world.boot(make_fake_gpu_host())
        with s3_for(first, monkeypatch):
            up = gpuctl("up", "tiny", "--provider", "aws", "--gpu", "L40S", "--name", "first", "-y")
            assert up.exit_code == 0, up.stderr
        record = StateStore(isolated).read().deployments["first"]
        assert record.weights_cache == BUCKET
        [manifest_object] = [o for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"] if "/manifests/" in o["Key"]]
        manifest = Manifest.model_validate_json(s3.get_object(Bucket=BUCKET, Key=manifest_object["Key"])["Body"].read())
        assert manifest_object["Key"] == manifest_key(manifest.repo, manifest.commit)
        # every byte came from the hub (the index once more: read here before renting, to pick the shards)
        index = next(f.size for f in manifest.files if f.name == "model.safetensors.index.json")
        assert first.hub is not None and first.hub.bytes_sent() == manifest.total_bytes + index
        for entry in manifest.files:  # ... and every file mirrored, byte for byte
            on_host = first.private_path(f"{HOST_CACHE_DIR}/hub/{repo_folder(manifest.repo)}/blobs/{entry.digest}")
            assert s3.get_object(Bucket=BUCKET, Key=blob_key(manifest.repo, entry.digest))["Body"].read() == (
                on_host.read_bytes())
        assert gpuctl("down", "first").exit_code == 0

        second = make_fake_gpu_host()  # a fresh machine: nothing on its disk
        assert not second.private_path(f"{HOST_CACHE_DIR}/hub").exists()
        world.boot(second)
        with s3_for(second, monkeypatch):
            up = gpuctl("up", "tiny", "--provider", "aws", "--gpu", "L40S", "--name", "second", "-y")
            assert up.exit_code == 0, up.stderr
        assert second.hub is not None
        assert second.hub.bytes_sent() == 0 and second.hub.downloads() == []  # nothing from the hub
        for entry in manifest.files:
            snapshot = second.private_path(
                f"{HOST_CACHE_DIR}/hub/{repo_folder(manifest.repo)}/snapshots/{manifest.commit}/{entry.name}")
            blob = second.private_path(f"{HOST_CACHE_DIR}/hub/{repo_folder(manifest.repo)}/blobs/{entry.digest}")
            assert snapshot.is_symlink() and blob.stat().st_size == entry.size
        assert second.containers() == ["gpuctl-second running"]
        assert gpuctl("down", "second").exit_code == 0

        buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert buckets == [BUCKET]  # the cache outlives both deployments
        assert len(s3.list_objects_v2(Bucket=BUCKET)["Contents"]) == len({f.digest for f in manifest.files}) + 1
