"""``gpuctl up MODEL --nodes N``: one vLLM engine across N machines (vLLM's own multi-node mode).

The provider places N machines that reach each other on every port (``Capability.MULTI_NODE``: an
AWS cluster placement group with a security group open between its members). Each machine is checked
and gets the weights like any deployment's; then every node starts the same ``vllm serve`` command
with its rank (:func:`gpuctl.engines.vllm.node_args`): rank 0 serves the API with ``--master-addr``
its own private address, the others join it ``--headless``. The layers are split into one pipeline
stage per node and each stage is tensor parallel over its node's GPUs. The containers use the host's
network (torch.distributed opens ports of its own between the nodes).

It is one deployment, on ``up``'s own machinery: one record, written through a
:class:`~gpuctl.deploy.journal.Journal` before every provider call (so every status change is checked
against :mod:`gpuctl.deploy.states`), under the deployment's lock; each node is driven by the rented
machine runtime (:class:`~gpuctl.deploy.runtimes.ssh_machine.SshMachineRuntime`: its connect, host
check, weights cache, TTL watchdog and wait for the machine), only the engine's start is multi-node's
own. One endpoint (rank 0's), health-checked on rank 0 while every rank's container is watched; a
price and a TTL covering every node; and the one teardown (:func:`gpuctl.deploy.teardown.teardown`)
for all of them: a failure of any rank, Ctrl-C or ``gpuctl down`` ends them all. The record carries
no single instance id: the runtime's release finds every node by the deployment's tags, then
:func:`gpuctl.deploy.removal.release_nodes` has the provider release what placed them together.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from gpuctl.deploy import naming
from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.journal import Journal
from gpuctl.deploy.locks import held_for_up
from gpuctl.deploy.request import UpRequest
from gpuctl.deploy.run import DeployRun
from gpuctl.deploy.runtimes.base import ensure_api_key
from gpuctl.deploy.runtimes.ssh_machine import SshMachineRuntime
from gpuctl.deploy.signals import terminate_interrupts
from gpuctl.errors import GpuctlError, ProviderError, UsageError
from gpuctl.models.deployment import Deployment, LaunchAttempt
from gpuctl.models.engine import EngineSpec
from gpuctl.models.instance import Instance
from gpuctl.plan import DeployPlan, PlanInputs, PlanRequest
from gpuctl.providers.base import Provider
from gpuctl.providers.capabilities import Capability

if TYPE_CHECKING:
    from gpuctl.deploy.proposal import Proposal
    from gpuctl.host.docker import DockerEngine


def node_plan(plan: DeployPlan, nodes: int) -> DeployPlan:
    """The plan of a ``nodes``-node engine: vLLM's multi-node image, and a price and cost for every node."""
    from gpuctl.engines import vllm

    if plan.engine.engine != vllm.NAME:
        raise UsageError(f"--nodes runs vLLM's multi-node mode; {plan.engine.engine} has none", "use --engine vllm")
    # the engine's own image predates vLLM's multi-node mode; an image the user named (--image) is theirs
    engine = plan.engine if plan.engine.image != vllm.IMAGE else plan.engine.model_copy(
        update={"image": vllm.MULTI_NODE_IMAGE})
    cost = round(plan.offer.price_per_hour * nodes * plan.ttl_seconds / 3600, 2) if plan.ttl_seconds else None
    return plan.model_copy(update={"engine": engine, "estimated_cost_usd": cost, "nodes": nodes})


def multi_node_plans(ctx: DeployContext, ranked: list[DeployPlan], nodes: int) -> list[DeployPlan]:
    """Of ``ranked`` (plans whose fit counts ``nodes`` machines), the ``nodes``-node plans at providers that
    place machines together, best first; UsageError (2) when no provider of them can."""
    from gpuctl.deploy.planning import MAX_OFFERS

    plans = [node_plan(p, nodes) for p in ranked if ctx.provider_class(p.offer.provider).can(Capability.MULTI_NODE)]
    if not plans:
        at = ", ".join(sorted({p.offer.provider for p in ranked}))
        raise UsageError(f"{len(ranked)} offer(s) fit on {nodes} nodes, but their providers ({at}) cannot place "
                         "machines together for one engine", "see 'gpuctl providers' (multi-node) and docs/scale.md")
    return plans[:MAX_OFFERS]


def propose_nodes(ctx: DeployContext, request: PlanRequest, inputs: PlanInputs, *, name: str | None,
                  allow_pickle: bool) -> Proposal:
    """``up``'s proposal (:func:`gpuctl.deploy.proposal.propose`: secrets checked, the model's files read, before
    anything is rented) for ``request.nodes`` machines; the name defaults to ``<model>-<N>n-<gpu>-<4 hex>``."""
    from gpuctl.deploy.proposal import propose

    proposal = propose(ctx, request, inputs, name=name, limit=1_000, allow_pickle=allow_pickle)
    plans = multi_node_plans(ctx, proposal.plans, request.nodes)
    first = plans[0]
    return replace(proposal, plans=plans, name=naming.check_name(
        name or naming.default_name(first.model.name, f"{request.nodes}n-{first.offer.gpu}")))


