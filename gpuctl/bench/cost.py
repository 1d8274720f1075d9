"""Dollars per million tokens from an hourly price and a measured throughput."""

from __future__ import annotations


def cost_per_million(price_per_hour: float | None, tokens_per_s: float) -> float | None:
    """``price / (3600 * tokens/s) * 1e6``: what a million tokens cost at this throughput, kept busy.

    None when there is no price or no throughput to divide by.
    """
    if price_per_hour is None or tokens_per_s <= 0:
        return None
    return price_per_hour / (3600.0 * tokens_per_s) * 1_000_000
