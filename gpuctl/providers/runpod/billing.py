"""What RunPod billed each pod: ``GET /v2/billing/pods`` (REST v2, tag Billing).

One call covers every pod: without the ``podId`` filter the API answers one record per pod per time
bucket, and gpuctl adds up the records of the pods it asks about. Hourly buckets keep the window close
to the one asked for (RunPod snaps ``startTime`` down and ``endTime`` up to bucket bounds).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from gpuctl.models.billing import BilledAmount

if TYPE_CHECKING:
    from gpuctl.providers.runpod.client import RunPodApi

BUCKET = "hour"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class PodBillingRecord(_Model):
    """One pod's charges in one time bucket."""

    start_time: datetime = Field(alias="startTime")
    end_time: datetime = Field(alias="endTime")
    pod_id: str = Field(alias="podId")
    total_amount: float = Field(alias="totalAmount", ge=0)


class PodBillingQuery(_Model):
    start_time: datetime = Field(alias="startTime")
    end_time: datetime = Field(alias="endTime")


class PodBillingMetadata(_Model):
    query: PodBillingQuery


class ListPodBillingResponse(_Model):
    records: list[PodBillingRecord]
    metadata: PodBillingMetadata


def pod_charges(api: RunPodApi, pod_ids: list[str], start: datetime, end: datetime) -> list[BilledAmount]:
    """What RunPod billed each of ``pod_ids`` between ``start`` and ``end``; pods without records are left out."""
    params = {"startTime": _rfc3339(start), "endTime": _rfc3339(end), "bucketSize": BUCKET}
    answer = api.get("/billing/pods", ListPodBillingResponse, params=params)
    wanted = set(pod_ids)
    totals: dict[str, float] = {}
    for record in answer.records:
        if record.pod_id in wanted:
            totals[record.pod_id] = totals.get(record.pod_id, 0.0) + record.total_amount
    window = answer.metadata.query
    return [BilledAmount(instance_id=pod_id, amount_usd=round(amount, 6), start=window.start_time,
                         end=window.end_time) for pod_id, amount in totals.items()]


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
