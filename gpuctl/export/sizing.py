"""How big each pod is: GPUs from the memory math (``gpuctl.fit``), then RAM, CPUs, cache and start-up time.

The GPU count is the fewest of 1, 2, 4, 8 per pod (per node with several nodes) on which the model
fits at the context asked for, on the smallest SKU the GPU name covers. Everything else follows
from it or from the checkpoint's size; the rules are constants here, with their reasons.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from gpuctl.catalog import GpuSpec, gpu_names, gpu_spec
from gpuctl.errors import UsageError
from gpuctl.fit import DEFAULT_GPU_COUNTS, GB, FitRow, FitSettings, fit, weight_bytes
from gpuctl.models.recipe import Recipe

#: host RAM a pod requests besides what each GPU adds: the API server and tokenizer
BASE_RAM_GIB = 4
#: host RAM per GPU: its engine worker process, CUDA context and pinned transfer buffers. Weights are
#: read through the page cache while loading, which the kernel can reclaim, so they are not counted.
RAM_PER_GPU_GIB = 4
#: CPU cores per GPU: its worker process, plus scheduling and tokenizing on the API server
CPUS_PER_GPU = 2
#: the cache holds the checkpoint as published plus this share (partial downloads, the next revision)
CACHE_HEADROOM = 1.2
MIN_CACHE_GIB = 10
#: start-up (download + load) allowance before Kubernetes restarts the pod: a base plus the time to
#: fetch the checkpoint at 100 MB/s
STARTUP_BASE_S = 1800
STARTUP_S_PER_GB = 10
PROBE_PERIOD_S = 10
#: the catalog marks AMD's GPUs by their interconnect; gpuctl's engine images are CUDA builds
_AMD_INTERCONNECT = "infinity-fabric"


class PodSizing(BaseModel):
    """The size of one pod (one node of a replica) and how many of them there are."""

    gpus: list[str] = Field(description="canonical SKUs the pods may run on")
    gpu_count: int = Field(description="GPUs per pod")
    nodes: int = Field(description="pods per replica (one per node)")
    replicas: int
    fit: FitRow = Field(description="the fit on the smallest of ``gpus`` (sizes per GPU)")
    cache_gib: int = Field(description="size of the Hugging Face cache volume")
    memory_gib: int = Field(description="host RAM requested per pod")
    cpus: int = Field(description="CPU cores requested per pod")
    startup_probe_failures: int = Field(description="start-up probes (every PROBE_PERIOD_S) before a restart")
    gpu_product_labels: list[str] = Field(description="values of the nodes' nvidia.com/gpu.product label")

    @property
    def pods(self) -> int:
        return self.nodes * self.replicas


def size_pods(recipe: Recipe, *, gpu: str, gpu_count: int | None, nodes: int, replicas: int,
              context: int | None, settings: FitSettings) -> PodSizing:
    """The pods serving ``recipe`` on ``gpu`` (a SKU or a family); exit 2 when it fits on no count tried."""
    specs = [gpu_spec(name) for name in gpu_names(gpu)]
    amd = [spec.name for spec in specs if spec.interconnect == _AMD_INTERCONNECT]
    if amd:
        raise UsageError(f"{', '.join(amd)} is an AMD GPU; gpuctl's engine images and nvidia.com/gpu requests "
                         "are NVIDIA's", "pick an NVIDIA --gpu")
    smallest = min(specs, key=lambda spec: spec.vram_gb)
    row = _fewest_fitting(recipe, smallest, gpu_count, nodes, context, settings)
    checkpoint_gb = weight_bytes(recipe.architecture) / GB  # as published, whatever it is quantized to on load
    return PodSizing(
        gpus=[spec.name for spec in specs], gpu_count=row.gpu_count, nodes=nodes, replicas=replicas, fit=row,
        cache_gib=max(MIN_CACHE_GIB, math.ceil(checkpoint_gb * 1e9 * CACHE_HEADROOM / 2**30)),
        memory_gib=BASE_RAM_GIB + RAM_PER_GPU_GIB * row.gpu_count, cpus=CPUS_PER_GPU * row.gpu_count,
        startup_probe_failures=math.ceil((STARTUP_BASE_S + STARTUP_S_PER_GB * checkpoint_gb) / PROBE_PERIOD_S),
        gpu_product_labels=[label for spec in specs for label in product_labels(spec)],
    )


def product_labels(spec: GpuSpec) -> list[str]:
    """The ``nvidia.com/gpu.product`` values NVIDIA's GPU Feature Discovery gives nodes with this GPU.

    The label is the name the driver reports, spaces made dashes; the catalog keeps those names as
    aliases (the ones with spaces). Empty when the catalog knows none.
    """
    return [alias.replace(" ", "-") for alias in spec.aliases if " " in alias]


def _fewest_fitting(recipe: Recipe, spec: GpuSpec, gpu_count: int | None, nodes: int, context: int | None,
                    settings: FitSettings) -> FitRow:
    rows = [fit(recipe, spec.name, spec.vram_gb, count, context, settings, nodes=nodes)
            for count in ([gpu_count] if gpu_count else DEFAULT_GPU_COUNTS)]
    fitting = [row for row in rows if row.fits]
    if fitting:
        return fitting[0]
    last = rows[-1]
    where = f"{last.gpu_count} x {spec.name}" if gpu_count else f"up to {last.gpu_count} x {spec.name}"
    if nodes > 1:
        where += f" per node on {nodes} nodes"
    raise UsageError(f"{recipe.name} does not fit on {where} at {last.context} tokens: {last.reason}",
                     f"'gpuctl fit {recipe.name}' shows what it needs; try a larger --gpu, more --nodes "
                     "or a smaller --context")
