"""``gpuctl init`` and gpuctl.yaml validation."""

from __future__ import annotations

import json

import yaml


def test_init_writes_validated_defaults(gpuctl, isolated):
    result = gpuctl("init", "--model", "llama-3-8b", "--gpu", "l40s", "--provider", "runpod",
                    "--engine", "vllm", "--region", "US-KS-2", "--ttl", "2h")
    assert result.exit_code == 0, result.stderr
    data = yaml.safe_load((isolated / "gpuctl.yaml").read_text())
    assert data == {"name": "project", "model": "llama-3-8b", "gpu": "L40S", "provider": "runpod",
                    "engine": "vllm", "region": "US-KS-2", "ttl": "2h"}
    assert "wrote" in result.stderr
    assert result.stdout == ""


def test_init_json(gpuctl):
    result = gpuctl("init", "--gpu", "a100", "--json")
    assert json.loads(result.stdout) == {"name": "project", "gpu": "A100"}  # the family


def test_init_refuses_to_overwrite(gpuctl):
    assert gpuctl("init").exit_code == 0
    result = gpuctl("init")
    assert result.exit_code == 2
    assert "--force" in result.stderr
    assert gpuctl("init", "--force", "--model", "mistral-7b").exit_code == 0


def test_init_rejects_bad_values(gpuctl, isolated):
    assert gpuctl("init", "--ttl", "soon").exit_code == 2
    bad_gpu = gpuctl("init", "--gpu", "h1000")
    assert bad_gpu.exit_code == 2
    assert "unknown GPU 'h1000'" in bad_gpu.stderr
    assert gpuctl("init", "--provider", "rundpod").exit_code == 2
    assert gpuctl("init", "--engine", "triton").exit_code == 2
    assert not (isolated / "gpuctl.yaml").exists()


def test_project_dir_option(gpuctl, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert gpuctl("--project-dir", str(other), "init", "--model", "qwen2.5-7b").exit_code == 0
    assert yaml.safe_load((other / "gpuctl.yaml").read_text())["model"] == "qwen2.5-7b"


def test_an_unknown_model_is_refused_with_close_names(gpuctl, isolated) -> None:
    """Issue 15: 'init --model nosuch' wrote it, and every later 'up' failed."""
    result = gpuctl("init", "--model", "qwen2.5-7", "--name", "x")
    assert result.exit_code == 3, result.stderr
    assert "unknown model 'qwen2.5-7'" in result.stderr and "qwen2.5-7b" in result.stderr
    assert not (isolated / "gpuctl.yaml").exists()
    assert gpuctl("init", "--model", "hf:Qwen/Qwen2.5-0.5B-Instruct").exit_code == 0