def nodes_summary(proposal: Proposal, nodes: int) -> str:
    """What ``up --nodes N`` shows before its question: the offer, the price of every node, the TTL's cap."""
    from gpuctl.deploy.planning import describe_offer
    from gpuctl.durations import format_duration

    plan, name = proposal.plan, proposal.name
    total = plan.offer.price_per_hour * nodes
    ttl = (f"TTL {format_duration(plan.ttl_seconds)} on every node, at most ${plan.estimated_cost_usd:.2f} in total"
           if plan.ttl_seconds else f"no TTL: bills until 'gpuctl down {name}'")
    return (f"deploy {name}: {plan.model.name} on {nodes} nodes of {describe_offer(plan.offer)} each, "
            f"${total:.2f}/h in total, {ttl}\n  vLLM multi-node: pipeline parallel across the {nodes} nodes, "
            f"tensor parallel over each node's {plan.offer.gpu_count} GPUs")


def rank_args(spec: EngineSpec, *, nodes: int, rank: int, master_addr: str, public: bool) -> list[str]:
    """The ``vllm serve`` arguments of node ``rank``: rank 0 serves (on all interfaces only when public)."""
    from gpuctl.engines import vllm

    args = list(spec.args)
    if "--host" in args:  # host networking: the API address is the machine's, so a private one stays on loopback
        args[args.index("--host") + 1] = "0.0.0.0" if public else "127.0.0.1"
    return vllm.node_args(args, nodes=nodes, node_rank=rank, master_addr=master_addr)


def up_nodes(ctx: DeployContext, request: UpRequest, nodes: int) -> Deployment:
    """Place ``nodes`` machines of ``request.plans[0]``'s offer, start the engine on each, health-check rank 0.

    The record, the lock and the failure path are ``up``'s own (:class:`gpuctl.deploy.lifecycle.Launch`):
    any failure, Ctrl-C included, tears every node down and raises the step's error (130 for Ctrl-C, 2
    when the record could not be written), unless ``request.keep_on_failure``.
    """
    from gpuctl.deploy.lifecycle import Launch

    provider = ctx.provider(request.plans[0].offer.provider)
    if not provider.can(Capability.MULTI_NODE):
        raise UsageError(f"{provider.display_name} cannot place machines together for one engine",
                         "'gpuctl providers' shows which can (multi-node)")
    with held_for_up(ctx, request.name), terminate_interrupts():
        launch = Launch(ctx, request)
        launch.reserve()
        placed = NodeLaunch(launch.run, provider, nodes)
        with launch.torn_down_on_failure():
            try:
                return placed.execute()
            finally:
                placed.close()  # every node's session, before the teardown
    raise AssertionError("unreachable")  # pragma: no cover (the context manager re-raises)


