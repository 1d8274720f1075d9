"""Cold starts as text: the breakdown `up` prints when ready (and `status NAME` shows), and a plan's forecast."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpuctl.cli.output import format_bytes

if TYPE_CHECKING:
    from gpuctl.models.phases import ColdStart, ColdStartPrediction


def seconds_text(seconds: float) -> str:
    """``58.2s`` under a minute, ``1m41s`` above."""
    from gpuctl.durations import format_duration

    return f"{seconds:.1f}s" if seconds < 60 else format_duration(seconds)


def money(usd: float) -> str:
    """Cents, or a tenth of a cent below one (a short wait on a cheap machine is not free)."""
    return f"${usd:.2f}" if usd == 0 or usd >= 0.01 else f"${usd:.4f}"


def breakdown_lines(cold: ColdStart, price_per_hour: float | None) -> list[str]:
    """``cold start 6m05s, $0.18 at $1.79/h:`` and one line per phase (bytes and where they came from)."""
    from gpuctl.models.phases import PHASE_TITLES

    head = f"cold start {seconds_text(cold.seconds)}" if cold.seconds is not None else "cold start (unfinished)"
    if cold.cost_usd is not None and price_per_hour is not None:
        head += f", {money(cold.cost_usd)} at ${price_per_hour:.2f}/h"
    lines = [head + ":"]
    width = max(len(title) for title in PHASE_TITLES.values())
    for phase in cold.phases:
        took = seconds_text(phase.seconds) if phase.seconds is not None else "unfinished"
        line = f"  {PHASE_TITLES[phase.name]:<{width}} {took:>7}"
        if phase.bytes:
            line += f"  {format_bytes(phase.bytes)}"
            if phase.source:
                line += f" from {phase.source}"
        elif phase.source:
            line += f"  {phase.source}"
        lines.append(line)
    return lines


def forecast_lines(forecast: ColdStartPrediction, price_per_hour: float) -> list[str]:
    """The forecast of a plan: the total and its cost, then each phase with what it rests on."""
    from gpuctl.models.phases import PHASE_TITLES

    history = (f"from {forecast.history_ups} past up(s) on this provider" if forecast.history_ups
               else "no past ups on this provider yet")
    lines = [f"about {seconds_text(forecast.seconds)} to the first token, {money(forecast.cost_usd)} at "
             f"${price_per_hour:.2f}/h ({history})"]
    width = max(len(title) for title in PHASE_TITLES.values())
    lines += [f"  {PHASE_TITLES[e.name]:<{width}} {seconds_text(e.seconds):>7}  {e.basis}" for e in forecast.phases]
    return lines
