"""The engine as a docker container on a machine gpuctl reaches over SSH (or this one): shared by the rented
machine runtime (:mod:`.ssh_machine`) and the user's own host (:mod:`.user_host`).

Steps: one connection for the whole run (:class:`gpuctl.host.connection.HostConnection`: one SSH login,
one docker client over it; the one ``up --host`` opened to read the host's GPUs when it hands one
over), the host check, the weights into the host's cache (or the provider's mounted cache, or through
its mirror), the engine container, the TTL watchdog, the health wait. Everything started on the host
carries the deployment's labels (:func:`gpuctl.host.labels.host_labels`: project, name, token, role),
so ``down`` and ``gc`` find it by label. The container's state is read at every health poll
(:class:`gpuctl.host.health.EngineWatch`), so an engine that exits, is OOM-killed or keeps restarting
fails the wait within seconds (exit 8, with its log tail).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING

from gpuctl.deploy import naming
from gpuctl.deploy.endpoint import http_url
from gpuctl.deploy.hosts import wait_for_shell
from gpuctl.deploy.phases import PullTally, weights_source
from gpuctl.deploy.runtimes.base import Runtime
from gpuctl.host.connection import HostConnection
from gpuctl.host.labels import Role, host_labels
from gpuctl.host.shell import Shell
from gpuctl.host.target import HostTarget
from gpuctl.models.engine import HOST_CACHE_DIR, HOST_PORT
from gpuctl.models.instance import Instance
from gpuctl.plan import DeployPlan
from gpuctl.providers.capabilities import Capability

if TYPE_CHECKING:
    from gpuctl.host.docker import DockerEngine
    from gpuctl.host.health import EngineWatch
    from gpuctl.models.engine import EngineSpec
    from gpuctl.weights.models import CacheReport


class HostEngineRuntime(Runtime):
    """A runtime whose engine gpuctl runs itself, in docker on the machine (see the module docstring)."""

    #: a machine the user owns: never bootstrapped, its docker never restarted or reconfigured
    user_owned = False
    _host: HostConnection | None = None
    _docker: DockerEngine | None = None
    _watch: EngineWatch | None = None

    @property
    def shell(self) -> Shell | None:
        return self._host.shell if self._host is not None else None

    @abstractmethod
    def target(self, instance: Instance) -> HostTarget:
        """Where the machine is reached."""

    @property
    @abstractmethod
    def pin_new_host_key(self) -> bool:
        """Whether an unknown host key is pinned on first contact (a machine rented a minute ago)."""

    @property
    @abstractmethod
    def stop_machine_on_ttl(self) -> bool:
        """Whether the TTL watchdog also shuts the machine down."""

    @property
    def cache_dir(self) -> str:
        """Where the weights live on the machine: the provider's mounted cache, else the host directory."""
        return self.cache.mount_path if self.cache and self.cache.mount_path else HOST_CACHE_DIR

    # -- steps ---------------------------------------------------------------------------------------
    def connect(self, instance: Instance) -> HostConnection:
        """The connection for the whole run: the one the caller handed over, else a new one (retried while it boots)."""
        if self._host is None:
            request = self.run.request
            target = self.target(instance)
            if request.connection is not None:
                self._host = request.connection
            else:
                with self.ctx.reporter.step(f"connecting to {target}"):
                    self._host = HostConnection(wait_for_shell(
                        target, self.ctx.state_dir, timeout=self.ctx.timeouts.ssh, identity=request.identity,
                        accept_host_key=request.accept_host_key or self.pin_new_host_key,
                        decide=request.decide_host_key))
        return self._host

    def labels(self, role: Role) -> dict[str, str]:
        """The labels of what this deployment starts on the host (its token tells it from a later one of its name)."""
        deployment = self.run.deployment
        return host_labels(role, project=self.ctx.project_id, deployment=deployment.name,
                           token=deployment.idempotency_token)

    def connect_and_check(self, plan: DeployPlan, instance: Instance) -> DockerEngine:
        """SSH to the machine, check its GPUs and docker; the docker engine to run containers with."""
        from gpuctl.host.checks import check_host

        journal = self.run.journal
        target = self.target(instance)
        if journal.current.host is None:
            journal.update(host=str(target), host_port=HOST_PORT)
        offer = plan.offer
        with self.run.phases.phase("host"):
            host = self.connect(instance)
            with self.ctx.reporter.step(f"checking {host.where}"):
                report = check_host(host.shell, expected_gpu=offer.gpu, expected_count=offer.gpu_count,
                                    user_owned=self.user_owned, reporter=self.ctx.reporter)
        container = None if self.run.request.weights_only else naming.container_name(self.run.name)
        journal.update(docker_sudo=report.docker_sudo, container=container, event="host-checked",
                       detail=f"{report.gpu_count} x {report.gpu}, docker {report.docker.server_version}")
        self._docker = host.docker(sudo=report.docker_sudo)
        return self._docker

    def cache_weights(self, plan: DeployPlan, docker: DockerEngine) -> EngineSpec:
        """The weights into the machine's cache (fetched once, verified); the engine then serves them offline.

        A cache the machine does not mount (AWS: S3) is read and filled through the machine's own
        cache; while that fill runs the record names it, so a teardown aborts its unfinished uploads.
        """
        from gpuctl.engines import HF_TOKEN_ENV
        from gpuctl.weights import ensure_cached, serve_from_cache

        model = plan.model
        mirror = (self.provider.weights_mirror(self.cache)
                  if self.cache and self.provider.can(Capability.WEIGHTS_MIRROR) else None)
        if mirror is not None:
            self.run.journal.update(mirror_fill=model.repo)
        self.pull_image(docker, plan.engine.image)  # the fetcher runs in the engine's image
        with self.run.phases.phase("weights") as phase:
            cached = ensure_cached(docker, model.repo, model.revision, image=plan.engine.image,
                                   cache_dir=self.cache_dir, hf_token=self.run.secrets.get(HF_TOKEN_ENV),
                                   allow_pickle=self.run.request.allow_pickle, reporter=self.ctx.reporter,
                                   manifest=self.run.request.manifest, mirror=mirror, labels=self.labels("fetcher"))
            phase.bytes, phase.source = cached.downloaded_bytes, weights_source(cached.downloaded_bytes,
                                                                                cached.mirror_bytes)
        self.cache_report = cached
        if self.cache is not None:
            from gpuctl.weights.ledger import record_filled

            record_filled(self.cache, cached)
        self.run.journal.update(mirror_fill=None, event="weights-cached",
                                detail=f"{cached.files} files, {cached.downloaded_bytes} bytes fetched")
        return serve_from_cache(plan.engine, pickle=cached.format == "pickle")

    def pull_image(self, docker: DockerEngine, image: str) -> None:
        """The engine's image onto the machine, as the image phase (the bytes a pull downloaded)."""
        with self.run.phases.phase("image") as phase:
            if docker.has_image(image):
                phase.source, phase.bytes = "cached", 0
            else:
                tally = PullTally(self.ctx.reporter)
                docker.pull(image, reporter=tally)
                phase.source, phase.bytes = "registry", tally.downloaded_bytes

    def start_engine(self, plan: DeployPlan, instance: Instance) -> None:
        docker = self.connect_and_check(plan, instance)
        spec = self.cache_weights(plan, docker)
        deployment = self.run.deployment
        assert deployment.host_port is not None and deployment.container is not None
        container = deployment.container
        self.run.phases.begin("engine")
        with self.ctx.reporter.step(f"starting {spec.engine} ({spec.image})"):
            docker.run_engine(spec, secrets=self.run.secrets, name=container, host_port=deployment.host_port,
                              cache_dir=self.cache_dir, reporter=self.ctx.reporter, labels=self.labels("engine"))
        self.watch_engine(docker, container)
        target = self.target(instance)
        self.run.journal.update(endpoint=self._endpoint(plan, target, deployment.host_port),
                                tunnel=target.kind == "ssh" and not plan.engine.public,
                                event="engine-started", detail=container)
        self.arm_watchdog(plan, container, deployment.docker_sudo)
        self.wait_healthy(plan)

    def watch_engine(self, docker: DockerEngine, container: str) -> None:
        """Follow the engine ``container`` on this runtime's machine: ``engine_stopped`` and
        ``engine_log_tail`` read it from now on (whoever started it)."""
        from gpuctl.host.health import EngineWatch

        self._watch = EngineWatch(docker, container)

    def fill_cache(self, plan: DeployPlan, instance: Instance | None) -> CacheReport:
        assert instance is not None
        self.cache_weights(plan, self.connect_and_check(plan, instance))
        assert self.cache_report is not None
        return self.cache_report

    def arm_watchdog(self, plan: DeployPlan, container: str, sudo: bool) -> None:
        """The watchdog on the machine, when the deployment has a TTL, a budget (at a price) or an idle limit;
        the times it ends it go on the record, counted from the launch."""
        from datetime import datetime, timezone

        from gpuctl.deploy.watchdog import IdleLimit, arm
        from gpuctl.limits import budget_seconds

        assert self._host is not None
        deployment = self.run.deployment
        now = datetime.now(timezone.utc)
        elapsed = (now - (deployment.launched_at or now)).total_seconds()
        budget = budget_seconds(deployment.budget_usd, deployment.price_per_hour)
        ttl_left = int(plan.ttl_seconds - elapsed) if plan.ttl_seconds else None
        budget_left = int(budget - elapsed) if budget is not None else None
        idle = (IdleLimit(seconds=deployment.idle_seconds, engine=plan.engine.engine, port=deployment.host_port)
                if deployment.idle_seconds and deployment.host_port else None)
        if ttl_left is None and budget_left is None and idle is None:
            return
        armed = arm(self._host.shell, name=self.run.name, container=container, seconds_left=ttl_left,
                    stop_machine=self.stop_machine_on_ttl, sudo=sudo, budget_seconds_left=budget_left, idle=idle,
                    token=deployment.idempotency_token, project=self.ctx.project_id)
        ends = [at for at in (armed.expires_at, armed.budget_ends_at) if at is not None]
        self.run.journal.update(watchdog_pid=armed.pid, expires_at=armed.expires_at,
                                budget_ends_at=armed.budget_ends_at, watchdog_activity=armed.activity_file,
                                event="ttl-armed", detail=min(ends).isoformat() if ends else "idle limit")

    def _endpoint(self, plan: DeployPlan, target: HostTarget, port: int) -> str:
        if target.kind == "local" or not plan.engine.public:
            return http_url("127.0.0.1", port)
        hostname = getattr(getattr(self.shell, "options", None), "hostname", None) or str(target.host)
        return http_url(hostname, port)

    # -- watching the engine -------------------------------------------------------------------------
    def engine_stopped(self) -> str | None:
        return self._watch.problem() if self._watch is not None else None

    def engine_log_tail(self) -> str:
        return self._watch.log_tail() if self._watch is not None else ""

    def close(self) -> None:
        """Close the connection this runtime opened (one handed over stays open: its owner closes it)."""
        if self._host is not None and self._host is not self.run.request.connection:
            self._host.close()
        self._host = self._docker = self._watch = None
