"""The cold start of a deployment, phase by phase: what ``gpuctl up`` waited for, and for how long."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

#: in the order an ``up`` on a rented machine goes through them; a phase a deployment does not have (a
#: ``--host`` machine is not provisioned, a RunPod pod is not reached over SSH) is simply absent
PhaseName = Literal["provision", "host", "image", "weights", "engine", "first_token"]
PHASES: tuple[PhaseName, ...] = ("provision", "host", "image", "weights", "engine", "first_token")
PHASE_TITLES: dict[PhaseName, str] = {
    "provision": "provision", "host": "host reachable", "image": "image pull", "weights": "weights",
    "engine": "engine load", "first_token": "first token",
}


class Phase(BaseModel):
    """One phase of a cold start, with the bytes it moved where that applies."""

    name: PhaseName
    started_at: datetime
    ended_at: datetime | None = Field(default=None, description="None while it runs, or when 'up' died in it")
    bytes: int | None = Field(default=None, description="image: bytes pulled; weights: bytes downloaded")
    source: str | None = Field(default=None, description="image: 'registry' or 'cached'; weights: 'hub', 'mirror', "
                                                        "'cache' (already on the machine) or 'provider' (seeded)")
    detail: str | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.ended_at is None else max(0.0, (self.ended_at - self.started_at).total_seconds())


class ColdStart(BaseModel):
    """A deployment's cold start in one view: each phase, the whole wait, and what it was billed."""

    phases: list[Phase]
    seconds: float | None = Field(description="from the first phase's start to the last one's end")
    billed_seconds: float | None = Field(description="of those, the time the machine was billing (since launch)")
    cost_usd: float | None = Field(description="billed_seconds at the offer's price")


class PhaseEstimate(BaseModel):
    """How long a phase of a cold start is expected to take, and what the figure rests on."""

    name: PhaseName
    seconds: float
    basis: str = Field(description="'history: ...' (past ups) or 'assumed: ...' (no history yet)")


class ColdStartPrediction(BaseModel):
    """``up --dry-run``'s forecast of the cold start on one offer."""

    phases: list[PhaseEstimate]
    seconds: float
    cost_usd: float = Field(description="the wait at the offer's price")
    history_ups: int = Field(description="past ups on this provider the forecast draws on")
