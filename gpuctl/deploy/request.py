"""What ``gpuctl up`` (or ``weights pull --to``) asks the lifecycle for, decided before anything is rented."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gpuctl.deploy.hosts import HostKeyDecision
from gpuctl.host.connection import HostConnection
from gpuctl.host.target import HostTarget
from gpuctl.models.deployment import Deployment
from gpuctl.plan import DeployPlan

if TYPE_CHECKING:
    from gpuctl.weights.models import Manifest


@dataclass
class UpRequest:
    """What ``gpuctl up`` decided: the plans (best first; the rest are fallbacks) and how to deploy them."""

    name: str
    plans: list[DeployPlan]
    host: HostTarget | None = None
    identity: Path | None = None
    accept_host_key: bool = False
    keep_on_failure: bool = False
    decide_host_key: HostKeyDecision | None = None
    #: an open connection to ``host`` (the one that read its GPUs): used instead of connecting again; its
    #: owner (the caller) closes it
    connection: HostConnection | None = field(default=None, repr=False)
    #: called with the ready deployment; the health bench (issue 7) plugs in here
    on_ready: Callable[[Deployment], None] | None = None
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    #: fetch a repo whose only weights are pickled (--allow-pickle)
    allow_pickle: bool = False
    #: the model's files as read before anything was rented (gpuctl.weights.preflight); None: the host reads them
    manifest: Manifest | None = None
    #: fill the provider's weights cache and stop there: no engine; the machine is torn down (``weights pull --to``)
    weights_only: bool = False
    #: the service (replicas behind vllm-router) this deployment is a replica of; its record says so from the start
    service: str | None = None
