"""What every runtime shares: the run it belongs to, the launch request, waiting for the machine, the health wait.

A runtime is chosen once per attempt from the provider's machine kind (:func:`gpuctl.deploy.runtimes.runtime_for`)
and answers the questions the lifecycle used to answer with flags read all over it: what a launch
request carries, when an instance counts as reachable, how the engine is started and watched, and,
on the way down, what has to be removed besides the record (:meth:`Runtime.release`).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from typing import TYPE_CHECKING, ClassVar

from gpuctl.deploy import naming, tags
from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.endpoint import reach
from gpuctl.deploy.planning import describe_offer
from gpuctl.deploy.run import DeployRun
from gpuctl.errors import CredentialsError, GpuctlError, NotFoundError, ProviderError, TimeoutError_, UsageError
from gpuctl.host.shell import Shell
from gpuctl.models.deployment import Deployment
from gpuctl.models.instance import Instance, LaunchRequest
from gpuctl.plan import DeployPlan
from gpuctl.polling import pauses
from gpuctl.providers.base import Provider
from gpuctl.providers.capabilities import Capability

if TYPE_CHECKING:
    from gpuctl.deploy.removal import Removals
    from gpuctl.models.weights_cache import WeightsCache
    from gpuctl.weights.models import CacheReport, Manifest

#: the smallest cache gpuctl creates (RunPod's minimum network volume)
MIN_CACHE_GB = 10
#: status polls in a row that may fail (a slow, garbled or 5xx answer) before the wait gives up
MAX_POLL_FAILURES = 5


class Runtime(ABC):
    """How one deployment's engine runs; see the package docstring."""

    #: the machine kind (a Capability) this runtime serves
    kind: ClassVar[Capability]

    def __init__(self, run: DeployRun, provider: Provider) -> None:
        self.run = run
        self.provider = provider
        #: the provider's weights cache this deployment uses (None: none)
        self.cache: WeightsCache | None = None
        #: what filling the weights cache (or the host's) found and fetched
        self.cache_report: CacheReport | None = None

    @property
    def ctx(self) -> DeployContext:
        return self.run.ctx

    @property
    def shell(self) -> Shell | None:
        """The open session to the machine, where this runtime holds one."""
        return None

    # -- launch --------------------------------------------------------------------------------------
    def launch_request(self, plan: DeployPlan, token: str) -> LaunchRequest:
        return LaunchRequest(name=self.run.name, offer=plan.offer, idempotency_token=token,
                             tags=self.run.deployment.tags, ttl_seconds=plan.ttl_seconds,
                             public=plan.engine.public, weights_cache=self.cache)

    def launch(self, request: LaunchRequest) -> Instance:
        """Start the instance; an interrupt meanwhile waits (bounded) for the create's outcome."""
        from gpuctl.deploy.inflight import create

        with self.ctx.reporter.step(f"launching {describe_offer(request.offer)}"):
            return create(self.run, self.provider, request)

    @abstractmethod
    def reachable(self, instance: Instance) -> bool:
        """Whether the instance is far enough along for the engine step."""

    def wait_for_instance(self, instance: Instance) -> Instance:
        """Poll the provider until the instance can be reached, bounded by the launch timeout.

        A poll that fails in a way another poll may fix (a slow answer, a 5xx, garbled JSON) is
        retried, up to MAX_POLL_FAILURES in a row: one bad answer never tears down a machine coming up.
        """
        provider, timeouts = self.provider, self.ctx.timeouts
        if self.reachable(instance):
            return instance
        deadline = time.monotonic() + timeouts.launch
        failures = 0
        waits = pauses(timeouts.poll)
        with self.ctx.reporter.step(f"waiting for {instance.id} to start"):
            while not self.reachable(instance):
                if instance.status in ("error", "terminated", "stopped"):
                    raise self.stopped_while_starting(instance)
                pause = next(waits)
                if time.monotonic() + pause > deadline:
                    status = instance.provider_status or instance.status
                    raise TimeoutError_(f"{provider.display_name} instance {instance.id} was not running after "
                                        f"{timeouts.launch:.0f}s (status {status})")
                time.sleep(pause)
                try:
                    instance = provider.get(instance.id)
                except NotFoundError as exc:
                    raise ProviderError(f"{provider.display_name} lost instance {instance.id}: {exc.message}") from exc
                except (ProviderError, TimeoutError_) as exc:
                    failures += 1
                    if failures >= MAX_POLL_FAILURES:
                        raise
                    self.ctx.reporter.warn(f"{provider.display_name} did not answer a status poll of {instance.id} "
                                           f"({exc.one_line()}); asking again")
                    continue
                failures = 0
        return instance

    def stopped_while_starting(self, instance: Instance) -> GpuctlError:
        return ProviderError(f"{self.provider.display_name} instance {instance.id} is "
                             f"{instance.provider_status or instance.status} instead of starting")

    # -- weights -------------------------------------------------------------------------------------
    def prepare_weights(self, plan: DeployPlan, attempt: int) -> DeployPlan:
        """The provider's weights cache in the offer's region, where it keeps one; returns the plan to launch.

        A cache only saves time: a provider that refuses one only warns, unless filling it is the job.
        """
        self.cache = None
        provider = self.provider
        if not provider.can(Capability.WEIGHTS_CACHE):
            return plan
        region = provider.weights_cache_region(plan.offer)
        if region is None:
            return plan
        try:
            with self.ctx.reporter.step(f"weights cache in {region}"):
                cache = provider.ensure_weights_cache(region, min_gb=cache_size_gb(plan, self.run.request.manifest),
                                                      tags=tags.cache_tags(self.ctx.project_id))
        except (ProviderError, CredentialsError) as exc:
            if self.run.request.weights_only:
                raise
            self.ctx.reporter.warn(f"no weights cache in {region} ({exc.one_line()}); {plan.model.repo} is "
                                   "downloaded for this deployment only")
            return plan
        self.cache = cache
        self.run.journal.update(weights_cache=cache.id, event="weights-cache", detail=f"{cache.name} ({cache.id})")
        return plan

    # -- the engine ------------------------------------------------------------------------------------
    @abstractmethod
    def start_engine(self, plan: DeployPlan, instance: Instance) -> None:
        """Run the engine (where gpuctl runs it), record its endpoint, and wait until it is healthy."""

    @abstractmethod
    def fill_cache(self, plan: DeployPlan, instance: Instance | None) -> CacheReport:
        """``weights pull --to``: fill the weights cache, run no engine (``instance`` None: nothing was launched)."""

    def needs_instance_for_fill(self) -> bool:
        """Whether filling the cache needs a machine launched first (not where the provider fills it itself)."""
        return True

    @abstractmethod
    def engine_stopped(self) -> str | None:
        """Why the engine stopped (exited, OOM-killed, crash-looping, its pod exited), or None while it runs."""

    @abstractmethod
    def engine_log_tail(self) -> str:
        """The engine's last lines ('' when they cannot be read)."""

    def wait_healthy(self, plan: DeployPlan) -> None:
        """Health path, /v1/models and one smoke completion, bounded; an engine that stops fails at once (exit 8).

        The engine phase (begun when the engine started) ends when the model is listed; the smoke
        completion after it is the first token.
        """
        from gpuctl.host.health import wait_for_engine

        api_key = self.run.secrets.get(plan.engine.api_key_env or "")
        with reach(self.run.deployment, self.shell) as base_url:
            result = wait_for_engine(base_url, health_path=plan.engine.health_path, timeout=self.ctx.timeouts.health,
                                     api_key=api_key, exited=self.engine_stopped, log_tail=self.engine_log_tail,
                                     interval=min(1.0, self.ctx.timeouts.poll), reporter=self.ctx.reporter)
        phases = self.run.phases
        phases.end("engine", ended_at=result.listed_at)
        phases.mark("first_token", result.listed_at, datetime.now(timezone.utc))

    def close(self) -> None:  # noqa: B027 (most runtimes hold nothing open)
        """Let go of what the runtime holds open (an SSH session)."""

    # -- the way down ----------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def release(cls, ctx: DeployContext, deployment: Deployment, removals: Removals, shell: Shell | None) -> None:
        """Remove what a deployment of this kind leaves besides its record, noting each thing in ``removals``.

        Part of the one teardown (:func:`gpuctl.deploy.teardown.teardown`); idempotent. ``shell`` is an
        open session to the machine, when the caller has one.
        """


def ensure_api_key(run: DeployRun, plan: DeployPlan) -> None:
    """The deployment's API key (0600 on this machine), made before the first plan that needs one."""
    key_env = plan.engine.api_key_env
    if key_env and key_env not in run.secrets:
        from gpuctl.deploy.secrets import create_api_key

        run.secrets[key_env] = create_api_key(run.ctx.state_dir, run.name)


def cache_size_gb(plan: DeployPlan, manifest: Manifest | None) -> int:
    """Room for the model's files plus a fifth (the fetcher's partial files; the next revision), in GB."""
    size_gb = manifest.total_bytes / 1e9 if manifest is not None else plan.fit.weights_gb * plan.offer.gpu_count
    return max(MIN_CACHE_GB, math.ceil(size_gb * 1.2))


def seed_token(ctx: DeployContext, deployment: Deployment, attempt: int) -> str:
    """The idempotency token of the seeding job of ``attempt`` (its own, apart from the launch's)."""
    return naming.idempotency_token(ctx.project_id, f"{deployment.name}/weights", attempt, deployment.created_at)


def no_cache_error(provider: Provider, what: str) -> UsageError:
    return UsageError(f"{what} can use no weights cache",
                      f"see 'gpuctl prices --provider {provider.name}' for other offers")
