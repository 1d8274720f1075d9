"""``gpuctl gc``: tagged instances no healthy record accounts for, and failed records, removed after a yes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuctl.deploy import tags
from gpuctl.deploy.naming import project_id
from gpuctl.state import StateStore
from tests.fakehost.cloud import Cloud, add_deployment


@pytest.fixture
def world(fake_cloud: Cloud, isolated: Path) -> dict[str, str]:
    """One instance of each kind gc must tell apart."""
    project = project_id(isolated / ".gpuctl")
    ids = {
        "ghost": fake_cloud.add_instance("fakecloud", tags.deployment_tags(project, "ghost"), price=1.5),
        "in-use": fake_cloud.add_instance("fakecloud", tags.deployment_tags(project, "in-use"), price=2.0),
        "foreign": fake_cloud.add_instance("fakepod", tags.deployment_tags("another-project", "x"), price=0.5),
        "failed": fake_cloud.add_instance("fakecloud", tags.deployment_tags(project, "failed"), price=1.0),
        "untagged": fake_cloud.add_instance("fakecloud", {"owner": "someone"}, price=9.0),
    }
    add_deployment(isolated, "in-use", instance_id=ids["in-use"])
    add_deployment(isolated, "failed", status="failed", instance_id=ids["failed"], error="HTTP 500")
    return ids


def test_dry_run_lists_only_the_leftovers(gpuctl, world: dict[str, str]) -> None:
    result = gpuctl("gc", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["kind"], r["instance_id"], r["deployment"], r["reason"], r["price_per_hour"]) for r in rows] == [
        ("deployment", world["failed"], "failed", "deployment is failed: HTTP 500", None),
        ("instance", world["ghost"], "ghost", "unknown to the state file", 1.5),
    ]
    assert "1 gpuctl instance(s) of other projects left alone (--all-projects)" in result.stderr


def test_nothing_is_removed_without_a_yes(gpuctl, fake_cloud: Cloud, world: dict[str, str]) -> None:
    result = gpuctl("gc")
    assert result.exit_code == 2 and "pass -y to remove them" in result.stderr
    assert "unknown to the state file" in result.stdout
    assert fake_cloud.world["terminations"] == []


def test_yes_removes_them(gpuctl, fake_cloud: Cloud, world: dict[str, str], isolated: Path) -> None:
    result = gpuctl("gc", "-y")
    assert result.exit_code == 0, result.stderr
    assert "removed 2 of 2 leftover(s)" in result.stderr
    assert sorted(fake_cloud.world["terminations"]) == sorted([world["ghost"], world["failed"]])
    assert sorted(i["id"] for i in fake_cloud.live()) == sorted([world["in-use"], world["foreign"],
                                                                  world["untagged"]])
    record = StateStore(isolated).read().deployments["failed"]
    assert record.status == "terminated" and record.error == "HTTP 500"
    assert gpuctl("gc", "--dry-run", "--json").stdout.strip() == "[]"


def test_all_projects_reaches_other_projects(gpuctl, fake_cloud: Cloud, world: dict[str, str]) -> None:
    assert gpuctl("gc", "-y", "--all-projects").exit_code == 0
    assert world["foreign"] in fake_cloud.world["terminations"]
    assert world["untagged"] not in fake_cloud.world["terminations"], "never anything without gpuctl's tags"


def test_a_provider_that_cannot_list_is_a_warning(gpuctl, fake_cloud: Cloud, world: dict[str, str]) -> None:
    with_faults = fake_cloud.world["faults"]
    fake_cloud.set(faults={**with_faults, "list:fakecloud": "error"})
    result = gpuctl("gc", "--dry-run", "--json")
    assert result.exit_code == 0
    assert "fakecloud: could not list instances (HTTP 503 from the fake cloud" in result.stderr
    assert [r["kind"] for r in json.loads(result.stdout)] == ["deployment"]


def test_nothing_to_collect(gpuctl, fake_cloud: Cloud) -> None:
    result = gpuctl("gc")
    assert result.exit_code == 0 and "nothing to collect" in result.stderr


def test_deployment_past_its_ttl_is_a_leftover(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    from datetime import datetime, timedelta, timezone

    project = project_id(isolated / ".gpuctl")
    now = datetime.now(timezone.utc)
    ids = {name: fake_cloud.add_instance("fakecloud", tags.deployment_tags(project, name), price=1.0)
           for name in ("expired", "in-grace", "no-ttl")}
    add_deployment(isolated, "expired", instance_id=ids["expired"], expires_at=now - timedelta(minutes=30))
    add_deployment(isolated, "in-grace", instance_id=ids["in-grace"], expires_at=now - timedelta(minutes=1))
    add_deployment(isolated, "no-ttl", instance_id=ids["no-ttl"])
    rows = json.loads(gpuctl("gc", "--dry-run", "--json").stdout)
    assert [(r["kind"], r["deployment"]) for r in rows] == [("deployment", "expired")]
    assert rows[0]["reason"].startswith("TTL expired at ")
    assert gpuctl("gc", "-y").exit_code == 0
    assert fake_cloud.world["terminations"] == [ids["expired"]]
    assert StateStore(isolated).read().deployments["expired"].status == "terminated"