class NodeLaunch:
    """One ``up --nodes N`` under way: its run (record, secrets) and a rented machine runtime per node, rank order."""

    def __init__(self, run: DeployRun, provider: Provider, nodes: int) -> None:
        self.run, self.provider, self.nodes = run, provider, nodes
        self.ctx = run.ctx
        self.plan = run.request.plans[0]
        self.runtimes = [SshMachineRuntime(run, provider) for _ in range(nodes)]

    @property
    def journal(self) -> Journal:
        return self.run.journal

    def execute(self) -> Deployment:
        offer = self.plan.offer
        self.journal.update(nodes=self.nodes, price_per_hour=round(offer.price_per_hour * self.nodes, 4),
                            event="nodes", detail=f"{self.nodes} machines of {offer.id}")
        instances = self.launch()
        instances = [runtime.wait_for_instance(i) for runtime, i in zip(self.runtimes, instances, strict=True)]
        self.start_engines(instances)
        deployment = self.run.deployment
        return self.journal.update(status="running", ready_at=_now(), owner_pid=None, error=None, event="ready",
                                   detail=deployment.endpoint)

    def launch(self) -> list[Instance]:
        """The provider places every node at once; the attempt is recorded (unsettled) before the call."""
        offer, journal = self.plan.offer, self.journal
        token = journal.current.idempotency_token
        ensure_api_key(self.run, self.plan)
        request = self.runtimes[0].launch_request(self.plan, token)
        journal.update(event="launching", detail=f"{self.nodes} x {offer.id}", attempts=[LaunchAttempt(
            provider=offer.provider, offer_id=offer.id, idempotency_token=token, settled=False)])
        with self.ctx.reporter.step(f"placing {self.nodes} machines of {offer.gpu_count} x {offer.gpu} together "
                                    f"at {self.provider.display_name}"):
            try:
                instances = self.provider.launch_nodes(request, self.nodes)
            except GpuctlError as exc:  # an answer settles the create: what it made, its tags show now
                journal.update(attempts=[a.model_copy(update={"settled": True, "error": exc.message})
                                         for a in journal.current.attempts], persist=False)
                raise
        settled = [a.model_copy(update={"settled": True}) for a in journal.current.attempts]
        if len(instances) != self.nodes:
            journal.update(attempts=settled, persist=False)
            raise ProviderError(f"{self.provider.display_name} placed {len(instances)} machines, not {self.nodes}")
        launched = _now()
        expires = launched + timedelta(seconds=self.plan.ttl_seconds) if self.plan.ttl_seconds else None
        journal.update(status="starting", launched_at=launched, expires_at=expires, attempts=settled,
                       event="launched", detail=", ".join(i.id for i in instances),
                       node_instances=[i.id for i in instances])
        return instances

    def start_engines(self, instances: list[Instance]) -> None:
        """Every node checked and given the weights (the runtime's steps); the engines, rank 0 first; rank 0's
        health."""
        plan, journal = self.plan, self.journal
        master = instances[0].private_ip or instances[0].ssh_host
        assert master is not None
        targets = [runtime.target(i) for runtime, i in zip(self.runtimes, instances, strict=True)]
        container = naming.container_name(self.run.name)
        # host networking: the engine's own port is the machine's
        journal.update(host=str(targets[0]), host_port=plan.engine.port, node_hosts=[str(t) for t in targets])
        engines: list[tuple[DockerEngine, EngineSpec]] = []
        for runtime, instance in zip(self.runtimes, instances, strict=True):
            docker = runtime.connect_and_check(plan, instance)
            engines.append((docker, runtime.cache_weights(plan, docker)))
        for rank, (docker, spec) in enumerate(engines):
            self.run_engine(rank, docker, spec, container, master)
        from gpuctl.deploy.endpoint import http_url

        endpoint_host = targets[0].host if plan.engine.public else "127.0.0.1"
        journal.update(endpoint=http_url(str(endpoint_host), plan.engine.port), tunnel=not plan.engine.public,
                       event="engine-started", detail=f"{self.nodes} nodes, master {master}")
        if plan.ttl_seconds:  # every node stops its engine and powers its machine off when the TTL ends
            for runtime in self.runtimes:
                runtime.arm_watchdog(plan, container, journal.current.docker_sudo)
        self.wait_healthy()

    def wait_healthy(self) -> None:
        """Rank 0's health path, /v1/models and a smoke completion; any rank's engine stopping fails it (exit 8)."""
        from gpuctl.deploy.endpoint import reach
        from gpuctl.host.health import wait_for_engine

        plan = self.plan
        with reach(self.run.deployment, self.runtimes[0].shell) as base_url:
            wait_for_engine(base_url, health_path=plan.engine.health_path, timeout=self.ctx.timeouts.health,
                            api_key=self.run.secrets.get(plan.engine.api_key_env or ""), exited=self.stopped_rank,
                            log_tail=self.log_tails, interval=min(1.0, self.ctx.timeouts.poll),
                            reporter=self.ctx.reporter)

    def run_engine(self, rank: int, docker: DockerEngine, spec: EngineSpec, container: str, master: str) -> None:
        from gpuctl.host.docker import engine_container
        from gpuctl.host.labels import host_labels

        deployment = self.run.deployment
        node_spec = spec.model_copy(update={"args": rank_args(spec, nodes=self.nodes, rank=rank, master_addr=master,
                                                              public=self.plan.engine.public)})
        labels = host_labels("engine", project=self.ctx.project_id, deployment=deployment.name,
                             token=deployment.idempotency_token)
        wanted = list(dict.fromkeys([*node_spec.secret_env, *node_spec.secret_flags.values()]))
        # torch.distributed opens ports of its own between the nodes: the machine's network, not a mapped port
        run = engine_container(node_spec, cache_dir=self.runtimes[rank].cache_dir, host_port=node_spec.port,
                               labels=labels)
        run = run.model_copy(update={"network_mode": "host", "ports": {}})
        role = "serving" if rank == 0 else "headless"
        with self.ctx.reporter.step(f"starting {spec.engine} rank {rank} of {self.nodes} ({role})"):
            docker.start(run, name=container, secrets={n: self.run.secrets[n] for n in wanted},
                         reporter=self.ctx.reporter)
        self.runtimes[rank].watch_engine(docker, container)  # a rank that stops fails the wait at once

    def stopped_rank(self) -> str | None:
        """Why a rank's engine stopped (the first one found), or None while every rank runs."""
        for rank, runtime in enumerate(self.runtimes):
            reason = runtime.engine_stopped()
            if reason is not None:
                return f"rank {rank} {reason}"
        return None

    def log_tails(self) -> str:
        return "\n".join(f"[rank {rank}]\n{runtime.engine_log_tail()}" for rank, runtime in enumerate(self.runtimes))

    def close(self) -> None:
        for runtime in self.runtimes:
            runtime.close()


def _now() -> datetime:
    return datetime.now(timezone.utc)
