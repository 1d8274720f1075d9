"""``gpuctl up`` as one state machine: reserve, launch (with fallback), wait, check, engine, health, ready.

The record is written before every external call, so a crash at any step leaves what ``gpuctl down``
needs. Any failure after the record exists, Ctrl-C or SIGTERM, goes through the one teardown path
(:func:`gpuctl.deploy.teardown.teardown`) unless the caller keeps what was created.

States: provisioning (record written, launching) -> starting (instance exists) -> running (healthy);
any failure -> failed -> terminated once torn down.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuctl.deploy import naming, tags
from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.endpoint import http_url, reach
from gpuctl.deploy.hosts import HostKeyDecision, wait_for_shell
from gpuctl.deploy.signals import shielded, terminate_interrupts
from gpuctl.errors import (
    CredentialsError,
    GpuctlError,
    Interrupted,
    NoCapacityError,
    NotFoundError,
    ProviderError,
    TimeoutError_,
    UsageError,
)
from gpuctl.host.shell import Shell
from gpuctl.host.target import HostTarget
from gpuctl.models.deployment import Deployment, LaunchAttempt
from gpuctl.models.engine import HOST_CACHE_DIR
from gpuctl.models.instance import Instance, LaunchRequest
from gpuctl.models.offer import Offer
from gpuctl.plan import DeployPlan
from gpuctl.providers.base import Provider
from gpuctl.providers.capabilities import Capability

if TYPE_CHECKING:
    from gpuctl.host.docker import DockerEngine
    from gpuctl.models.engine import EngineSpec
    from gpuctl.models.weights_cache import WeightsCache
    from gpuctl.weights.models import CacheReport, Manifest


#: the smallest cache gpuctl creates (RunPod's minimum network volume)
MIN_CACHE_GB = 10


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
    #: called with the ready deployment; the health bench (issue 7) plugs in here
    on_ready: Callable[[Deployment], None] | None = None
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    #: fetch a repo whose only weights are pickled (--allow-pickle)
    allow_pickle: bool = False
    #: the model's files as read before anything was rented (gpuctl.weights.preflight); None: the host reads them
    manifest: Manifest | None = None
    #: fill the provider's weights cache and stop there: no engine; the machine is torn down (``weights pull --to``)
    weights_only: bool = False


def required_secrets(plan: DeployPlan, hf_token: str | None) -> dict[str, str]:
    """The secret values the engine needs before anything is launched (the API key is added later)."""
    from gpuctl.engines import HF_TOKEN_ENV

    values: dict[str, str] = {}
    if HF_TOKEN_ENV in plan.engine.secret_env:
        if not hf_token:
            raise UsageError(f"{plan.model.repo} is gated and no Hugging Face token is set",
                             "export HF_TOKEN=... or 'gpuctl config set hf.token VALUE' (and accept the licence)")
        values[HF_TOKEN_ENV] = hf_token
    return values


def up(ctx: DeployContext, request: UpRequest) -> Deployment:
    """Deploy ``request.plans[0]`` (or a fallback); returns the running deployment.

    Raises the step's error after tearing down (exit 5 capacity, 7 timeout, 8 health, 130 interrupted).
    """
    with terminate_interrupts():
        run = _Up(ctx, request)
        run.reserve()
        with _torn_down_on_failure(run):
            ready = run.execute()
    if request.on_ready is not None:
        request.on_ready(ready)  # the deployment is healthy and recorded: a failure here leaves it running
    return ready


def fill_cache(ctx: DeployContext, request: UpRequest) -> CacheReport:
    """``weights pull --to``: the model into the provider's weights cache of the plan's region; nothing left running.

    Where the provider fills its cache itself (RunPod) that is all; elsewhere the plan's machine is
    launched, the weights fetched into the mounted (or mirrored) cache over SSH, and the machine torn
    down. The work is a record like any deployment, so a crash leaves what ``gpuctl down`` needs.
    """
    from gpuctl.deploy.teardown import teardown

    with terminate_interrupts():
        run = _Up(ctx, replace(request, weights_only=True))
        run.reserve()
        with _torn_down_on_failure(run):
            report = run.fill_cache_only()
        assert run.deployment is not None
        with shielded(ctx.reporter):
            teardown(ctx, run.deployment, shell=run.shell)
        run._close()
    return report


@contextmanager
def _torn_down_on_failure(run: _Up) -> Iterator[None]:
    """Any failure in the block, Ctrl-C included, goes through ``run.fail``: nothing may be left billing."""
    try:
        yield
    except BaseException as exc:
        error = run.fail(exc)
        if error is exc:
            raise
        raise error from exc


class _Up:
    def __init__(self, ctx: DeployContext, request: UpRequest) -> None:
        self.ctx = ctx
        self.request = request
        self.plan = request.plans[0]
        self.deployment: Deployment | None = None
        self.provider: Provider | None = None
        self.shell: Shell | None = None
        self.secrets = dict(request.secrets)
        self.cache: WeightsCache | None = None
        self.cache_report: CacheReport | None = None

    @property
    def name(self) -> str:
        return self.request.name

    def update(self, event: str | None = None, detail: str | None = None, **changes: object) -> Deployment:
        self.deployment = self.ctx.records.update(self.name, event=event, detail=detail, **changes)
        return self.deployment

    # -- steps -------------------------------------------------------------------------------------
    def reserve(self) -> None:
        """Step 3: the record, before any call to a provider (the name must be free)."""
        plan, request = self.plan, self.request
        offer = plan.offer
        created = _now()
        record = Deployment(
            name=self.name, model=plan.model.name, provider=offer.provider, status="provisioning", created_at=created,
            idempotency_token=naming.idempotency_token(self.ctx.project_id, self.name, 0, created),
            project_id=self.ctx.project_id, tags=tags.deployment_tags(self.ctx.project_id, self.name),
            ttl_seconds=plan.ttl_seconds, engine=plan.engine.engine,
            served_model_name=plan.engine.served_model_name, health_path=plan.engine.health_path,
            public=plan.engine.public, host=str(request.host) if request.host else None,
            identity=str(request.identity) if request.identity else None,
            owner_pid=os.getpid(), owner_host=socket.gethostname(), **_offer_fields(plan),
        )
        self.deployment = self.ctx.records.reserve(record, allocate_port=request.host is not None)

    def ensure_api_key(self, plan: DeployPlan) -> None:
        """The deployment's API key (0600 on this machine), made before the first plan that needs one."""
        key_env = plan.engine.api_key_env
        if key_env and key_env not in self.secrets:
            from gpuctl.deploy.secrets import create_api_key

            self.secrets[key_env] = create_api_key(self.ctx.state_dir, self.name)

    def execute(self) -> Deployment:
        instance = self.launch()
        instance = self.wait_for_instance(instance)
        assert self.provider is not None
        if self.provider.can(Capability.ENGINE_CONTAINER):
            endpoint = instance.endpoint_url
            if not endpoint:
                raise ProviderError(f"{self.provider.display_name} reports no endpoint for {instance.id}")
            self.update(endpoint=endpoint, event="engine-started")
            self.wait_healthy(None, None)
        else:
            self.start_on_host(instance)
        return self.update(status="running", ready_at=_now(), owner_pid=None, error=None, event="ready",
                           detail=self.deployment.endpoint if self.deployment else None)

    def fill_cache_only(self) -> CacheReport:
        provider = self.ctx.provider(self.plan.offer.provider)
        if provider.can(Capability.ENGINE_CONTAINER):
            self.provider = provider
            self.prepare_weights(provider, self.plan, 0)
            if self.cache is None:
                raise UsageError(f"{describe_offer(self.plan.offer)} can use no weights cache",
                                 f"see 'gpuctl prices --provider {provider.name}' for other offers")
            if self.cache_report is None:
                raise UsageError(f"the file list of {self.plan.model.repo} could not be read from here, so "
                                 f"{provider.display_name}'s weights cache cannot be filled",
                                 "check the network or HF_ENDPOINT, then run the command again")
            return self.cache_report
        instance = self.wait_for_instance(self.launch())
        docker = self.connect_and_check(instance)
        self.cache_weights(docker)
        assert self.cache_report is not None
        return self.cache_report

    def launch(self) -> Instance:
        """Steps 1 and 4: launch the first plan that has capacity, recording each attempt first."""
        failures: list[str] = []
        for attempt, plan in enumerate(self.request.plans):
            offer = plan.offer
            provider = self.ctx.provider(offer.provider)
            assert self.deployment is not None
            token = naming.idempotency_token(self.ctx.project_id, self.name, attempt, self.deployment.created_at)
            tried = [*(self.deployment.attempts if self.deployment else []),
                     LaunchAttempt(provider=offer.provider, offer_id=offer.id, idempotency_token=token)]
            self.plan, self.provider = plan, provider
            self.ensure_api_key(plan)
            self.update(event="launching", detail=offer.id, provider=offer.provider, idempotency_token=token,
                        attempts=tried, engine=plan.engine.engine, public=plan.engine.public, **_offer_fields(plan))
            # the user's own machine is not launched: it is already there
            step = nullcontext() if provider.can(Capability.USER_HOST) else self.ctx.reporter.step(
                f"launching {describe_offer(offer)}")
            try:
                plan = self.prepare_weights(provider, plan, attempt)
                with step:
                    instance = provider.launch(self._launch_request(plan, provider, token))
            except NoCapacityError as exc:
                tried[-1] = tried[-1].model_copy(update={"error": exc.message})
                self.update(event="no-capacity", detail=exc.message, attempts=tried)
                failures.append(f"{offer.id}: {exc.message}")
                if attempt + 1 < len(self.request.plans):
                    self.ctx.reporter.warn(f"{describe_offer(offer)} has no capacity ({exc.message}); "
                                           "trying the next offer")
                continue
            launched = _now()
            expires = launched + timedelta(seconds=plan.ttl_seconds) if plan.ttl_seconds else None
            self.update(status="starting", instance_id=instance.id, launched_at=launched, expires_at=expires,
                        event="launched", detail=instance.id)
            return instance
        raise NoCapacityError(f"no capacity at any of the {len(failures)} offer(s) tried: {'; '.join(failures)}")

    def prepare_weights(self, provider: Provider, plan: DeployPlan, attempt: int) -> DeployPlan:
        """Step 3b: the provider's weights cache in the offer's region; filled now where the provider runs the engine.

        Returns the plan to launch: for a provider that runs the engine itself, one whose engine serves
        the filled cache offline.
        """
        self.cache = None
        if not provider.can(Capability.WEIGHTS_CACHE):
            return plan
        region = provider.weights_cache_region(plan.offer)
        if region is None:
            return plan
        try:
            with self.ctx.reporter.step(f"weights cache in {region}"):
                cache = provider.ensure_weights_cache(region, min_gb=cache_size_gb(plan, self.request.manifest),
                                                      tags=tags.cache_tags(self.ctx.project_id))
        except (ProviderError, CredentialsError) as exc:
            if self.request.weights_only:
                raise
            # a cache only saves time: the deployment goes on, its machine downloading the weights itself
            self.ctx.reporter.warn(f"no weights cache in {region} ({exc.one_line()}); {plan.model.repo} is "
                                   "downloaded for this deployment only")
            return plan
        self.cache = cache
        self.update(weights_cache=cache.id, event="weights-cache", detail=f"{cache.name} ({cache.id})")
        manifest = self.request.manifest
        if not provider.can(Capability.ENGINE_CONTAINER):
            return plan
        if manifest is None or not provider.can(Capability.SEED_WEIGHTS):
            why = "is unknown here" if manifest is None else f"cannot be fetched ahead by {provider.display_name}"
            self.ctx.reporter.warn(f"the file list of {plan.model.repo} {why}: the engine downloads the "
                                   f"weights into {cache.name} itself, unverified")
            return plan
        from gpuctl.engines import HF_TOKEN_ENV
        from gpuctl.weights import serve_from_cache
        from gpuctl.weights.hub import hub_endpoint
        from gpuctl.weights.ledger import record_filled
        from gpuctl.weights.models import SeedRequest

        assert self.deployment is not None
        seed = SeedRequest(name=self.name, manifest=manifest, endpoint=hub_endpoint(), tags=self.deployment.tags,
                           idempotency_token=naming.idempotency_token(self.ctx.project_id, f"{self.name}/weights",
                                                                      attempt, self.deployment.created_at),
                           hf_token=self.secrets.get(HF_TOKEN_ENV))
        report = provider.seed_weights(cache, seed, self.ctx.reporter)
        self.cache_report = report
        record_filled(cache, report)
        self.update(event="weights-cached", detail=f"{report.files} files, {report.downloaded_bytes} bytes fetched")
        engine = serve_from_cache(plan.engine, pickle=manifest.format == "pickle")
        return plan.model_copy(update={"engine": engine})

    def _launch_request(self, plan: DeployPlan, provider: Provider, token: str) -> LaunchRequest:
        assert self.deployment is not None
        public_key = None
        if provider.can(Capability.SSH_MACHINE):
            from gpuctl.host.keys import ensure_project_key

            public_key = ensure_project_key(self.ctx.state_dir).public_key
        container = provider.can(Capability.ENGINE_CONTAINER)
        return LaunchRequest(name=self.name, offer=plan.offer, idempotency_token=token, tags=self.deployment.tags,
                             ssh_public_key=public_key, ttl_seconds=plan.ttl_seconds, public=plan.engine.public,
                             engine=plan.engine if container else None, secrets=self.secrets if container else {},
                             weights_cache=self.cache)

    def wait_for_instance(self, instance: Instance) -> Instance:
        """Step 5a: poll the provider until the instance runs and can be reached."""
        assert self.provider is not None
        provider, timeouts = self.provider, self.ctx.timeouts
        if _reachable(instance, provider):
            return instance
        deadline = time.monotonic() + timeouts.launch
        with self.ctx.reporter.step(f"waiting for {instance.id} to start"):
            while not _reachable(instance, provider):
                if instance.status in ("error", "terminated", "stopped"):
                    raise ProviderError(f"{provider.display_name} instance {instance.id} is "
                                        f"{instance.provider_status or instance.status} instead of starting")
                if time.monotonic() + timeouts.poll > deadline:
                    status = instance.provider_status or instance.status
                    raise TimeoutError_(f"{provider.display_name} instance {instance.id} was not running after "
                                        f"{timeouts.launch:.0f}s (status {status})")
                time.sleep(timeouts.poll)
                try:
                    instance = provider.get(instance.id)
                except NotFoundError as exc:
                    raise ProviderError(f"{provider.display_name} lost instance {instance.id}: {exc.message}") from exc
        return instance

    def start_on_host(self, instance: Instance) -> None:
        """Steps 5b-7 on a machine: SSH, host check, engine container, TTL watchdog, health."""
        docker = self.connect_and_check(instance)
        spec = self.cache_weights(docker)
        deployment = self.deployment
        assert deployment is not None and deployment.host_port is not None and deployment.container is not None
        container = deployment.container
        with self.ctx.reporter.step(f"starting {spec.engine} ({spec.image})"):
            docker.run_engine(spec, secrets=self.secrets, name=container, host_port=deployment.host_port,
                              cache_dir=self.cache_dir, reporter=self.ctx.reporter)
        target = self.shell_target(instance)
        self.update(endpoint=self._endpoint(target, deployment.host_port), tunnel=self._tunnel(target),
                    event="engine-started", detail=container)
        if self.plan.ttl_seconds:
            self.arm_watchdog(container, deployment.docker_sudo)
        self.wait_healthy(docker, container)

    @property
    def cache_dir(self) -> str:
        """Where the weights live on the machine: the provider's mounted cache, else the host directory."""
        return self.cache.mount_path if self.cache and self.cache.mount_path else HOST_CACHE_DIR

    def shell_target(self, instance: Instance) -> HostTarget:
        return self.request.host or HostTarget(kind="ssh", host=instance.ssh_host, user=instance.ssh_user,
                                               port=instance.ssh_port)

    def connect_and_check(self, instance: Instance) -> DockerEngine:
        """Step 5b-6a: SSH to the machine, check its GPUs and docker; the docker engine to run containers with."""
        from gpuctl.host.checks import check_host
        from gpuctl.host.docker import DockerEngine

        assert self.provider is not None and self.deployment is not None
        target = self.shell_target(instance)
        if self.deployment.host is None:
            self.update(host=str(target), host_port=_default_port())
        # a freshly rented machine has a key nobody could know: pin it on first contact
        accept = self.request.accept_host_key or not self.provider.can(Capability.USER_HOST)
        with self.ctx.reporter.step(f"connecting to {target}"):
            self.shell = wait_for_shell(target, self.ctx.state_dir, timeout=self.ctx.timeouts.ssh,
                                        identity=self.request.identity, accept_host_key=accept,
                                        decide=self.request.decide_host_key)
        offer = self.plan.offer
        with self.ctx.reporter.step(f"checking {self.shell.where}"):
            report = check_host(self.shell, expected_gpu=offer.gpu, expected_count=offer.gpu_count,
                                user_owned=self.provider.can(Capability.USER_HOST), reporter=self.ctx.reporter)
        container = None if self.request.weights_only else naming.container_name(self.name)
        self.update(docker_sudo=report.docker_sudo, container=container, event="host-checked",
                    detail=f"{report.gpu_count} x {report.gpu}, docker {report.docker.server_version}")
        return DockerEngine(self.shell, sudo=report.docker_sudo)

    def cache_weights(self, docker: DockerEngine) -> EngineSpec:
        """Step 6b: the weights into the host's cache (fetched once, verified); the engine then serves them offline."""
        from gpuctl.engines import HF_TOKEN_ENV
        from gpuctl.weights import ensure_cached, serve_from_cache

        model = self.plan.model
        # a cache the machine does not mount (AWS: S3) is read and filled through the machine's local cache
        mirror = (self.provider.weights_mirror(self.cache)
                  if self.provider and self.cache and self.provider.can(Capability.WEIGHTS_MIRROR) else None)
        cached = ensure_cached(docker, model.repo, model.revision, image=self.plan.engine.image,
                               cache_dir=self.cache_dir, hf_token=self.secrets.get(HF_TOKEN_ENV),
                               allow_pickle=self.request.allow_pickle, reporter=self.ctx.reporter,
                               manifest=self.request.manifest, mirror=mirror)
        self.cache_report = cached
        if self.cache is not None:
            from gpuctl.weights.ledger import record_filled

            record_filled(self.cache, cached)
        self.update(event="weights-cached", detail=f"{cached.files} files, {cached.downloaded_bytes} bytes fetched")
        return serve_from_cache(self.plan.engine, pickle=cached.format == "pickle")

    def _endpoint(self, target: HostTarget, port: int) -> str:
        if target.kind == "local" or not self.plan.engine.public:
            return http_url("127.0.0.1", port)
        hostname = getattr(getattr(self.shell, "options", None), "hostname", None) or str(target.host)
        return http_url(hostname, port)

    def _tunnel(self, target: HostTarget) -> bool:
        return target.kind == "ssh" and not self.plan.engine.public

    def arm_watchdog(self, container: str, sudo: bool) -> None:
        from gpuctl.deploy.watchdog import arm

        assert self.shell is not None and self.provider is not None and self.deployment is not None
        ttl = self.plan.ttl_seconds or 0
        launched = self.deployment.launched_at or _now()
        left = int(ttl - (_now() - launched).total_seconds())
        armed = arm(self.shell, name=self.name, container=container, seconds_left=left,
                    stop_machine=not self.provider.can(Capability.USER_HOST), sudo=sudo)
        self.update(watchdog_pid=armed.pid, expires_at=armed.expires_at, event="ttl-armed",
                    detail=armed.expires_at.isoformat())

    def wait_healthy(self, engine: DockerEngine | None, container: str | None) -> None:
        """Step 7: health path, /v1/models and one smoke completion, bounded."""
        from gpuctl.host.health import wait_for_engine

        assert self.deployment is not None

        def exited() -> str | None:
            if engine is None or container is None:
                return None
            state = engine.inspect(container)
            if state is None:
                return "the container is gone"
            return None if state.running else f"{state.status}, exit code {state.exit_code}"

        def log_tail() -> str:
            assert self.provider is not None and self.deployment is not None
            try:
                if engine is not None and container is not None:
                    return engine.logs(container, tail=30)
                if self.provider.can(Capability.ENGINE_LOGS):
                    return self.provider.engine_logs(self.deployment.instance_id or "", tail=30)
            except GpuctlError:
                pass
            return ""

        api_key = self.secrets.get(self.plan.engine.api_key_env or "")
        with reach(self.deployment, self.shell) as base_url:
            wait_for_engine(base_url, health_path=self.plan.engine.health_path, timeout=self.ctx.timeouts.health,
                            api_key=api_key, exited=exited, log_tail=log_tail,
                            interval=min(1.0, self.ctx.timeouts.poll), reporter=self.ctx.reporter)

    # -- failure -------------------------------------------------------------------------------------
    def fail(self, exc: BaseException) -> BaseException:
        """Record the failure, tear down (unless kept), and return the error to raise."""
        error: BaseException = Interrupted() if isinstance(exc, KeyboardInterrupt) else exc
        message = error.one_line() if isinstance(error, GpuctlError) else f"{type(error).__name__}: {error}"
        reporter = self.ctx.reporter
        with shielded(reporter):
            self.update(status="failed", error=message, event="failed", detail=message)
            if self.request.keep_on_failure:
                reporter.warn(f"kept what was created for '{self.name}' (--keep-on-failure); "
                              f"'gpuctl down {self.name}' removes it")
            else:
                from gpuctl.deploy.teardown import teardown

                try:
                    teardown(self.ctx, self.ctx.records.get(self.name), shell=self.shell, failed=True)
                except GpuctlError as cleanup:
                    reporter.warn(f"cleaning up '{self.name}' failed: {cleanup.one_line()}; "
                                  f"run 'gpuctl down {self.name}' to finish it")
            self._close()
        return error

    def _close(self) -> None:
        close = getattr(self.shell, "close", None)
        if close is not None:
            close()


