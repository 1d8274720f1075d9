"""Faults of an AWS deployment (moto, the instance a fake GPU host): an ``up`` interrupted while it fills the
region's S3 weights mirror leaves no instance and no open multipart upload (they bill storage until aborted)."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from gpuctl.providers.aws import caches as aws_mirror
from gpuctl.state import StateStore
from tests.fakehost.cloud import write_recipe
from tests.providers.aws_fakes import ec2_on_fake_hosts, s3_for
from tests.providers.test_aws_lifecycle import register_dlami
from tests.standins.hub_server import tiny_model

pytestmark = pytest.mark.integration

BUCKET = "gpuctl-hf-cache-123456789012-us-east-1"  # moto's account, the offer's region
REPO = "meta-llama/Meta-Llama-3-8B-Instruct"
COMMIT = "8afb486c1db24fe5011ec46dfbe5b5dccdb575c2"


def test_an_interrupt_during_the_mirror_fill_aborts_its_uploads(gpuctl, make_fake_gpu_host, isolated: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # parts of 128 KiB: the tiny model's shards (512 KiB) go up as multipart uploads, as real shards do
    monkeypatch.setitem(aws_mirror.S3Mirror.__init__.__kwdefaults__, "part_size", 128 * 1024)
    world = ec2_on_fake_hosts(monkeypatch, isolated / ".gpuctl")
    write_recipe(isolated)
    host = world.boot(make_fake_gpu_host())
    assert host.hub is not None
    model = host.hub.add(tiny_model(REPO, commit=COMMIT))
    shard = next(data for name, data in model.files.items() if name.endswith(".safetensors"))
    stall = host.hub.stall(hashlib.sha256(shard).hexdigest(), after=1)

    def interrupt_once_fetching() -> None:
        if stall.reached.wait(120):
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, delivered to the main thread running gpuctl

    with mock_aws(), s3_for(host, monkeypatch):
        register_dlami(world.session())
        s3 = boto3.client("s3", region_name="us-east-1")
        ec2 = boto3.client("ec2", region_name="us-east-1")
        interrupter = threading.Thread(target=interrupt_once_fetching, daemon=True)
        interrupter.start()
        try:
            result = gpuctl("up", "tiny", "--provider", "aws", "--gpu", "L40S", "--name", "cut", "-y")
        finally:
            stall.release.set()
            interrupter.join(5)
        assert result.exit_code == 130, result.stderr
        assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == [], "no part keeps costing storage"
        states = [i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
        assert states == ["terminated"]
        record = StateStore(isolated).read().deployments["cut"]
        assert (record.status, record.mirror_fill) == ("terminated", None)
        assert host.containers() == []
