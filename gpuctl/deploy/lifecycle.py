"""``gpuctl up`` as a short state machine: reserve, launch (with fallback), wait, engine, ready.

    provisioning --launched--> starting --healthy--> running
    (any) --a step fails, Ctrl-C, SIGTERM, 'down'--> failed --teardown--> terminating --> terminated

The table of allowed moves is :mod:`gpuctl.deploy.states`, checked on every write. How the engine
runs (a rented machine over SSH, the provider's own container, the user's host) is the runtime's
business (:mod:`gpuctl.deploy.runtimes`), chosen once per launch attempt. The record is written
before every provider call; one process at a time changes a deployment (:mod:`gpuctl.deploy.locks`);
any failure after the record exists goes through the one teardown (:mod:`gpuctl.deploy.teardown`),
which never depends on the record being writable.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuctl.deploy import naming, tags
from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.journal import Journal
from gpuctl.deploy.locks import held_for_up
from gpuctl.deploy.planning import describe_offer
from gpuctl.deploy.removal import Removals
from gpuctl.deploy.request import UpRequest
from gpuctl.deploy.run import DeployRun
from gpuctl.deploy.runtimes import Runtime, runtime_for
from gpuctl.deploy.runtimes.base import ensure_api_key
from gpuctl.deploy.signals import shielded, terminate_interrupts
from gpuctl.deploy.teardown import Outcome, report_unwritten, teardown
from gpuctl.errors import GpuctlError, Interrupted, NoCapacityError, ProviderError, TimeoutError_
from gpuctl.host.shell import Shell
from gpuctl.limits import budget_seconds
from gpuctl.models.deployment import Deployment, LaunchAttempt
from gpuctl.models.instance import Instance, LaunchRequest
from gpuctl.plan import DeployPlan
from gpuctl.providers.capabilities import Capability
from gpuctl.state import StateWriteError

if TYPE_CHECKING:
    from gpuctl.weights.models import CacheReport

__all__ = ["UpRequest", "fill_cache", "up"]

#: creates asked again after an error answer, and the pause before (Lambda takes one launch per 12 s)
CREATE_RETRIES = 1
CREATE_RETRY_PAUSE_S = 5.0


def up(ctx: DeployContext, request: UpRequest) -> Deployment:
    """Deploy ``request.plans[0]`` (or a fallback); returns the running deployment.

    Raises the step's error after tearing down (exit 5 capacity, 7 timeout, 8 health, 130 interrupted,
    2 when the record could not be written).
    """
    with held_for_up(ctx, request.name), terminate_interrupts():
        launch = Launch(ctx, request)
        launch.reserve()
        with launch.torn_down_on_failure():
            ready = launch.execute()
        launch.close()
    if request.on_ready is not None:
        with terminate_interrupts():  # SIGTERM reaches the hook as Ctrl-C would
            request.on_ready(ready)  # the deployment is healthy and recorded: a failure here leaves it running
    return ready


def fill_cache(ctx: DeployContext, request: UpRequest) -> CacheReport:
    """``weights pull --to``: the model into the provider's weights cache of the plan's region; nothing left running.

    Where the provider fills its cache itself (RunPod) that is all; elsewhere the plan's machine is
    launched, the weights fetched into the mounted (or mirrored) cache over SSH, and the machine torn
    down. The work is a record like any deployment, so a crash leaves what ``gpuctl down`` needs.
    """
    request = replace(request, weights_only=True)
    with held_for_up(ctx, request.name), terminate_interrupts():
        launch = Launch(ctx, request)
        launch.reserve()
        with launch.torn_down_on_failure():
            report = launch.fill_cache_only()
        with shielded(ctx.reporter):
            outcome = teardown(ctx, launch.journal, shell=launch.shell)
            launch.close()
        report_unwritten(ctx, outcome)
    return report


class Launch:
    """One ``up``: its record (a journal), the runtime of the attempt under way, and the steps."""

    def __init__(self, ctx: DeployContext, request: UpRequest) -> None:
        self.ctx = ctx
        self.request = request
        self._run: DeployRun | None = None
        self.runtime: Runtime | None = None

    @property
    def run(self) -> DeployRun:
        assert self._run is not None, "reserve() first"
        return self._run

    @property
    def journal(self) -> Journal:
        return self.run.journal

    @property
    def shell(self) -> Shell | None:
        return self.runtime.shell if self.runtime is not None else None

    # -- steps -------------------------------------------------------------------------------------
    def reserve(self) -> None:
        """The record, before any call to a provider (the name must be free)."""
        request, plan = self.request, self.request.plans[0]
        created = _now()
        record = Deployment(
            name=request.name, model=plan.model.name, provider=plan.offer.provider, status="provisioning",
            created_at=created,
            idempotency_token=naming.idempotency_token(self.ctx.project_id, request.name, 0, created),
            project_id=self.ctx.project_id, tags=tags.deployment_tags(self.ctx.project_id, request.name),
            ttl_seconds=plan.ttl_seconds, engine=plan.engine.engine, engine_spec=plan.engine,
            idle_seconds=plan.limits.idle_seconds if plan.limits else None,
            budget_usd=plan.limits.budget_usd if plan.limits else None,
            served_model_name=plan.engine.served_model_name,
            health_path=plan.engine.health_path, public=plan.engine.public,
            host=str(request.host) if request.host else None,
            identity=str(request.identity) if request.identity else None,
            owner_pid=os.getpid(), owner_host=socket.gethostname(), service=request.service, **_offer_fields(plan),
        )
        reserved = self.ctx.records.reserve(record, allocate_port=request.host is not None)
        self._run = DeployRun(self.ctx, request, Journal(self.ctx.records, reserved), dict(request.secrets))

    def execute(self) -> Deployment:
        plan, instance = self.launch()
        assert self.runtime is not None
        instance = self.runtime.wait_for_instance(instance)
        self.run.phases.end("provision")
        self.runtime.start_engine(plan, instance)
        deployment = self.run.deployment
        ready = self.journal.update(status="running", ready_at=_now(), owner_pid=None, error=None, event="ready",
                                    detail=deployment.endpoint)
        self._remember(ready)
        return ready

    def _remember(self, ready: Deployment) -> None:
        """The cold start into this machine's history, for the forecasts of later plans (never fails the up)."""
        from gpuctl.deploy.coldstart import remember

        assert self.runtime is not None
        report, manifest = self.runtime.cache_report, self.request.manifest
        weights = report.total_bytes if report is not None else manifest.total_bytes if manifest is not None else None
        try:
            remember(ready, weights_bytes=weights)
        except OSError as exc:
            self.ctx.reporter.warn(f"the cold start could not be remembered for later forecasts ({exc})")

    def fill_cache_only(self) -> CacheReport:
        plan = self.request.plans[0]
        runtime = self._runtime(plan)
        if not runtime.needs_instance_for_fill():
            return runtime.fill_cache(plan, None)
        plan, instance = self.launch()
        assert self.runtime is not None
        return self.runtime.fill_cache(plan, self.runtime.wait_for_instance(instance))

    def launch(self) -> tuple[DeployPlan, Instance]:
        """Launch the first plan that has capacity; each attempt is recorded before its create is sent."""
        failures: list[str] = []
        journal = self.journal
        for attempt, plan in enumerate(self.request.plans):
            offer = plan.offer
            runtime = self._runtime(plan)
            token = naming.idempotency_token(self.ctx.project_id, self.request.name, attempt,
                                             journal.current.created_at)
            ensure_api_key(self.run, plan)
            journal.update(event="launching", detail=offer.id, provider=offer.provider, idempotency_token=token,
                           engine=plan.engine.engine, engine_spec=plan.engine, public=plan.engine.public,
                           **_offer_fields(plan))
            try:
                plan = runtime.prepare_weights(plan, attempt)
                launch_request = runtime.launch_request(plan, token)
                journal.update(attempts=[*journal.current.attempts, LaunchAttempt(
                    provider=offer.provider, offer_id=offer.id, idempotency_token=token)])
                if runtime.kind != Capability.USER_HOST:  # the user's machine is there already
                    self.run.phases.begin("provision")
                instance = self._create(runtime, launch_request)
            except NoCapacityError as exc:
                journal.update(event="no-capacity", detail=exc.message,
                               attempts=self._settled(token, error=exc.message))
                failures.append(f"{offer.id}: {exc.message}")
                if attempt + 1 < len(self.request.plans):
                    self.ctx.reporter.warn(f"{describe_offer(offer)} has no capacity ({exc.message}); "
                                           "trying the next offer")
                continue
            except GpuctlError as exc:
                # an answer (an error, even a 5xx) settles the create: what it made, its tags show now; no
                # answer in time does not: the provider may still be making the instance
                journal.update(attempts=self._settled(token, error=exc.message,
                                                      settled=not isinstance(exc, TimeoutError_)), persist=False)
                raise
            launched = _now()
            expires = launched + timedelta(seconds=plan.ttl_seconds) if plan.ttl_seconds else None
            budget = budget_seconds(journal.current.budget_usd, offer.price_per_hour)
            # where no watchdog runs beside the engine, gpuctl (top, gc) ends it then; a watchdog refines it
            budget_ends = launched + timedelta(seconds=budget) if budget is not None else None
            journal.update(status="starting", instance_id=instance.id, launched_at=launched, expires_at=expires,
                           budget_ends_at=budget_ends, attempts=self._settled(token, instance_id=instance.id),
                           event="launched", detail=instance.id)
            return plan, instance
        raise NoCapacityError(f"no capacity at any of the {len(failures)} offer(s) tried: {'; '.join(failures)}")

    def _settled(self, token: str, **changes: Any) -> list[LaunchAttempt]:
        """The record's attempts, the one of ``token`` (when its create was reached) with its outcome."""
        outcome = {"settled": True, **changes}
        return [a.model_copy(update=outcome) if a.idempotency_token == token else a
                for a in self.journal.current.attempts]

    def _create(self, runtime: Runtime, request: LaunchRequest) -> Instance:
        """The create, asked once more after an error answer (a 5xx, a garbled body): the launch token makes the
        repeat return the instance a create that did go through made, instead of a second one."""
        for retry in range(CREATE_RETRIES + 1):
            try:
                return runtime.launch(request)
            except ProviderError as exc:
                if retry == CREATE_RETRIES:
                    raise
                self.ctx.reporter.warn(f"{runtime.provider.display_name} answered the create with an error "
                                       f"({exc.one_line()}); asking again with the same launch token")
                time.sleep(CREATE_RETRY_PAUSE_S)
        raise AssertionError("unreachable")

    def _runtime(self, plan: DeployPlan) -> Runtime:
        """The runtime of the plan's provider (the one of the previous attempt lets go of what it held)."""
        provider = self.ctx.provider(plan.offer.provider)
        if self.runtime is not None:
            self.runtime.close()
        self.runtime = runtime_for(provider)(self.run, provider)
        return self.runtime

    # -- failure -------------------------------------------------------------------------------------
    @contextmanager
    def torn_down_on_failure(self) -> Iterator[None]:
        """Any failure in the block, Ctrl-C included, goes through ``fail``: nothing may be left billing."""
        try:
            yield
        except BaseException as exc:
            error = self.fail(exc)
            if error is exc:
                raise
            raise error from exc

    def fail(self, exc: BaseException) -> BaseException:
        """Record the failure (if the record can be written), tear down (unless kept), and return the error to raise.

        A record that could not be written makes the error StateWriteError (exit 2), after saying on
        stderr what had been created and whether it is gone.
        """
        error = _as_error(exc)
        message = error.one_line() if isinstance(error, GpuctlError) else f"{type(error).__name__}: {error}"
        reporter = self.ctx.reporter
        outcome = Outcome(self.journal.current)
        with shielded(reporter):
            self.journal.update(status="failed", error=message, event="failed", detail=message, persist=False)
            if self.request.keep_on_failure:
                reporter.warn(f"kept what was created for '{self.request.name}' (--keep-on-failure); "
                              f"'gpuctl down {self.request.name}' removes it")
            else:
                outcome = self._teardown()
            self.close()
        outcome.unwritten = self.journal.unwritten
        if outcome.unwritten is not None:
            try:
                report_unwritten(self.ctx, outcome)
            except GpuctlError as unwritten:
                return unwritten
        return error

    def _teardown(self) -> Outcome:
        removals = Removals()
        try:
            return teardown(self.ctx, self.journal, shell=self.shell, failed=True, removals=removals)
        except GpuctlError as cleanup:
            done = "".join(f"; {r.line()}" for r in removals)
            self.ctx.reporter.warn(f"cleaning up '{self.request.name}' failed: {cleanup.one_line()}{done}; "
                                   f"run 'gpuctl down {self.request.name}' to finish it")
            return Outcome(self.journal.current, removals)

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.close()


def _as_error(exc: BaseException) -> BaseException:
    """What to raise for ``exc``: Ctrl-C/SIGTERM as Interrupted (130), a file that could not be written as bad
    input (2), the rest as it is."""
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted()
    if isinstance(exc, OSError) and exc.filename:
        return StateWriteError(Path(exc.filename), exc)
    return exc


def _offer_fields(plan: DeployPlan) -> dict[str, Any]:
    offer = plan.offer
    return {"offer_id": offer.id, "region": offer.region, "gpu": offer.gpu, "gpu_count": offer.gpu_count,
            "price_per_hour": offer.price_per_hour, "quantization": plan.engine.quantization}


def _now() -> datetime:
    return datetime.now(timezone.utc)
