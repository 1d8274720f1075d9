"""``gpuctl fit``."""

from __future__ import annotations

import json
from pathlib import Path

from gpuctl.catalog import known_gpus
from tests.unit.test_recipes_hub import QWEN_05B


def test_fit_lists_every_known_gpu_with_the_fewest_that_fit(gpuctl) -> None:
    result = gpuctl("fit", "llama-3.1-70b", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {row["gpu"]: row for row in json.loads(result.stdout)}
    assert list(rows) == [gpu.name for gpu in known_gpus()]
    h100 = rows["H100-SXM"]
    assert (h100["gpu_count"], h100["fits"], h100["weights_gb"], h100["context"]) == (4, True, 35.28, 8192)
    assert h100["max_context"] == 131072
    assert h100["concurrent_sequences"] == h100["kv_cache_tokens"] // 8192
    assert (rows["T4"]["gpu_count"], rows["T4"]["fits"]) == (8, False)


def test_fit_for_chosen_gpus_and_counts(gpuctl) -> None:
    result = gpuctl("fit", "qwen2.5-7b", "--gpu", "l40s", "--gpu", "4090", "--count", "1", "--count", "8", "--json")
    rows = [(r["gpu"], r["gpu_count"], r["fits"], r["reason"]) for r in json.loads(result.stdout)]
    assert rows == [("L40S", 1, True, None), ("L40S", 8, False, "8 GPUs do not divide 28 attention heads"),
                    ("RTX-4090", 1, True, None), ("RTX-4090", 8, False, "8 GPUs do not divide 28 attention heads")]


def test_fit_for_a_family_shows_each_sku(gpuctl) -> None:
    result = gpuctl("fit", "qwen2.5-7b", "--gpu", "h100", "--count", "1", "--json")
    assert [(r["gpu"], r["vram_gb"]) for r in json.loads(result.stdout)] == [
        ("H100-SXM", 80), ("H100-PCIE", 80), ("H100-NVL", 94)]


def test_fit_context_changes_the_answer(gpuctl) -> None:
    small = json.loads(gpuctl("fit", "llama-3.1-8b", "--gpu", "l4", "--count", "1", "--json").stdout)[0]
    large = json.loads(gpuctl("fit", "llama-3.1-8b", "--gpu", "l4", "--count", "1", "--context", "131072",
                              "--json").stdout)[0]
    assert small["fits"] and not large["fits"]
    assert small["max_context"] == large["max_context"] == small["kv_cache_tokens"]
    assert large["concurrent_sequences"] == 0


def test_fit_table_and_summary(gpuctl) -> None:
    result = gpuctl("fit", "llama-3-8b", "--gpu", "l4", "--all")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["GPU", "N", "VRAM", "FITS", "MAX"]
    assert [line.split()[1] for line in lines[2:]] == ["1", "2", "4", "8"]
    assert "llama-3-8b: weights 16.1 GB, KV cache 131.072 kB/token (1.07 GB per 8192-token sequence)" in result.stderr


def test_fit_with_quantization_and_engine(gpuctl) -> None:
    base = json.loads(gpuctl("fit", "qwen2.5-7b", "--gpu", "t4", "--count", "1", "--json").stdout)[0]
    fp8 = json.loads(gpuctl("fit", "qwen2.5-7b", "--gpu", "t4", "--count", "1", "--quantization", "fp8",
                            "--engine", "tgi", "--json").stdout)[0]
    assert not base["fits"] and fp8["fits"]
    assert fp8["engine"] == "tgi"


def test_fit_errors(gpuctl) -> None:
    assert gpuctl("fit", "llama-3-8b", "--context", "9000").exit_code == 2
    bad_gpu = gpuctl("fit", "llama-3-8b", "--gpu", "h1000")
    assert bad_gpu.exit_code == 2 and "unknown GPU 'h1000'" in bad_gpu.stderr
    assert gpuctl("fit", "llama-9").exit_code == 3
    assert gpuctl("fit", "qwen2.5-7b", "--quantization", "awq").exit_code == 2


def test_fit_an_ad_hoc_model(gpuctl, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(QWEN_05B), encoding="utf-8")
    result = gpuctl("fit", "hf:Qwen/Qwen2.5-0.5B-Instruct", "--hf-config", str(config), "--gpu", "t4", "--json")
    row = json.loads(result.stdout)[0]
    assert (row["model"], row["gpu_count"], row["fits"]) == ("hf:Qwen/Qwen2.5-0.5B-Instruct", 1, True)


def test_fit_looks_up_before_it_looks_out(gpuctl) -> None:
    result = gpuctl("fit", "llama-3.1-70b", "--gpu", "l4")
    assert result.exit_code == 0
    assert ("llama-3.1-70b fits no single L4 at 8192 tokens; the smallest machine that serves it is 8 x L4 "
            "(tensor parallel); or 4 x L4 in FP8 (--quantization fp8, which halves the weights)") in result.stderr
    quiet = gpuctl("fit", "llama-3-8b", "--gpu", "l40s")
    assert "fits no single" not in quiet.stderr


def test_fit_across_nodes_says_when_one_machine_would_do(gpuctl) -> None:
    result = gpuctl("fit", "llama-3.1-70b", "--gpu", "l4", "--nodes", "2", "--count", "4", "--json")
    (row,) = json.loads(result.stdout)
    assert (row["gpu_count"], row["fits"]) == (4, True), "2 nodes of 4 x L4 hold 70B"
    assert "look up before out: 8 x L4 in one machine serves llama-3.1-70b" in result.stderr
    single = json.loads(gpuctl("fit", "llama-3.1-70b", "--gpu", "l4", "--count", "4", "--json").stdout)
    assert single[0]["fits"] is False
