"""The performance estimate of one model on one offer's hardware, for one workload.

Steady state of a closed loop of ``concurrency`` clients (each sends its next request when the
last one finished), as ``gpuctl bench`` and ``vllm bench serve --max-concurrency`` measure it:

    TTFT  = own prefill + half a decode step of wait (when others run) + the engine's fixed cost
    ITL   = one decode step of the batch + the prefills of the other requests, spread over the output
    E2E   = TTFT + (output - 1) x ITL,   output tokens/s = concurrency x output / E2E

More clients than the KV cache holds queue: they add waiting time, not throughput. ``max`` is the
throughput-optimal load: as many sequences as the KV cache and the engine's batch cap allow.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gpuctl.catalog import gpu_spec
from gpuctl.errors import UsageError
from gpuctl.fit import GB, FitSettings, effective_architecture, fit
from gpuctl.models.recipe import QuantMethod, Recipe
from gpuctl.perf.engines import EngineProfile, PerfEngine, profile
from gpuctl.perf.roofline import Bound, Instance, decode_step_s, kv_limited_sequences, prefill_compute_s, prefill_s

KvCacheDtype = Literal["auto", "fp8"]
Basis = Literal["model", "measured"]


class Workload(BaseModel):
    """What the clients send: prompt and answer lengths, and how many requests are in flight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_tokens: int = Field(default=1024, ge=1)
    output_tokens: int = Field(default=256, ge=1)
    concurrency: int | Literal["max"] = Field(default=1, description="requests in flight; max: throughput-optimal")


class EstimateInputs(BaseModel):
    """Everything an estimate assumed, so it can be reproduced, compared with a measurement, or corrected."""

    model_config = ConfigDict(frozen=True)

    model: str
    gpu: str
    gpu_count: int
    tensor_parallel: int
    engine: PerfEngine
    weights: str = Field(description="how the weights are stored: the model dtype or the quantization")
    compute: Literal["fp8", "bf16", "fp16"] = Field(description="precision the matmuls run in")
    kv_cache: Literal["fp8", "bf16", "fp16"]
    workload: Workload
    concurrency: int = Field(description="the concurrency estimated (max resolved)")
    efficiency: EngineProfile


class Correction(BaseModel):
    """How measured benches of the same GPU SKU, engine and model family compare with the model: measured /
    modelled per figure (medians over the runs), and the runs behind them (gpuctl.perf.history)."""

    model_config = ConfigDict(frozen=True)

    output_tokens_per_s: float = Field(gt=0)
    ttft_ms: float = Field(gt=0)
    itl_ms: float = Field(gt=0)
    runs: int = Field(ge=1)
    same_load: bool = Field(description="the runs were at this estimate's exact load (else at other loads)")


class Estimate(BaseModel):
    """Predicted serving performance of one instance: the ``estimate`` of ``gpuctl fit --json`` rows.

    ``basis`` is ``model`` for a first-principles estimate; an estimate corrected by measured bench
    results says ``measured``, how many ``runs`` back it, and the ``correction`` applied.
    """

    model_config = ConfigDict(frozen=True)

    output_tokens_per_s: float = Field(description="whole instance, all requests together")
    ttft_ms: float = Field(description="time to first token")
    itl_ms: float = Field(description="inter-token latency (time per output token after the first)")
    max_concurrency: int = Field(description="sequences of input + output tokens the KV cache holds at once")
    bound: Bound = Field(description="what limits a decode step at this load")
    basis: Basis = "model"
    runs: int | None = Field(default=None, description="measured runs behind a 'measured' basis")
    correction: Correction | None = Field(default=None, description="the factors a 'measured' basis applied")
    inputs: EstimateInputs

    def corrected(self, correction: Correction) -> Estimate:
        """This estimate scaled by what measurements of the same hardware, engine and model family found."""
        return self.model_copy(update={
            "output_tokens_per_s": round(self.output_tokens_per_s * correction.output_tokens_per_s, 1),
            "ttft_ms": round(self.ttft_ms * correction.ttft_ms, 1),
            "itl_ms": round(self.itl_ms * correction.itl_ms, 2),
            "basis": "measured", "runs": correction.runs, "correction": correction,
        })


