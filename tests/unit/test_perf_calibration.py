"""The performance model against every published measurement in gpuctl/perf/calibration.yaml.

Run with -s to see the table (the same one `python benchmarks/perf_calibration.py` prints).
"""

from __future__ import annotations

import re

import pytest

from gpuctl.catalog import resolve_gpu
from gpuctl.perf.calibration import (
    MEDIAN_ERROR_LIMIT,
    WORST_ERROR_LIMIT,
    RowError,
    calibration_table,
    median_abs_error,
    row_errors,
)


@pytest.fixture(scope="module")
def errors() -> list[RowError]:
    found = row_errors()
    for e in found:
        r = e.row
        print(f"{r.engine:7} {r.model:16} {r.gpus}x{r.gpu:14} {r.input:>5}/{r.output:<4} {r.concurrency!s:>5} "
              f"{r.metric:20} measured {r.value:9.1f} model {e.estimated:9.1f} {e.error:+6.0%} {r.lengths}")
    print(f"median absolute error {median_abs_error(found):.1%} over {len(found)} rows")
    return found


def test_the_table_spans_gpus_models_engines_and_loads() -> None:
    rows = calibration_table().rows
    assert len(rows) >= 40
    assert {"H100-SXM", "H200", "A100-80GB-SXM", "L40S", "RTX-4090"} <= {r.gpu for r in rows}
    assert {"llama-3.1-8b", "llama-3.1-70b", "qwen3-235b-a22b"} <= {r.model for r in rows}
    assert {"trtllm", "vllm", "sglang"} <= {r.engine for r in rows}
    assert any(r.concurrency == 1 for r in rows) and any(r.concurrency == "max" for r in rows)
    assert {r.metric for r in rows} == {"output_tokens_per_s", "input_tokens_per_s", "ttft_ms", "itl_ms"}


def test_every_row_names_its_source_and_canonical_gpu() -> None:
    table = calibration_table()
    for source in table.sources.values():
        assert re.search(r"@ [0-9a-f]{40}|https://", source), source
    for row in table.rows:
        assert row.source in table.sources
        assert resolve_gpu(row.gpu) == row.gpu  # a SKU, not a family


def test_the_median_error_is_within_its_documented_limit(errors: list[RowError]) -> None:
    assert median_abs_error(errors) <= MEDIAN_ERROR_LIMIT


@pytest.mark.parametrize("metric", sorted(WORST_ERROR_LIMIT))
def test_the_worst_fixed_length_row_is_within_its_documented_limit(errors: list[RowError], metric: str) -> None:
    fixed = [e for e in errors if e.row.metric == metric and e.row.lengths == "fixed"]
    worst = max(fixed, key=lambda e: abs(e.error), default=None)
    assert worst is None or abs(worst.error) <= WORST_ERROR_LIMIT[metric], worst


def test_throughput_rows_are_mostly_close(errors: list[RowError]) -> None:
    throughput = [e for e in errors if e.row.metric == "output_tokens_per_s" and e.row.lengths == "fixed"]
    within_25 = sum(abs(e.error) <= 0.25 for e in throughput)
    assert within_25 >= 0.9 * len(throughput)
