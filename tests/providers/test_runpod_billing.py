"""RunPod's own figure for what a pod cost: GET /v2/billing/pods against the spec-checked stand-in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from gpuctl.errors import CredentialsError
from gpuctl.plugins import ProviderRegistry
from gpuctl.providers.capabilities import Capability
from gpuctl.providers.runpod.provider import RunPodProvider
from tests.providers.test_runpod_lifecycle import secure_l40s
from tests.standins.runpod_server import DISK_USD_PER_GB_HOUR

BILLING = "/v2/billing/pods"


def test_runpod_declares_billing() -> None:
    assert RunPodProvider.can(Capability.BILLING)


def test_a_pods_charges_are_added_up_over_its_hours(runpod_api) -> None:
    provider = RunPodProvider()
    mine = provider.launch(secure_l40s()).id
    other = provider.launch(secure_l40s(name="other", idempotency_token="gpuctl-other")).id
    now = datetime.now(timezone.utc)
    # the pod has been billing for 2.5 hours, and ended half an hour ago
    usage = runpod_api.state.usage[mine]
    usage.start, usage.end = now - timedelta(hours=3), now - timedelta(minutes=30)
    (billed,) = provider.billed([mine, "gone-pod"], now - timedelta(hours=4), now)
    disk = runpod_api.state.pods[mine].body["disk"] * DISK_USD_PER_GB_HOUR * 2.5
    assert billed.instance_id == mine
    assert billed.amount_usd == pytest.approx(0.86 * 2.5 + disk, abs=1e-4)
    # the window is RunPod's: hour buckets, the start snapped down
    assert billed.start == (now - timedelta(hours=4)).replace(minute=0, second=0, microsecond=0)
    (call,) = runpod_api.calls("GET", BILLING)
    assert call.query["bucketSize"] == ["hour"] and "podId" not in call.query
    assert other not in [b.instance_id for b in provider.billed([mine], now - timedelta(hours=4), now)]


def test_the_guard_passes_billing_through_and_refused_keys_are_credential_errors(runpod_api) -> None:
    runpod = ProviderRegistry.discover().create("runpod")
    now = datetime.now(timezone.utc)
    assert runpod.billed(["nothing"], now - timedelta(hours=1), now) == []
    runpod_api.api_key = "another-key"
    with pytest.raises(CredentialsError):
        runpod.billed(["nothing"], now - timedelta(hours=1), now)


def test_the_standin_billing_endpoint_follows_the_spec(runpod_api) -> None:
    with httpx.Client(base_url=runpod_api.url, headers={"Authorization": f"Bearer {runpod_api.api_key}"}) as http:
        assert http.get(BILLING, params={"lastN": 3, "bucketSize": "day"}).status_code == 200
        refused = http.get(BILLING, params={"lastN": 3, "startTime": "2026-01-01T00:00:00Z"})
    assert refused.status_code == 400
