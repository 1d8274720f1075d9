"""One ``up`` (or ``weights pull --to``) in progress: what every step of it shares."""

from __future__ import annotations

from dataclasses import dataclass

from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.journal import Journal
from gpuctl.deploy.phases import PhaseLog
from gpuctl.deploy.request import UpRequest
from gpuctl.models.deployment import Deployment


@dataclass
class DeployRun:
    """One ``up`` (or ``weights pull --to``): its context, its request, its record and the secrets it made."""

    ctx: DeployContext
    request: UpRequest
    journal: Journal
    secrets: dict[str, str]

    @property
    def name(self) -> str:
        return self.request.name

    @property
    def deployment(self) -> Deployment:
        return self.journal.current

    @property
    def phases(self) -> PhaseLog:
        """The cold start's phases, written through the journal (a phase that cannot be written never fails the
        deploy: the next step's write reports the state file's trouble)."""
        journal = self.journal
        return PhaseLog(lambda **changes: journal.update(persist=False, **changes), lambda: journal.current)
