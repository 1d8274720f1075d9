"""What ends a deployment by itself: its TTL, an idle limit and a budget, and who enforces them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

#: ``host``: the watchdog on the machine, whether or not gpuctl runs; ``gpuctl``: gpuctl itself, while
#: ``gpuctl top`` watches the deployment (a provider that runs the engine leaves no room for a watchdog)
Enforcer = Literal["host", "gpuctl"]


class Limits(BaseModel):
    """A deployment's limits as planned, and the most it can cost."""

    ttl_seconds: int | None = None
    idle_seconds: int | None = Field(default=None, description="ends after this long without a request")
    budget_usd: float | None = Field(default=None, description="ends when price x uptime reaches this")
    enforced_by: Enforcer = "host"
    worst_case_usd: float | None = Field(default=None, description="the most it can cost (TTL or budget); None: "
                                                                   "no bound, it bills until 'gpuctl down'")
    worst_case_seconds: int | None = Field(default=None, description="how long it can run at most")
    notes: list[str] = Field(default_factory=list)
