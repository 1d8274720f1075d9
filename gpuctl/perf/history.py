"""Estimates that learn: measured benches correct later estimates for the same GPU, engine and model family.

``gpuctl bench NAME`` (and every candidate of ``gpuctl bench --sweep``) stores each run with its exact
conditions and the estimate the model made for them (``BenchRecord``). For a new estimate, the runs
on the same GPU SKU, with the same engine, of a model of the same family (the same architecture:
fine-tunes, revisions and quantizations of one base model) give a factor per figure, measured /
modelled, the median over the runs; the estimate is scaled by them and says ``basis: measured`` with
the number of runs. Runs at exactly the estimate's load (GPU count, prompt and answer lengths,
concurrency), when there are any, are used alone: a factor travels less well across loads.

A run teaches nothing when some of its requests failed, its client was saturated (its latencies read
high), the server's prefix cache answered part of its prompts (its TTFT reads low) or it ran at a
request rate instead of a concurrency (the model describes a closed loop of clients).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from gpuctl.errors import GpuctlError
from gpuctl.models.bench import BenchRecord
from gpuctl.models.recipe import Architecture, Recipe
from gpuctl.perf.estimate import Correction, Estimate, Workload, estimate


def model_family(arch: Architecture) -> str:
    """The family of models with this architecture: the same shape, whatever the weights' precision."""
    experts = f"-e{arch.experts}x{arch.experts_per_token or arch.experts}" if arch.experts > 1 else ""
    return (f"L{arch.layers}-d{arch.hidden_size}-h{arch.attention_heads}kv{arch.kv_heads}x{arch.head_dim}"
            f"-ff{arch.intermediate_size}-v{arch.vocab_size}{experts}")


class Conditions:
    """What a deployment's bench ran on, and the model's estimate for each of its loads (``with_conditions``)."""

    def __init__(self, recipe: Recipe, *, gpu: str, gpu_count: int, engine: str, quantization: str | None) -> None:
        from gpuctl.fit import effective_architecture

        self.recipe = recipe
        self.gpu, self.gpu_count, self.engine, self.quantization = gpu, gpu_count, engine, quantization
        self.family = model_family(effective_architecture(recipe, quantization))  # type: ignore[arg-type]

    def estimate(self, input_len: int, output_len: int, concurrency: int | None) -> Estimate | None:
        """The uncorrected estimate for one run; None for a rate-driven run or where the model cannot say."""
        if concurrency is None:
            return None
        try:
            return estimate(self.recipe, self.gpu, self.gpu_count, engine=self.engine,  # type: ignore[arg-type]
                            quantization=self.quantization,  # type: ignore[arg-type]
                            workload=Workload(input_tokens=input_len, output_tokens=output_len,
                                              concurrency=concurrency))
        except (GpuctlError, KeyError, ValueError):  # an unknown GPU or engine, a model that no longer fits
            return None

    def apply(self, record: BenchRecord, *, random_prompts: bool) -> BenchRecord:
        """``record`` with these conditions (and the estimate, for random prompts of known length)."""
        found = self.estimate(record.input_len, record.output_len, record.run.concurrency) if random_prompts else None
        return record.model_copy(update={"recipe": self.recipe.name, "engine": self.engine,
                                         "quantization": self.quantization, "family": self.family,
                                         "estimate": found})


def teaches(record: BenchRecord) -> bool:
    """Whether ``record`` can correct estimates (see the module docstring)."""
    run = record.run
    return (record.estimate is not None and record.engine is not None and record.family is not None
            and record.gpu is not None and run.concurrency is not None and run.requests_ok > 0
            and run.requests_failed == 0 and not run.client_saturated and run.cached_input_tokens == 0
            and run.output_tokens_per_s > 0 and run.ttft_ms is not None and run.itl_ms is not None
            and run.ttft_ms.mean > 0 and run.itl_ms.mean > 0)


def same_load(record: BenchRecord, estimate: Estimate) -> bool:
    """Whether ``record`` ran at exactly the load ``estimate`` is for."""
    inputs = estimate.inputs
    return (record.gpu_count == inputs.gpu_count and record.input_len == inputs.workload.input_tokens
            and record.output_len == inputs.workload.output_tokens and record.run.concurrency == inputs.concurrency)


def correction(estimate: Estimate, family: str, records: Sequence[BenchRecord]) -> Correction | None:
    """The factors the runs in ``records`` on ``estimate``'s GPU and engine, of ``family``, give; None without any."""
    inputs = estimate.inputs
    kin = [r for r in records if teaches(r) and r.gpu == inputs.gpu and r.engine == inputs.engine
           and r.family == family]
    exact = [r for r in kin if same_load(r, estimate)]
    chosen = exact or kin
    if not chosen:
        return None

    def factor(measured: list[float], modelled: list[float]) -> float:
        return round(statistics.median(m / e for m, e in zip(measured, modelled, strict=True)), 4)

    estimates = [r.estimate for r in chosen if r.estimate is not None]
    runs = [r.run for r in chosen]
    return Correction(
        output_tokens_per_s=factor([r.output_tokens_per_s for r in runs], [e.output_tokens_per_s for e in estimates]),
        ttft_ms=factor([r.ttft_ms.mean for r in runs if r.ttft_ms], [e.ttft_ms for e in estimates]),
        itl_ms=factor([r.itl_ms.mean for r in runs if r.itl_ms], [e.itl_ms for e in estimates]),
        runs=len(chosen), same_load=bool(exact),
    )


def learned(estimate: Estimate, family: str, records: Sequence[BenchRecord]) -> Estimate:
    """``estimate`` corrected by the runs in ``records`` that apply to it, or as it is when none does."""
    found = correction(estimate, family, records)
    return estimate.corrected(found) if found else estimate
