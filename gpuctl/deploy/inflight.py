"""A provider's create call that an interrupt cannot cut off blind.

The call runs in a worker thread while the main thread waits, interruptibly. Ctrl-C or SIGTERM (or a
``down`` asking the ``up`` to stop) then does not abandon the call: the main thread waits, bounded by
``Timeouts.create_grace``, for the provider's answer, records the instance it made, and only then
lets the teardown run, which terminates it. Should the answer not come in time, the launch attempt
stays unsettled in the record; the teardown (now or in a later ``down``) looks the instance up by its
tags until the create can no longer complete.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timezone

from gpuctl.deploy.run import DeployRun
from gpuctl.deploy.signals import shielded
from gpuctl.models.instance import Instance, LaunchRequest
from gpuctl.providers.base import Provider

#: how often the waiting main thread looks up (it can be interrupted at any moment in between)
_TICK_S = 0.2


class _Call(threading.Thread):
    """One call in a daemon thread (the process never waits for it at exit): its result or its exception."""

    def __init__(self, fn: Callable[[LaunchRequest], Instance], request: LaunchRequest) -> None:
        super().__init__(name="provider-create", daemon=True)
        self.fn, self.request = fn, request
        self.done = threading.Event()
        self.instance: Instance | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.instance = self.fn(self.request)
        except BaseException as exc:  # handed to the waiting thread as it is
            self.error = exc
        finally:
            self.done.set()

    def outcome(self) -> Instance:
        if self.error is not None:
            raise self.error
        assert self.instance is not None
        return self.instance


def create(run: DeployRun, provider: Provider, request: LaunchRequest) -> Instance:
    """``provider.launch(request)``; on an interrupt, settle it first (see the module docstring), then re-raise.

    The record's last launch attempt says ``settled: false`` from just before the call until its answer
    (the caller records the answer).
    """
    attempts = list(run.deployment.attempts)
    if attempts:
        attempts[-1] = attempts[-1].model_copy(update={"settled": False, "at": datetime.now(timezone.utc)})
        run.journal.update(attempts=attempts)
    call = _Call(provider.launch, request)
    try:
        call.start()
        while not call.done.wait(_TICK_S):
            pass
    except KeyboardInterrupt:
        _settle(run, provider, call)
        raise
    return call.outcome()


def _settle(run: DeployRun, provider: Provider, call: _Call) -> None:
    """Wait (shielded, bounded) for the interrupted create, and record what it made."""
    grace = run.ctx.timeouts.create_grace
    reporter = run.ctx.reporter
    with shielded(reporter):
        started = call.ident is not None  # an interrupt may land before the call was sent
        if started and not call.done.is_set():
            reporter.warn(f"interrupted while {provider.display_name} creates the instance: waiting up to "
                          f"{grace:.0f}s for its answer, so that nothing is left billing")
        settled = call.done.wait(grace) if started else True
        attempts = list(run.deployment.attempts)
        instance = call.instance if settled else None
        if attempts:
            attempts[-1] = attempts[-1].model_copy(update={"settled": settled,
                                                           "instance_id": instance.id if instance else None})
        if instance is not None:
            run.journal.update(status="starting", instance_id=instance.id, launched_at=datetime.now(timezone.utc),
                               attempts=attempts, event="launched", detail=f"{instance.id} (interrupted)",
                               persist=False)
        elif settled:
            run.journal.update(attempts=attempts, event="launch-abandoned", persist=False)
        else:
            reporter.warn(f"{provider.display_name} did not answer within {grace:.0f}s; the teardown looks for the "
                          "instance by its tags")
            run.journal.update(event="launch-unsettled", detail=call.request.idempotency_token, persist=False)
