"""``gpuctl up --dry-run``: the plan, offline (snapshot prices) and against a live stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.standins.fixtures import runpod_api  # noqa: F401 (fixture)


def plan(gpuctl, *args: str, env: dict[str, str] | None = None) -> dict:
    result = gpuctl("up", *args, "--dry-run", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_a_dry_run_writes_no_state(gpuctl, isolated: Path) -> None:
    plan(gpuctl, "llama-3-8b")
    assert not (isolated / ".gpuctl").exists()


def test_dry_run_works_offline_with_snapshot_prices_and_picks_the_cheapest_fit(gpuctl) -> None:
    doc = plan(gpuctl, "llama-3.1-70b", "--ttl", "3h")
    fitting = json.loads(gpuctl("prices", "--for", "llama-3.1-70b", "--json").stdout)
    assert fitting, "the snapshot has offers that fit a 70B model"
    assert doc["offer"]["source"] == "snapshot"
    assert doc["offer"]["price_per_hour"] == min(offer["price_per_hour"] for offer in fitting)
    assert doc["offer"]["id"] in {offer["id"] for offer in fitting}
    assert doc["fit"]["fits"] is True and doc["fit"]["gpu_count"] == doc["offer"]["gpu_count"]
    assert doc["estimated_cost_usd"] == round(doc["offer"]["price_per_hour"] * 3, 2)
    assert doc["ttl_seconds"] == 10800
    engine = doc["engine"]
    assert engine["tensor_parallel_size"] == doc["offer"]["gpu_count"]
    assert engine["image"] == "vllm/vllm-openai:v0.11.0"
    assert doc["command"].startswith("docker run --detach --name gpuctl-engine --gpus all")
    assert f"--tensor-parallel-size {doc['offer']['gpu_count']}" in doc["command"]
    assert "--load-format safetensors" in doc["command"]
    assert doc["model"] == {"name": "llama-3.1-70b", "repo": "meta-llama/Llama-3.1-70B-Instruct",
                            "revision": "1605565b47bb9346c5515c34102e054115b4f98b", "pinned": True,
                            "gated": True, "license": "llama3.1", "origin": "builtin"}
    assert doc["hf_token"] == "missing"
    assert doc["environment"]["HF_TOKEN"] == "<secret: your Hugging Face token>"
    assert any("set HF_TOKEN" in note for note in doc["warnings"])
    assert 0 < doc["offers_fitting"] <= doc["offers_considered"]


def test_secrets_are_never_printed(gpuctl) -> None:
    token = "hf_VerySecretValue_0123456789"
    result = gpuctl("up", "llama-3-8b", "--public", "--dry-run", "--json", env={"HF_TOKEN": token})
    assert result.exit_code == 0
    assert token not in result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["hf_token"] == "present"
    assert doc["engine"]["secret_env"] == ["HF_TOKEN", "VLLM_API_KEY"]
    assert doc["environment"]["VLLM_API_KEY"] == "<secret: generated at launch>"
    assert "--env-file /etc/gpuctl/engine.env" in doc["command"]
    assert "--publish 0.0.0.0:8000:8000" in doc["command"]
    assert "--api-key" not in doc["command"]
    human = gpuctl("up", "llama-3-8b", "--public", "--dry-run", env={"HF_TOKEN": token})
    assert token not in human.stdout + human.stderr


def test_human_plan(gpuctl) -> None:
    result = gpuctl("up", "phi-3-mini", "--gpu", "l40s", "--engine", "tgi", "--dry-run")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "plan for phi-3-mini (microsoft/Phi-3-mini-4k-instruct @ 0a67737cc96d)"
    assert lines[1].startswith("  offer    ") and " x L40S " in lines[1]
    # offline, the cheapest L40S is a RunPod pod: its proxy is reachable by anyone, so 'up' plans it public
    # with an API key, and the dry run shows that same plan
    assert lines[1].startswith("  offer    runpod ")
    assert "public, API key required" in result.stdout
    command = lines[lines.index("command:") + 1].strip()
    assert command.startswith("docker run") and "ghcr.io/huggingface/text-generation-inference:3.3.6" in command
    assert "--num-shard 1" in command and "--max-total-tokens 4096" in command
    assert "no --ttl" in result.stderr


def test_gpu_count_and_options_reach_the_engine(gpuctl) -> None:
    doc = plan(gpuctl, "qwen2.5-7b", "--gpu", "h100", "--max-model-len", "16384", "--gpu-memory-utilization",
               "0.8", "--quantization", "fp8", "--served-model-name", "chat")
    assert doc["offer"]["gpu"] == "H100-SXM"
    args = doc["engine"]["args"]
    for pair in (["--max-model-len", "16384"], ["--gpu-memory-utilization", "0.8"], ["--quantization", "fp8"],
                 ["--served-model-name", "chat"]):
        assert pair[1] == args[args.index(pair[0]) + 1]
    assert doc["fit"]["gpu_memory_utilization"] == 0.8 and doc["fit"]["context"] == 16384


@pytest.mark.parametrize(("args", "code", "message"), [
    (("llama-3.1-70b", "--gpu", "l40s", "--count", "1"), 2, "does not fit on 1 x L40S"),
    (("llama-3-8b", "--engine", "tgi", "--served-model-name", "x"), 2, "tgi cannot rename"),
    (("qwen2.5-7b", "--quantization", "awq"), 2, "needs a checkpoint quantized ahead of time"),
    (("llama-3-8b", "--max-model-len", "10000"), 2, "above the maximum"),
    (("llama-3-8b", "--max-price", "0.01"), 5, "above --max-price"),
    (("llama-3-8b", "--gpu", "h100", "--spot"), 5, "no available offer matches H100 (spot)"),
    (("llama-3-8b", "--provider", "runpd"), 2, "unknown provider 'runpd'"),
    (("llama-3-8b", "--ttl", "soon"), 2, "'soon' is not a duration"),
    (("llama-3-8b", "--gpu", "h1000"), 2, "unknown GPU"),
    (("lama-3-8b",), 3, "did you mean llama-3-8b"),
    ((), 2, "no model given"),
])
def test_refusals(gpuctl, args: tuple[str, ...], code: int, message: str) -> None:
    result = gpuctl("up", *args, "--dry-run")
    assert result.exit_code == code, result.stderr
    assert message in result.stderr
    assert result.stdout == ""


def test_project_defaults_fill_in_the_flags(gpuctl, isolated: Path) -> None:
    (isolated / "gpuctl.yaml").write_text("model: mistral-7b\nengine: tgi\nttl: 90m\ngpu: a100\nprovider: lambda\n",
                                          encoding="utf-8")
    doc = plan(gpuctl)
    assert (doc["model"]["name"], doc["engine"]["engine"], doc["ttl_seconds"]) == ("mistral-7b", "tgi", 5400)
    # a100 means every A100: the cheapest that fits is Lambda's 1x 40 GB
    assert (doc["offer"]["gpu"], doc["offer"]["provider"]) == ("A100-40GB-SXM", "lambda")
    assert plan(gpuctl, "phi-3-mini", "--engine", "vllm", "--provider", "auto")["engine"]["engine"] == "vllm"


def test_live_prices_are_used_when_a_provider_answers(gpuctl, runpod_api) -> None:  # noqa: F811
    doc = plan(gpuctl, "llama-3-8b", "--provider", "runpod")
    assert doc["offer"]["provider"] == "runpod"
    assert doc["offer"]["source"] == "live"
    assert not any("snapshot" in note for note in doc["warnings"])
    assert any(request.path.startswith("/v2/catalog/gpus") for request in runpod_api.requests)


def test_the_plan_looks_up_before_it_looks_out(gpuctl) -> None:
    named = gpuctl("up", "llama-3.1-70b", "--gpu", "l4", "--count", "4", "--dry-run")
    assert named.exit_code == 2
    assert ("look up before out: 8 x L4 in one machine (--count 8) or 4 x L4 in FP8 (--quantization fp8: the GPU "
            "computes in FP8, the weights halve) serves it") in named.stderr
    planned = plan(gpuctl, "llama-3.1-70b", "--gpu", "h100-sxm")
    assert planned["offer"]["gpu_count"] > 1
    assert (f"llama-3.1-70b fits no single H100-SXM: planned on one machine with {planned['offer']['gpu_count']} x "
            "H100-SXM (tensor parallel) before any multi-node plan") in planned["warnings"]
    on_t4 = gpuctl("up", "llama-3.1-70b", "--gpu", "t4", "--dry-run")
    assert on_t4.exit_code == 5
    assert "no single machine holds it: --nodes 2 spreads it over 2 nodes of 8 x T4" in on_t4.stderr
