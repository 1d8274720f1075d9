"""The time one engine step takes on one instance, from first principles (docs/cost-per-token.md).

A decode step reads every weight the batch needs and every sequence's KV cache once, and does two
FLOPs per active parameter per token plus the attention over the context: it takes the longer of
the two (memory-bound at small batches, compute-bound at large ones). A prefill is compute-bound.
With tensor parallelism each GPU holds 1/N of the work and each layer pays two all-reduces of the
activations over the interconnect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from gpuctl.catalog import GpuSpec
from gpuctl.fit import kv_bytes_per_token, weight_bytes
from gpuctl.models.recipe import Architecture
from gpuctl.perf.engines import EngineProfile

Bound = Literal["memory", "compute"]

#: latency of one all-reduce of a small message (NCCL / custom all-reduce kernels); an assumption,
#: not fitted: it matters only for tensor-parallel decode at small batches
ALLREDUCE_LATENCY_S = {"nvlink": 8e-6, "infinity-fabric": 12e-6, "pcie": 25e-6}
ACTIVATION_BYTES = 2  # activations travel at 16 bits


@dataclass(frozen=True)
class Instance:
    """One served model on ``tensor_parallel`` GPUs of one SKU, with one engine's efficiencies."""

    arch: Architecture
    gpu: GpuSpec
    tensor_parallel: int
    profile: EngineProfile
    fp8_compute: bool
    kv_value_bytes: int

    @property
    def peak_flops(self) -> float:
        """Dense peak FLOP/s of one GPU at the precision the matmuls run in."""
        tflops = self.gpu.fp8_tflops if self.fp8_compute and self.gpu.fp8_tflops else self.gpu.bf16_tflops
        return tflops * 1e12

    @property
    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes of one token on each GPU."""
        return kv_bytes_per_token(self.arch, self.tensor_parallel, self.kv_value_bytes)


def expert_parameters(arch: Architecture) -> float:
    """Parameters in the experts' MLPs of a mixture of experts (0 for a dense model)."""
    if arch.experts == 1:
        return 0.0
    return arch.layers * 3 * arch.hidden_size * arch.intermediate_size * arch.experts


def active_parameters(arch: Architecture) -> float:
    """Parameters one token runs through: all of a dense model, the routed experts of a MoE."""
    experts = expert_parameters(arch)
    if not experts:
        return float(arch.parameters)
    routed = arch.experts_per_token or arch.experts
    return arch.parameters - experts + experts * routed / arch.experts


def weights_read_bytes(instance: Instance, tokens: int) -> float:
    """Weight bytes one GPU reads in a step over ``tokens`` tokens: a MoE only loads the experts routed to.

    Each token picks ``k`` of ``E`` experts per layer, so a batch of ``B`` tokens touches
    ``E * (1 - (1 - k/E)^B)`` of them on average.
    """
    arch = instance.arch
    total = weight_bytes(arch)
    experts = expert_parameters(arch)
    if experts and arch.experts_per_token:
        share_routed = 1 - (1 - arch.experts_per_token / arch.experts) ** tokens
        expert_bytes = total * experts / arch.parameters
        total = total - expert_bytes + expert_bytes * share_routed
    return total / instance.tensor_parallel


def flops_per_token(arch: Architecture, context: float, moe_efficiency: float = 1.0) -> float:
    """FLOPs of one token attending to ``context`` earlier tokens: 2 per active parameter plus attention.

    The routed experts' FLOPs count 1 / ``moe_efficiency`` times: they run as many small matmuls.
    """
    span = min(context, arch.sliding_window) if arch.sliding_window else context
    attention = 4 * arch.layers * arch.attention_heads * arch.head_dim * span
    experts = expert_parameters(arch)
    routed = experts * (arch.experts_per_token or arch.experts) / arch.experts if experts else 0.0
    return 2 * (active_parameters(arch) - routed) + 2 * routed / moe_efficiency + attention


def allreduce_s(instance: Instance, tokens: int) -> float:
    """Two ring all-reduces per layer of ``tokens`` tokens' activations (0 without tensor parallelism)."""
    n = instance.tensor_parallel
    if n == 1:
        return 0.0
    # datasheets count both directions; an all-reduce reaches a share of one direction
    link_bytes_per_s = instance.gpu.interconnect_gbps / 2 * 1e9 * instance.profile.allreduce_efficiency
    payload = tokens * instance.arch.hidden_size * ACTIVATION_BYTES
    per_op = ALLREDUCE_LATENCY_S[instance.gpu.interconnect] + 2 * (n - 1) / n * payload / link_bytes_per_s
    return 2 * instance.arch.layers * per_op


def decode_step_s(instance: Instance, batch: int, context: float) -> tuple[float, Bound]:
    """Seconds of one decode step of ``batch`` sequences whose context averages ``context`` tokens."""
    profile, gpu, tp = instance.profile, instance.gpu, instance.tensor_parallel
    memory = (weights_read_bytes(instance, batch) + batch * context * instance.kv_bytes_per_token) / (
        gpu.memory_bandwidth_gbps * 1e9 * profile.bandwidth_efficiency)
    compute = batch * flops_per_token(instance.arch, context, profile.moe_efficiency) / tp / (
        instance.peak_flops * profile.compute_efficiency)
    bound: Bound = "compute" if compute > memory else "memory"
    fixed = profile.step_overhead_ms / 1000 + batch * profile.sequence_overhead_us / 1e6
    return max(memory, compute) + allreduce_s(instance, batch) + fixed, bound


def prefill_compute_s(instance: Instance, prompt: int) -> float:
    """Seconds of matmul and attention work to prefill one prompt of ``prompt`` tokens (causal)."""
    flops = prompt * flops_per_token(instance.arch, prompt / 2, instance.profile.moe_efficiency)
    return flops / instance.tensor_parallel / (instance.peak_flops * instance.profile.compute_efficiency)


def prefill_s(instance: Instance, prompt: int) -> float:
    """Seconds to prefill one prompt alone: compute-bound, but never faster than reading the weights once."""
    read = weights_read_bytes(instance, prompt) / (
        instance.gpu.memory_bandwidth_gbps * 1e9 * instance.profile.bandwidth_efficiency)
    return (max(prefill_compute_s(instance, prompt), read) + allreduce_s(instance, prompt)
            + instance.profile.step_overhead_ms / 1000)


def kv_limited_sequences(kv_cache_tokens: int, tokens_per_sequence: int) -> int:
    """Sequences of ``tokens_per_sequence`` whose KV cache fits at once."""
    return max(0, math.floor(kv_cache_tokens / tokens_per_sequence))
