"""The provider's own container (RunPod): the pod is the engine, started by the launch itself.

The engine's secrets travel in the launch request; where the provider fills its weights cache itself
the cache is seeded before the launch and the engine serves it offline. The pod's state is read
while the engine loads, so an engine that dies (the pod exits) fails the wait within a poll, with the
provider's log tail; the teardown terminates the pod (found by its tags when no id was recorded).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from gpuctl.deploy.runtimes.base import Runtime, no_cache_error, seed_token
from gpuctl.errors import GpuctlError, ProviderError, UsageError
from gpuctl.host.shell import Shell
from gpuctl.models.instance import Instance, LaunchRequest
from gpuctl.plan import DeployPlan
from gpuctl.providers.capabilities import Capability

if TYPE_CHECKING:
    from gpuctl.deploy.context import DeployContext
    from gpuctl.deploy.removal import Removals
    from gpuctl.models.deployment import Deployment
    from gpuctl.weights.models import CacheReport

#: the pod's states that mean its engine no longer runs
_ENDED = ("stopped", "error", "terminated")


class ProviderContainerRuntime(Runtime):
    kind = Capability.ENGINE_CONTAINER
    _last_look = 0.0

    def launch_request(self, plan: DeployPlan, token: str) -> LaunchRequest:
        request = super().launch_request(plan, token)
        return request.model_copy(update={"engine": plan.engine, "secrets": self.run.secrets})

    def reachable(self, instance: Instance) -> bool:
        return instance.status == "running" and bool(instance.endpoint_url)

    def stopped_while_starting(self, instance: Instance) -> GpuctlError:
        from gpuctl.host.health import EngineHealthError

        return EngineHealthError(f"{self.provider.display_name} pod {instance.id} is "
                                 f"{instance.provider_status or instance.status}: the engine stopped while starting",
                                 self.engine_log_tail())

    def prepare_weights(self, plan: DeployPlan, attempt: int) -> DeployPlan:
        """The cache, filled here (before the launch) when the provider can; the engine then serves it offline."""
        plan = super().prepare_weights(plan, attempt)
        cache, manifest = self.cache, self.run.request.manifest
        if cache is None:
            return plan
        if manifest is None or not self.provider.can(Capability.SEED_WEIGHTS):
            why = ("is unknown here" if manifest is None
                   else f"cannot be fetched ahead by {self.provider.display_name}")
            self.ctx.reporter.warn(f"the file list of {plan.model.repo} {why}: the engine downloads the "
                                   f"weights into {cache.name} itself, unverified")
            return plan
        from gpuctl.engines import HF_TOKEN_ENV
        from gpuctl.weights import serve_from_cache
        from gpuctl.weights.hub import hub_endpoint
        from gpuctl.weights.ledger import record_filled
        from gpuctl.weights.models import SeedRequest

        deployment = self.run.deployment
        seed = SeedRequest(name=self.run.name, manifest=manifest, endpoint=hub_endpoint(), tags=deployment.tags,
                           idempotency_token=seed_token(self.ctx, deployment, attempt),
                           hf_token=self.run.secrets.get(HF_TOKEN_ENV))
        with self.run.phases.phase("weights") as phase:
            report = self.provider.seed_weights(cache, seed, self.ctx.reporter)
            phase.bytes = report.downloaded_bytes
            phase.source = "provider" if report.downloaded_bytes else "cache"
        self.cache_report = report
        record_filled(cache, report)
        self.run.journal.update(event="weights-cached",
                                detail=f"{report.files} files, {report.downloaded_bytes} bytes fetched")
        return plan.model_copy(update={"engine": serve_from_cache(plan.engine, pickle=manifest.format == "pickle")})

    def needs_instance_for_fill(self) -> bool:
        return False

    def fill_cache(self, plan: DeployPlan, instance: Instance | None) -> CacheReport:
        self.prepare_weights(plan, 0)
        if self.cache is None:
            from gpuctl.deploy.planning import describe_offer

            raise no_cache_error(self.provider, describe_offer(plan.offer))
        if self.cache_report is None:
            raise UsageError(f"the file list of {plan.model.repo} could not be read from here, so "
                             f"{self.provider.display_name}'s weights cache cannot be filled",
                             "check the network or HF_ENDPOINT, then run the command again")
        return self.cache_report

    def start_engine(self, plan: DeployPlan, instance: Instance) -> None:
        if not instance.endpoint_url:
            raise ProviderError(f"{self.provider.display_name} reports no endpoint for {instance.id}")
        self.run.journal.update(endpoint=instance.endpoint_url, event="engine-started")
        self.run.phases.begin("engine")
        self.wait_healthy(plan)

    def engine_stopped(self) -> str | None:
        """The pod's state, read at most every poll interval; a failed read is no verdict (asked again later)."""
        now = time.monotonic()
        instance_id = self.run.deployment.instance_id
        if instance_id is None or now - self._last_look < self.ctx.timeouts.poll:
            return None
        self._last_look = now
        try:
            instance = self.provider.get(instance_id)
        except GpuctlError:
            return None
        if instance.status in _ENDED:
            return f"{self.provider.display_name} reports the pod {instance.provider_status or instance.status}"
        return None

    def engine_log_tail(self) -> str:
        instance_id = self.run.deployment.instance_id
        if not instance_id or not self.provider.can(Capability.ENGINE_LOGS):
            return ""
        try:
            return self.provider.engine_logs(instance_id, tail=30)
        except GpuctlError:
            return ""

    @classmethod
    def release(cls, ctx: DeployContext, deployment: Deployment, removals: Removals, shell: Shell | None) -> None:
        """The pod(s): the engine, its disk and its secrets go with them."""
        from gpuctl.deploy.removal import terminate_all

        terminate_all(ctx, deployment, removals)
