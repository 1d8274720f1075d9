"""``gpuctl up MODEL --nodes N``: one vLLM engine across N machines (vLLM's own multi-node mode).

The provider places N machines that reach each other on every port (``Capability.MULTI_NODE``: an
AWS cluster placement group with a security group open between its members). Each machine is checked
and gets the weights like any deployment's; then every node starts the same ``vllm serve`` command
with its rank (:func:`gpuctl.engines.vllm.node_args`): rank 0 serves the API with ``--master-addr``
its own private address, the others join it ``--headless``. The layers are split into one pipeline
stage per node and each stage is tensor parallel over its node's GPUs. The containers use the host's
network (torch.distributed opens ports of its own between the nodes).

It is one deployment: one record (written before every provider call), one endpoint (rank 0's),
health-checked on rank 0 while every rank's container is watched, a price and a TTL covering every
node, and one teardown for all of them: a failure of any rank, Ctrl-C or ``gpuctl down`` ends them
all. The record carries no single instance id: the teardown finds every node by the deployment's
tags, then the provider releases what placed them together.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from gpuctl.deploy import naming, tags
from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.signals import shielded, terminate_interrupts
from gpuctl.errors import GpuctlError, Interrupted, ProviderError, TimeoutError_, UsageError
from gpuctl.host.target import HostTarget
from gpuctl.models.deployment import Deployment, LaunchAttempt
from gpuctl.models.engine import HOST_CACHE_DIR, EngineSpec
from gpuctl.models.instance import Instance, LaunchRequest
from gpuctl.plan import DeployPlan
from gpuctl.providers.capabilities import Capability

if TYPE_CHECKING:
    from gpuctl.host.docker import DockerEngine
    from gpuctl.host.shell import Shell
    from gpuctl.weights.models import Manifest


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


def rank_args(spec: EngineSpec, *, nodes: int, rank: int, master_addr: str, public: bool) -> list[str]:
    """The ``vllm serve`` arguments of node ``rank``: rank 0 serves (on all interfaces only when public)."""
    from gpuctl.engines import vllm

    args = list(spec.args)
    if "--host" in args:  # host networking: the API address is the machine's, so a private one stays on loopback
        args[args.index("--host") + 1] = "0.0.0.0" if public else "127.0.0.1"
    return vllm.node_args(args, nodes=nodes, node_rank=rank, master_addr=master_addr)


def up_nodes(ctx: DeployContext, *, name: str, plans: list[DeployPlan], nodes: int, secrets: dict[str, str],
             manifest: Manifest | None = None, allow_pickle: bool = False, keep_on_failure: bool = False) -> Deployment:
    """Place ``nodes`` machines of ``plans[0]``'s offer, start the engine on each, health-check rank 0.

    Raises the failing step's error after tearing every node down (130 for Ctrl-C).
    """
    with terminate_interrupts():
        run = _Nodes(ctx, name, plans[0], nodes, dict(secrets), manifest, allow_pickle)
        run.reserve()
        try:
            return run.execute()
        except BaseException as exc:
            error = run.fail(exc, keep=keep_on_failure)
            if error is exc:
                raise
            raise error from exc
        finally:
            run.close()


class _Nodes:
    def __init__(self, ctx: DeployContext, name: str, plan: DeployPlan, nodes: int, secrets: dict[str, str],
                 manifest: Manifest | None, allow_pickle: bool) -> None:
        self.ctx, self.name, self.plan, self.nodes = ctx, name, plan, nodes
        self.secrets, self.manifest, self.allow_pickle = secrets, manifest, allow_pickle
        self.provider = ctx.provider(plan.offer.provider)
        self.shells: list[Shell] = []
        self.engines: list[DockerEngine] = []

    def update(self, event: str | None = None, detail: str | None = None, **changes: Any) -> Deployment:
        return self.ctx.records.update(self.name, event=event, detail=detail, **changes)

    def reserve(self) -> None:
        """The record, before any call to the provider."""
        if not self.provider.can(Capability.MULTI_NODE):
            raise UsageError(f"{self.provider.display_name} cannot place machines together for one engine",
                             "'gpuctl providers' shows which can (multi-node)")
        plan, offer, created = self.plan, self.plan.offer, _now()
        record = Deployment(
            name=self.name, model=plan.model.name, provider=offer.provider, status="provisioning", created_at=created,
            idempotency_token=naming.idempotency_token(self.ctx.project_id, self.name, 0, created),
            project_id=self.ctx.project_id, tags=tags.deployment_tags(self.ctx.project_id, self.name),
            ttl_seconds=plan.ttl_seconds, engine=plan.engine.engine, engine_spec=plan.engine,
            served_model_name=plan.engine.served_model_name, health_path=plan.engine.health_path,
            public=plan.engine.public, owner_pid=os.getpid(), owner_host=socket.gethostname(), offer_id=offer.id,
            region=offer.region, gpu=offer.gpu, gpu_count=offer.gpu_count, nodes=self.nodes,
            price_per_hour=round(offer.price_per_hour * self.nodes, 4),
        )
        self.ctx.records.reserve(record, allocate_port=False)

    def execute(self) -> Deployment:
        instances = self.launch()
        instances = self.wait_running(instances)
        self.start_engines(instances)
        return self.update(status="running", ready_at=_now(), owner_pid=None, error=None, event="ready",
                           detail=self.ctx.records.get(self.name).endpoint)

    def launch(self) -> list[Instance]:
        from gpuctl.host.keys import ensure_project_key

        offer = self.plan.offer
        deployment = self.ctx.records.get(self.name)
        token = deployment.idempotency_token
        self.ensure_api_key()
        self.update(event="launching", detail=f"{self.nodes} x {offer.id}",
                    attempts=[LaunchAttempt(provider=offer.provider, offer_id=offer.id, idempotency_token=token)])
        request = LaunchRequest(name=self.name, offer=offer, idempotency_token=token, tags=deployment.tags,
                                ssh_public_key=ensure_project_key(self.ctx.state_dir).public_key,
                                ttl_seconds=self.plan.ttl_seconds, public=self.plan.engine.public)
        with self.ctx.reporter.step(f"placing {self.nodes} machines of {offer.gpu_count} x {offer.gpu} together "
                                    f"at {self.provider.display_name}"):
            instances = self.provider.launch_nodes(request, self.nodes)
        if len(instances) != self.nodes:
            raise ProviderError(f"{self.provider.display_name} placed {len(instances)} machines, not {self.nodes}")
        launched = _now()
        expires = launched + timedelta(seconds=self.plan.ttl_seconds) if self.plan.ttl_seconds else None
        self.update(status="starting", launched_at=launched, expires_at=expires, event="launched",
                    detail=", ".join(i.id for i in instances), node_instances=[i.id for i in instances])
        return instances

    def ensure_api_key(self) -> None:
        key_env = self.plan.engine.api_key_env
        if key_env and key_env not in self.secrets:
            from gpuctl.deploy.secrets import create_api_key

            self.secrets[key_env] = create_api_key(self.ctx.state_dir, self.name)

    def wait_running(self, instances: list[Instance]) -> list[Instance]:
        timeouts = self.ctx.timeouts
        deadline = time.monotonic() + timeouts.launch
        with self.ctx.reporter.step(f"waiting for {self.nodes} machines to start"):
            while not all(_reachable(i) for i in instances):
                broken = [i for i in instances if i.status in ("error", "terminated", "stopped")]
                if broken:
                    raise ProviderError(f"{self.provider.display_name} instance {broken[0].id} is "
                                        f"{broken[0].provider_status or broken[0].status} instead of starting")
                if time.monotonic() + timeouts.poll > deadline:
                    raise TimeoutError_(f"the {self.nodes} machines were not all running after {timeouts.launch:.0f}s")
                time.sleep(timeouts.poll)
                instances = [self.provider.get(i.id) for i in instances]
        return instances

    def start_engines(self, instances: list[Instance]) -> None:
        """Every node checked and given the weights; then the engines, rank 0 first; then rank 0's health."""
        from gpuctl.deploy.hosts import wait_for_shell

        targets = [HostTarget(kind="ssh", host=i.ssh_host, user=i.ssh_user, port=i.ssh_port) for i in instances]
        master = instances[0].private_ip or instances[0].ssh_host
        assert master is not None
        self.update(host=str(targets[0]), host_port=self.plan.engine.port, node_hosts=[str(t) for t in targets],
                    container=naming.container_name(self.name))
        specs = []
        for rank, target in enumerate(targets):
            with self.ctx.reporter.step(f"connecting to node {rank} ({target})"):
                shell = wait_for_shell(target, self.ctx.state_dir, timeout=self.ctx.timeouts.ssh, accept_host_key=True)
            self.shells.append(shell)
            specs.append(self.prepare(rank, shell))
        container = naming.container_name(self.name)
        for rank, (engine, spec) in enumerate(zip(self.engines, specs, strict=True)):
            self.run_engine(rank, engine, spec, container, master)
        endpoint_host = targets[0].host if self.plan.engine.public else "127.0.0.1"
        from gpuctl.deploy.endpoint import http_url

        self.update(endpoint=http_url(str(endpoint_host), self.plan.engine.port), tunnel=not self.plan.engine.public,
                    event="engine-started", detail=f"{self.nodes} nodes, master {master}")
        if self.plan.ttl_seconds:
            self.arm_watchdogs(container)
        self.wait_healthy(container)

    def prepare(self, rank: int, shell: Shell) -> EngineSpec:
        """One node: its GPUs and docker checked, the weights in its cache (fetched once, verified)."""
        from gpuctl.engines import HF_TOKEN_ENV
        from gpuctl.host.checks import check_host
        from gpuctl.host.docker import DockerEngine
        from gpuctl.weights import ensure_cached, serve_from_cache

        offer, model = self.plan.offer, self.plan.model
        with self.ctx.reporter.step(f"checking node {rank} ({shell.where})"):
            report = check_host(shell, expected_gpu=offer.gpu, expected_count=offer.gpu_count,
                                reporter=self.ctx.reporter)
        if rank == 0:
            self.update(docker_sudo=report.docker_sudo, event="host-checked",
                        detail=f"node 0: {report.gpu_count} x {report.gpu}")
        engine = DockerEngine(shell, sudo=report.docker_sudo)
        self.engines.append(engine)
        cached = ensure_cached(engine, model.repo, model.revision, image=self.plan.engine.image,
                               cache_dir=HOST_CACHE_DIR, hf_token=self.secrets.get(HF_TOKEN_ENV),
                               allow_pickle=self.allow_pickle, reporter=self.ctx.reporter, manifest=self.manifest)
        self.update(event="weights-cached", detail=f"node {rank}: {cached.files} files")
        return serve_from_cache(self.plan.engine, pickle=cached.format == "pickle")

    def run_engine(self, rank: int, engine: DockerEngine, spec: EngineSpec, container: str, master: str) -> None:
        from gpuctl.host.docker import engine_container
        from gpuctl.host.labels import host_labels

        deployment = self.ctx.records.get(self.name)
        node_spec = spec.model_copy(update={"args": rank_args(spec, nodes=self.nodes, rank=rank, master_addr=master,
                                                              public=self.plan.engine.public)})
        labels = host_labels("engine", project=self.ctx.project_id, deployment=self.name,
                             token=deployment.idempotency_token)
        wanted = list(dict.fromkeys([*node_spec.secret_env, *node_spec.secret_flags.values()]))
        # torch.distributed opens ports of its own between the nodes: the machine's network, not a mapped port
        run = engine_container(node_spec, cache_dir=HOST_CACHE_DIR, host_port=node_spec.port, labels=labels)
        run = run.model_copy(update={"network_mode": "host", "ports": {}})
        role = "serving" if rank == 0 else "headless"
        with self.ctx.reporter.step(f"starting {spec.engine} rank {rank} of {self.nodes} ({role})"):
            engine.start(run, name=container, secrets={n: self.secrets[n] for n in wanted},
                         reporter=self.ctx.reporter)

    def arm_watchdogs(self, container: str) -> None:
        """The TTL on every node: each stops its engine and powers its machine off when it ends."""
        from gpuctl.deploy.watchdog import arm

        deployment = self.ctx.records.get(self.name)
        left = int((self.plan.ttl_seconds or 0) - (_now() - (deployment.launched_at or _now())).total_seconds())
        armed = None
        for shell, engine in zip(self.shells, self.engines, strict=True):
            armed = arm(shell, name=self.name, container=container, seconds_left=left, stop_machine=True,
                        sudo=engine.sudo, token=deployment.idempotency_token, project=self.ctx.project_id)
        if armed is not None:
            self.update(expires_at=armed.expires_at, event="ttl-armed", detail=armed.expires_at.isoformat())

    def wait_healthy(self, container: str) -> None:
        """Rank 0's health path, /v1/models and a smoke completion; any rank's container ending fails it."""
        from gpuctl.deploy.endpoint import reach
        from gpuctl.host.health import wait_for_engine

        def exited() -> str | None:
            for rank, engine in enumerate(self.engines):
                state = engine.inspect(container)
                if state is None:
                    return f"rank {rank}'s container is gone"
                if not state.running:
                    return f"rank {rank} {state.status}, exit code {state.exit_code}"
            return None

        def log_tail() -> str:
            tails = []
            for rank, engine in enumerate(self.engines):
                try:
                    tails.append(f"[rank {rank}]\n{engine.logs(container, tail=15)}")
                except GpuctlError:
                    continue
            return "\n".join(tails)

        deployment = self.ctx.records.get(self.name)
        with reach(deployment, self.shells[0]) as base_url:
            wait_for_engine(base_url, health_path=self.plan.engine.health_path, timeout=self.ctx.timeouts.health,
                            api_key=self.secrets.get(self.plan.engine.api_key_env or ""), exited=exited,
                            log_tail=log_tail, interval=min(1.0, self.ctx.timeouts.poll), reporter=self.ctx.reporter)

    def fail(self, exc: BaseException, *, keep: bool) -> BaseException:
        """Record the failure and tear every node down (unless kept); the error to raise."""
        error: BaseException = Interrupted() if isinstance(exc, KeyboardInterrupt) else exc
        message = error.one_line() if isinstance(error, GpuctlError) else f"{type(error).__name__}: {error}"
        reporter = self.ctx.reporter
        with shielded(reporter):
            self.update(status="failed", error=message, event="failed", detail=message)
            if keep:
                reporter.warn(f"kept the {self.nodes} machines of '{self.name}' (--keep-on-failure); "
                              f"'gpuctl down {self.name}' removes them")
            else:
                try:
                    take_down(self.ctx, self.name, failed=True)
                except GpuctlError as cleanup:
                    reporter.warn(f"cleaning up '{self.name}' failed: {cleanup.one_line()}; "
                                  f"run 'gpuctl down {self.name}' to finish it")
        return error

    def close(self) -> None:
        for engine in self.engines:
            engine.close()
        for shell in self.shells:
            close = getattr(shell, "close", None)
            if close is not None:
                close()


def take_down(ctx: DeployContext, name: str, *, failed: bool = False) -> Deployment:
    """The ordinary teardown: it finds every node by the deployment's tags, then has the provider release them."""
    from gpuctl.deploy.teardown import teardown

    return teardown(ctx, ctx.records.get(name), failed=failed)


def _reachable(instance: Instance) -> bool:
    return instance.status == "running" and bool(instance.ssh_host)


def _now() -> datetime:
    return datetime.now(timezone.utc)
