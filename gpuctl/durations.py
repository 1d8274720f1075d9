"""Human durations such as ``90m``, ``2h``, ``1h30m``, ``1d`` (TTLs, timeouts)."""

from __future__ import annotations

import re

from gpuctl.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


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
    return int(seconds)


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
