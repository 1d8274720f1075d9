"""``gpuctl up --provider aws`` end to end: the real AWS provider against moto (in-process), whose instance's
public IP is a fake GPU host's address (real SSH, real dockerd, the fake engine image), then ``gpuctl down``."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from moto import mock_aws

from gpuctl.state import StateStore
from tests.fakehost.cloud import write_recipe
from tests.providers.aws_fakes import ec2_on_fake_hosts, s3_for
from tests.providers.test_aws_lifecycle import register_dlami

pytestmark = pytest.mark.integration


def test_up_and_down_on_aws(gpuctl, make_fake_gpu_host, isolated: Path, monkeypatch) -> None:
    world = ec2_on_fake_hosts(monkeypatch, isolated / ".gpuctl")
    host = world.boot(make_fake_gpu_host())  # 1x L40S
    write_recipe(isolated)

    with mock_aws(), s3_for(host, monkeypatch):  # the weights cache: an S3 bucket the instance reaches
        register_dlami(world.session())
        ec2 = world.session().client("ec2", region_name="us-east-1")

        result = gpuctl("up", "tiny", "--provider", "aws", "--gpu", "L40S", "--name", "e2e", "--ttl", "1h", "-y")
        assert result.exit_code == 0, result.stderr
        assert result.stdout.splitlines()[0] == "e2e is ready: http://127.0.0.1:8000/v1"  # private: SSH tunnel
        [instance] = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        record = StateStore(isolated).read().deployments["e2e"]
        assert (record.provider, record.instance_id, record.price_per_hour) == (
            "aws", f"us-east-1/{instance['InstanceId']}", 1.861)
        assert (instance["InstanceType"], instance["State"]["Name"], instance["PublicIpAddress"]) == (
            "g6e.xlarge", "running", host.address)
        assert tags["gpuctl-deployment"] == "e2e" and tags["gpuctl-launch-token"] == record.idempotency_token
        user_data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
        assert "gpuctl-watchdog" in base64.b64decode(user_data["UserData"]["Value"]).decode()
        assert host.containers() == ["gpuctl-e2e running"]

        status = json.loads(gpuctl("status", "--json").stdout)
        assert [(row["name"], row["status"], row["provider"]) for row in status] == [("e2e", "running", "aws")]
        logs = gpuctl("logs", "e2e", "--tail", "20")
        assert logs.exit_code == 0 and "INFO fake engine: serving meta-llama/Meta-Llama-3-8B-Instruct" in logs.stdout
        env = gpuctl("env", "e2e")  # private: reached through an SSH tunnel to the machine's loopback
        assert env.stdout == "export OPENAI_BASE_URL=http://127.0.0.1:8000/v1\nexport OPENAI_API_KEY=EMPTY\n"

        down = gpuctl("down", "e2e")
        assert down.exit_code == 0, down.stderr
        states = [i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
        assert states == ["terminated"]
        assert StateStore(isolated).read().deployments["e2e"].status == "terminated"
