"""The memory math across nodes: one pipeline stage per node, tensor parallel inside each."""

from __future__ import annotations

import math

from gpuctl.fit import (
    ENGINE_OVERHEAD_GB,
    fit,
    kv_bytes_per_token,
    pipeline_parallel_problem,
    stage_weight_bytes,
    weight_bytes,
)
from gpuctl.recipes import RecipeBook

BOOK = RecipeBook()


def test_one_stage_holds_every_weight() -> None:
    arch = BOOK.get("llama-3.1-70b").architecture
    assert stage_weight_bytes(arch, 1) == weight_bytes(arch)


def test_a_stage_holds_its_layers_and_one_vocabulary_matrix() -> None:
    arch = BOOK.get("llama-3.1-70b").architecture  # 80 layers, untied embeddings
    matrix = 128_256 * 8_192 * 2
    per_layer = (70_553_706_496 * 2 - 2 * matrix) / 80
    assert math.isclose(stage_weight_bytes(arch, 2), 40 * per_layer + matrix)
    # 80 layers over 3 stages: the heaviest has 27
    assert math.isclose(stage_weight_bytes(arch, 3), 27 * per_layer + matrix)


def test_a_stage_caches_only_its_layers() -> None:
    arch = BOOK.get("llama-3.1-70b").architecture  # 80 layers, 8 KV heads of 128
    assert kv_bytes_per_token(arch, 4, pipeline_parallel=2) == 2 * 40 * 2 * 128 * 2
    assert kv_bytes_per_token(arch, 4, pipeline_parallel=2) * 2 == kv_bytes_per_token(arch, 4)


def test_seventy_b_fits_two_nodes_of_four_l4_but_not_one() -> None:
    recipe = BOOK.get("llama-3.1-70b")
    one, two = fit(recipe, "L4", 24, 4), fit(recipe, "L4", 24, 4, nodes=2)
    assert not one.fits
    assert two.fits
    weights = round(stage_weight_bytes(recipe.architecture, 2) / 4 / 1e9, 2)
    usable = 24 * 0.9 - ENGINE_OVERHEAD_GB["vllm"]
    assert (two.weights_gb, two.gpu_count, two.kv_bytes_per_token) == (weights, 4, 40_960)
    assert two.kv_cache_tokens == int((usable - weights) * 1e9 // 40_960)


def test_more_nodes_than_layers_cannot_be_split() -> None:
    arch = BOOK.get("llama-3-8b").architecture  # 32 layers
    assert pipeline_parallel_problem(arch, 32) is None
    assert pipeline_parallel_problem(arch, 33) == "33 nodes exceed the 32 layers (one pipeline stage per node)"
    row = fit(BOOK.get("llama-3-8b"), "H100-SXM", 80, 1, nodes=33)
    assert not row.fits and row.kv_cache_tokens == 0
