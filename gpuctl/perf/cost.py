"""From an estimate and a price to what users choose by: dollars per million tokens, latency targets."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gpuctl.perf.estimate import Estimate


class Slo(BaseModel):
    """Latency targets (``--slo ttft=MS,itl=MS``); None: no target.

    They bound the typical request: an estimate's TTFT and ITL, a measurement's medians (p50).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttft_ms: float | None = Field(default=None, gt=0)
    itl_ms: float | None = Field(default=None, gt=0)

    def describe(self) -> str:
        """``ttft<=500ms, itl<=50ms`` (or ``none``)."""
        parts = [f"{name}<={value:g}ms" for name, value in (("ttft", self.ttft_ms), ("itl", self.itl_ms)) if value]
        return ", ".join(parts) or "none"


#: what ``--slo`` keys mean; TPOT (a request's mean time per output token) bounds the same thing as ITL
SLO_KEYS = {"ttft": "ttft_ms", "itl": "itl_ms", "tpot": "itl_ms"}


def parse_slo(text: str) -> Slo:
    """``"ttft=500,itl=50"`` -> Slo(ttft_ms=500, itl_ms=50); a bad part is a ValueError naming it."""
    values: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        field = SLO_KEYS.get(key.strip().lower())
        try:
            number = float(value.strip().removesuffix("ms"))
        except ValueError:
            number = -1.0
        if not sep or field is None or not number > 0:
            raise ValueError(f"SLO {part!r} is not KEY=MS with KEY one of ttft, itl")
        values[field] = number
    if not values:
        raise ValueError("an SLO needs at least one of ttft=MS, itl=MS")
    return Slo(**values)


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
