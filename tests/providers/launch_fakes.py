"""Offers, engine specs and launch requests for the provider lifecycle tests."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from gpuctl.models.engine import EngineSpec
from gpuctl.models.instance import LaunchRequest
from gpuctl.models.offer import Offer

# Recognisable secret values: a test fails if one shows up anywhere it should not.
HF_TOKEN = "hf_SECRET_7d1e9b3f5a2c4860"
ENGINE_KEY = "sk-SECRET-engine-2b8d6f0a4c"
SECRETS = {"HF_TOKEN": HF_TOKEN, "VLLM_API_KEY": ENGINE_KEY}
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICN+lJwsONkwrdsSnQsu1ydUkIuIg5oOC+Eslvmtt60T gpuctl@laptop"
TAGS = {"gpuctl": "managed", "gpuctl-project": "p-1a2b3c", "gpuctl-deployment": "qwen-l40s"}


def offer(provider: str, instance_type: str, region: str, *, gpu: str = "L40S", tier: str | None = None,
          price: float = 0.86, count: int = 1) -> Offer:
    return Offer(provider=provider, gpu=gpu, gpu_count=count, vram_gb=48, region=region, price_per_hour=price * count,
                 price_per_gpu_hour=price, instance_type=instance_type, tier=tier, source="live",
                 as_of=datetime.now(timezone.utc))


def vllm_engine(**changes: Any) -> EngineSpec:
    """A vLLM spec as gpuctl.engines builds it, with an API key and an HF token."""
    spec = EngineSpec(
        engine="vllm", image="vllm/vllm-openai:v0.11.0", cuda_version="12.8", entrypoint=["vllm", "serve"],
        args=["Qwen/Qwen2.5-7B-Instruct", "--served-model-name", "qwen 7b", "--port", "8000"],
        env={"VLLM_NO_USAGE_STATS": "1"}, secret_env=["HF_TOKEN", "VLLM_API_KEY"], port=8000, health_path="/health",
        shm_size="8g", gpus=1, cache_mount="/root/.cache/huggingface", public=True, supports_api_key=True,
        api_key_env="VLLM_API_KEY", served_model_name="qwen 7b", max_model_len=8192, tensor_parallel_size=1,
        gpu_memory_utilization=0.9, safetensors_only=True,
    )
    return spec.model_copy(update=changes)


def request(launch_offer: Offer, *, token: str = "gpuctl-0f1e2d3c4b5a69788796a5b4c3d2e1f0aabbccdd",
            name: str = "qwen-l40s", **changes: Any) -> LaunchRequest:
    values: dict[str, Any] = {"name": name, "offer": launch_offer, "idempotency_token": token, "tags": dict(TAGS),
                              "ssh_public_key": PUBLIC_KEY, "disk_gb": 80}
    return LaunchRequest(**(values | changes))
