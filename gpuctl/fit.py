"""Memory math: does a model fit on N GPUs of a kind, at what context, and how many sequences at once.

All sizes are decimal gigabytes (1 GB = 1e9 bytes), the unit model sizes are published in. A GPU's
``vram_gb`` is its marketed size read the same way, which is what the card really offers for the
24/48 GB parts and slightly less than the 80 GB parts have (a safe side to err on).

Per GPU, with tensor parallelism across the instance's GPUs::

    usable   = vram * gpu_memory_utilization - engine overhead
    weights  = weight bytes / tensor parallel size
    kv cache = usable - weights,  holding kv cache / (KV bytes per token per GPU) tokens

KV bytes per token = 2 (K and V) x layers x KV heads x head dim x bytes per value; KV heads are split
across GPUs (and replicated when there are more GPUs than KV heads).

Across nodes (vLLM's multi-node mode) the layers are split into one pipeline stage per node and each
stage is tensor parallel over its node's GPUs: a GPU holds its share of the heaviest stage's weights
and the KV cache of that stage's layers only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from gpuctl.errors import UsageError
from gpuctl.models.offer import Offer
from gpuctl.models.recipe import Architecture, EngineName, Quantization, QuantMethod, Recipe

GB = 1e9
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
#: engines whose share means something else: SGLang's --mem-fraction-static covers weights and KV cache
#: only (activations and CUDA graphs live in the rest), and its own default on 24-80 GB cards at one to
#: two GPUs works out at 0.83-0.85 (server_args.py, _handle_gpu_memory_settings)
ENGINE_GPU_MEMORY_UTILIZATION: dict[str, float] = {"sglang": 0.85}
#: per-GPU memory an engine needs besides weights and KV cache within its share: CUDA context, CUDA graphs,
#: activations of the profiling batch, NCCL buffers. Estimates from vLLM/TGI start-up logs of 7-70B
#: models; SGLang's share leaves those out, so only its CUDA context counts against it.
ENGINE_OVERHEAD_GB: dict[str, float] = {"vllm": 1.5, "sglang": 0.5, "tgi": 2.0}
DEFAULT_GPU_COUNTS = (1, 2, 4, 8)
#: methods that need a checkpoint quantized ahead of time (the engines cannot quantize on load)
PREQUANTIZED_ONLY = frozenset({"awq", "gptq"})
#: memory layout of the methods engines apply while loading a 16-bit checkpoint
ON_THE_FLY_BITS: dict[str, int] = {"fp8": 8, "eetq": 8, "bitsandbytes": 8}


def default_utilization(engine: EngineName) -> float:
    """The GPU-memory share gpuctl gives ``engine`` when neither the user nor the recipe names one."""
    return ENGINE_GPU_MEMORY_UTILIZATION.get(engine, DEFAULT_GPU_MEMORY_UTILIZATION)


def estimate_parameters(*, layers: int, hidden_size: int, attention_heads: int, kv_heads: int, head_dim: int,
                        intermediate_size: int, vocab_size: int, tie_word_embeddings: bool = False,
                        experts: int = 1) -> int:
    """Parameter count of a decoder-only transformer with a gated MLP (Llama, Mistral, Qwen, Gemma, Phi-3).

    Norms and attention biases are left out: they are well under 0.1% of any model here.
    """
    attention = hidden_size * head_dim * (2 * attention_heads + 2 * kv_heads)
    mlp = 3 * hidden_size * intermediate_size * experts + (hidden_size * experts if experts > 1 else 0)
    embeddings = vocab_size * hidden_size * (1 if tie_word_embeddings else 2)
    return layers * (attention + mlp) + embeddings


def dtype_bytes(arch: Architecture) -> int:
    return DTYPE_BYTES[arch.dtype]


def weight_bytes(arch: Architecture) -> float:
    """Bytes of the weights: parameters x bytes per parameter (quantized layers at their packed size)."""
    if arch.quantization is None:
        return arch.parameters * dtype_bytes(arch)
    dense = arch.embedding_parameters
    return (arch.parameters - dense) * arch.quantization.bytes_per_weight + dense * dtype_bytes(arch)


def stage_weight_bytes(arch: Architecture, stages: int = 1) -> float:
    """Bytes of the weights the heaviest of ``stages`` pipeline stages holds (all of them for one stage).

    Each stage gets at most ``ceil(layers / stages)`` layers; the input embedding sits on the first
    stage and the LM head on the last, so a stage of several holds one vocabulary matrix at most.
    """
    if stages == 1:
        return weight_bytes(arch)
    vocabulary = arch.embedding_parameters * dtype_bytes(arch)
    per_layer = (weight_bytes(arch) - vocabulary) / arch.layers
    return math.ceil(arch.layers / stages) * per_layer + arch.vocab_size * arch.hidden_size * dtype_bytes(arch)


def kv_bytes_per_token(arch: Architecture, tensor_parallel: int = 1, value_bytes: int | None = None,
                       pipeline_parallel: int = 1) -> int:
    """KV-cache bytes one token occupies on each GPU (all of them when ``tensor_parallel`` is 1).

    Values are stored at the model dtype unless ``value_bytes`` says otherwise (1: an FP8 KV cache).
    With ``pipeline_parallel`` stages a GPU caches only its stage's layers (the largest stage counts).
    """
    heads_per_gpu = math.ceil(arch.kv_heads / tensor_parallel)
    layers = math.ceil(arch.layers / pipeline_parallel)
    return 2 * layers * heads_per_gpu * arch.head_dim * (value_bytes or dtype_bytes(arch))


def tensor_parallel_problem(arch: Architecture, size: int) -> str | None:
    """Why the engines cannot split this model ``size`` ways, or None when they can."""
    if size == 1:
        return None
    if arch.attention_heads % size:
        return f"{size} GPUs do not divide {arch.attention_heads} attention heads"
    if (arch.kv_heads % size) if size <= arch.kv_heads else (size % arch.kv_heads):
        return f"{size} GPUs and {arch.kv_heads} KV heads do not divide one another"
    quant = arch.quantization
    if quant and quant.group_size and (arch.intermediate_size // size) % quant.group_size:
        return (f"{arch.intermediate_size} MLP columns over {size} GPUs break the {quant.method} "
                f"groups of {quant.group_size}")
    return None


def pipeline_parallel_problem(arch: Architecture, stages: int) -> str | None:
    """Why the layers cannot be split into ``stages`` pipeline stages (one per node), or None."""
    if stages > arch.layers:
        return f"{stages} nodes exceed the {arch.layers} layers (one pipeline stage per node)"
    return None


def effective_architecture(recipe: Recipe, quantization: QuantMethod | None) -> Architecture:
    """The architecture as served with ``quantization`` (None: as published)."""
    arch = recipe.architecture
    current = arch.quantization.method if arch.quantization else None
    if quantization is None or quantization == current:
        return arch
    if current is not None:
        raise UsageError(f"{recipe.name} is already {current}-quantized; it cannot be served as {quantization}",
                         "drop --quantization")
    if quantization in PREQUANTIZED_ONLY:
        raise UsageError(f"{quantization} needs a checkpoint quantized ahead of time; {recipe.repo} is not one",
                         "pick an -awq recipe, or --quantization fp8 to quantize while loading")
    bits = ON_THE_FLY_BITS[quantization]
    return arch.model_copy(update={"quantization": Quantization(method=quantization, bits=bits)})


def check_context(recipe: Recipe, context: int) -> None:
    """A context above what the model was trained for is a usage error (exit 2)."""
    if context < 1:
        raise UsageError(f"context must be at least 1 token, not {context}")
    if context > recipe.max_context:
        raise UsageError(f"context {context} is above the maximum of {recipe.name} ({recipe.max_context} tokens)",
                         f"use at most {recipe.max_context}")


@dataclass(frozen=True)
class FitSettings:
    """The serving choices the memory math depends on."""

    engine: EngineName = "vllm"
    gpu_memory_utilization: float | None = None
    quantization: QuantMethod | None = None

    def utilization(self, recipe: Recipe) -> float:
        return (self.gpu_memory_utilization or recipe.engine_defaults(self.engine).gpu_memory_utilization
                or default_utilization(self.engine))

    @property
    def overhead_gb(self) -> float:
        return ENGINE_OVERHEAD_GB[self.engine]


class FitRow(BaseModel):
    """Whether one model fits on ``gpu_count`` x ``gpu``, and with how much room (sizes per GPU)."""

    model: str
    gpu: str
    gpu_count: int
    vram_gb: float = Field(description="per GPU")
    fits: bool
    context: int = Field(description="the context asked about (tokens per sequence)")
    max_context: int = Field(description="largest single-sequence context that fits (capped at the model's)")
    concurrent_sequences: int = Field(description="sequences of `context` tokens the KV cache holds at once")
    kv_cache_tokens: int
    weights_gb: float = Field(description="per GPU")
    kv_cache_gb: float = Field(description="per GPU, after weights and engine overhead")
    kv_bytes_per_token: int = Field(description="per GPU")
    gpu_memory_utilization: float
    engine: EngineName
    reason: str | None = None


def fit(recipe: Recipe, gpu: str, vram_gb: float, gpu_count: int, context: int | None = None,
        settings: FitSettings | None = None, *, nodes: int = 1) -> FitRow:
    """The fit of ``recipe`` on ``gpu_count`` GPUs of ``vram_gb`` each, at ``context`` tokens.

    ``nodes`` > 1: that many machines of ``gpu_count`` GPUs each, one pipeline stage per node (the
    row's sizes are still per GPU, ``gpu_count`` still per node).
    """
    settings = settings or FitSettings()
    context = context or recipe.default_context
    check_context(recipe, context)
    arch = effective_architecture(recipe, settings.quantization)
    utilization = settings.utilization(recipe)
    weights = round(stage_weight_bytes(arch, nodes) / gpu_count / GB, 2)
    per_token = kv_bytes_per_token(arch, gpu_count, pipeline_parallel=nodes)
    kv_gb = vram_gb * utilization - settings.overhead_gb - weights
    tokens = max(0, int(kv_gb * GB // per_token))
    reason = tensor_parallel_problem(arch, gpu_count) or pipeline_parallel_problem(arch, nodes)
    if reason is not None:
        tokens = 0  # the engines refuse this split outright
    elif kv_gb <= 0:
        reason = f"weights need {weights:.1f} GB/GPU, {vram_gb * utilization - settings.overhead_gb:.1f} GB usable"
    elif tokens < context:
        reason = f"KV cache holds {tokens} tokens, fewer than {context}"
    return FitRow(
        model=recipe.name, gpu=gpu, gpu_count=gpu_count, vram_gb=vram_gb, fits=reason is None, context=context,
        max_context=min(tokens, recipe.max_context), concurrent_sequences=tokens // context,
        kv_cache_tokens=tokens, weights_gb=weights, kv_cache_gb=round(max(kv_gb, 0.0), 2),
        kv_bytes_per_token=per_token, gpu_memory_utilization=utilization, engine=settings.engine,
        reason=reason,
    )


def fit_table(recipe: Recipe, context: int | None = None, gpus: Iterable[str] | None = None,
              counts: Sequence[int] = DEFAULT_GPU_COUNTS, settings: FitSettings | None = None,
              nodes: int = 1) -> list[FitRow]:
    """One row per GPU kind (catalog order, or ``gpus``: GPU or family names) and GPU count (per node)."""
    from gpuctl.catalog import gpu_spec, known_gpus, resolve_gpus

    specs = [gpu_spec(name) for name in resolve_gpus(gpus)] if gpus is not None else known_gpus()
    return [fit(recipe, spec.name, spec.vram_gb, count, context, settings, nodes=nodes)
            for spec in specs for count in counts]


def smallest_fitting(rows: Sequence[FitRow]) -> list[FitRow]:
    """Per GPU kind, the row with the fewest GPUs that fits, else its largest row (which does not)."""
    best: dict[str, FitRow] = {}
    for row in rows:
        current = best.get(row.gpu)
        if current is None or (not current.fits and (row.fits or row.gpu_count > current.gpu_count)):
            best[row.gpu] = row
    return list(best.values())


def offer_fits(recipe: Recipe, offer: Offer, context: int | None = None, settings: FitSettings | None = None) -> bool:
    """Whether ``offer`` (all its GPUs, tensor parallel) can serve ``recipe`` at ``context``."""
    return fit(recipe, offer.gpu, offer.vram_gb, offer.gpu_count, context, settings).fits


def fitting_offers(recipe: Recipe, offers: Iterable[Offer], context: int | None = None,
                   settings: FitSettings | None = None) -> list[Offer]:
    """The offers that can serve ``recipe`` (``gpuctl prices --for MODEL``), in their order."""
    return [offer for offer in offers if offer_fits(recipe, offer, context, settings)]


class MemoryFacts(BaseModel):
    """The memory figures of one model as published (``gpuctl models show``)."""

    weights_gb: float
    kv_bytes_per_token: int
    kv_cache_gb_per_sequence: float = Field(description="one sequence of the default context")
    default_context: int


def memory_facts(recipe: Recipe, quantization: QuantMethod | None = None) -> MemoryFacts:
    """Weights and KV-cache sizes of ``recipe`` on one GPU (no tensor parallelism)."""
    arch = effective_architecture(recipe, quantization)
    per_token = kv_bytes_per_token(arch)
    return MemoryFacts(weights_gb=round(weight_bytes(arch) / GB, 2), kv_bytes_per_token=per_token,
                       kv_cache_gb_per_sequence=round(per_token * recipe.default_context / GB, 3),
                       default_context=recipe.default_context)
