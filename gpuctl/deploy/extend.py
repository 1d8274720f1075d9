"""``gpuctl extend NAME DURATION``: move a running deployment's TTL later, wherever it is enforced.

The TTL lives in up to two places: the watchdog on the machine (SSH machines and the user's hosts; it
re-reads its deadline file at every tick, so moving it is one write there), and the record's
``expires_at`` (what ``status`` shows, and what ``gc`` enforces for a provider that runs the engine
itself). The host is moved first: should that fail, the record still says when the machine stops.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from gpuctl.deploy.context import DeployContext
from gpuctl.durations import MAX_TTL_S, format_duration
from gpuctl.errors import UsageError
from gpuctl.models.deployment import Deployment


def extend_ttl(ctx: DeployContext, name: str, seconds: int) -> Deployment:
    """Move deployment ``name``'s TTL ``seconds`` later; the updated record.

    UsageError (2) when it is not running, has no TTL, or would then run longer than MAX_TTL_S from
    now; the host's errors when its watchdog cannot be reached (nothing was changed then).
    """
    from gpuctl.deploy.access import open_host
    from gpuctl.host.watchdogs import move_deadline

    deployment = ctx.records.get(name)
    if deployment.status != "running":
        raise UsageError(f"'{name}' is {deployment.status}, not running: there is no TTL to extend",
                         "'gpuctl status' shows it")
    if deployment.expires_at is None:
        raise UsageError(f"'{name}' has no TTL: it runs until 'gpuctl down {name}'")
    now = datetime.now(timezone.utc)
    expires = deployment.expires_at + timedelta(seconds=seconds)
    if (expires - now).total_seconds() > MAX_TTL_S:
        raise UsageError(f"'{name}' would then run for another {format_duration((expires - now).total_seconds())}, "
                         f"more than the maximum TTL of {format_duration(MAX_TTL_S)}",
                         "extend it by less, or later")
    if deployment.host:
        with open_host(ctx, deployment) as shell, ctx.reporter.step(f"moving the TTL watchdog of '{name}'"):
            move_deadline(shell, name, seconds)
    ttl = (deployment.ttl_seconds or 0) + seconds
    return ctx.records.update(name, expires_at=expires, ttl_seconds=ttl, event="ttl-extended",
                              detail=f"+{format_duration(seconds)}, until {expires.isoformat()}")
