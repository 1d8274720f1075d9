"""``gpuctl down`` as a service: one deployment taken down under its lock, or, with no record, found on its host.

A deployment whose ``up`` is still running is never reported down while that launch can complete:
the ``up`` is asked to stop and tear down what it made (waiting for an in-flight create first), and
``down`` waits for it (:func:`gpuctl.deploy.locks.held_for_teardown`) before looking at the record again.
"""

from __future__ import annotations

from pathlib import Path

from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.journal import Journal
from gpuctl.deploy.locks import held_for_teardown
from gpuctl.deploy.records import is_active
from gpuctl.deploy.removal import Removals
from gpuctl.deploy.teardown import Outcome, report_unwritten, teardown
from gpuctl.errors import GpuctlError, NotFoundError, StateError
from gpuctl.host.target import HostTarget


def take_down(ctx: DeployContext, name: str, *, failed: bool = False) -> Outcome:
    """Tear down deployment ``name`` (after stopping an ``up`` still working on it); the outcome.

    Raises the teardown's error, or StateWriteError (exit 2) after it when the record could not be
    written (what was removed is reported on stderr first). ``failed`` keeps the record's error (gc).
    """
    with held_for_teardown(ctx, name, timeout=ctx.timeouts.takeover) as stopped:
        deployment = ctx.records.get(name)
        if not is_active(deployment):  # its own 'up' tore it down when asked to stop
            return Outcome(deployment, stopped_launch=stopped)
        outcome = teardown(ctx, Journal(ctx.records, deployment), failed=failed)
        outcome.stopped_launch = stopped
    report_unwritten(ctx, outcome)
    return outcome


def take_down_on_host(ctx: DeployContext, name: str, target: HostTarget, identity: Path | None) -> Removals:
    """``down NAME --host TARGET``: what gpuctl started on the host for ``name``, found without its record.

    For a state file that is lost or corrupt (never overwritten here); a deployment the state file knows
    as active there gets the ordinary ``down``. Only this project's things of that name go (any
    project's when the project's id is lost too).
    """
    from gpuctl.deploy.host_cleanup import clean_by_name
    from gpuctl.deploy.hosts import connect, opened
    from gpuctl.deploy.naming import PROJECT_ID_FILE

    try:
        known = ctx.records.get(name)
    except (StateError, NotFoundError):
        known = None
    if known is not None and is_active(known) and known.host == str(target):
        return take_down(ctx, name).removals
    removals = Removals()
    with held_for_teardown(ctx, name, timeout=ctx.timeouts.takeover), \
            ctx.reporter.step(f"removing what gpuctl started for '{name}' on {target}"), \
            opened(connect(target, ctx.state_dir, identity=identity)) as shell:
        try:
            project = ctx.project_id if (ctx.state_dir / PROJECT_ID_FILE).exists() else None
            clean_by_name(shell, name, removals, project=project)
        except GpuctlError as exc:
            removals.left(f"deployment '{name}' on {target}", exc)
            raise
    return removals
