"""Hugging Face Text Generation Inference (``text-generation-launcher``) in the official image.

TGI is archived upstream; gpuctl still serves it (users asked for it) and says so on every use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpuctl.errors import UsageError
from gpuctl.models.engine import EngineSpec
from gpuctl.models.recipe import EngineName

if TYPE_CHECKING:
    from gpuctl.engines import Resolved

NAME: EngineName = "tgi"
#: what every plan or fit with --engine tgi warns
NOTICE = ("TGI is archived: Hugging Face put it in maintenance mode on 2025-12-11 and archived its repository on "
          "2026-03-21, so it gets no more fixes; --engine vllm (the default) or --engine sglang are maintained")
IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.6"
#: the platforms IMAGE is published for (its release workflow builds linux/amd64 only, and v3.3.6's
#: Dockerfile copies x86_64 kernels)
IMAGE_ARCHS = ("x86_64",)
#: the CUDA IMAGE is built on (v3.3.6's Dockerfile: FROM nvidia/cuda:12.4.0-base-ubuntu22.04)
IMAGE_CUDA = "12.4"
#: the image's default (PORT=80 in its Dockerfile)
PORT = 80
HEALTH_PATH = "/health"
#: NCCL between shards needs shared memory; TGI's README runs with 1g
SHM_SIZE = "1g"
CACHE_MOUNT = "/data"
#: the launcher's --api-key also reads API_KEY; the router then wants "Authorization: Bearer KEY" on the
#: generation routes (/health, /info and /metrics stay open)
API_KEY_ENV = "API_KEY"
SUPPORTS_API_KEY = True
#: the router answers as the model id; it has no flag to rename it
SUPPORTS_SERVED_MODEL_NAME = False
PREQUANTIZED = frozenset({"awq", "gptq", "fp8"})
#: gpuctl method -> --quantize value for quantizing a 16-bit checkpoint while loading
ON_THE_FLY = {"fp8": "fp8", "eetq": "eetq", "bitsandbytes": "bitsandbytes"}
OWNED_FLAGS = frozenset({
    "--model-id", "--revision", "--hostname", "--port", "-p", "--num-shard", "--sharded",
    "--max-input-tokens", "--max-input-length", "--max-total-tokens", "--cuda-memory-fraction",
    "--dtype", "--quantize", "--api-key",
})
ENV = {"USAGE_STATS": "off"}
#: --dtype forces a 16-bit type and cannot be combined with quantization
DTYPES = frozenset({"float16", "bfloat16"})


def pickle_args(args: list[str]) -> list[str]:
    """TGI loads (by converting) pickled weights without any flag."""
    return list(args)


def build(resolved: Resolved) -> EngineSpec:
    recipe, options = resolved.recipe, resolved.options
    if resolved.context < 2:
        raise UsageError("TGI needs a context of at least 2 tokens (prompt plus one generated token)")
    args = [
        "--model-id", recipe.repo, "--revision", recipe.revision,
        "--hostname", "0.0.0.0", "--port", str(PORT),
        "--num-shard", str(options.gpu_count),
        # max input must stay below max total: a prompt of N-1 tokens still gets one token of answer
        "--max-input-tokens", str(resolved.context - 1), "--max-total-tokens", str(resolved.context),
        "--cuda-memory-fraction", f"{resolved.utilization:g}",
    ]
    if resolved.arch.quantization is None and resolved.arch.dtype in DTYPES:
        args += ["--dtype", resolved.arch.dtype]
    if resolved.quantize_flag:
        args += ["--quantize", resolved.quantize_flag]
    return EngineSpec(
        engine=NAME, image=IMAGE, args=[*args, *resolved.defaults.args], env={**ENV, **resolved.defaults.env},
        port=PORT, health_path=HEALTH_PATH, shm_size=SHM_SIZE, gpus=options.gpu_count, cache_mount=CACHE_MOUNT,
        public=options.public, supports_api_key=SUPPORTS_API_KEY, served_model_name=recipe.repo,
        max_model_len=resolved.context, tensor_parallel_size=options.gpu_count,
        quantization=resolved.arch.quantization.method if resolved.arch.quantization else None,
        gpu_memory_utilization=resolved.utilization,
        # TGI downloads *.safetensors, but converts PyTorch .bin weights when a repo has none
        safetensors_only=False,
    )
