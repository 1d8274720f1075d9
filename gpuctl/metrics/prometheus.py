"""The Prometheus text exposition format (version 0.0.4), read just far enough for gpuctl.

Samples (``name{label="value",...} value [timestamp]``), summed across label sets where gpuctl wants
one figure per engine (vLLM labels each series with its model and engine index), and histograms
turned into quantiles the way Prometheus's ``histogram_quantile`` does: linear interpolation inside
the bucket the quantile falls in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# name, optional {labels}, value, optional timestamp
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+-?\d+)?\s*$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass
class Histogram:
    """Cumulative bucket counts (upper bound, count so far), the number of observations and their sum."""

    buckets: list[tuple[float, float]] = field(default_factory=list)
    count: float = 0.0
    sum: float = 0.0

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1), interpolated inside its bucket; None without observations.

        Like Prometheus: the lowest bucket starts at 0; a quantile in the ``+Inf`` bucket is the highest
        finite bound.
        """
        if self.count <= 0 or not self.buckets:
            return None
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0.0
        for bound, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower_bound
                if cumulative == lower_count:
                    return bound
                return lower_bound + (bound - lower_bound) * (rank - lower_count) / (cumulative - lower_count)
            lower_bound, lower_count = bound, cumulative
        return lower_bound

    def minus(self, earlier: Histogram) -> Histogram:
        """The observations made since ``earlier`` (same buckets), for a windowed view."""
        before = dict(earlier.buckets)
        return Histogram(buckets=[(bound, count - before.get(bound, 0.0)) for bound, count in self.buckets],
                         count=self.count - earlier.count, sum=self.sum - earlier.sum)


def parse(text: str) -> list[Sample]:
    """Every sample of an exposition; comment lines and lines that do not parse are skipped."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            continue
        name, labels, raw = match.groups()
        try:
            value = float(raw)
        except ValueError:
            continue
        samples.append(Sample(name=name, labels=_labels(labels or ""), value=value))
    return samples


def _labels(text: str) -> dict[str, str]:
    return {key: re.sub(r"\\[\\\"n]", lambda m: _UNESCAPE[m.group(0)], value)
            for key, value in _LABEL.findall(text)}


class Exposition:
    """One scrape, indexed by metric name."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        self.by_name: dict[str, list[Sample]] = {}
        for sample in samples:
            self.by_name.setdefault(sample.name, []).append(sample)

    @classmethod
    def of(cls, text: str) -> Exposition:
        return cls(parse(text))

    def has(self, name: str) -> bool:
        return name in self.by_name

    def total(self, names: Sequence[str]) -> float | None:
        """The sum over every label set of the first of ``names`` the scrape has; None when it has none."""
        for name in names:
            series = self.by_name.get(name)
            if series:
                return sum(s.value for s in series if not math.isnan(s.value))
        return None

    def histogram(self, names: Sequence[str]) -> Histogram | None:
        """The first of ``names`` that the scrape has as a histogram, its label sets added up bucket by bucket."""
        for name in names:
            buckets = self.by_name.get(f"{name}_bucket")
            if not buckets:
                continue
            counts: dict[float, float] = {}
            for sample in buckets:
                try:
                    bound = float(sample.labels.get("le", "nan"))
                except ValueError:
                    continue
                if not math.isnan(bound):
                    counts[bound] = counts.get(bound, 0.0) + sample.value
            return Histogram(buckets=sorted(counts.items()), count=self.total([f"{name}_count"]) or 0.0,
                             sum=self.total([f"{name}_sum"]) or 0.0)
        return None

    def summary_quantile(self, names: Sequence[str], q: float) -> float | None:
        """A quantile a summary reports itself (``name{quantile="0.5"}``; TGI's unbucketed metrics), the highest
        across label sets."""
        for name in names:
            values = [s.value for s in self.by_name.get(name, []) if _same_quantile(s.labels.get("quantile"), q)]
            if values:
                return max(values)
        return None


def _same_quantile(label: str | None, q: float) -> bool:
    try:
        return label is not None and abs(float(label) - q) < 1e-9
    except ValueError:
        return False
