"""What a provider's own billing says a deployment cost (``Capability.BILLING``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class BilledAmount(BaseModel):
    """The provider's charge for one instance over a window, as its billing records show it."""

    instance_id: str
    amount_usd: float = Field(ge=0, description="everything billed for the instance (compute, disk) in the window")
    start: datetime = Field(description="the window the provider resolved the query to (its buckets' bounds)")
    end: datetime
