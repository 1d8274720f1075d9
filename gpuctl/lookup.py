"""Look up before you look out: the smallest single machine that serves a model, before any multi-node plan.

A model too large for one GPU is served, in this order of preference:

1. more GPUs in one machine (tensor parallel over the machine's NVLink or PCIe), fewest first;
2. FP8 on a GPU that computes in FP8, which halves the weights: offered beside the first, never
   applied without the user asking (``--quantization fp8``), since it changes the model's numbers;
3. only when no machine of up to 8 GPUs holds it: several machines, one pipeline stage per node
   (``--nodes``), which adds a network hop between stages to every token.

"Smallest" is the least GPU memory in total (what the rent roughly follows), then the fewest GPUs.
AMD GPUs are left out of the suggestions: gpuctl's engine images are CUDA builds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import BaseModel, Field

from gpuctl.catalog import GpuSpec
from gpuctl.fit import DEFAULT_GPU_COUNTS, FitRow, FitSettings, check_context, effective_architecture, fit
from gpuctl.models.recipe import QuantMethod, Recipe

#: the most machines a multi-node suggestion spans (vLLM's pipeline stages are one per node)
MAX_NODES = 8
_AMD_INTERCONNECT = "infinity-fabric"
#: the on-the-fly quantization proposed where the GPU computes in it (both engines load 16-bit weights as FP8)
LOOK_UP_QUANTIZATION: QuantMethod = "fp8"


class Machine(BaseModel):
    """One way to serve a model: ``nodes`` machines of ``gpu_count`` x ``gpu``, maybe quantized while loading."""

    gpu: str
    gpu_count: int = Field(description="GPUs per machine")
    nodes: int = 1
    quantization: QuantMethod | None = Field(default=None, description="on-the-fly quantization this needs")
    vram_gb: float = Field(description="per GPU")
    fit: FitRow

    @property
    def total_gpus(self) -> int:
        return self.gpu_count * self.nodes

    @property
    def total_vram_gb(self) -> float:
        return self.vram_gb * self.total_gpus

    def describe(self) -> str:
        """'4 x H100-SXM', '1 x H100-SXM in FP8' or '2 nodes of 8 x H100-SXM'."""
        shape = f"{self.gpu_count} x {self.gpu}"
        if self.nodes > 1:
            shape = f"{self.nodes} nodes of {shape}"
        return shape + (f" in {self.quantization.upper()}" if self.quantization else "")


class LookUp(BaseModel):
    """Where a model fits, smallest first: one GPU, one machine, FP8, and only then several machines."""

    model: str
    context: int
    one_gpu: Machine | None = Field(description="the smallest single GPU that serves it as asked, if any")
    machine: Machine | None = Field(description="the smallest single machine that serves it as asked")
    fp8_machine: Machine | None = Field(
        description="the smallest single machine that serves it with FP8, when smaller than `machine`")
    multi_node: Machine | None = Field(description="the smallest multi-node shape, only when no machine does as asked")
    gpus: list[str] | None = Field(default=None, description="the GPUs considered (None: every known one)")

    def advice(self) -> str | None:
        """One sentence for a model that does not fit one GPU (None when it does)."""
        if self.one_gpu is not None:
            return None
        which = " or ".join(self.gpus) if self.gpus else "GPU"
        parts = [f"{self.model} fits no single {which} at {self.context} tokens"]
        if self.machine is not None:
            parts.append(f"the smallest machine that serves it is {self.machine.describe()} (tensor parallel)")
        if self.fp8_machine is not None:
            parts.append(f"{'or ' if self.machine else ''}{self.fp8_machine.describe()} "
                         "(--quantization fp8, which halves the weights)")
        if self.machine is None:
            if self.multi_node is None:
                parts.append(f"no machine of up to 8 GPUs holds it as asked, nor {MAX_NODES} of them")
            else:
                parts.append(f"{'otherwise ' if self.fp8_machine else ''}no machine of up to 8 GPUs holds it as "
                             f"asked: {self.multi_node.describe()} (--nodes {self.multi_node.nodes}, "
                             "pipeline parallel across machines)")
        return "; ".join(parts)


def look_up(recipe: Recipe, context: int | None = None, settings: FitSettings | None = None,
            gpus: Iterable[str] | None = None, counts: Sequence[int] = DEFAULT_GPU_COUNTS,
            max_nodes: int = MAX_NODES) -> LookUp:
    """The smallest GPU, machine, FP8 machine and (only if no machine does) multi-node shape serving ``recipe``.

    ``gpus``: canonical GPU names to consider (default: every known NVIDIA GPU).
    """
    from gpuctl.catalog import gpu_spec, known_gpus

    settings = settings or FitSettings()
    context = context or recipe.default_context
    check_context(recipe, context)
    specs = [gpu_spec(name) for name in gpus] if gpus is not None else known_gpus()
    specs = [spec for spec in specs if spec.interconnect != _AMD_INTERCONNECT]

    def smallest(candidates: Iterable[Machine]) -> Machine | None:
        return min(candidates, key=lambda m: (m.total_vram_gb, m.total_gpus), default=None)

    def shapes(run: FitSettings, names: list[GpuSpec], nodes: int = 1) -> list[Machine]:
        found = []
        for spec in names:
            for count in counts:
                row = fit(recipe, spec.name, spec.vram_gb, count, context, run, nodes=nodes)
                if row.fits:
                    found.append(Machine(gpu=spec.name, gpu_count=count, nodes=nodes, vram_gb=spec.vram_gb, fit=row,
                                         quantization=run.quantization if run is not settings else None))
                    break  # the fewest of this GPU that fit
        return found

    machines = shapes(settings, specs)
    one_gpu = smallest(m for m in machines if m.gpu_count == 1)
    machine = smallest(machines)
    fp8_machine = None
    if settings.quantization is None and effective_architecture(recipe, None).quantization is None:
        fp8_specs = [spec for spec in specs if spec.fp8_tflops is not None]
        fp8 = FitSettings(engine=settings.engine, gpu_memory_utilization=settings.gpu_memory_utilization,
                          quantization=LOOK_UP_QUANTIZATION)
        candidate = smallest(shapes(fp8, fp8_specs))
        if candidate is not None and (machine is None or candidate.total_vram_gb < machine.total_vram_gb):
            fp8_machine = candidate
    multi_node = None
    if machine is None:
        for nodes in range(2, max_nodes + 1):
            multi_node = smallest(shapes(settings, specs, nodes))
            if multi_node is not None:
                break
    return LookUp(model=recipe.name, context=context, one_gpu=one_gpu, machine=machine, fp8_machine=fp8_machine,
                  multi_node=multi_node, gpus=[spec.name for spec in specs] if gpus is not None else None)
