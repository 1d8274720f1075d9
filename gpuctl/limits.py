"""A deployment's limits (TTL, idle, budget): the worst case a plan shows, and what is left of each.

The budget is a deadline in disguise: price x uptime reaches it ``budget / price`` hours after the
launch, so the host's watchdog enforces it like the TTL, from the same clock. The idle limit needs
the engine: the watchdog reads its ``/metrics`` on the machine (:mod:`gpuctl.metrics.engines`).
Where the provider runs the engine itself (RunPod) no watchdog runs beside it, and gpuctl enforces
the limits while ``gpuctl top`` watches.
"""

from __future__ import annotations

import math

from gpuctl.durations import format_duration
from gpuctl.models.deployment import Deployment
from gpuctl.models.limits import Enforcer, Limits

GPUCTL_ENFORCED = ("{provider} runs the engine itself, so no watchdog runs beside it: the idle limit and the budget "
                   "are enforced by gpuctl while 'gpuctl top' watches the deployment ('gpuctl gc' also ends one past "
                   "its TTL or budget), and are reminders otherwise")


def budget_seconds(budget_usd: float | None, price_per_hour: float | None) -> int | None:
    """Uptime after which price x uptime reaches the budget (rounded down); None without a budget or a price."""
    if budget_usd is None or not price_per_hour or price_per_hour <= 0:
        return None
    return math.floor(budget_usd / price_per_hour * 3600)


def plan_limits(*, price_per_hour: float, ttl_seconds: int | None, idle_seconds: int | None,
                budget_usd: float | None, enforced_by: Enforcer, provider: str) -> Limits:
    """The limits of a plan and its worst case: the sooner of the TTL and the budget, at the offer's price."""
    ends = [s for s in (ttl_seconds, budget_seconds(budget_usd, price_per_hour)) if s is not None]
    worst = min(ends) if ends else None
    notes = []
    if budget_usd is not None and price_per_hour <= 0:
        notes.append("the machine costs $0.00/h, so the budget is never reached (set --price-per-hour)")
    if enforced_by == "gpuctl" and (idle_seconds or budget_usd is not None):
        notes.append(GPUCTL_ENFORCED.format(provider=provider))
    return Limits(ttl_seconds=ttl_seconds, idle_seconds=idle_seconds, budget_usd=budget_usd, enforced_by=enforced_by,
                  worst_case_seconds=worst, worst_case_usd=round(price_per_hour * worst / 3600, 2) if worst else None,
                  notes=notes)


def describe(limits: Limits, price_per_hour: float) -> str:
    """One line for the plan and the confirmation: each limit, and the worst case."""
    parts = []
    if limits.ttl_seconds:
        parts.append(f"TTL {format_duration(limits.ttl_seconds)}")
    if limits.idle_seconds:
        parts.append(f"idle {format_duration(limits.idle_seconds)}")
    if limits.budget_usd is not None:
        parts.append(f"budget ${limits.budget_usd:.2f}")
    if limits.worst_case_usd is None:
        worst = "no bound: bills until 'gpuctl down'"
    else:
        assert limits.worst_case_seconds is not None
        worst = f"at most ${limits.worst_case_usd:.2f} ({format_duration(limits.worst_case_seconds)} at " \
                f"${price_per_hour:.2f}/h)"
    where = "" if limits.enforced_by == "host" or not parts else ", enforced while 'gpuctl top' runs"
    return f"{', '.join(parts) or 'no limits'}{where}; {worst}"


def budget_left(deployment: Deployment, cost_so_far: float | None) -> float | None:
    if deployment.budget_usd is None or cost_so_far is None:
        return None
    return round(deployment.budget_usd - cost_so_far, 4)


def idle_left(idle_seconds: int | None, last_activity: float | None, now: float) -> float | None:
    """Seconds before the idle limit ends it; None without a limit or before the engine was first seen."""
    if not idle_seconds or last_activity is None:
        return None
    return round(idle_seconds - (now - last_activity), 1)
