"""Replicas of one model behind ``vllm-router``: plan them, deploy each through ``up``, route, scale, take down.

A service is a record grouping ordinary deployments (its replicas, ``NAME-1``, ``NAME-2``...) and the
router in front of them. Every replica goes through the one deploy lifecycle (record first, health and
smoke check, teardown on failure or Ctrl-C); the service adds only what is past one machine:

* the replicas share the service's API key (the router passes each client's key on to the replica it
  picks) and are planned public, so the router reaches them;
* a replica joins the router only once it is healthy, and leaves it before it is torn down;
* a failure or Ctrl-C while replicas come up tears down every replica launched so far, and the router.

gpuctl never routes a request itself, and it runs no autoscaler: ``gpuctl scale`` changes the count
when the user asks, and replaces replicas that died when the service was made ``--replace-failed``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuctl.deploy import router as routing
from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.naming import check_name
from gpuctl.deploy.records import is_active
from gpuctl.deploy.signals import shielded
from gpuctl.errors import GpuctlError, Interrupted, NotFoundError, UsageError
from gpuctl.models.deployment import Deployment, RouterRecord, Service, utcnow
from gpuctl.models.offer import Offer
from gpuctl.plan import DeployPlan, PlanInputs, PlanRequest
from gpuctl.state import StateWriteError

if TYPE_CHECKING:
    from gpuctl.weights.models import Manifest

#: a replica's name is the service's plus "-N"; deployment names are at most 48 characters
MAX_NAME = 44
#: how many ranked offers replicas are planned from (spread over, and fallbacks taken from)
MAX_RANKED = 1_000
ROUTER_LOCAL = "local"
ROUTER_ON_REPLICA = "host"


# -- the records ---------------------------------------------------------------------------------------------

def get(ctx: DeployContext, name: str) -> Service:
    """Service ``name``; NotFoundError (exit 3) otherwise."""
    service = ctx.store.read().services.get(name)
    if service is None:
        raise NotFoundError(f"no service named '{name}'", "'gpuctl status' lists deployments and services")
    return service


def update(ctx: DeployContext, name: str, *, event: str | None = None, detail: str | None = None,
           **changes: Any) -> Service:
    with ctx.store.transaction() as state:
        current = state.services[name]
        updated = Service.model_validate({**current.model_dump(), **changes, "updated_at": utcnow()})
        state.services[name] = updated
        if event:
            state.record(name, event, detail)
        return updated


def _reserve(ctx: DeployContext, service: Service) -> None:
    with ctx.store.transaction() as state:
        existing = state.services.get(service.name)
        if existing is not None and existing.status != "terminated":
            raise UsageError(f"a service named '{service.name}' already exists (status {existing.status})",
                             f"pick another --name, or remove it first with 'gpuctl down {service.name}'")
        taken = state.deployments.get(service.name)
        if taken is not None and is_active(taken):
            raise UsageError(f"a deployment named '{service.name}' already exists", "pick another --name")
        state.services[service.name] = service
        state.record(service.name, "service-reserved", f"{service.replicas} replicas")


def members(ctx: DeployContext, service: Service) -> list[Deployment]:
    """The service's replica records that exist, oldest first."""
    deployments = ctx.store.read().deployments
    return [deployments[n] for n in service.members if n in deployments]


# -- planning ----------------------------------------------------------------------------------------------

@dataclass
class ReplicaPlan:
    """One replica: its name and plans (the first is launched; the rest are fallbacks on a capacity error)."""

    name: str
    plans: list[DeployPlan]

    @property
    def offer(self) -> Offer:
        return self.plans[0].offer


@dataclass
class ReplicaProposal:
    """Replicas planned, with what every one of them needs (read before anything is rented, as for ``up``)."""

    replicas: list[ReplicaPlan]
    secrets: dict[str, str] = field(repr=False)
    manifest: Manifest | None


