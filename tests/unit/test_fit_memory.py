"""The memory model against published figures and hand-computed cases."""

from __future__ import annotations

import pytest

from gpuctl.catalog import known_gpus
from gpuctl.errors import UsageError
from gpuctl.fit import (
    ENGINE_OVERHEAD_GB,
    FitSettings,
    effective_architecture,
    fit,
    fit_table,
    kv_bytes_per_token,
    memory_facts,
    smallest_fitting,
    tensor_parallel_problem,
    weight_bytes,
)
from gpuctl.models.recipe import Architecture, Quantization
from gpuctl.recipes import RecipeBook

BOOK = RecipeBook()


def test_llama_2_7b_kv_cache_for_one_4096_token_sequence_is_about_2_1_gb() -> None:
    arch = BOOK.get("llama-2-7b").architecture
    total = kv_bytes_per_token(arch) * 4096
    assert total == 2 * 32 * 32 * 128 * 4096 * 2 == 2_147_483_648
    assert round(total / 1e9, 1) == 2.1


def test_llama_3_8b_needs_a_quarter_of_that_with_8_kv_heads() -> None:
    llama2 = kv_bytes_per_token(BOOK.get("llama-2-7b").architecture)
    assert kv_bytes_per_token(BOOK.get("llama-3-8b").architecture) * 4 == llama2


def test_a_70b_model_in_16_bits_needs_about_140_gb_for_weights() -> None:
    weights = weight_bytes(BOOK.get("llama-3.1-70b").architecture)
    assert weights == 70_553_706_496 * 2
    assert 139e9 < weights < 142e9


def test_awq_weights_are_about_a_quarter_plus_the_16_bit_embeddings() -> None:
    dense = BOOK.get("qwen2.5-32b").architecture
    awq = BOOK.get("qwen2.5-32b-awq").architecture
    # the published AWQ checkpoint is about 19.3 GB of safetensors
    assert 19.0e9 < weight_bytes(awq) < 19.6e9
    assert weight_bytes(awq) < weight_bytes(dense) / 3


def test_fit_of_llama_3_8b_on_one_l4_by_hand() -> None:
    row = fit(BOOK.get("llama-3-8b"), "L4", 24, 1)
    usable = 24 * 0.9 - ENGINE_OVERHEAD_GB["vllm"]
    weights = 8_030_261_248 * 2 / 1e9
    tokens = int((usable - round(weights, 2)) * 1e9 // 131_072)
    assert row.fits
    assert (row.weights_gb, row.kv_cache_tokens, row.context) == (16.06, tokens, 8192)
    assert row.max_context == 8192  # capped at the model's own maximum
    assert row.concurrent_sequences == tokens // 8192 == 3


def test_tensor_parallel_shards_weights_and_kv_heads() -> None:
    recipe = BOOK.get("llama-3.1-70b")
    one, four = fit(recipe, "H100-SXM", 80, 1), fit(recipe, "H100-SXM", 80, 4)
    assert not one.fits
    assert one.reason == "weights need 141.1 GB/GPU, 70.5 GB usable"
    assert four.fits
    assert four.weights_gb == round(141.107 / 4, 2)
    assert four.kv_bytes_per_token * 4 == kv_bytes_per_token(recipe.architecture)


def test_more_gpus_than_kv_heads_replicates_kv_heads() -> None:
    arch = Architecture(parameters=10**9, layers=10, attention_heads=32, kv_heads=2, head_dim=64, hidden_size=2048,
                        intermediate_size=4096, vocab_size=1000, dtype="float16")
    assert kv_bytes_per_token(arch, 4) == 2 * 10 * 1 * 64 * 2
    assert tensor_parallel_problem(arch, 4) is None
    assert "3 GPUs" in tensor_parallel_problem(arch, 3)


def test_tensor_parallel_must_divide_the_attention_heads() -> None:
    recipe = BOOK.get("qwen2.5-7b")  # 28 attention heads, 4 KV heads
    row = fit(recipe, "L40S", 48, 8)
    assert not row.fits
    assert row.reason == "8 GPUs do not divide 28 attention heads"
    assert (row.max_context, row.concurrent_sequences) == (0, 0)
    assert fit(recipe, "L40S", 48, 4).fits


def test_awq_groups_must_split_evenly_across_gpus() -> None:
    arch = BOOK.get("qwen2.5-7b-awq").architecture.model_copy(update={"intermediate_size": 18944 + 128})
    assert "awq groups of 128" in tensor_parallel_problem(arch, 2)


def test_a_too_long_context_is_reported_with_the_largest_that_fits() -> None:
    recipe = BOOK.get("llama-3.1-8b")
    row = fit(recipe, "L4", 24, 1, context=65536)
    assert not row.fits
    assert 0 < row.max_context < 65536
    assert row.reason == f"KV cache holds {row.kv_cache_tokens} tokens, fewer than 65536"
    assert fit(recipe, "L4", 24, 1, context=row.max_context).fits


def test_context_above_the_model_maximum_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="above the maximum of llama-3-8b"):
        fit(BOOK.get("llama-3-8b"), "L4", 24, 1, context=8193)


def test_utilization_and_engine_change_the_room_for_kv() -> None:
    recipe = BOOK.get("llama-3-8b")
    base = fit(recipe, "L4", 24, 1)
    more = fit(recipe, "L4", 24, 1, settings=FitSettings(gpu_memory_utilization=0.95))
    tgi = fit(recipe, "L4", 24, 1, settings=FitSettings(engine="tgi"))
    assert more.kv_cache_gb == pytest.approx(base.kv_cache_gb + 24 * 0.05, abs=0.01)
    assert tgi.kv_cache_gb == pytest.approx(base.kv_cache_gb - 0.5, abs=0.01)


def test_fp8_on_the_fly_halves_the_linear_weights() -> None:
    recipe = BOOK.get("qwen2.5-7b")
    fp8 = effective_architecture(recipe, "fp8")
    assert fp8.quantization == Quantization(method="fp8", bits=8)
    dense = recipe.architecture.embedding_parameters
    assert weight_bytes(fp8) == (recipe.architecture.parameters - dense) * 1 + dense * 2
    assert not fit(recipe, "T4", 16, 1).fits
    assert fit(recipe, "T4", 16, 1, settings=FitSettings(quantization="fp8")).fits


@pytest.mark.parametrize(("model", "quantization", "message"), [
    ("qwen2.5-7b", "awq", "needs a checkpoint quantized ahead of time"),
    ("qwen2.5-7b-awq", "fp8", "already awq-quantized"),
])
def test_impossible_quantizations(model: str, quantization: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        effective_architecture(BOOK.get(model), quantization)  # type: ignore[arg-type]


def test_table_covers_every_known_gpu_and_the_smallest_fitting_count() -> None:
    recipe = BOOK.get("llama-3.1-70b")
    rows = fit_table(recipe)
    assert len(rows) == 4 * len(known_gpus())
    best = {row.gpu: row for row in smallest_fitting(rows)}
    assert list(best) == [gpu.name for gpu in known_gpus()]
    assert (best["H100-SXM"].gpu_count, best["H100-SXM"].fits) == (4, True)
    assert (best["H200"].gpu_count, best["H200"].fits) == (2, True)
    assert (best["T4"].gpu_count, best["T4"].fits) == (8, False)  # the largest try, shown as not fitting


def test_memory_facts_for_models_show() -> None:
    facts = memory_facts(BOOK.get("llama-2-7b"))
    assert (facts.weights_gb, facts.kv_bytes_per_token, facts.kv_cache_gb_per_sequence) == (13.48, 524288, 2.147)
