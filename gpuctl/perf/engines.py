"""How efficiently each serving engine turns datasheet figures into tokens.

The factors are fitted to the published measurements in ``calibration.yaml`` by
``benchmarks/perf_calibration.py`` (which prints the fit and its error); docs/cost-per-token.md
says how far they can be trusted. Change them only together with a new fit. They are effective
values: each also absorbs what the model leaves out (a low all-reduce efficiency, for instance, is
mostly the thinner matmuls of wide tensor parallelism).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: engines the model knows: the three gpuctl serves, and TensorRT-LLM, whose published tables are the
#: richest calibration data (gpuctl does not deploy it)
PerfEngine = Literal["vllm", "sglang", "tgi", "trtllm"]


class EngineProfile(BaseModel):
    """What one engine achieves of the hardware's peaks, and the fixed costs it adds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bandwidth_efficiency: float = Field(gt=0, le=1, description="share of peak memory bandwidth a decode step reaches")
    compute_efficiency: float = Field(gt=0, le=1, description="share of dense peak TFLOPS reached by batched matmuls")
    step_overhead_ms: float = Field(ge=0, description="fixed cost of every decode step (scheduling, launches)")
    sequence_overhead_us: float = Field(ge=0, description="cost of every decode step per running sequence "
                                        "(sampling, bookkeeping, per-sequence attention work)")
    request_overhead_ms: float = Field(ge=0, description="fixed part of every time to first token (API, tokenizer)")
    moe_efficiency: float = Field(gt=0, le=1, description="share of the dense matmul efficiency a mixture of "
                                  "experts keeps (small per-expert matmuls, routing, load imbalance)")
    allreduce_efficiency: float = Field(gt=0, le=1, description="share of the interconnect bandwidth an "
                                        "all-reduce achieves")
    max_batch: int = Field(ge=1, description="sequences the engine runs at once by default")
    gpu_memory_utilization: float = Field(gt=0, le=1, description="share of GPU memory given to weights + KV cache")
    calibrated: bool = Field(description="False: no published measurement backs these figures (see the docs)")


#: Fitted by benchmarks/perf_calibration.py against gpuctl/perf/calibration.yaml.
PROFILES: dict[str, EngineProfile] = {
    # 8 fitted rows (RTX 4090, A100); MoE and all-reduce factors borrowed from TensorRT-LLM's fit
    "vllm": EngineProfile(bandwidth_efficiency=0.86, compute_efficiency=0.43, step_overhead_ms=0.75,
                          sequence_overhead_us=15.0, request_overhead_ms=0.0, moe_efficiency=1.0,
                          allreduce_efficiency=0.27, max_batch=256, gpu_memory_utilization=0.9, calibrated=True),
    # 50 fitted rows (H100, H200, L40S, A100; 7B to 405B, one MoE)
    "trtllm": EngineProfile(bandwidth_efficiency=0.86, compute_efficiency=0.59, step_overhead_ms=2.75,
                            sequence_overhead_us=6.7, request_overhead_ms=3.3, moe_efficiency=1.0,
                            allreduce_efficiency=0.27, max_batch=2048, gpu_memory_utilization=0.9, calibrated=True),
}
# SGLang and TGI run the same kernel families as vLLM (FlashInfer / FlashAttention, CUDA graphs) and
# land within about 10% of it in every head-to-head we found; with one published SGLang point and
# none for TGI, they borrow vLLM's figures (SGLang's default cap on running requests is higher).
PROFILES["sglang"] = PROFILES["vllm"].model_copy(update={"max_batch": 1024, "calibrated": False,
                                                         "gpu_memory_utilization": 0.85})
PROFILES["tgi"] = PROFILES["vllm"].model_copy(update={"calibrated": False})


def profile(engine: PerfEngine) -> EngineProfile:
    """The efficiency profile of ``engine``."""
    return PROFILES[engine]