def propose_replicas(ctx: DeployContext, request: PlanRequest, inputs: PlanInputs, names: list[str], *,
                     spread: bool, allow_pickle: bool) -> ReplicaProposal:
    """The replicas' plans through ``up``'s own proposal service (:func:`gpuctl.deploy.proposal.propose`): the
    offers, the secrets the engine needs and the model's file list, so a gated, missing or pickle-only repo
    stops here having cost nothing. See :func:`spread_over` for which offer each replica gets."""
    from gpuctl.deploy.proposal import propose

    proposal = propose(ctx, _public(request), inputs, name=names[0], limit=MAX_RANKED, allow_pickle=allow_pickle)
    return ReplicaProposal(spread_over(proposal.plans, names, spread=spread), proposal.secrets, proposal.manifest)


def plan_replicas(ctx: DeployContext, request: PlanRequest, inputs: PlanInputs, names: list[str], *,
                  spread: bool) -> list[ReplicaPlan]:
    """The replicas' plans alone (``up --replicas N --dry-run``): nothing is read from the model's hub."""
    from gpuctl.deploy.planning import candidate_plans

    return spread_over(candidate_plans(ctx, _public(request), inputs, limit=MAX_RANKED, keyless_ok=True), names,
                       spread=spread)


def spread_over(ranked: list[DeployPlan], names: list[str], *, spread: bool) -> list[ReplicaPlan]:
    """One replica per name: the cheapest offer that fits, or with ``spread`` round-robin over (provider, region).

    Without ``spread`` every replica takes the cheapest offer (a provider rents the same machine type
    many times); with it, the cheapest offer of each provider and region in turn. Each replica keeps
    two more offers as fallbacks for a capacity error.
    """
    if spread:
        places: dict[tuple[str, str], DeployPlan] = {}
        for plan in ranked:
            places.setdefault((plan.offer.provider, plan.offer.region), plan)
        order = list(places.values())
    else:
        order = ranked[:1]
    out = []
    for index, name in enumerate(names):
        first = order[index % len(order)]
        fallbacks = [p for p in ranked if p is not first][:2]
        out.append(ReplicaPlan(name=name, plans=[first, *fallbacks]))
    return out


def _public(request: PlanRequest) -> PlanRequest:
    """Replicas are planned public: the router reaches them over the network, each guarded by the service's key."""
    return request.model_copy(update={"public": True})


def replicas_summary(name: str, replicas: list[ReplicaPlan], *, router: str, adding: bool = False) -> str:
    """What ``up --replicas N`` (or ``scale``, ``adding``) shows before its one question: every offer, the total."""
    from gpuctl.deploy.planning import describe_offer
    from gpuctl.durations import format_duration

    total = price_per_hour(replicas)
    first = replicas[0].plans[0]
    where = "on this machine" if router == ROUTER_LOCAL else ("on a replica's machine" if router == ROUTER_ON_REPLICA
                                                              else f"on {router}")
    lines = [f"{'add to' if adding else 'deploy'} {name}: {len(replicas)} replica(s) of {first.model.name} behind "
             f"vllm-router ({where})"]
    lines += [f"  {r.name}: {describe_offer(r.offer)}" for r in replicas]
    ttl = first.ttl_seconds
    cap = (f", TTL {format_duration(ttl)}, at most ${total * ttl / 3600:.2f} in total" if ttl
           else f", no TTL: bills until 'gpuctl down {name}'")
    lines.append(f"  total ${total:.2f}/h{cap}")
    return "\n".join(lines)


def price_per_hour(replicas: list[ReplicaPlan]) -> float:
    return round(sum(r.offer.price_per_hour for r in replicas), 4)


def replica_names(service_name: str, start: int, count: int) -> list[str]:
    return [f"{service_name}-{index}" for index in range(start, start + count)]


# -- deploying ---------------------------------------------------------------------------------------------

@dataclass
class ServiceRequest:
    """What ``gpuctl up --replicas N`` decided before anything was rented."""

    name: str
    replicas: list[ReplicaPlan]
    plan_request: PlanRequest
    router: str = ROUTER_LOCAL  # 'local', 'host' or an SSH target
    policy: str = routing.DEFAULT_POLICY
    spread: bool = False
    replace_failed: bool = False
    identity: str | None = None
    accept_host_key: bool = False
    allow_pickle: bool = False
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    manifest: Manifest | None = None
    #: called with each replica once it is healthy and behind the router
    on_replica: Callable[[Deployment], None] | None = None


