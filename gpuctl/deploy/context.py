"""What every deploy operation needs: the project's state, its id, the providers and a reporter."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from gpuctl.deploy.records import Records
from gpuctl.events import NullReporter, Reporter

if TYPE_CHECKING:
    from gpuctl.plugins import ProviderRegistry
    from gpuctl.providers.base import Provider
    from gpuctl.state import StateStore


class Timeouts(BaseModel):
    """Every wait of the lifecycle is bounded; seconds."""

    launch: float = 900.0
    ssh: float = 300.0
    health: float = 1800.0
    terminate: float = 600.0
    poll: float = 2.0
    #: how long an interrupted ``up`` waits for the provider's answer to a create already sent
    create_grace: float = 60.0
    #: how long ``down`` waits for the ``up`` it asked to stop (it tears down what it created first)
    takeover: float = 300.0


@dataclass
class DeployContext:
    store: StateStore
    registry: ProviderRegistry
    reporter: Reporter = field(default_factory=NullReporter)
    timeouts: Timeouts = field(default_factory=Timeouts)

    @property
    def state_dir(self) -> Path:
        return self.store.dir

    @cached_property
    def records(self) -> Records:
        return Records(self.store)

    @cached_property
    def project_id(self) -> str:
        from gpuctl.deploy.naming import project_id

        return project_id(self.state_dir)

    def provider_class(self, name: str) -> type[Provider]:
        """The class of provider ``name`` (unknown or broken: exit 2 with close matches)."""
        if name in self.registry.classes:
            return self.registry.classes[name]
        return type(self.registry.create(name))  # raises

    def provider(self, name: str) -> Provider:
        return self.registry.create(name)  # guarded: a plugin's failure is named and costs only itself
