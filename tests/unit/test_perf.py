"""The performance model's first principles, one at a time, and the API later commands plug into."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gpuctl.catalog import gpu_spec
from gpuctl.errors import UsageError
from gpuctl.fit import FitSettings, fit, weight_bytes
from gpuctl.perf.cost import Slo, meets, usd_per_1m_output_tokens
from gpuctl.perf.engines import PROFILES
from gpuctl.perf.estimate import Estimate, Workload, estimate
from gpuctl.perf.roofline import Instance, active_parameters, weights_read_bytes
from gpuctl.recipes import resolve_model
from gpuctl.recipes.hub import architecture_from_config

LLAMA_8B = resolve_model("llama-3.1-8b", None)
LLAMA_70B = resolve_model("llama-3.1-70b", None)
MIXTRAL = resolve_model("mixtral-8x7b", None)


def one(recipe=LLAMA_8B, gpu="H100-SXM", count=1, **workload) -> Estimate:
    return estimate(recipe, gpu, count, workload=Workload(**workload))


def test_a_single_stream_is_bound_by_reading_the_weights() -> None:
    est = one(input_tokens=128, output_tokens=128, concurrency=1)
    vllm = PROFILES["vllm"]
    floor_ms = weight_bytes(LLAMA_8B.architecture) / (3350e9 * vllm.bandwidth_efficiency) * 1000
    assert est.bound == "memory"
    assert floor_ms < est.itl_ms < floor_ms + 2  # plus the KV cache and the step's fixed cost
    assert est.output_tokens_per_s == pytest.approx(1000 / est.itl_ms, rel=0.1)


def test_batching_trades_latency_for_throughput_until_compute_binds() -> None:
    loads = [estimate(LLAMA_8B, "H100-SXM", engine="trtllm",
                      workload=Workload(input_tokens=128, output_tokens=128, concurrency=c)) for c in (1, 8, 64, 1024)]
    rates = [e.output_tokens_per_s for e in loads]
    assert rates == sorted(rates) and rates[-1] > 20 * rates[0]
    assert [e.itl_ms for e in loads] == sorted(e.itl_ms for e in loads)
    assert (loads[0].bound, loads[-1].bound) == ("memory", "compute")


def test_more_bandwidth_means_faster_decode_on_the_same_compute() -> None:
    h100, h200 = one(gpu="H100-SXM"), one(gpu="H200")  # same dense TFLOPS, 3.35 vs 4.8 TB/s
    assert h200.itl_ms < h100.itl_ms
    assert 1.3 < h100.itl_ms / h200.itl_ms < 1.45


def test_the_sku_matters_pcie_vs_sxm() -> None:
    sxm, pcie = one(gpu="H100-SXM", count=2), one(gpu="H100-PCIE", count=2)
    assert pcie.itl_ms > 1.4 * sxm.itl_ms  # 2.0 vs 3.35 TB/s, and PCIe all-reduces


def test_prefill_is_compute_bound_and_grows_with_the_prompt() -> None:
    short, long = one(input_tokens=256), one(input_tokens=8192)
    assert long.ttft_ms > 25 * short.ttft_ms
    l40s, h100 = one(gpu="L40S", input_tokens=8192), one(gpu="H100-SXM", input_tokens=8192)
    assert 2.2 < l40s.ttft_ms / h100.ttft_ms < 3.2  # 362 vs 989.5 dense BF16 TFLOPS


def test_fp8_runs_fp8_matmuls_only_where_the_gpu_has_fp8() -> None:
    work = Workload(input_tokens=4096, output_tokens=64)
    h100_bf16 = estimate(LLAMA_8B, "H100-SXM", workload=work)
    h100_fp8 = estimate(LLAMA_8B, "H100-SXM", quantization="fp8", workload=work)
    a100_fp8 = estimate(LLAMA_8B, "A100-80GB-SXM", quantization="fp8", workload=work)
    assert (h100_fp8.inputs.compute, a100_fp8.inputs.compute, h100_bf16.inputs.compute) == ("fp8", "bf16", "bf16")
    assert h100_fp8.ttft_ms < 0.6 * h100_bf16.ttft_ms
    assert h100_fp8.itl_ms < 0.65 * h100_bf16.itl_ms  # half the weight bytes to read
    a100_bf16 = estimate(LLAMA_8B, "A100-80GB-SXM", workload=work)
    assert a100_fp8.ttft_ms == pytest.approx(a100_bf16.ttft_ms, rel=0.05)  # weight-only FP8: same matmuls


def test_a_mixture_of_experts_reads_only_the_routed_experts() -> None:
    arch = MIXTRAL.architecture
    assert active_parameters(arch) == pytest.approx(12.9e9, rel=0.02)  # 2 of 8 experts per token
    instance_bytes = weight_bytes(arch)
    instance = Instance(arch=arch, gpu=gpu_spec("H100-SXM"), tensor_parallel=2, profile=PROFILES["vllm"],
                        fp8_compute=False, kv_value_bytes=2)
    one_token, many = weights_read_bytes(instance, 1), weights_read_bytes(instance, 512)
    assert one_token < 0.35 * instance_bytes / 2
    assert many == pytest.approx(instance_bytes / 2, rel=0.001)
    every_weight_ms = instance_bytes / 2 / (3350e9 * PROFILES["vllm"].bandwidth_efficiency) * 1000
    assert one(MIXTRAL, count=2, concurrency=1).itl_ms < 0.5 * every_weight_ms


def test_tensor_parallelism_splits_the_work_and_pays_all_reduces() -> None:
    one_gpu, two = one(LLAMA_8B, count=1, concurrency=1), one(LLAMA_8B, count=2, concurrency=1)
    assert two.itl_ms < one_gpu.itl_ms
    assert two.itl_ms > one_gpu.itl_ms / 2  # the all-reduces and fixed costs do not shrink
    nvlink, pcie = one(LLAMA_8B, "A100-80GB-SXM", count=4), one(LLAMA_8B, "A100-80GB-PCIE", count=4)
    assert pcie.itl_ms > nvlink.itl_ms


def test_max_concurrency_is_what_the_kv_cache_holds() -> None:
    est = one(LLAMA_70B, "A100-80GB-SXM", count=4, input_tokens=2048, output_tokens=2048, concurrency="max")
    row = fit(LLAMA_70B, "A100-80GB-SXM", 80, 4, 4096, FitSettings(gpu_memory_utilization=0.9))
    assert est.max_concurrency == row.kv_cache_tokens // 4096
    assert est.inputs.concurrency == est.max_concurrency
    fp8_kv = estimate(LLAMA_70B, "A100-80GB-SXM", 4, kv_cache_dtype="fp8",
                      workload=Workload(input_tokens=2048, output_tokens=2048, concurrency="max"))
    assert fp8_kv.max_concurrency == pytest.approx(2 * est.max_concurrency, abs=1)


def test_the_engine_caps_the_batch_and_the_rest_queue() -> None:
    capped = one(input_tokens=128, output_tokens=128, concurrency="max")
    assert capped.max_concurrency == PROFILES["vllm"].max_batch
    queued = one(input_tokens=128, output_tokens=128, concurrency=2 * capped.max_concurrency)
    assert queued.output_tokens_per_s == capped.output_tokens_per_s
    assert queued.ttft_ms > 10 * capped.ttft_ms


def test_a_model_that_does_not_fit_has_no_estimate() -> None:
    with pytest.raises(UsageError, match="does not fit on 1 x L4"):
        one(LLAMA_70B, "L4")
    with pytest.raises(UsageError, match="attention heads"):
        one(resolve_model("qwen2.5-7b", None), "H100-SXM", count=8)


def test_the_estimate_says_what_it_assumed_and_dumps_as_json() -> None:
    est = estimate(LLAMA_8B, "l40s", engine="sglang", workload=Workload(input_tokens=1000, output_tokens=200,
                                                                        concurrency=16))
    doc = json.loads(est.model_dump_json())
    assert {"output_tokens_per_s", "ttft_ms", "itl_ms", "max_concurrency", "basis", "runs", "inputs"} <= set(doc)
    assert (doc["basis"], doc["runs"]) == ("model", None)
    assert doc["inputs"]["gpu"] == "L40S"  # an alias resolves to the SKU
    assert (doc["inputs"]["engine"], doc["inputs"]["concurrency"], doc["inputs"]["weights"]) == (
        "sglang", 16, "bfloat16")
    assert doc["inputs"]["efficiency"]["calibrated"] is False


def test_cost_per_million_tokens_and_latency_targets() -> None:
    est = one(input_tokens=1000, output_tokens=200, concurrency=32)
    price = 2.69
    assert usd_per_1m_output_tokens(est, price) == pytest.approx(price / est.output_tokens_per_s / 3600 * 1e6,
                                                                  rel=1e-3)
    assert meets(est, Slo())
    assert meets(est, Slo(ttft_ms=est.ttft_ms, itl_ms=est.itl_ms))
    assert not meets(est, Slo(itl_ms=est.itl_ms / 2))


def test_cheapest_hour_is_not_the_cheapest_token() -> None:
    # the question the model exists for: an L40S hour is 3.4x cheaper than an H100 hour, and at a
    # throughput load the H100's token is still not 3.4x dearer
    work = Workload(input_tokens=1000, output_tokens=500, concurrency="max")
    l40s = usd_per_1m_output_tokens(estimate(LLAMA_8B, "L40S", workload=work), 0.79)
    h100 = usd_per_1m_output_tokens(estimate(LLAMA_8B, "H100-SXM", workload=work), 2.69)
    assert l40s is not None and h100 is not None and h100 < 3.4 * l40s


def test_hub_configs_give_the_experts_per_token() -> None:
    config = {"num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "hidden_size": 4096,
              "intermediate_size": 14336, "vocab_size": 32000, "num_local_experts": 8, "num_experts_per_tok": 2,
              "max_position_embeddings": 32768, "torch_dtype": "bfloat16"}
    arch, _ = architecture_from_config(config, "config.json")
    assert (arch.experts, arch.experts_per_token) == (8, 2)


def test_the_model_imports_nothing_heavy() -> None:
    code = ("import sys; import gpuctl.perf.estimate, gpuctl.perf.cost; "
            "print(sorted(m for m in ('httpx', 'boto3', 'paramiko', 'docker', 'rich', 'click', 'numpy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