def check_service_name(name: str) -> str:
    check_name(name)
    if len(name) > MAX_NAME:
        raise UsageError(f"'{name}' is too long for a service (its replicas are named '{name}-N')",
                         f"use at most {MAX_NAME} characters")
    return name


def up_service(ctx: DeployContext, request: ServiceRequest) -> Service:
    """Reserve the service, start its router, deploy each replica and put it behind the router once healthy.

    Any failure or Ctrl-C tears down every replica launched so far and the router, then raises.
    """
    from gpuctl.deploy.secrets import create_api_key

    check_service_name(request.name)
    service = Service(name=request.name, model=request.replicas[0].plans[0].model.name,
                      replicas=len(request.replicas),
                      spread=request.spread, replace_failed=request.replace_failed,
                      request=request.plan_request.model_dump(mode="json"))
    _reserve(ctx, service)
    with _torn_down_on_failure(ctx, request.name):
        key = create_api_key(ctx.state_dir, request.name)
        if request.router != ROUTER_ON_REPLICA:
            _start_router(ctx, request, key)
        add_replicas(ctx, request, key)
        return update(ctx, request.name, status="running", event="service-ready",
                      detail=f"{len(request.replicas)} replicas")
    raise AssertionError("unreachable")  # pragma: no cover (the context manager re-raises)


def add_replicas(ctx: DeployContext, request: ServiceRequest, key: str) -> list[Deployment]:
    """Deploy ``request.replicas`` one by one; each joins the router once healthy."""
    ready = []
    for replica in request.replicas:
        deployment = deploy_replica(ctx, request, replica, key)
        ready.append(deployment)
        if request.on_replica is not None:
            request.on_replica(deployment)
    return ready


def deploy_replica(ctx: DeployContext, request: ServiceRequest, replica: ReplicaPlan, key: str) -> Deployment:
    """One replica through the ordinary ``up`` (record first, health, smoke), then behind the router."""
    from gpuctl.deploy.lifecycle import up
    from gpuctl.deploy.request import UpRequest
    from gpuctl.deploy.secrets import secret_file, secrets_dir
    from gpuctl.fsutil import atomic_write

    name = replica.name
    with ctx.store.transaction() as state:
        current = state.services[request.name]
        state.services[request.name] = current.model_copy(update={
            "members": [*current.members, name], "next_index": max(current.next_index, _index(name) + 1),
            "updated_at": utcnow()})
        state.record(request.name, "replica-reserved", name)
    secrets = dict(request.secrets)
    key_env = replica.plans[0].engine.api_key_env
    if key_env:
        # the service's key is this replica's too: 'gpuctl env/bench NAME-N' and the health check read it there
        atomic_write(secrets_dir(ctx.state_dir) / secret_file(ctx.state_dir, name).name,
                     f"OPENAI_API_KEY={key}\n", mode=0o600)
        secrets[key_env] = key
    deployment = up(ctx, UpRequest(name=name, plans=replica.plans, identity=_path(request.identity),
                                   accept_host_key=request.accept_host_key, secrets=secrets,
                                   allow_pickle=request.allow_pickle, manifest=request.manifest,
                                   service=request.name))
    service = get(ctx, request.name)
    if service.router is None and request.router == ROUTER_ON_REPLICA:
        _start_router_on(ctx, request, key, deployment)
        service = get(ctx, request.name)
    assert service.router is not None
    with ctx.reporter.step(f"adding {name} to the router"), routing.reach(ctx, service.router) as url:
        routing.add_worker(url, routing.worker_url(deployment, service.router))
    return deployment


def _ttl(request: ServiceRequest) -> int | None:
    """The router stops itself when the replicas' TTL ends (a little later, so it never routes to none)."""
    ttl = request.replicas[0].plans[0].ttl_seconds if request.replicas else None
    return ttl + 60 if ttl else None


