"""Fit the performance model's engine factors to the calibration table, and print its error per row.

Usage: python benchmarks/perf_calibration.py [--fit]

Without --fit: the error of the shipped factors (gpuctl/perf/engines.py) on every row of
gpuctl/perf/calibration.yaml, the median absolute error and the worst row per metric.
With --fit: a coordinate search per engine that has fixed-length rows, minimising the mean absolute
log error over them, then the same report with the fitted factors (copy them into engines.py).
Factors no row constrains (vLLM's MoE and all-reduce efficiencies) are taken from TensorRT-LLM's fit.
TTFT rows of loaded servers (concurrency above 8) are reported but not fitted: how their requests
arrive (in waves or spread out) decides their TTFT, and the model assumes spread-out arrivals.
"""

from __future__ import annotations

import argparse
import math
import statistics

from gpuctl.perf.calibration import (
    MEDIAN_ERROR_LIMIT,
    WORST_ERROR_LIMIT,
    CalibrationRow,
    RowError,
    calibration_table,
    median_abs_error,
    row_errors,
)
from gpuctl.perf.engines import PROFILES, EngineProfile

#: (low, high) of every fitted factor
RANGES: dict[str, tuple[float, float]] = {
    "bandwidth_efficiency": (0.4, 0.95),
    "compute_efficiency": (0.15, 0.9),
    "step_overhead_ms": (0.0, 6.0),
    "sequence_overhead_us": (0.0, 40.0),
    "request_overhead_ms": (0.0, 40.0),
    "moe_efficiency": (0.15, 1.0),
    "allreduce_efficiency": (0.2, 1.0),
}
#: above this concurrency a TTFT row measures the arrival pattern more than the hardware
LOADED = 8
#: factors each engine's rows can tell apart (the others keep their value)
FITTED = {
    "trtllm": list(RANGES),
    "vllm": ["bandwidth_efficiency", "compute_efficiency", "step_overhead_ms", "sequence_overhead_us",
             "request_overhead_ms"],
}


def loss(rows: list[CalibrationRow], profile: EngineProfile) -> float:
    errors = row_errors(rows, {rows[0].engine: profile})
    return statistics.fmean(abs(math.log(e.estimated / e.row.value)) for e in errors)


def fitted_rows(engine: str) -> list[CalibrationRow]:
    return [r for r in calibration_table().rows if r.engine == engine and r.lengths == "fixed"
            and not (r.metric == "ttft_ms" and r.concurrency != "max" and r.concurrency > LOADED)]


def fit_engine(engine: str, start: EngineProfile, passes: int = 4, steps: int = 24) -> EngineProfile:
    rows = fitted_rows(engine)
    best, best_loss = start, loss(rows, start)
    for _ in range(passes):
        for name in FITTED[engine]:
            low, high = RANGES[name]
            for i in range(steps + 1):
                candidate = best.model_copy(update={name: round(low + (high - low) * i / steps, 4)})
                current = loss(rows, candidate)
                if current < best_loss:
                    best, best_loss = candidate, current
    print(f"{engine}: mean |log error| {best_loss:.3f} over {len(rows)} fitted rows")
    return best


def report(errors: list[RowError]) -> None:
    print(f"{'engine':7} {'model':16} {'GPUs':16} {'in/out':>10} {'conc':>5} {'metric':20} "
          f"{'measured':>9} {'model':>9} {'error':>7}")
    for e in errors:
        r = e.row
        mark = " (mixed lengths)" if r.lengths == "variable" else ""
        print(f"{r.engine:7} {r.model:16} {r.gpus}x{r.gpu:14} {r.input:>5}/{r.output:<4} {r.concurrency!s:>5} "
              f"{r.metric:20} {r.value:9.1f} {e.estimated:9.1f} {e.error:+7.0%}{mark}")
    print(f"\nrows: {len(errors)}; median absolute error {median_abs_error(errors):.1%} "
          f"(limit {MEDIAN_ERROR_LIMIT:.0%})")
    for metric, limit in WORST_ERROR_LIMIT.items():
        fixed = [e for e in errors if e.row.metric == metric and e.row.lengths == "fixed"]
        if fixed:
            worst = max(fixed, key=lambda e: abs(e.error))
            print(f"  {metric:20} {len(fixed):2} fixed-length rows, median {median_abs_error(fixed):.1%}, "
                  f"worst {worst.error:+.0%} ({worst.row.gpus}x{worst.row.gpu} {worst.row.model}; limit {limit:.0%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="refit the engine factors first")
    args = parser.parse_args()
    profiles: dict[str, EngineProfile] = {}
    if args.fit:
        trtllm = fit_engine("trtllm", PROFILES["trtllm"])
        shared = {"moe_efficiency": trtllm.moe_efficiency, "allreduce_efficiency": trtllm.allreduce_efficiency}
        vllm = fit_engine("vllm", PROFILES["vllm"].model_copy(update=shared))
        profiles = {"trtllm": trtllm, "vllm": vllm,
                    "sglang": vllm.model_copy(update={"max_batch": PROFILES["sglang"].max_batch, "calibrated": False}),
                    "tgi": vllm.model_copy(update={"calibrated": False})}
        for name in ("trtllm", "vllm"):
            print(f"{name}: {profiles[name].model_dump()}")
        print()
    report(row_errors(profiles=profiles))


if __name__ == "__main__":
    main()
