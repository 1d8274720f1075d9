"""A deployment as recorded in the project state file."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gpuctl.models.engine import EngineSpec
from gpuctl.models.phases import Phase

DeploymentStatus = Literal[
    "provisioning", "starting", "running", "failed", "terminating", "terminated"
]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class LaunchAttempt(BaseModel):
    """One offer ``gpuctl up`` tried; kept so a crash or a fallback never loses track of a provider."""

    model_config = ConfigDict(extra="allow")

    provider: str
    offer_id: str
    idempotency_token: str
    #: when it began; from its create on, when the create was sent
    at: datetime = Field(default_factory=utcnow)
    error: str | None = None
    #: False from just before the provider's create call until its answer is known: a create cut off
    #: (kill -9, or an interrupt that waited in vain) may still make an instance, found by its tags
    settled: bool = True
    instance_id: str | None = None


class Deployment(BaseModel):
    """What gpuctl knows about one deployment; written before every provider call.

    Unknown fields are kept so an older gpuctl never drops what a newer one wrote.
    """

    model_config = ConfigDict(extra="allow")

    name: str
    model: str
    provider: str
    status: DeploymentStatus = "provisioning"
    idempotency_token: str
    instance_id: str | None = None
    region: str | None = None
    gpu: str | None = None
    gpu_count: int | None = None
    price_per_hour: float | None = None
    endpoint: str | None = None
    ttl_seconds: int | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    # -- written by the deploy lifecycle (all optional, so older records still load) --------------
    project_id: str | None = Field(default=None, description="the project's id, also in the gpuctl-project tag")
    offer_id: str | None = None
    attempts: list[LaunchAttempt] = Field(default_factory=list, description="offers tried, in order")
    engine: str | None = None
    engine_spec: EngineSpec | None = Field(default=None, description="the engine container as planned (no secret "
                                           "values); 'gpuctl export' rebuilds it elsewhere")
    quantization: str | None = Field(default=None, description="how the engine serves the weights (None: as "
                                     "published); with engine, gpu and gpu_count: the conditions of its benches")
    served_model_name: str | None = None
    health_path: str | None = None
    public: bool = False
    host: str | None = Field(default=None, description="where the container runs: 'local' or an SSH target")
    identity: str | None = Field(default=None, description="--identity key file used to reach the host")
    docker_sudo: bool = False
    container: str | None = Field(default=None, description="engine container name on the host")
    host_port: int | None = Field(default=None, description="host port the engine is published on")
    tunnel: bool = Field(default=False, description="endpoint is on the host's loopback: reach it over SSH")
    weights_cache: str | None = Field(default=None, description="id of the provider's weights cache it uses")
    mirror_fill: str | None = Field(default=None, description="repo being copied into a mirrored weights cache "
                                    "(AWS S3): its open uploads are aborted on teardown")
    watchdog_pid: int | None = Field(default=None, description="TTL watchdog process on the host")
    launched_at: datetime | None = Field(default=None, description="when the provider accepted the launch")
    ready_at: datetime | None = None
    expires_at: datetime | None = Field(default=None, description="when the TTL watchdog stops it")
    cost_usd: float | None = Field(default=None, description="final cost, set when it ended")
    owner_pid: int | None = Field(default=None, description="the 'gpuctl up' process still working on it")
    owner_host: str | None = None
    service: str | None = Field(default=None, description="the service (replicas behind a router) it belongs to")
    nodes: int = Field(default=1, description="machines one engine spans (vLLM multi-node); price_per_hour "
                       "covers all of them")
    node_hosts: list[str] = Field(default_factory=list, description="SSH target of each node, rank order")
    node_instances: list[str] = Field(default_factory=list, description="instance id of each node, rank order")
    # -- operating it: limits, and the cold start on the record ---------------------------------------
    idle_seconds: int | None = Field(default=None, description="ends after this long without a request (--idle)")
    budget_usd: float | None = Field(default=None, description="ends when price x uptime reaches this (--budget)")
    budget_ends_at: datetime | None = Field(default=None, description="when the host's watchdog ends it for the budget")
    watchdog_activity: str | None = Field(default=None, description="file on the host where the watchdog notes "
                                          "the engine's last request (Unix seconds)")
    phases: list[Phase] = Field(default_factory=list, description="the cold start, phase by phase")


class HistoryEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    at: datetime = Field(default_factory=utcnow)
    deployment: str
    event: str
    detail: str | None = None


# -- past one machine: replicas behind a router (gpuctl.deploy.service) ----------------------------------

RouterPlacement = Literal["local", "host", "remote"]
ServiceStatus = Literal["provisioning", "running", "degraded", "failed", "terminating", "terminated"]


class RouterRecord(BaseModel):
    """The ``vllm-router`` in front of a service's replicas: where it runs and how gpuctl reaches it."""

    model_config = ConfigDict(extra="allow")

    placement: RouterPlacement = Field(description="local: this machine; host: a replica's machine; remote: a "
                                       "machine the user named")
    host: str | None = Field(default=None, description="SSH target of the router's machine (None: this machine)")
    identity: str | None = None
    port: int
    pid: int | None = Field(default=None, description="the router process on its machine")
    pid_start: str | None = Field(default=None, description="the process's start time, so a reused pid is not ours")
    url: str = Field(description="the router's base URL as gpuctl reaches it (no /v1)")
    policy: str
    log: str | None = Field(default=None, description="the router's log file on its machine")
    started_at: datetime | None = None
    stopped_at: datetime | None = None


class Service(BaseModel):
    """Replicas of one model behind one router: ``gpuctl up --replicas N``, ``gpuctl scale``, ``gpuctl down``.

    Each replica is an ordinary deployment (its own record, written and torn down by the lifecycle);
    the service only groups them, remembers how to plan more, and owns the router.
    """

    model_config = ConfigDict(extra="allow")

    name: str
    model: str
    status: ServiceStatus = "provisioning"
    replicas: int = Field(ge=0, description="replicas wanted")
    members: list[str] = Field(default_factory=list, description="deployment names of its replicas, oldest first")
    next_index: int = Field(default=1, description="the number the next replica's name gets")
    router: RouterRecord | None = None
    spread: bool = False
    replace_failed: bool = False
    request: dict[str, object] = Field(default_factory=dict, description="the plan request replicas are planned from")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    error: str | None = None
