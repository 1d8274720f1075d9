"""When ``gpuctl gc`` counts a deployment's budget as spent: at once beside a provider's own engine, after the
watchdog's grace where a watchdog on the machine enforces it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from gpuctl.deploy.reconcile import TTL_GRACE, budget_spent, expired
from gpuctl.models.deployment import Deployment

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def record(**fields: object) -> Deployment:
    return Deployment.model_validate({"name": "d", "model": "m", "provider": "runpod", "idempotency_token": "t",
                                      "status": "running", **fields})


def test_a_pod_past_its_budget_is_spent_at_once() -> None:
    pod = record(budget_usd=1.0, budget_ends_at=NOW - timedelta(seconds=1))
    assert budget_spent(pod, NOW) and expired(pod, NOW)
    assert not budget_spent(record(budget_usd=1.0, budget_ends_at=NOW + timedelta(seconds=1)), NOW)
    assert not expired(record(), NOW), "no budget, no TTL: never"


def test_a_watchdog_gets_its_grace_first() -> None:
    machine = record(provider="lambda", watchdog_pid=42, budget_usd=1.0, budget_ends_at=NOW - timedelta(minutes=1))
    assert not budget_spent(machine, NOW)
    assert budget_spent(machine, NOW + TTL_GRACE)
