"""What ``gpuctl export k8s`` exports: from a model and flags, or from what a deployment runs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gpuctl.errors import UsageError
from gpuctl.export.names import base_name, check_base_name, check_namespace
from gpuctl.models.deployment import Deployment
from gpuctl.models.recipe import EngineName, QuantMethod, Recipe


class ExportFlags(BaseModel):
    """The flags as typed; None means 'not given' (a deployment's own value, else the default)."""

    model_config = ConfigDict(extra="forbid")

    gpu: str | None = Field(default=None, description="canonical GPU or family name")
    count: int | None = Field(default=None, ge=1)
    nodes: int | None = Field(default=None, ge=1)
    replicas: int = Field(default=1, ge=1)
    context: int | None = Field(default=None, ge=1)
    engine: EngineName | None = None
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    quantization: QuantMethod | None = None
    hf_config: str | None = None
    name: str | None = None
    namespace: str | None = None
    storage_class: str | None = None
    kserve: bool = False


class K8sRequest(BaseModel):
    """Everything the manifests are built from, after a deployment's record or the defaults filled the gaps."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="recipe name or hf:ORG/NAME")
    hf_config: str | None = None
    name: str = Field(description="base of every object name (RFC 1035 label)")
    engine: EngineName = "vllm"
    gpu: str = Field(description="canonical GPU or family name the pods run on")
    gpu_count: int | None = Field(default=None, ge=1, description="GPUs per pod; None: the fewest that fit")
    nodes: int = Field(default=1, ge=1, description="nodes per replica (vLLM multi-node)")
    replicas: int = Field(default=1, ge=1)
    max_model_len: int | None = Field(default=None, ge=1)
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    quantization: QuantMethod | None = None
    served_model_name: str | None = None
    allow_pickle: bool = Field(default=False, description="load pickled weights, as a deployment allowed to")
    namespace: str | None = None
    storage_class: str | None = None
    kserve: bool = False


_NO_GPU_HINT = "pass --gpu with the GPU of your cluster's nodes ('gpuctl fit MODEL' shows which fit)"


def request_for_model(model: str, flags: ExportFlags, *, default_gpu: str | None,
                      default_engine: EngineName | None) -> K8sRequest:
    """The request for MODEL: the flags, then the project's defaults (``gpu:``, ``engine:`` of gpuctl.yaml)."""
    gpu = flags.gpu or default_gpu
    if gpu is None:
        raise UsageError(f"no GPU given for {model}", _NO_GPU_HINT)
    return K8sRequest(
        model=model, hf_config=flags.hf_config, name=_name(flags, model),
        engine=flags.engine or default_engine or "vllm", gpu=gpu, gpu_count=flags.count, nodes=flags.nodes or 1,
        replicas=flags.replicas, max_model_len=flags.context,
        gpu_memory_utilization=flags.gpu_memory_utilization, quantization=flags.quantization,
        namespace=_namespace(flags), storage_class=flags.storage_class, kserve=flags.kserve,
    )


def request_for_deployment(deployment: Deployment, recipe: Recipe, flags: ExportFlags) -> tuple[K8sRequest, list[str]]:
    """What ``deployment`` runs (model, engine, GPU, count, engine flags), flags overriding; and notes on gaps."""
    notes: list[str] = []
    spec = deployment.engine_spec
    engine = flags.engine or deployment.engine or "vllm"
    if spec is None:
        notes.append(f"the record of {deployment.name} predates gpuctl keeping its engine flags: context, memory "
                     "utilization and quantization are the recipe's defaults unless given")
    same_engine = spec is not None and spec.engine == engine
    served = spec.served_model_name if same_engine and spec is not None else deployment.served_model_name
    gpu = flags.gpu or deployment.gpu
    if gpu is None:
        raise UsageError(f"the record of {deployment.name} names no GPU", _NO_GPU_HINT)
    return K8sRequest(
        model=deployment.model, hf_config=flags.hf_config, name=_name(flags, deployment.name), engine=engine,  # type: ignore[arg-type]
        gpu=gpu, gpu_count=flags.count or (deployment.gpu_count if flags.gpu is None else None),
        nodes=flags.nodes or 1, replicas=flags.replicas,
        max_model_len=flags.context or (spec.max_model_len if spec else None),
        gpu_memory_utilization=flags.gpu_memory_utilization or (spec.gpu_memory_utilization if same_engine and spec
                                                                 else None),
        quantization=flags.quantization or (spec.quantization if spec else None),  # type: ignore[arg-type]
        # the default (the repo id) is left to the engine: TGI cannot rename the model at all
        served_model_name=served if served and served != recipe.repo else None,
        allow_pickle=same_engine and spec is not None and not spec.safetensors_only,
        namespace=_namespace(flags), storage_class=flags.storage_class, kserve=flags.kserve,
    ), notes


def _name(flags: ExportFlags, source: str) -> str:
    return check_base_name(flags.name) if flags.name else base_name(source)


def _namespace(flags: ExportFlags) -> str | None:
    return check_namespace(flags.namespace) if flags.namespace else None