def estimate(recipe: Recipe, gpu: str, gpu_count: int = 1, *, engine: PerfEngine = "vllm",
             quantization: QuantMethod | None = None, kv_cache_dtype: KvCacheDtype = "auto",
             workload: Workload | None = None, efficiency: EngineProfile | None = None) -> Estimate:
    """Estimate serving ``recipe`` on ``gpu_count`` x ``gpu`` (tensor parallel) with ``engine``.

    ``quantization`` as for ``gpuctl fit`` (None: the weights as published). FP8 weights run FP8
    matmuls where the GPU has FP8, else 16-bit ones (weight-only FP8, as the engines do on Ampere).
    ``efficiency`` replaces the engine's fitted profile (calibration). Raises UsageError when the
    model does not fit there (``gpuctl fit`` says why).
    """
    workload = workload or Workload()
    spec = gpu_spec(gpu)
    eff = efficiency or profile(engine)
    arch = effective_architecture(recipe, quantization)
    sequence = workload.input_tokens + workload.output_tokens
    settings = FitSettings(engine="vllm" if engine == "trtllm" else engine,  # TensorRT-LLM: as vLLM's overhead
                           gpu_memory_utilization=eff.gpu_memory_utilization, quantization=quantization)
    row = fit(recipe, spec.name, spec.vram_gb, gpu_count, sequence, settings)
    if not row.fits:
        raise UsageError(f"{recipe.name} does not fit on {gpu_count} x {spec.name} at {sequence} tokens: {row.reason}",
                         f"'gpuctl fit {recipe.name}' shows what it needs")
    method = arch.quantization.method if arch.quantization else None
    fp8_compute = method == "fp8" and spec.fp8_tflops is not None
    kv_value_bytes = 1 if kv_cache_dtype == "fp8" else 2
    instance = Instance(arch=arch, gpu=spec, tensor_parallel=gpu_count, profile=eff, fp8_compute=fp8_compute,
                        kv_value_bytes=kv_value_bytes)
    kv_tokens = int(row.kv_cache_gb * GB // instance.kv_bytes_per_token)
    capacity = max(1, min(kv_limited_sequences(kv_tokens, sequence), eff.max_batch))
    wanted = capacity if workload.concurrency == "max" else workload.concurrency
    running = min(wanted, capacity)

    ttft_s, itl_s, bound = _latencies(instance, workload, running)
    e2e_s = ttft_s + (workload.output_tokens - 1) * itl_s
    # a prompt arriving while the other clients' prompts are prefilled waits for them (M/D/1 queue)
    prefill_busy = min(0.9, (running - 1) / e2e_s * prefill_compute_s(instance, workload.input_tokens))
    ttft_s += prefill_busy / (2 * (1 - prefill_busy)) * prefill_compute_s(instance, workload.input_tokens)
    e2e_s = ttft_s + (workload.output_tokens - 1) * itl_s
    if wanted > running:  # the rest wait for a free slot: one full request per extra round
        ttft_s += (wanted / running - 1) * e2e_s
    sixteen_bit: Literal["bf16", "fp16"] = "bf16" if arch.dtype == "bfloat16" else "fp16"
    return Estimate(
        output_tokens_per_s=round(running * workload.output_tokens / e2e_s, 1),
        ttft_ms=round(ttft_s * 1000, 1), itl_ms=round(itl_s * 1000, 2), max_concurrency=capacity, bound=bound,
        inputs=EstimateInputs(
            model=recipe.name, gpu=spec.name, gpu_count=gpu_count, tensor_parallel=gpu_count, engine=engine,
            weights=f"{method} {arch.quantization.bits}-bit" if arch.quantization else arch.dtype,
            compute="fp8" if fp8_compute else sixteen_bit, kv_cache="fp8" if kv_value_bytes == 1 else sixteen_bit,
            workload=workload, concurrency=wanted, efficiency=eff,
        ),
    )


def _latencies(instance: Instance, workload: Workload, running: int) -> tuple[float, float, Bound]:
    """TTFT and ITL (seconds) with ``running`` requests in flight, and what bounds the decode step."""
    context = workload.input_tokens + workload.output_tokens / 2  # average over the answer
    step_s, bound = decode_step_s(instance, running, context)
    ttft_s = prefill_s(instance, workload.input_tokens) + instance.profile.request_overhead_ms / 1000
    if running > 1:
        ttft_s += step_s / 2  # a new request waits for the step in progress
    # every other request's prompt is prefilled once during this request's answer
    interleaved_s = (running - 1) * prefill_compute_s(instance, workload.input_tokens)
    itl_s = step_s + interleaved_s / max(workload.output_tokens - 1, 1)
    return ttft_s, itl_s, bound
