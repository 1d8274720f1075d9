"""Look up before out: the smallest single machine (more GPUs, FP8 where the GPU has it), then nodes."""

from __future__ import annotations

from gpuctl.fit import FitSettings, fit
from gpuctl.lookup import look_up
from gpuctl.models.recipe import Recipe
from gpuctl.recipes import RecipeBook

BOOK = RecipeBook()


def _405b() -> Recipe:
    """A Llama-3.1-405B-shaped model (126 layers of 16384, 8 KV heads): no machine of 8 x 80 GB holds it in BF16."""
    base = BOOK.get("llama-3.1-70b")
    arch = base.architecture.model_copy(update={"parameters": 405_000_000_000, "layers": 126, "hidden_size": 16384,
                                                "attention_heads": 128, "kv_heads": 8, "intermediate_size": 53248})
    return base.model_copy(update={"name": "big-405b", "architecture": arch})


def test_a_model_that_fits_one_gpu_needs_no_advice() -> None:
    found = look_up(BOOK.get("llama-3-8b"), gpus=["L40S"])
    assert found.one_gpu is not None and found.one_gpu.describe() == "1 x L40S"
    assert found.advice() is None


def test_more_gpus_in_one_machine_come_first_and_fp8_beside_them() -> None:
    found = look_up(BOOK.get("llama-3.1-70b"), gpus=["L4"])
    assert found.one_gpu is None
    assert found.machine is not None and found.machine.describe() == "8 x L4"
    assert found.fp8_machine is not None and found.fp8_machine.describe() == "4 x L4 in FP8"
    assert found.multi_node is None, "no multi-node shape while one machine serves it"
    assert found.advice() == (
        "llama-3.1-70b fits no single L4 at 8192 tokens; the smallest machine that serves it is 8 x L4 (tensor "
        "parallel); or 4 x L4 in FP8 (--quantization fp8, which halves the weights)")


def test_fp8_is_offered_only_where_the_gpu_computes_in_it() -> None:
    found = look_up(BOOK.get("llama-3.1-70b"), gpus=["A100-80GB-SXM"])  # Ampere: no FP8
    assert found.machine is not None and found.machine.describe() == "4 x A100-80GB-SXM"
    assert found.fp8_machine is None
    quantized = look_up(BOOK.get("llama-3.1-70b"), settings=FitSettings(quantization="fp8"), gpus=["L4"])
    assert quantized.fp8_machine is None and quantized.machine is not None
    assert quantized.machine.describe() == "4 x L4", "asked for FP8: the machine already is the FP8 one"


def test_several_machines_only_when_no_machine_holds_it() -> None:
    model = _405b()
    on_h100 = look_up(model, gpus=["H100-SXM"])
    assert on_h100.machine is None
    assert on_h100.fp8_machine is not None and on_h100.fp8_machine.describe() == "8 x H100-SXM in FP8"
    assert on_h100.multi_node is not None and on_h100.multi_node.describe() == "2 nodes of 8 x H100-SXM"
    assert fit(model, "H100-SXM", 80, 8, nodes=2).fits and not fit(model, "H100-SXM", 80, 8).fits
    advice = on_h100.advice()
    assert advice is not None and advice.index("FP8") < advice.index("--nodes 2")
    anywhere = look_up(model)
    assert anywhere.machine is not None and anywhere.multi_node is None, "a larger GPU holds it in one machine"


def test_amd_gpus_are_not_suggested() -> None:
    found = look_up(BOOK.get("llama-3.1-70b"))
    shapes = [m for m in (found.one_gpu, found.machine, found.fp8_machine) if m is not None]
    assert shapes and all("MI" not in m.gpu for m in shapes)
