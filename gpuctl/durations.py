"""Human durations such as ``90m``, ``2h``, ``1h30m``, ``1d`` (TTLs, timeouts)."""

from __future__ import annotations

import re

from gpuctl.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
#: the longest duration gpuctl takes anywhere (a timeout, a TTL): a year
MAX_DURATION_S = 366 * 86400
#: the longest TTL (docs/exit-codes.md, README): a deployment meant to run longer runs without one
MAX_TTL_S = 30 * 86400


def parse_duration(text: str) -> int:
    """Seconds in ``text``; a bare number means seconds. Bad input is a usage error (exit 2)."""
    cleaned = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+", cleaned):
        seconds = float(cleaned)
    elif cleaned and _PART.sub("", cleaned) == "":
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(cleaned))
    else:
        raise UsageError(f"'{text}' is not a duration", "use forms like 45m, 2h, 1h30m or 1d")
    if seconds <= 0:
        raise UsageError(f"duration '{text}' must be positive")
    if seconds > MAX_DURATION_S:
        raise UsageError(f"duration '{text}' is longer than a year", "use a shorter duration")
    return int(seconds)


def parse_ttl(text: str) -> int:
    """A TTL in seconds: a duration of at most MAX_TTL_S (30 days)."""
    seconds = parse_duration(text)
    if seconds > MAX_TTL_S:
        raise UsageError(f"TTL '{text}' is longer than the maximum of {format_duration(MAX_TTL_S)}",
                         "use at most 30d, or no --ttl (then it runs until 'gpuctl down'); "
                         "'gpuctl extend NAME DURATION' moves a TTL later")
    return seconds


def format_duration(seconds: float) -> str:
    """Compact rendering, the inverse of parse_duration for whole units (``1h30m``)."""
    remaining = round(seconds)
    if remaining <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
