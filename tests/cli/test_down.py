"""``gpuctl down``: terminate, wait until the provider reports it gone, then record and print uptime and cost."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gpuctl.deploy import tags
from gpuctl.deploy.naming import project_id
from gpuctl.deploy.secrets import create_api_key
from gpuctl.state import StateStore
from tests.fakehost.cloud import Cloud, add_deployment


def an_hour_ago() -> datetime:
    return datetime.now(timezone.utc) - timedelta(hours=1)


def test_down_terminates_records_and_prints_the_cost(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    instance = fake_cloud.add_instance("fakecloud", {"gpuctl": "managed"}, price=2.0)
    add_deployment(isolated, "vm", instance_id=instance, price_per_hour=2.0, launched_at=an_hour_ago())
    create_api_key(isolated / ".gpuctl", "vm")
    result = gpuctl("down", "vm")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "vm: down after 1h, cost $2.00\n"
    assert f"terminating Fake Cloud instance {instance}" in result.stderr
    assert fake_cloud.world["terminations"] == [instance] and fake_cloud.live() == []
    record = StateStore(isolated).read().deployments["vm"]
    assert record.status == "terminated" and record.cost_usd == pytest.approx(2.0, abs=0.01)
    assert record.ended_at is not None
    assert not (isolated / ".gpuctl" / "secrets" / "vm.env").exists()
    events = [e.event for e in StateStore(isolated).read().history if e.deployment == "vm"]
    assert events == ["teardown", "terminated"]


def test_down_is_idempotent(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    add_deployment(isolated, "vm", instance_id=fake_cloud.add_instance("fakecloud", {}))
    assert gpuctl("down", "vm").exit_code == 0
    again = gpuctl("down", "vm")
    assert again.exit_code == 0 and again.stdout == ""
    assert "vm is already down: nothing to do" in again.stderr
    assert len(fake_cloud.world["terminations"]) == 1


def test_without_an_instance_id_the_tags_find_it(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    wanted = tags.deployment_tags(project_id(isolated / ".gpuctl"), "lost")
    instance = fake_cloud.add_instance("fakecloud", wanted)
    other = fake_cloud.add_instance("fakecloud", {**wanted, tags.DEPLOYMENT: "someone-else"})
    add_deployment(isolated, "lost", status="provisioning", instance_id=None,
                   attempts=[{"provider": "fakecloud", "offer_id": "o", "idempotency_token": "t"}])
    assert gpuctl("down", "lost").exit_code == 0
    assert fake_cloud.world["terminations"] == [instance]
    assert [i["id"] for i in fake_cloud.live()] == [other]


def test_down_all_and_json(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    for name in ("a", "b"):
        add_deployment(isolated, name, instance_id=fake_cloud.add_instance("fakecloud", {}), price_per_hour=1.0,
                       launched_at=an_hour_ago())
    add_deployment(isolated, "old", status="terminated")
    rows = json.loads(gpuctl("down", "--all", "--json").stdout)
    assert [(r["name"], r["status"]) for r in rows] == [("a", "terminated"), ("b", "terminated")]
    assert [r["cost_usd"] for r in rows] == pytest.approx([1.0, 1.0], abs=0.01)
    assert fake_cloud.live() == []
    nothing = gpuctl("down", "--all")
    assert nothing.exit_code == 0 and "no active deployments: nothing to do" in nothing.stderr


def test_refusals(gpuctl, fake_cloud: Cloud) -> None:
    assert gpuctl("down").exit_code == 3  # no NAME and no deployment to default to
    assert gpuctl("down", "x", "--all").exit_code == 2
    unknown = gpuctl("down", "nope")
    assert unknown.exit_code == 3 and "no deployment named 'nope'" in unknown.stderr


def test_down_all_attempts_every_deployment_and_exits_non_zero(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    add_deployment(isolated, "broken", provider="uninstalled-plugin", instance_id="x-1")
    add_deployment(isolated, "fine", instance_id=fake_cloud.add_instance("fakecloud", {}))
    result = gpuctl("down", "--all")
    assert result.exit_code == 2, result.stderr
    assert fake_cloud.live() == [], "the deployment after the broken one was taken down"
    assert result.stdout.startswith("fine: down after ")
    assert "broken: not down: " in result.stderr and "uninstalled-plugin" in result.stderr
    assert "1 of 2 deployment(s) could not be taken down" in result.stderr
    records = StateStore(isolated).read().deployments
    assert (records["fine"].status, records["broken"].status) == ("terminated", "failed")


@pytest.fixture
def read_only_dir(isolated: Path):
    from tests.integration.fault_kit import small_state_dir

    with small_state_dir(isolated) as mounted:
        yield mounted


def test_down_with_a_read_only_project_dir_still_tears_down(gpuctl, fake_cloud: Cloud, isolated: Path,
                                                            read_only_dir) -> None:
    instance = fake_cloud.add_instance("fakecloud", {"gpuctl": "managed"}, price=2.0)
    add_deployment(isolated, "vm", instance_id=instance, price_per_hour=2.0, launched_at=an_hour_ago())
    read_only_dir.read_only()
    result = gpuctl("down", "vm")
    assert fake_cloud.live() == [] and fake_cloud.world["terminations"] == [instance]
    assert result.exit_code == 2, result.stderr
    assert f"Fake Cloud instance {instance}: terminated" in result.stderr
    assert str(isolated / ".gpuctl") in result.stderr and "Read-only file system" in result.stderr
    read_only_dir.writable()
    assert StateStore(isolated).read().deployments["vm"].status == "running", "the record is as it was"
    again = gpuctl("down", "vm")  # once writable: the record catches up, nothing is terminated twice
    assert again.exit_code == 0 and StateStore(isolated).read().deployments["vm"].status == "terminated"
