"""SGLang's OpenAI-compatible server (``python3 -m sglang.launch_server``) in the official image.

Flags as in SGLang's ``ServerArgs`` (``python/sglang/srt/server_args.py``); the server answers the
OpenAI routes under ``/v1``, ``GET /health`` and, with ``--enable-metrics``, Prometheus ``/metrics``.
Its API key exists only as the ``--api-key`` flag, so gpuctl hands it over as a secret flag: the host
layer appends it inside the ``python3 -m`` process (never in a command line, inspect output or file).
With a key set, every route but ``/health`` and ``/metrics`` wants ``Authorization: Bearer KEY``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpuctl.models.engine import EngineSpec
from gpuctl.models.recipe import EngineName

if TYPE_CHECKING:
    from gpuctl.engines import Resolved

NAME: EngineName = "sglang"
#: the last image built on CUDA 12 (12.9): later tags need a CUDA 13 driver, which many rented hosts lack.
#: FlashInfer, its default attention backend, needs compute capability 7.5 or newer.
IMAGE = "lmsysorg/sglang:v0.5.19-cu129"
#: the platforms IMAGE is published for: SGLang's arm64 (Grace) builds are separate tags, not IMAGE
IMAGE_ARCHS = ("x86_64",)
IMAGE_CUDA = "12.9"
ENTRYPOINT = ["python3", "-m", "sglang.launch_server"]
#: SGLang's default port
PORT = 30000
HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"
#: tensor-parallel workers share tensors through /dev/shm; SGLang's install guide runs with 32g
SHM_SIZE = "32g"
CACHE_MOUNT = "/root/.cache/huggingface"
#: the name of the secret holding the key; it reaches the server only as ``--api-key`` (see above)
API_KEY_ENV = "SGLANG_API_KEY"
API_KEY_FLAG = "--api-key"
SUPPORTS_API_KEY = True
SUPPORTS_SERVED_MODEL_NAME = True
#: pre-quantized checkpoints SGLang detects from config.json
PREQUANTIZED = frozenset({"awq", "gptq", "fp8"})
#: gpuctl method -> --quantization value for quantizing a 16-bit checkpoint while loading
ON_THE_FLY = {"fp8": "fp8"}
OWNED_FLAGS = frozenset({
    "--model-path", "--model", "--revision", "--served-model-name", "--host", "--port", "--context-length",
    "--tp-size", "--tensor-parallel-size", "--tp", "--mem-fraction-static", "--load-format", "--dtype",
    "--quantization", "--api-key", "--enable-metrics",
})
ENV: dict[str, str] = {}


def pickle_args(args: list[str]) -> list[str]:
    """``--load-format pt`` instead of safetensors: SGLang then loads .bin/.pt checkpoints."""
    at = args.index("--load-format")
    return [*args[:at + 1], "pt", *args[at + 2:]]


def build(resolved: Resolved) -> EngineSpec:
    recipe, options = resolved.recipe, resolved.options
    args = [
        "--model-path", recipe.repo, "--revision", recipe.revision,
        "--served-model-name", resolved.served_model_name,
        "--host", "0.0.0.0", "--port", str(PORT),
        "--context-length", str(resolved.context),
        "--tp-size", str(options.gpu_count),
        # weights and KV cache only: SGLang keeps the rest of the GPU for activations and CUDA graphs
        "--mem-fraction-static", f"{resolved.utilization:g}",
        # never unpickle weights: safetensors files only
        "--load-format", "safetensors",
        "--dtype", resolved.arch.dtype,
        "--enable-metrics",
    ]
    if resolved.quantize_flag:
        args += ["--quantization", resolved.quantize_flag]
    return EngineSpec(
        engine=NAME, image=IMAGE, entrypoint=list(ENTRYPOINT), args=[*args, *resolved.defaults.args],
        env={**ENV, **resolved.defaults.env}, port=PORT, health_path=HEALTH_PATH, shm_size=SHM_SIZE,
        gpus=options.gpu_count, cache_mount=CACHE_MOUNT, public=options.public,
        supports_api_key=SUPPORTS_API_KEY, served_model_name=resolved.served_model_name,
        max_model_len=resolved.context, tensor_parallel_size=options.gpu_count,
        quantization=resolved.arch.quantization.method if resolved.arch.quantization else None,
        gpu_memory_utilization=resolved.utilization, safetensors_only=True,
        secret_flags={API_KEY_FLAG: API_KEY_ENV} if options.api_key else {},
    )