def _index(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _start_router(ctx: DeployContext, request: ServiceRequest, key: str) -> RouterRecord:
    """The router on this machine, or on the machine the user named (``--router HOST``), recorded at once."""
    if request.router == ROUTER_LOCAL:
        with ctx.reporter.step("starting vllm-router on this machine"):
            record = routing.start_local(ctx.state_dir, request.name, policy=request.policy, api_key=key,
                                         ttl_seconds=_ttl(request))
    else:
        from gpuctl.deploy.hosts import connect, opened
        from gpuctl.host.target import parse_target

        target = parse_target(request.router)
        with ctx.reporter.step(f"starting vllm-router on {target}"), opened(connect(
                target, ctx.state_dir, identity=_path(request.identity),
                accept_host_key=request.accept_host_key)) as session:
            record = routing.start_remote(session, request.name, policy=request.policy, api_key=key,
                                          ttl_seconds=_ttl(request))
        record = record.model_copy(update={"host": str(target), "identity": request.identity})
    update(ctx, request.name, router=record, event="router-started", detail=record.url)
    return record


def _start_router_on(ctx: DeployContext, request: ServiceRequest, key: str, deployment: Deployment) -> None:
    """``--router host``: the router on the first replica's machine (a provider that rents machines)."""
    if not deployment.host or deployment.host == "local":
        raise UsageError(f"--router host needs a machine gpuctl reaches over SSH, and {deployment.name} runs at "
                         f"{deployment.provider} without one", "use --router local, or --router USER@HOST")
    from gpuctl.deploy.hosts import connect, opened
    from gpuctl.host.target import parse_target

    target = parse_target(deployment.host)
    with ctx.reporter.step(f"starting vllm-router on {deployment.name}'s machine"), opened(connect(
            target, ctx.state_dir, identity=_path(deployment.identity), accept_host_key=False)) as session:
        port = (deployment.host_port or 8000) + 1000
        record = routing.start_remote(session, request.name, policy=request.policy, api_key=key, port=port,
                                      ttl_seconds=_ttl(request))
    record = record.model_copy(update={"placement": "host", "host": deployment.host,
                                       "identity": deployment.identity})
    update(ctx, request.name, router=record, event="router-started", detail=f"{deployment.host} {record.url}")


@contextmanager
def router_reach(ctx: DeployContext, service: Service) -> Iterator[str]:
    """The URL of ``service``'s router from this machine (tunnelled when it runs elsewhere)."""
    if service.router is None:
        raise UsageError(f"service '{service.name}' has no router (status {service.status})")
    with routing.reach(ctx, service.router) as url:
        yield url


@contextmanager
def _torn_down_on_failure(ctx: DeployContext, name: str) -> Iterator[None]:
    """A failure or Ctrl-C while the service comes up: every replica launched so far goes, and the router."""
    try:
        yield
    except BaseException as exc:
        error: BaseException = Interrupted() if isinstance(exc, KeyboardInterrupt) else exc
        message = error.one_line() if isinstance(error, GpuctlError) else f"{type(error).__name__}: {error}"
        # a replica whose up failed has torn itself down; when its record could not be written, the file
        # still shows it launching, and only this process knows better
        known = [exc.known] if isinstance(exc, StateWriteError) and exc.known is not None else []
        with shielded(ctx.reporter):
            with contextlib.suppress(StateWriteError):  # the teardown never depends on a write of the record
                update(ctx, name, status="failed", error=message, event="service-failed", detail=message)
            try:
                take_down_service(ctx, name, failed=True, known=known)
            except GpuctlError as cleanup:
                ctx.reporter.warn(f"cleaning up service '{name}' failed: {cleanup.one_line()}; "
                                  f"run 'gpuctl down {name}' to finish it")
        if error is exc:
            raise
        raise error from exc


# -- taking down, scaling ----------------------------------------------------------------------------------

def remove_replica(ctx: DeployContext, service: Service, name: str,
                   known: Sequence[Deployment] = ()) -> Deployment | None:
    """The ordinary teardown, which takes a replica out of its router first; None when there was nothing left.

    ``known`` are records this process holds newer than the state file (which could not be written).
    """
    deployment = next((d for d in known if d.name == name), None) or ctx.store.read().deployments.get(name)
    if deployment is None or not is_active(deployment):
        return deployment
    return take_down_replica(ctx, name)


def take_down_replica(ctx: DeployContext, name: str) -> Deployment:
    """The ordinary ``gpuctl down`` of one replica (its lock, an ``up`` still at it stopped first, the one teardown)."""
    from gpuctl.deploy.down import take_down

    return take_down(ctx, name).deployment


def take_down_service(ctx: DeployContext, name: str, *, failed: bool = False,
                      known: Sequence[Deployment] = ()) -> Service:
    """The router first (so nothing routes to a replica being torn down), then every replica, then the key.

    The record ends ``terminated``; an error (raised once everything was tried) leaves it ``terminating``
    for ``gpuctl down NAME`` to finish. Like a deployment's teardown it never depends on a write of the
    record: when the state file cannot be written it goes on from what it knows, and raises that
    StateWriteError (exit 2) once everything is gone.
    """
    from gpuctl.deploy.secrets import remove_secrets

    service = get(ctx, name)
    unwritten: list[StateWriteError] = []

    def note(event: str, **changes: Any) -> None:
        nonlocal service
        try:
            service = update(ctx, name, event=event, **changes)
        except StateWriteError as exc:
            unwritten.append(exc)
            service = service.model_copy(update=changes)

    note("service-teardown", status="terminating")
    errors: list[GpuctlError] = []
    if service.router is not None and service.router.stopped_at is None:
        try:
            stop_router(ctx, service.router)
        except GpuctlError as exc:
            errors.append(exc)
        else:
            note("router-stopped", router=service.router.model_copy(update={"stopped_at": datetime.now(timezone.utc)}))
    for member in reversed(service.members):
        try:
            remove_replica(ctx, service, member, known)
        except GpuctlError as exc:
            errors.append(exc)
    if errors:
        note("service-teardown-failed", error=errors[0].one_line())
        raise errors[0]
    try:
        remove_secrets(ctx.state_dir, name)
    except OSError as exc:
        unwritten.append(StateWriteError(ctx.state_dir / "secrets", exc))
    changes: dict[str, Any] = {"status": "terminated", "ended_at": datetime.now(timezone.utc)}
    if not failed:
        changes["error"] = None
    note("service-terminated", **changes)
    if unwritten:
        raise unwritten[0]
    return service


def stop_router(ctx: DeployContext, router: RouterRecord) -> None:
    if router.host is None:
        routing.stop_local(router)
        return
    from gpuctl.deploy.hosts import connect, opened
    from gpuctl.host.target import parse_target

    try:
        with opened(connect(parse_target(router.host), ctx.state_dir, identity=_path(router.identity),
                            accept_host_key=False)) as session:
            routing.stop_remote(session, router)
    except GpuctlError:
        if router.placement != "host":
            raise
        # the router ran on a replica's machine, which its teardown has just destroyed


def dead_members(ctx: DeployContext, service: Service, router_view: dict[str, bool] | None) -> list[str]:
    """Replicas that are gone or failed: their record ended, gpuctl's own probe fails, or the router gave up on it.

    gpuctl's probe decides first: the router notices a dead replica only at its next health checks.
    """
    from gpuctl.deploy.status import probe

    dead = []
    for deployment in members(ctx, service):
        if not is_active(deployment) or deployment.status == "failed":
            dead.append(deployment.name)
            continue
        if deployment.status != "running":
            continue
        routed = None
        if router_view and service.router:
            routed = router_view.get(routing.worker_url(deployment, service.router))
        if routed is False or probe(ctx, deployment) != "healthy":
            dead.append(deployment.name)
    return dead


def forget_members(ctx: DeployContext, name: str, gone: list[str]) -> Service:
    with ctx.store.transaction() as state:
        current = state.services[name]
        state.services[name] = current.model_copy(update={
            "members": [m for m in current.members if m not in gone], "updated_at": utcnow()})
        return state.services[name]
