"""vLLM's OpenAI-compatible server (``vllm serve``) in the official image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gpuctl.models.engine import EngineSpec
from gpuctl.models.recipe import EngineName

if TYPE_CHECKING:
    from gpuctl.engines import Resolved

NAME: EngineName = "vllm"
IMAGE = "vllm/vllm-openai:v0.11.0"
#: the first release whose ``vllm serve`` spans nodes by itself (``--nnodes``, ``--node-rank``,
#: ``--master-addr``, ``--headless``: multiprocessing across nodes, no Ray); IMAGE predates it
MULTI_NODE_IMAGE = "vllm/vllm-openai:v0.11.1"
#: the platforms IMAGE is published for: vLLM's bare release tags are linux/amd64 images (its Docker Hub
#: repository had no arm64 build when v0.11.0 came out, vllm-project/vllm issue #22206; later arm64 builds
#: are separate tags, e.g. v0.21.0-ubuntu2404), so a Grace (GH200) machine cannot run it
IMAGE_ARCHS = ("x86_64",)
#: the CUDA IMAGE is built on (vLLM's docker/Dockerfile, ARG CUDA_VERSION=12.8.1 in the v0.9 to v0.11 releases):
#: the host's driver must run it
IMAGE_CUDA = "12.8"
PORT = 8000
HEALTH_PATH = "/health"
#: tensor-parallel workers exchange tensors through shared memory
SHM_SIZE = "8g"
CACHE_MOUNT = "/root/.cache/huggingface"
#: read by the server when --api-key is absent, which keeps the key out of the process list
API_KEY_ENV = "VLLM_API_KEY"
SUPPORTS_API_KEY = True
SUPPORTS_SERVED_MODEL_NAME = True
#: pre-quantized checkpoints vLLM detects from config.json (it then picks the Marlin kernels itself)
PREQUANTIZED = frozenset({"awq", "gptq", "fp8"})
#: gpuctl method -> --quantization value for quantizing a 16-bit checkpoint while loading
ON_THE_FLY = {"fp8": "fp8"}
OWNED_FLAGS = frozenset({
    "--model", "--revision", "--tokenizer-revision", "--served-model-name", "--host", "--port",
    "--max-model-len", "--tensor-parallel-size", "-tp", "--gpu-memory-utilization", "--load-format",
    "--dtype", "--quantization", "-q", "--api-key",
    # multi-node mode (node_args)
    "--pipeline-parallel-size", "-pp", "--nnodes", "-n", "--node-rank", "-r", "--master-addr", "--master-port",
    "--headless", "--distributed-executor-backend",
})
ENV = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}


def pickle_args(args: list[str]) -> list[str]:
    """``--load-format pt`` instead of safetensors: vLLM then loads .bin/.pt checkpoints."""
    at = args.index("--load-format")
    return [*args[:at + 1], "pt", *args[at + 2:]]


def node_args(args: Sequence[str], *, nodes: int, node_rank: int | str, master_addr: str,
              master_port: int | None = None) -> list[str]:
    """The ``vllm serve`` arguments of one node of a ``nodes``-node engine, from the single-node ``args``.

    vLLM's own multi-node mode: every node runs the same command with its rank; rank 0 serves the
    API and the others join it ``--headless``. The layers are split into one pipeline stage per node
    and each stage is tensor parallel over its node's GPUs (``--tensor-parallel-size`` in ``args``).
    ``master_addr`` is where rank 0 listens for the others: on rank 0 itself it must be its own IP
    address (it binds sockets there; a DNS name cannot be bound), elsewhere any name resolving to it.
    ``node_rank`` and ``master_addr`` may be placeholders a runtime expands (Kubernetes: ``$(VAR)``).
    """
    if nodes < 2:
        raise ValueError("node_args is for two nodes or more")
    extra = ["--pipeline-parallel-size", str(nodes), "--nnodes", str(nodes), "--node-rank", str(node_rank),
             "--master-addr", master_addr]
    if master_port is not None:
        extra += ["--master-port", str(master_port)]
    if node_rank != 0:
        extra.append("--headless")
    return [*args, *extra]


def build(resolved: Resolved) -> EngineSpec:
    recipe, options = resolved.recipe, resolved.options
    args = [
        recipe.repo, "--revision", recipe.revision, "--tokenizer-revision", recipe.revision,
        "--served-model-name", resolved.served_model_name,
        "--host", "0.0.0.0", "--port", str(PORT),
        "--max-model-len", str(resolved.context),
        "--tensor-parallel-size", str(options.gpu_count),
        "--gpu-memory-utilization", f"{resolved.utilization:g}",
        # never unpickle weights: safetensors files only
        "--load-format", "safetensors",
        "--dtype", resolved.arch.dtype,
    ]
    if resolved.quantize_flag:
        args += ["--quantization", resolved.quantize_flag]
    return EngineSpec(
        engine=NAME, image=IMAGE, entrypoint=["vllm", "serve"], args=[*args, *resolved.defaults.args],
        env={**ENV, **resolved.defaults.env}, port=PORT, health_path=HEALTH_PATH, shm_size=SHM_SIZE,
        gpus=options.gpu_count, cache_mount=CACHE_MOUNT, public=options.public,
        supports_api_key=SUPPORTS_API_KEY, served_model_name=resolved.served_model_name,
        max_model_len=resolved.context, tensor_parallel_size=options.gpu_count,
        quantization=resolved.arch.quantization.method if resolved.arch.quantization else None,
        gpu_memory_utilization=resolved.utilization, safetensors_only=True,
    )
