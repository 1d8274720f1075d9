"""Deployment names, tokens, tags, secrets and the state records of the deploy lifecycle."""

from __future__ import annotations

import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gpuctl.deploy import naming, tags
from gpuctl.deploy.records import Records
from gpuctl.deploy.secrets import create_api_key, read_api_key, remove_secrets
from gpuctl.deploy.status import row
from gpuctl.deploy.teardown import cost_between
from gpuctl.errors import NotFoundError, UsageError
from gpuctl.models.deployment import Deployment
from gpuctl.state import StateStore

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def deployment(name: str, **fields: object) -> Deployment:
    values: dict[str, object] = {"model": "tiny", "provider": "fakecloud", "idempotency_token": f"t-{name}", **fields}
    return Deployment(name=name, **values)


@pytest.mark.parametrize(("model", "gpu", "prefix"), [
    ("llama-3-8b", "L40S", "llama-3-8b-l40s-"),
    ("hf:Qwen/Qwen2.5-7B-Instruct", "H100-SXM", "qwen2-5-7b-instruct-h100-sxm-"),
])
def test_default_names(model: str, gpu: str, prefix: str) -> None:
    name = naming.default_name(model, gpu)
    assert name.startswith(prefix) and len(name) == len(prefix) + 4
    assert naming.check_name(name) == name


@pytest.mark.parametrize("bad", ["", "Upper", "-lead", "a b", "x" * 49, "dots.not.ok"])
def test_bad_names_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError, match="is not a valid deployment name"):
        naming.check_name(bad)


def test_tokens_are_deterministic_short_and_differ_per_attempt() -> None:
    born, reborn = datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc), datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
    token = naming.idempotency_token("p1", "web", 0, born)
    assert token == naming.idempotency_token("p1", "web", 0, born) and len(token) <= 64 and token.startswith("gpuctl-")
    others = {naming.idempotency_token("p1", "web", 1, born), naming.idempotency_token("p2", "web", 0, born),
              naming.idempotency_token("p1", "web", 0, reborn)}
    assert len({token, *others}) == 4


def test_the_project_id_is_created_once(tmp_path: Path) -> None:
    first = naming.project_id(tmp_path / ".gpuctl")
    assert first == naming.project_id(tmp_path / ".gpuctl") and len(first) == 16
    assert tags.deployment_tags(first, "web") == {"gpuctl": "managed", "gpuctl-project": first,
                                                  "gpuctl-deployment": "web"}


def test_api_keys_are_private_files(tmp_path: Path) -> None:
    state_dir = tmp_path / ".gpuctl"
    assert read_api_key(state_dir, "web") is None
    key = create_api_key(state_dir, "web")
    path = state_dir / "secrets" / "web.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_api_key(state_dir, "web") == key and len(key) > 40
    remove_secrets(state_dir, "web")
    assert read_api_key(state_dir, "web") is None


def test_reserve_refuses_an_active_name_and_reuses_an_ended_one(tmp_path: Path) -> None:
    records = Records(StateStore(tmp_path))
    records.reserve(deployment("web"), allocate_port=False)
    with pytest.raises(UsageError, match=r"a deployment named 'web' already exists \(status provisioning\)"):
        records.reserve(deployment("web"), allocate_port=False)
    records.update("web", status="terminating")
    records.update("web", status="terminated")
    assert records.reserve(deployment("web", model="other"), allocate_port=False).model == "other"


def test_ports_are_allocated_per_host_among_active_deployments(tmp_path: Path) -> None:
    records = Records(StateStore(tmp_path))
    first = records.reserve(deployment("a", host="u@h"), allocate_port=True)
    second = records.reserve(deployment("b", host="u@h"), allocate_port=True)
    elsewhere = records.reserve(deployment("c", host="u@other"), allocate_port=True)
    assert (first.host_port, second.host_port, elsewhere.host_port) == (8000, 8001, 8000)
    records.update("a", status="terminating")
    records.update("a", status="terminated")
    assert records.reserve(deployment("d", host="u@h"), allocate_port=True).host_port == 8000


def test_update_validates_and_logs(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    records = Records(store)
    records.reserve(deployment("web"), allocate_port=False)
    updated = records.update("web", event="launched", detail="i-1", status="starting", instance_id="i-1")
    assert (updated.status, updated.instance_id) == ("starting", "i-1")
    assert [(e.event, e.detail) for e in store.read().history] == [("reserved", "fakecloud"), ("launched", "i-1")]
    with pytest.raises(ValueError):
        records.update("web", status="exploded")
    with pytest.raises(NotFoundError, match=r"no deployment named 'nope' \(active: web\)"):
        records.get("nope")


def test_cost_uptime_and_ttl() -> None:
    d = deployment("web", status="running", price_per_hour=1.2, launched_at=T0,
                   expires_at=T0 + timedelta(hours=2))
    assert cost_between(d, T0 + timedelta(minutes=30)) == 0.6
    assert cost_between(deployment("x", price_per_hour=1.2), T0) == 0.0, "never launched, never billed"
    assert cost_between(deployment("x"), T0) is None
    view = row(d, now=T0 + timedelta(hours=1, minutes=30), health="healthy")
    assert (view.uptime_seconds, view.cost_usd, view.ttl_left_seconds, view.health) == (5400.0, 1.8, 1800.0,
                                                                                       "healthy")
    ended = row(d.model_copy(update={"status": "terminated", "ended_at": T0 + timedelta(hours=1), "cost_usd": 1.2}),
                now=T0 + timedelta(days=1))
    assert (ended.uptime_seconds, ended.cost_usd, ended.ttl_left_seconds, ended.expires_at) == (3600.0, 1.2, None,
                                                                                               None)