def cache_size_gb(plan: DeployPlan, manifest: Manifest | None) -> int:
    """Room for the model's files plus a fifth (the fetcher's partial files; the next revision), in GB."""
    size_gb = manifest.total_bytes / 1e9 if manifest is not None else plan.fit.weights_gb * plan.offer.gpu_count
    return max(MIN_CACHE_GB, math.ceil(size_gb * 1.2))


def describe_offer(offer: Offer) -> str:
    """'runpod 1 x L40S in US-KS-2 ($0.79/h)', or '1 x L40S at ubuntu@gpu-box ($0.00/h)' for a --host."""
    from gpuctl.providers.ssh import HostProvider

    if offer.provider == HostProvider.name:
        return f"{offer.gpu_count} x {offer.gpu} at {offer.instance_type} (${offer.price_per_hour:.2f}/h)"
    return f"{offer.provider} {offer.gpu_count} x {offer.gpu} in {offer.region} (${offer.price_per_hour:.2f}/h)"


def _offer_fields(plan: DeployPlan) -> dict[str, Any]:
    offer = plan.offer
    return {"offer_id": offer.id, "region": offer.region, "gpu": offer.gpu, "gpu_count": offer.gpu_count,
            "price_per_hour": offer.price_per_hour, "quantization": plan.engine.quantization}


def _reachable(instance: Instance, provider: Provider) -> bool:
    if instance.status != "running":
        return False
    if provider.can(Capability.USER_HOST):
        return True
    return bool(instance.endpoint_url) if provider.can(Capability.ENGINE_CONTAINER) else bool(instance.ssh_host)


def _default_port() -> int:
    from gpuctl.models.engine import HOST_PORT

    return HOST_PORT


def _now() -> datetime:
    return datetime.now(timezone.utc)
