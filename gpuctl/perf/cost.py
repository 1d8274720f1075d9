"""From an estimate and a price to what users choose by: dollars per million tokens, latency targets."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gpuctl.perf.estimate import Estimate


class Slo(BaseModel):
    """Latency targets (``--slo ttft=MS,itl=MS``); None: no target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttft_ms: float | None = Field(default=None, gt=0)
    itl_ms: float | None = Field(default=None, gt=0)


def usd_per_1m_output_tokens(estimate: Estimate, price_per_hour: float) -> float | None:
    """What a million output tokens cost on an instance billed ``price_per_hour`` (whole instance, USD).

    None when the estimate produces no tokens.
    """
    if estimate.output_tokens_per_s <= 0:
        return None
    return round(price_per_hour / (estimate.output_tokens_per_s * 3600) * 1e6, 4)


def meets(estimate: Estimate, slo: Slo) -> bool:
    """Whether ``estimate`` is within every target ``slo`` sets."""
    return ((slo.ttft_ms is None or estimate.ttft_ms <= slo.ttft_ms)
            and (slo.itl_ms is None or estimate.itl_ms <= slo.itl_ms))
