"""The one way anything gpuctl created goes away: ``gpuctl down``, a failed ``up``, and ``gpuctl gc``.

Order: take a service's replica out of its router (best effort); mark the record ``terminating``; let
the deployment's runtime remove what it left besides the record
(:meth:`gpuctl.deploy.runtimes.Runtime.release`: the engine container and watchdog on the user's host,
the machine never; the instance at a provider, found by its tags when no id was recorded, and polled
until the provider reports it gone; every node of a multi-node deployment, then what placed them
together); remove the local secrets; mark the record ``terminated`` with its uptime and cost. Every step
is idempotent, so running it again finishes the job.

The teardown never depends on a write of the record: when the state file cannot be written (a
read-only or full project directory) it goes on from what this process knows, and the caller says on
stderr what existed and whether it is gone (:func:`report_unwritten`), then exits 2.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.journal import Journal
from gpuctl.deploy.removal import Removals
from gpuctl.errors import GpuctlError
from gpuctl.host.shell import Shell
from gpuctl.models.deployment import Deployment
from gpuctl.state import StateWriteError


@dataclass
class Outcome:
    """A finished teardown: the final record (as written, or as this process knows it) and what was removed."""

    deployment: Deployment
    removals: Removals = field(default_factory=Removals)
    #: the first state write that failed (the record on disk is behind ``deployment``)
    unwritten: StateWriteError | None = None
    #: a running ``up`` of it was asked to stop (and tore it down itself)
    stopped_launch: bool = False


def teardown(ctx: DeployContext, journal: Journal, *, shell: Shell | None = None, failed: bool = False,
             removals: Removals | None = None) -> Outcome:
    """Remove everything of the journal's deployment; see the module docstring.

    ``shell`` reuses an open session to the host; ``failed`` keeps the record's error; ``removals``
    collects what was done (also when a step fails). Raises the first error of a step that could not be
    done (the record is then ``failed``, naming it).
    """
    from gpuctl.deploy.runtimes import runtime_for
    from gpuctl.deploy.secrets import remove_secrets

    removals = Removals() if removals is None else removals
    if journal.current.service:  # a replica leaves its router before it goes (best effort: gpuctl.deploy.service)
        from gpuctl.deploy.router import detach

        detach(ctx, journal.current)
    deployment = journal.update(status="terminating", owner_pid=os.getpid(), owner_host=socket.gethostname(),
                                event="teardown", persist=False)
    try:
        runtime_for(ctx.provider_class(deployment.provider)).release(ctx, deployment, removals, shell)
        if deployment.nodes > 1:  # vLLM multi-node: every node went above (found by its tags); now what placed them
            from gpuctl.deploy.removal import release_nodes

            release_nodes(ctx, deployment, removals)
    except GpuctlError as exc:
        journal.update(status="failed", owner_pid=None, error=f"teardown: {exc.one_line()}", event="teardown-failed",
                       detail=exc.one_line(), persist=False)
        raise
    try:
        remove_secrets(ctx.state_dir, deployment.name)
    except OSError as exc:
        journal.unwritten = journal.unwritten or StateWriteError(ctx.state_dir / "secrets", exc)
    ended = datetime.now(timezone.utc)
    changes: dict[str, Any] = {"status": "terminated", "ended_at": ended, "owner_pid": None, "mirror_fill": None,
                               "cost_usd": cost_between(journal.current, ended)}
    if not failed:
        changes["error"] = None
    final = journal.update(event="terminated", persist=False, **changes)
    return Outcome(final, removals, journal.unwritten)


def report_unwritten(ctx: DeployContext, outcome: Outcome) -> None:
    """When the record could not be written: say on stderr what existed and whether it is gone, then raise
    the StateWriteError (exit 2, the path and the cause)."""
    if outcome.unwritten is None:
        return
    name = outcome.deployment.name
    done = "; ".join(r.line() for r in outcome.removals) or "nothing had been created yet"
    ctx.reporter.warn(f"the record of '{name}' could not be written ({outcome.unwritten.message}); what gpuctl had "
                      f"created for it: {done}")
    outcome.unwritten.known = outcome.deployment
    raise outcome.unwritten


def cost_between(deployment: Deployment, until: datetime) -> float | None:
    """What the deployment cost from launch to ``until`` (None when the price is unknown)."""
    if deployment.price_per_hour is None:
        return None
    started = billing_start(deployment)
    if started is None:
        return 0.0
    hours = max(0.0, (until - started).total_seconds()) / 3600
    return round(deployment.price_per_hour * hours, 4)


def billing_start(deployment: Deployment) -> datetime | None:
    """Since when the deployment bills: its launch, or (an instance known, its launch time not) its record's start."""
    if deployment.launched_at is not None:
        return deployment.launched_at
    return deployment.created_at if deployment.instance_id else None
